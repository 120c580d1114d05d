"""Phase-2 proposals in SamAnnotator: automatic masks that overlap no existing object, shown
on the widget, accepted as "assisted" objects or rejected; a run is cancelled on navigation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_annotator import TIMEOUT, open_annotator, setup  # noqa: F401  (fixture)

from sam_widget.annotator.proposals import non_overlapping
from sam_widget.engine.amg import SamAutomaticMaskGenerator


def _block(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _record(mask: np.ndarray, iou: float) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    return {"segmentation": mask, "predicted_iou": iou, "stability_score": 0.9,
            "area": int(mask.sum()), "point_coords": [[float(xs[0]), float(ys[0])]],
            "crop_box": [0, 0, mask.shape[1], mask.shape[0]]}  # fmt: skip


def test_non_overlapping_filters_by_iou_and_sorts() -> None:
    existing = np.stack([_block(20, 20, 0, 0, 10, 10)])
    same = _record(_block(20, 20, 0, 0, 10, 10), 0.99)  # IoU 1
    half = _record(_block(20, 20, 0, 0, 10, 5), 0.7)  # IoU 0.5: kept at threshold 0.5
    apart = _record(_block(20, 20, 12, 12, 18, 18), 0.8)
    assert non_overlapping([same, half, apart], existing, 0.5) == [apart, half]
    assert non_overlapping([same, half, apart], existing, 0.4) == [apart]
    assert non_overlapping([same], np.zeros((0, 20, 20), bool), 0.0) == [same]
    empty = {**apart, "segmentation": np.zeros((20, 20), bool)}
    assert non_overlapping([empty], np.zeros((0, 20, 20), bool), 1.0) == []


def test_propose_accept_reject(
    setup: tuple[Path, Path, list[Path]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project, categories=["cell"])
    sent: list[dict[str, Any]] = []
    original_send = a.widget.send
    a.widget.send = lambda content, buffers=None: (sent.append(content),  # type: ignore[method-assign]
                                                   original_send(content, buffers))  # fmt: skip
    try:
        w = a.widget
        h, wd = w.image.shape[:2]
        first = _block(h, wd, 0, 0, 20, 30)
        a.project.add_object(a.images[0], first)  # an existing object
        a.goto(0)
        good = _record(_block(h, wd, 40, 44, 46, 60), 0.9)
        weak = _record(_block(h, wd, 0, 56, 5, 64), 0.5)
        records = [_record(first, 0.95), weak, good]
        release = threading.Event()

        def generate(self: Any, image: np.ndarray, progress_callback: Any = None) -> Any:
            assert image.shape == (h, wd, 3)
            for k in range(50):
                if release.wait(0.02):
                    break
                progress_callback(k / 50)
            return [dict(r) for r in records]

        monkeypatch.setattr(SamAutomaticMaskGenerator, "generate", generate)
        release.set()
        proposals = a.propose(iou_threshold=0.5).result(TIMEOUT)
        assert [p["predicted_iou"] for p in proposals] == [0.9, 0.5]  # the copy is left out
        assert [p["predicted_iou"] for p in a.proposals] == [0.9, 0.5]
        shown = [c for c in sent if c["type"] == "everything"]
        assert shown and shown[-1]["count"] == 2 and shown[-1]["image_id"] == w.image_id
        a.set_category("cell")
        added = a.accept_all(min_iou=0.8)
        assert [(o.source, o.category, o.predicted_iou) for o in added] == [
            ("assisted", "cell", 0.9)
        ]
        assert [p["predicted_iou"] for p in a.proposals] == [0.5]
        w.wait(TIMEOUT)
        stored = a.objects()
        assert len(stored) == 2 and len(w.objects) == 2
        np.testing.assert_array_equal(stored[1].mask, good["segmentation"])  # the proposal's
        assert stored[1].prompts["points"] == good["point_coords"]
        with pytest.raises(ValueError, match="proposal indices"):
            a.accept(5)
        a.reject()
        assert a.proposals == [] and sent[-1]["type"] == "clear_everything"
        # Going to another image cancels a run in progress.
        release.clear()
        future = a.propose()
        a.next()
        with pytest.raises(CancelledError):
            future.result(TIMEOUT)
        assert a.proposals == []
    finally:
        a.close()


def test_propose_with_the_real_generator(setup: tuple[Path, Path, list[Path]]) -> None:  # noqa: F811
    folder, project, _ = setup
    a = open_annotator(folder, project)
    try:
        a.widget.add_point(20, 15)
        a.widget.wait(TIMEOUT)
        existing = a.masks()
        params = {"points_per_side": 1, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        everything = a.propose(iou_threshold=1.0, **params).result(TIMEOUT)
        assert everything  # with these thresholds the random model gives masks
        proposals = a.propose(iou_threshold=0.3, **params).result(TIMEOUT)
        kept = [p["predicted_iou"] for p in everything if p["segmentation"].sum() and
                (p["segmentation"] & existing[0]).sum() / (p["segmentation"] | existing[0]).sum()
                <= 0.3]  # fmt: skip
        assert [p["predicted_iou"] for p in proposals] == kept
        for p in proposals:
            m = p["segmentation"]
            assert m.shape == existing.shape[1:]
            inter = (m & existing[0]).sum()
            assert inter / (m | existing[0]).sum() <= 0.3
        with pytest.raises(TypeError):
            a.propose(points_per_sid=2)
    finally:
        a.close()


def test_view_buttons_propose_accept_reject(
    setup: tuple[Path, Path, list[Path]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project)
    try:
        h, wd = a.widget.image.shape[:2]
        records = [_record(_block(h, wd, 2, 2, 10, 10), 0.9),
                   _record(_block(h, wd, 20, 20, 30, 30), 0.3)]  # fmt: skip
        monkeypatch.setattr(SamAutomaticMaskGenerator, "generate",
                            lambda self, image, progress_callback=None: list(records))  # fmt: skip
        v = a.view
        v.propose.click()
        deadline = time.monotonic() + TIMEOUT
        while len(a.proposals) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(a.proposals) == 2
        v.refresh()
        assert "2 proposal(s)" in v.proposal_info.value
        v.min_iou.value = 0.5
        v.accept.click()  # accepts the proposals with predicted IoU >= 0.5
        assert [o.predicted_iou for o in a.objects()] == [0.9] and len(a.proposals) == 1
        assert "1 obj" in v.list.options[0][0]
        v.reject.click()
        assert a.proposals == [] and v.proposal_info.value == ""
    finally:
        a.close()


def test_a_click_on_a_proposal_accepts_it(
    setup: tuple[Path, Path, list[Path]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The browser's keep message (a click on proposal k in keep mode) accepts proposal k as
    an "assisted" object; the others stay proposed and are drawn again, numbered anew."""
    from sam_widget.widget.codec import decode_label_map

    folder, project, _ = setup
    a = open_annotator(folder, project)
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    a.widget.send = lambda content, buffers=None: sent.append(  # type: ignore[method-assign]
        (content, list(buffers or []))
    )
    try:
        w = a.widget
        h, wd = w.image.shape[:2]
        blocks = [_block(h, wd, 2, 2, 12, 14), _block(h, wd, 20, 20, 30, 34),
                  _block(h, wd, 36, 44, 46, 60)]  # fmt: skip
        records = [_record(m, iou) for m, iou in zip(blocks, (0.9, 0.8, 0.7), strict=True)]
        monkeypatch.setattr(SamAutomaticMaskGenerator, "generate",
                            lambda self, image, progress_callback=None: list(records))  # fmt: skip
        assert len(a.propose().result(TIMEOUT)) == 3
        w._on_custom_message(w, {"type": "keep", "index": 1}, [])  # click on proposal 1
        assert w.error == ""
        (obj,) = a.objects()
        assert (obj.source, obj.predicted_iou) == ("assisted", 0.8)
        np.testing.assert_array_equal(obj.mask, blocks[1])
        assert [p["predicted_iou"] for p in a.proposals] == [0.9, 0.7]
        assert len(w.objects) == 1  # the widget shows the new object

        # The rest are drawn again: label 1 = proposal 0, label 2 = the old proposal 2.
        c, buffers = [m for m in sent if m[0]["type"] == "everything"][-1]
        assert c["count"] == 2 and c["image_id"] == w.image_id
        labels = decode_label_map(buffers[0], c["width"], c["height"])
        sy, sx = c["height"] / h, c["width"] / wd
        assert labels[int(7 * sy), int(8 * sx)] == 1
        assert labels[int(41 * sy), int(52 * sx)] == 2
        assert labels[int(25 * sy), int(27 * sx)] == 0  # the accepted one is gone

        # A click on the (new) label 2 accepts the old proposal 2.
        w._on_custom_message(w, {"type": "keep", "index": 1}, [])
        assert [o.predicted_iou for o in a.objects()] == [0.8, 0.7]
        assert [p["predicted_iou"] for p in a.proposals] == [0.9]
        # An index past the open proposals is reported (naming it) and accepts nothing.
        w._on_custom_message(w, {"type": "keep", "index": 1}, [])
        assert "index must be an integer in 0..0, got 1" in w.error
        assert len(a.objects()) == 2 and len(a.proposals) == 1
        # Rejected: the click is segment-everything's again (which has no result here).
        a.reject()
        with pytest.raises(ValueError, match="no segment-everything result"):
            w.keep(0)
        assert len(a.objects()) == 2
    finally:
        a.close()
