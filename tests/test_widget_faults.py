"""Faults found by probing the widget (issue 16): long jobs, wait timeouts, concurrent
calls, closed widgets, bad parameters, and threads at interpreter exit. The real "tiny"
model; the predictor is wrapped where a test must hold the worker inside a decode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import traitlets
from test_widget import IMG, IMG2, TIMEOUT, new_widget
from test_widget import model as model  # noqa: F401  (fixture)
from test_widget_async import Gate

from sam_widget.widget.session import Callbacks, Session
from sam_widget.widget.widget import SamWidget


class DecodeCounter:
    """Counts ``predictor.decode`` calls (any thread)."""

    def __init__(self, predictor: Any) -> None:
        self.points: list[int] = []
        original = predictor.decode

        def wrapper(points: Any, *args: Any, **kwargs: Any) -> Any:
            self.points.append(0 if points is None else len(points))
            return original(points, *args, **kwargs)

        predictor.decode = wrapper


def _grid(n: int, w: int = 128, h: int = 96) -> list[list[float]]:
    rng = np.random.default_rng(n)
    return [[float(rng.uniform(1, w - 1)), float(rng.uniform(1, h - 1))] for _ in range(n)]


def _wait_for(pred: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - t0


# ------------------------------------------------------------------- 3: long jobs


def test_one_decode_per_prompt_change(model: Any) -> None:
    w, _ = new_widget(model)
    count = DecodeCounter(w.predictor)
    w.new_object(points=_grid(40))
    w.wait(TIMEOUT)
    assert count.points == [40]  # not one decode per point
    for x, y in _grid(3):
        w.add_point(x, y)
        w.wait(TIMEOUT)
    assert count.points == [40, 41, 42, 43]
    w.undo()  # a state decoded before: no decoder run
    w.wait(TIMEOUT)
    assert len(count.points) == 4


def test_deleted_long_object_does_not_hold_up_the_next_click(model: Any) -> None:
    w, rec = new_widget(model)
    w.new_object(points=_grid(1000))
    time.sleep(0.05)  # the worker is busy with it
    w.delete_object()
    t0 = time.monotonic()
    oid = w.add_point(40, 30)
    _wait_for(lambda: rec.of("mask", object_id=oid), 2.0)
    assert time.monotonic() - t0 < 2.0
    w.wait(TIMEOUT)
    # clear() then w.masks: prompt (an object without prompts needs no decode)
    w.new_object(points=_grid(1000))
    w.clear()
    t0 = time.monotonic()
    masks = w.masks
    assert time.monotonic() - t0 < 2.0 and not masks[-1].any()


def test_limits_are_checked_with_clear_errors(model: Any) -> None:
    w, _ = new_widget(model)
    with pytest.raises(ValueError, match="1001 points; at most 1000"):
        w.new_object(points=_grid(1001))
    with pytest.raises(ValueError, match="201 characters; at most 200"):
        w.new_object(name="x" * 201)
    w.objects = [{"points": [[1, 1]], "labels": [1]} for _ in range(256)]
    with pytest.raises(ValueError, match="at most 256 objects"):
        w.new_object(points=[[1, 1]])
    with pytest.raises(ValueError, match="257 objects; at most 256"):
        w.objects = [*w.objects, {"points": [], "labels": []}]
    # the browser sending too much is refused and reported the same way
    too_many = [{"id": i, "points": [[1, 1]], "labels": [1]} for i in range(1, 258)]
    w.set_state({"objects": too_many})
    assert len(w.objects) == 256 and "257 objects; at most 256" in w.error


def test_session_frees_memory_when_objects_are_cleared_or_deleted(model: Any) -> None:
    """The worker part on its own (it knows no widget): logits kept per object go when the
    object's prompts are cleared or it is deleted."""
    from sam_widget.engine import model_cache as registry

    done = threading.Event()
    session = Session(Callbacks(send=lambda c, b: None, status=lambda s, p: None, error=print))
    try:
        session.load(lambda: registry.make_predictor(model))
        session.set_image(1, IMG)
        objs = [
            {"id": i, "seq": 1, "points": [[10.0 + i, 20.0]], "labels": [1], "candidate": None}
            for i in range(1, 21)
        ]
        for o in objs:
            session.submit(o)
        session.wait(TIMEOUT)
        assert session.held_bytes() >= 20 * 3 * 256 * 256 * 4
        for o in objs[:10]:
            session.submit({**o, "seq": 2, "points": [], "labels": []})  # cleared
        for o in objs[10:]:
            session.forget(o["id"])  # deleted
        session.wait(TIMEOUT)
        # what is left: the ten empty results (0 x 256 x 256)
        assert session.held_bytes() == 0
        done.set()
    finally:
        session.close()
    assert done.is_set() and not session._thread.is_alive()


def test_replaying_a_long_history_is_cancelled_by_a_new_image(model: Any) -> None:
    w, _ = new_widget(model)
    data = w.to_dict()
    states = [{"objects": [], "active": -1}]
    pts: list[list[float]] = []
    for x, y in _grid(150):
        pts.append([x, y])
        obj = {"id": 1, "name": "a", "color": "#e69f00", "points": list(pts)}
        states.append({"objects": [{**obj, "labels": [1] * len(pts)}], "active": 1})
    data["history"] = {"states": states, "index": len(states) - 1}
    data["objects"], data["active"] = states[-1]["objects"], 1
    w2 = SamWidget.from_dict(json.loads(json.dumps(data)), IMG, model="tiny")
    count = DecodeCounter(w2.predictor)
    time.sleep(0.1)
    t0 = time.monotonic()
    w2.set_image(IMG2)
    w2.wait(TIMEOUT)
    assert time.monotonic() - t0 < 2.0
    assert len(count.points) < 150  # the replay stopped


# ------------------------------------------------------------------- 4: wait, status


def test_wait_raises_on_timeout_and_status_tells_the_truth(model: Any) -> None:
    w, _ = new_widget(model)
    gate = Gate(w.predictor, "decode")
    w.add_point(40, 30)
    gate.wait_entered()
    with pytest.raises(TimeoutError, match="busy"):
        w.wait(timeout=0.2)
    assert w.status == "decoding"
    gate.release()
    w.wait(TIMEOUT)
    assert w.status == "ready"


# ------------------------------------------------------------------- 5: concurrency


def test_two_threads_adding_points_lose_nothing(model: Any) -> None:
    w, _ = new_widget(model, refine=False)  # about locks: one decode for the newest state
    a, b = w.new_object(name="a"), w.new_object(name="b")
    start = threading.Barrier(2)

    def add(oid: int, seed: int) -> None:
        start.wait()
        for x, y in _grid(180 + seed)[:180]:
            w.add_point(x, y, object_id=oid)

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(add, a, 0), pool.submit(add, b, 1)]:
            f.result(TIMEOUT)
    assert [len(o["points"]) for o in w.objects] == [180, 180]
    assert len(w.history) == 1 + 2 + 360
    w.wait(TIMEOUT)


def test_set_image_racing_add_point_never_misplaces_a_point(model: Any) -> None:
    w, _ = new_widget(model)
    stop = threading.Event()
    refused: list[str] = []

    def click() -> None:
        while not stop.is_set():
            try:
                w.add_point(120, 90)  # inside IMG (128 x 96), outside IMG2 (60 x 80)
            except ValueError as exc:
                refused.append(str(exc))

    t = threading.Thread(target=click)
    t.start()
    try:
        for k in range(12):
            w.set_image(IMG2 if k % 2 == 0 else IMG)
            for o in w.objects:
                assert all(x <= w.image_width and y <= w.image_height for x, y in o["points"])
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert all("outside the image" in r for r in refused)
    w.wait(TIMEOUT)


# ------------------------------------------------------------------- smaller ones


def test_ids_and_seqs_beyond_javascript_numbers_are_refused(model: Any) -> None:
    w, _ = new_widget(model)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        w.objects = [{"id": 2**53, "points": [], "labels": []}]
    with pytest.raises(ValueError, match=r"2\*\*53"):
        w.objects = [{"id": 1, "points": [], "labels": [], "seq": 2**53}]
    w.objects = [{"id": 2**53 - 1, "points": [], "labels": []}]
    assert w.object_ids == [2**53 - 1]


def test_widget_written_traits_are_read_only(model: Any) -> None:
    w, _ = new_widget(model)
    for name in ("image_width", "image_height", "image_id", "mask_width", "status", "error"):
        with pytest.raises(traitlets.TraitError, match="read-only"):
            setattr(w, name, getattr(w, name))
    assert (w.image_width, w.image_height) == (128, 96)


def test_closed_widget_says_so_and_its_threads_are_joined(model: Any) -> None:
    w, _ = new_widget(model)
    w.segment_everything(points_per_side=2).result(TIMEOUT)
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.add_point(10, 10)
    with pytest.raises(RuntimeError, match="closed"):
        w.wait(1)
    assert not w._session._thread.is_alive()
    assert w._everything._thread is not None and not w._everything._thread.is_alive()


def test_bad_segment_everything_parameters_raise_in_the_caller(model: Any) -> None:
    w, _ = new_widget(model)
    with pytest.raises(ValueError, match="points_per_side"):
        w.segment_everything(points_per_side=0)
    with pytest.raises(ValueError, match="pred_iou_thresh"):
        w.segment_everything(pred_iou_thresh=2.0)


def test_set_box_names_the_type_received(model: Any) -> None:
    w, _ = new_widget(model)
    with pytest.raises(TypeError, match="box must be a list, got str '0 0 10 10'"):
        w.set_box("0 0 10 10")  # type: ignore[arg-type]
    assert w.objects == []


# ------------------------------------------------------------------- threads at exit

_SCRIPT = """
import numpy as np
from sam_widget import SamWidget
img = np.zeros((64, 80, 3), np.uint8); img[16:40, 20:50] = 200
w = SamWidget(img, model="tiny").wait(120)
w.add_point(30, 20)
assert w.masks[0].shape == (64, 80)
"""


def test_scripts_exit_cleanly_with_widget_threads() -> None:
    """A plain script that makes a widget and exits: 20 runs (4 at a time), every one exits
    0 without "terminate called ..." (a worker thread inside torch at interpreter exit)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(20)))
    for r in results:
        assert r.returncode == 0 and "terminate called" not in r.stderr, r.stderr[-2000:]


def test_a_failure_after_the_encoder_ran_is_an_error_not_a_hang(model: Any) -> None:
    """A model whose embedding cannot be set (here: set_embedding raises) leaves the widget
    in the error state with the reason, and wait() raises it; it never stays "encoding"."""
    w = SamWidget(IMG, model="tiny")
    try:
        w.wait(TIMEOUT)

        def broken(emb: Any) -> None:
            raise RuntimeError("features of the wrong kind")

        w.predictor.set_embedding = broken  # type: ignore[method-assign]
        w.set_image(IMG2)
        with pytest.raises(RuntimeError, match="features of the wrong kind"):
            w.wait(TIMEOUT)
        assert w.status == "error"
        assert "features of the wrong kind" in w.error
    finally:
        w.close()
