"""The batches of a crop on worker threads (sam_widget/amg/batches.py): same records as one
thread, order, progress, cancellation and the intra-op thread count."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from test_amg import colour_wheel, shaped_tiny

from sam_widget import SamAutomaticMaskGenerator
from sam_widget.engine.amg import batches
from sam_widget.engine.amg.batches import run_batches

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_workers_give_the_same_records_as_one_thread(two_threads, monkeypatch) -> None:
    sam = shaped_tiny()
    image = colour_wheel(96, 128)
    kwargs = {
        "points_per_side": 6,
        "points_per_batch": 5,  # 8 batches per crop, the last one short
        "crop_n_layers": 1,
        "pred_iou_thresh": 0.75,
        "stability_score_thresh": 0.2,
        "stability_score_offset": 0.1,
    }
    seen: list[float] = []
    monkeypatch.setattr(batches, "WORKERS", 1)
    one = SamAutomaticMaskGenerator(sam, **kwargs).generate(image)
    monkeypatch.setattr(batches, "WORKERS", 2)
    two = SamAutomaticMaskGenerator(sam, **kwargs).generate(image, progress_callback=seen.append)
    assert len(one) >= 3, "the case should give several masks"
    assert len(two) == len(one)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["point_coords"] == b["point_coords"] and a["crop_box"] == b["crop_box"]
        # (one intra-op thread per worker: other summation order, same values up to rounding)
        assert b["predicted_iou"] == pytest.approx(a["predicted_iou"], rel=1e-5)
        assert b["stability_score"] == pytest.approx(a["stability_score"], rel=1e-5)
    # progress still rises by one batch at a time, in the caller's order
    assert seen == pytest.approx([(i + 1) / len(seen) for i in range(len(seen))])
    assert len(seen) == 5 * 8
    assert torch.get_num_threads() == 2


def test_order_ticks_and_thread_counts(two_threads) -> None:
    caller = threading.get_ident()
    where: dict[int, tuple[int, int]] = {}
    ticks: list[int] = []

    def batch(s: int) -> list:
        time.sleep(0.01 * ((7 - s) % 3))  # finish out of order
        where[s] = (threading.get_ident(), torch.get_num_threads())
        return [s, s + 100]

    out = run_batches(batch, range(8), lambda: ticks.append(threading.get_ident()), device=CPU)
    assert out == [x for s in range(8) for x in (s, s + 100)]
    assert ticks == [caller] * 8  # progress is reported from the calling thread
    # every batch on the workers (none in the caller: that left a worker idle)
    rest = [where[s] for s in range(8)]
    assert {t for t, _ in rest} - {caller}, "no batch ran on a worker"
    assert caller not in {t for t, _ in rest}
    assert {n for _, n in rest} == {1}  # 2 threads split between 2 workers
    assert torch.get_num_threads() == 2  # restored for the caller and later threads


def test_sequential_where_workers_cannot_help(two_threads) -> None:
    caller = threading.get_ident()
    runs: list[int] = []

    def batch(s: int) -> list:
        runs.append(threading.get_ident())
        return [s]

    assert run_batches(batch, range(3), lambda: None, device=CPU, workers=1) == [0, 1, 2]
    torch.set_num_threads(1)
    assert run_batches(batch, range(3), lambda: None, device=CPU) == [0, 1, 2]
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert run_batches(batch, range(1), lambda: None, device=CPU) == [0]
    assert runs == [caller] * 7


class _Stop(Exception):
    pass


def test_a_raising_tick_cancels_the_batches_not_started(two_threads) -> None:
    started: list[int] = []

    def batch(s: int) -> list:
        started.append(s)
        time.sleep(0.02)
        return [s]

    def tick() -> None:
        raise _Stop

    with pytest.raises(_Stop):
        run_batches(batch, range(20), tick, device=CPU)
    n = len(started)
    time.sleep(0.1)
    assert len(started) == n < 20  # nothing runs after the call returned
    assert torch.get_num_threads() == 2


def test_a_failing_batch_raises_in_the_caller(two_threads) -> None:
    def batch(s: int) -> list:
        if s == 3:
            raise ValueError("batch 3 failed")
        return [s]

    with pytest.raises(ValueError, match="batch 3 failed"):
        run_batches(batch, range(6), lambda: None, device=CPU)
    assert torch.get_num_threads() == 2
