"""The widget's Explain panel, kernel side: ``{type: "explain"}`` messages after decodes."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sam_widget.explain import explain
from sam_widget.widget.widget import SamWidget


class _Sent:
    """Records what the widget sends to the browser."""

    def __init__(self, widget: SamWidget) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[dict[str, Any], list[bytes]]] = []
        widget.send = self.send  # type: ignore[method-assign]

    def send(self, content: dict[str, Any], buffers: Any = None) -> None:
        with self.lock:
            self.messages.append((content, list(buffers or [])))

    def of(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self.lock:
            return [m for m in self.messages if m[0].get("type") == kind]


def _until(cond, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def _image() -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[12:36, 16:48] = (200, 180, 40)
    img[20:30, 40:60] = (30, 90, 200)
    return img


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _settle(w: SamWidget) -> None:
    w.wait(60)
    _until(lambda: w._session.idle() and w._explainer.idle())


def test_explain_message_explains_the_decode_the_widget_ran() -> None:
    w = SamWidget(_image(), model="tiny", explain=True)
    sent = _Sent(w)
    try:
        w.wait(60)
        w.add_point(30, 20)
        _settle(w)
        (content, buffers), *_ = sent.of("explain")
        obj = w.objects[0]
        assert (content["object_id"], content["seq"]) == (obj["id"], obj["seq"])
        assert content["image_id"] == w.image_id
        # one point: multimask; the shown mask is the candidate the widget chose
        update = w.mask_update(obj["id"])
        assert content["multimask"] is True and content["refined"] is False
        assert content["shown"] == 1 + update.candidate
        np.testing.assert_allclose(content["ious"][1:], update.scores, rtol=1e-4, atol=1e-5)
        assert "highest predicted IoU" in content["why"]
        first = explain(w.predictor, point_coords=[[30, 20]], point_labels=[1])
        np.testing.assert_array_equal(first.masks[content["shown"]], w.masks[0])
        names = content["images"]
        assert names == [
            "mask0",
            "mask1",
            "mask2",
            "mask3",
            "attention",
            "pe",
            "pe_similarity",
            "pca",
        ]
        assert len(buffers) == len(names)
        pics = {n: _png(b) for n, b in zip(names, buffers, strict=True)}
        assert max(pics["mask0"].shape[:2]) == 128
        assert pics["pe"].shape[1] == 256  # one column per PE channel (C = 256), 2 px each
        # The second click refines with the first mask (mask_input): the explanation feeds
        # the same mask_input, so its mask 0 is exactly the widget's mask.
        w.add_point(50, 25, label=0)
        _settle(w)
        content2, buffers2 = sent.of("explain")[-1]
        obj = w.objects[0]
        assert content2["seq"] == obj["seq"] and content2["seq"] > content["seq"]
        assert content2["multimask"] is False and content2["shown"] == 0
        assert content2["refined"] is True
        assert "pca" not in content2["images"]  # once per image
        update = w.mask_update(obj["id"])
        ex = explain(
            w.predictor,
            point_coords=np.asarray(obj["points"], float),
            point_labels=np.asarray(obj["labels"]),
            mask_input=update.result.mask_input.numpy(),
        )
        np.testing.assert_array_equal(ex.masks[0], w.masks[0])
        assert content2["ious"][0] == pytest.approx(update.score, rel=1e-4, abs=1e-5)
        # without the widget's mask_input the decode would differ (so the check has teeth)
        plain = explain(
            w.predictor,
            point_coords=np.asarray(obj["points"], float),
            point_labels=np.asarray(obj["labels"]),
        )
        assert not np.allclose(plain.low_res_logits[0], ex.low_res_logits[0])
    finally:
        w.close()


def test_explain_off_computes_and_sends_nothing_then_toggle_on_explains_active() -> None:
    w = SamWidget(_image(), model="tiny")
    sent = _Sent(w)
    try:
        assert w.explain is False
        w.wait(60)
        w.add_point(30, 20)
        w.add_point(40, 25)
        _settle(w)
        assert sent.of("mask") and not sent.of("explain")
        assert w._explainer.computed == 0
        w.explain = True  # the toolbar toggle: explains the current mask at once
        _settle(w)
        (content, _), *_ = sent.of("explain")
        assert content["seq"] == w.objects[0]["seq"] and content["shown"] == 0
        w.explain = False
        w.add_point(20, 30)
        _settle(w)
        assert len(sent.of("explain")) == 1 and w._explainer.computed == 1
    finally:
        w.close()


def test_stale_explanations_are_dropped() -> None:
    w = SamWidget(_image(), model="tiny", explain=True)
    sent = _Sent(w)
    try:
        w.wait(60)
        gate = threading.Event()
        real = w._session.on_image

        def slow(image_id: int, fn: Any) -> Any:
            gate.wait(30)
            return real(image_id, fn)

        w._session.on_image = slow  # type: ignore[method-assign]
        w.add_point(30, 20)
        w.wait(60)
        _until(lambda: not w._explainer.idle())  # the first explanation waits on the gate
        w.add_point(40, 25)  # a newer seq while it is being computed
        w.wait(60)
        gate.set()
        _settle(w)
        seqs = [c["seq"] for c, _ in sent.of("explain")]
        assert seqs == [w.objects[0]["seq"]]  # only the current decode was explained
    finally:
        w.close()


def test_explain_argument_is_checked() -> None:
    with pytest.raises(TypeError, match="explain must be a bool"):
        SamWidget(_image(), model="tiny", explain="yes")  # type: ignore[arg-type]


def _labels(buf: bytes, h: int, w: int) -> np.ndarray:
    import zlib

    return np.frombuffer(zlib.decompress(buf), dtype="<u2").reshape(h, w)


def test_explain_everything_sends_grid_and_every_stage() -> None:
    # quality filters off (the untrained model's scores are low) so that masks survive
    params = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    w = SamWidget(_image(), model="tiny", everything=params)
    sent = _Sent(w)
    try:
        w.wait(60)
        amg = w.explain_everything().result(120)
        (content, buffers), *_ = sent.of("explain_everything")
        assert content["image_id"] == w.image_id
        assert len(content["grid"]) == 16  # 4 x 4 points, one crop
        xs, ys = zip(*content["grid"], strict=True)
        assert 0 < min(xs) < max(xs) < 64 and 0 < min(ys) < max(ys) < 48
        names = [s["name"] for s in content["stages"]]
        assert names == [s.name for s in amg.stages]
        counts = [s["count"] for s in content["stages"]]
        assert counts == [s.count for s in amg.stages]
        assert counts[0] == 48 and 0 < counts[-1] < counts[0]  # NMS removed some, not all
        # each stage removes what it says from the one before; counts never grow
        before = [content["decoded"], *counts[:-1]]
        assert [s["removed"] for s in content["stages"]] == [
            b - c for b, c in zip(before, counts, strict=True)
        ]
        assert len(buffers) == len(names)
        h, wd = content["height"], content["width"]
        assert (h, wd) == (w.mask_height, w.mask_width)
        for stage, buf in zip(content["stages"], buffers, strict=True):
            labels = _labels(buf, h, wd)
            assert labels.max() <= stage["count"]
        # The last stage is what segment-everything shows: same area covered.
        w.segment_everything().result(120)
        _until(lambda: bool(sent.of("everything")))
        (ev, ev_buffers), *_ = sent.of("everything")
        assert ev["count"] == counts[-1]
        final = _labels(buffers[-1], h, wd)
        np.testing.assert_array_equal(final > 0, _labels(ev_buffers[0], h, wd) > 0)
    finally:
        w.close()
