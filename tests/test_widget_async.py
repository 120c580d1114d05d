"""SamWidget's background work: stale-drop, coalescing, prompts during encoding, hover,
errors. The real "tiny" model; the predictor is wrapped so that a test can hold the worker
inside a decode/encode and change things meanwhile."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch
from test_widget import (
    IMG,
    IMG2,
    TIMEOUT,
    display,
    new_widget,
    ref_single_point,
    shown,
)
from test_widget import model as model  # noqa: F401  (fixture)
from test_widget import ref as ref  # noqa: F401  (fixture)

from sam_widget.widget.widget import SamWidget


class Gate:
    """Wraps ``predictor.<name>``: the first call blocks until ``release()``."""

    def __init__(self, predictor: Any, name: str) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()
        self.calls: list[tuple[Any, Any]] = []
        self.original = getattr(predictor, name)
        self.blocked = False

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((args, kwargs))
            if not self.blocked:
                self.blocked = True
                self.entered.set()
                assert self.go.wait(TIMEOUT)
            return self.original(*args, **kwargs)

        setattr(predictor, name, wrapper)

    def wait_entered(self) -> None:
        assert self.entered.wait(TIMEOUT), "the worker never reached the gate"

    def release(self) -> None:
        self.go.set()


def test_result_for_old_seq_is_dropped(model: Any, ref: Any) -> None:
    w, rec = new_widget(model)
    gate = Gate(w.predictor, "decode")
    oid = w.add_point(40, 30)
    first = w.objects[0]["seq"]
    gate.wait_entered()  # the worker is decoding the first seq ...
    w.add_point(90, 60)  # ... while the prompts move on to the next
    seq = w.objects[0]["seq"]
    assert seq == first + 1
    gate.release()
    w.wait(TIMEOUT)
    msgs = rec.of("mask", object_id=oid)
    assert [m[0]["seq"] for m in msgs] == [seq]
    assert len(msgs[0][0]["scores"]) == 1  # the two-point result, not the old candidates


def test_result_for_old_image_is_dropped(model: Any) -> None:
    w, rec = new_widget(model)
    gate = Gate(w.predictor, "decode")
    w.add_point(40, 30)
    gate.wait_entered()
    w.set_image(IMG2)  # image_id 2 while the decode for image 1 is in flight
    gate.release()
    w.wait(TIMEOUT)
    assert rec.of("mask") == []
    assert w.objects == [] and w.image_id == 2


def test_states_queued_behind_a_busy_worker_refine_in_order(model: Any) -> None:
    """Five box states arrive while the worker is busy: each is decoded once, in order, each
    refined from the one before (its logits as mask_input), and only the newest is sent."""
    w, rec = new_widget(model)
    gate = Gate(w.predictor, "decode")
    a = w.add_point(40, 30)
    gate.wait_entered()  # worker busy with object a
    b = w.new_object(name="b")
    for i in range(5):
        w.set_box([10, 10, 50 + 10 * i, 60], object_id=b)
    gate.release()
    w.wait(TIMEOUT)
    box_calls = [c for c in gate.calls if c[1].get("box") is not None]
    assert [list(c[1]["box"]) for c in box_calls] == [[10, 10, 50 + 10 * i, 60] for i in range(5)]
    assert box_calls[0][1]["mask_input"] is None
    assert all(c[1]["mask_input"] is not None for c in box_calls[1:])
    sent_b = rec.of("mask", object_id=b)
    assert [m[0]["seq"] for m in sent_b] == [w.objects[1]["seq"]]
    assert len(rec.of("mask", object_id=a)) == 1


def test_a_newer_state_that_starts_over_cancels_the_queued_ones(model: Any) -> None:
    """States nobody refines from are not decoded: here two boxes queued behind a busy
    worker are followed by a clear and a single (ambiguous, unrefined) point."""
    w, rec = new_widget(model)
    gate = Gate(w.predictor, "decode")
    w.add_point(40, 30)
    gate.wait_entered()
    b = w.new_object(name="b")
    w.set_box([10, 10, 50, 60], object_id=b)
    w.set_box([10, 10, 70, 60], object_id=b)
    w.clear(object_id=b)
    w.add_point(20, 20, object_id=b)
    gate.release()
    w.wait(TIMEOUT)
    assert [c for c in gate.calls if c[1].get("box") is not None] == []
    assert [m[0]["seq"] for m in rec.of("mask", object_id=b)] == [w.objects[1]["seq"]]


def test_refined_masks_do_not_depend_on_the_workers_speed(model: Any) -> None:
    """The same prompt states give the same masks whether the worker kept up with every
    state or was busy while they arrived (so from_dict and reopened projects reproduce them)."""
    boxes = [[10, 10, 50 + 10 * i, 60 + 3 * i] for i in range(4)]
    slow, _ = new_widget(model)
    oid = slow.new_object()
    for box in boxes:
        slow.set_box(box, object_id=oid)
        slow.wait(TIMEOUT)
    slow.add_point(30, 35, object_id=oid)
    expected = slow.masks[0]
    fast, _ = new_widget(model)
    gate = Gate(fast.predictor, "decode")
    first = fast.add_point(5, 5)  # keeps the worker busy while the states below arrive
    gate.wait_entered()
    oid = fast.new_object()
    for box in boxes:
        fast.set_box(box, object_id=oid)
    fast.add_point(30, 35, object_id=oid)
    gate.release()
    fast.wait(TIMEOUT)
    assert fast.objects[1]["id"] == oid and first != oid
    np.testing.assert_array_equal(fast.masks[1], expected)
    restored = SamWidget.from_dict(fast.to_dict(), IMG, model="tiny")
    restored.wait(TIMEOUT)
    np.testing.assert_array_equal(restored.masks[1], expected)


def test_prompts_during_encoding_are_applied_afterwards(model: Any, ref: Any) -> None:
    w, rec = new_widget(model, IMG2)
    gate = Gate(w.predictor, "compute_embedding")
    w.set_image(IMG)
    gate.wait_entered()
    assert w.status == "encoding"
    oid = w.add_point(40, 30)
    w.add_point(41, 31)
    w.undo()  # one point again
    assert rec.of("mask") == []
    gate.release()
    w.wait(TIMEOUT)
    msgs = rec.of("mask", object_id=oid)
    assert len(msgs) == 1 and msgs[0][0]["image_id"] == w.image_id == 2
    logits, _, best = ref_single_point(ref, 40, 30)
    np.testing.assert_array_equal(shown(msgs[0]), display(ref, logits[best : best + 1]))
    assert w.status == "ready"


def test_encoding_progress_is_reported(model: Any) -> None:
    w, _ = new_widget(model, IMG2)
    seen: list[tuple[str, float]] = []
    w.observe(lambda ch: seen.append((w.status, ch["new"])), names="progress")
    w.predictor.cache.clear()
    w.set_image(IMG2[::-1].copy())
    w.wait(TIMEOUT)
    fractions = [p for s, p in seen if s == "encoding"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 2
    assert w.status == "ready"


def test_hover_latest_wins_and_clears(model: Any, ref: Any) -> None:
    w, rec = new_widget(model)
    gate = Gate(w.predictor, "decode")
    oid = w.add_point(40, 30)
    gate.wait_entered()
    for seq, x in ((1, 60), (2, 70), (3, 90)):
        w._on_custom_message(w, {"type": "hover", "seq": seq, "x": x, "y": 50}, [])
    gate.release()
    w.wait(TIMEOUT)
    hovers = rec.of("hover_mask")
    assert [h[0]["seq"] for h in hovers] == [3]
    assert hovers[0][0]["image_id"] == w.image_id
    # the preview is what clicking there would give: the object's prompts + that point
    logits, _, best = ref_single_point(ref, 40, 30)
    l2, _ = ref.decode(
        np.array([[40, 30], [90, 50]]),
        np.array([1, 1]),
        mask_input=logits[best : best + 1],
        multimask_output=False,
    )
    np.testing.assert_array_equal(shown(hovers[0]), display(ref, l2))
    assert len(rec.of("mask", object_id=oid)) == 1
    rec.clear()
    w._on_custom_message(w, {"type": "hover", "seq": 4, "x": None}, [])
    (cleared,) = rec.of("hover_mask")
    assert cleared[0]["seq"] == 4 and cleared[1] == []
    w.hover = False  # hover off: requests only clear
    rec.clear()
    w._on_custom_message(w, {"type": "hover", "seq": 5, "x": 10, "y": 10}, [])
    w.wait(TIMEOUT)
    assert [h[1] for h in rec.of("hover_mask")] == [[]]


def test_decoder_exception_is_shown_logged_and_recovered(model: Any, caplog) -> None:
    w, rec = new_widget(model)
    original = w.predictor.decode

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom in the decoder")

    w.predictor.decode = broken
    with caplog.at_level("ERROR", logger="sam_widget"):
        oid = w.add_point(40, 30)
        w.wait(TIMEOUT)
    assert "boom in the decoder" in w.error and w.status == "ready"
    assert any("boom in the decoder" in r.getMessage() and r.exc_info for r in caplog.records)
    assert rec.of("mask") == []
    w.predictor.decode = original
    w.add_point(60, 40)
    w.wait(TIMEOUT)
    assert rec.of("mask", object_id=oid) and w.error == ""


def test_unknown_message_and_bad_message_do_not_break(model: Any, caplog) -> None:
    w, _ = new_widget(model)
    with caplog.at_level("WARNING", logger="sam_widget"):
        w._on_custom_message(w, {"type": "dance"}, [])
        w._on_custom_message(w, {"type": "keep", "index": 0}, [])
    assert "no segment-everything result" in w.error
    assert any("dance" in r.getMessage() for r in caplog.records)


def test_bad_checkpoint_shows_error_and_logs(tmp_path, caplog) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with caplog.at_level("ERROR", logger="sam_widget"):
        w = SamWidget(IMG, model="tiny", checkpoint=bad)
        with pytest.raises(RuntimeError, match="could not be loaded"):
            w.wait(TIMEOUT)
    assert w.status == "error" and w.error.startswith("The model could not be loaded: ")
    assert w.error.count("could not be loaded") == 1  # said once, not stacked
    assert any("could not be loaded" in r.getMessage() for r in caplog.records)
    w.add_point(1, 1)  # prompts are still accepted and kept ...
    assert len(w.objects) == 1
    with pytest.raises(RuntimeError, match="could not be loaded"):
        _ = w.masks  # ... but results say why there are none


def test_encoding_failure_is_reported_and_next_image_works(model: Any) -> None:
    w, _ = new_widget(model, IMG2)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    original = w.predictor.compute_embedding
    w.predictor.compute_embedding = failing
    w.set_image(IMG)
    with pytest.raises(RuntimeError, match="could not be encoded"):
        w.wait(TIMEOUT)
    assert w.status == "error" and "Out of memory" in w.error
    w.predictor.compute_embedding = original
    w.set_image(IMG)
    w.wait(TIMEOUT)
    assert w.status == "ready" and w.error == ""


def test_segment_everything_for_a_replaced_image_is_cancelled(model: Any) -> None:
    from concurrent.futures import CancelledError

    w, rec = new_widget(model)
    gate = Gate(w.predictor, "compute_embedding")  # the generator's embedding lookup
    future = w.segment_everything(
        points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    assert w.segment_everything() is future  # one run at a time
    gate.wait_entered()
    w.set_image(IMG2)
    gate.release()
    with pytest.raises(CancelledError):
        future.result(TIMEOUT)
    w.wait(TIMEOUT)
    assert rec.of("everything") == [] and w.status == "ready"
    with pytest.raises(ValueError, match="no segment-everything result"):
        w.keep(0)
