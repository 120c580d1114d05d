"""``SamWidget.show_overlay``: masks drawn on the segment-everything layer that a click in keep
mode picks (the browser's ``keep`` message calls ``on_pick``), with the "tiny" model.

Browser messages go through the widget's custom-message handler, as in test_widget.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_widget import IMG, IMG2, TIMEOUT, Recorder, model, new_widget  # noqa: F401

from sam_widget.widget.codec import decode_label_map
from sam_widget.widget.widget import SamWidget


def _blocks(h: int, w: int) -> list[np.ndarray]:
    a = np.zeros((h, w), bool)
    a[4:40, 4:50] = True
    b = np.zeros((h, w), bool)
    b[50:90, 70:120] = True
    return [a, b]


def _at_display(w: SamWidget, labels: np.ndarray, x: float, y: float) -> int:
    """The label under image px (x, y) of a display-size label map."""
    sx, sy = w.mask_width / w.image_width, w.mask_height / w.image_height
    return int(labels[int(y * sy), int(x * sx)])


def _browser(w: SamWidget, content: dict[str, Any]) -> None:
    w._on_custom_message(w, content, [])


def test_a_click_on_an_overlay_mask_calls_on_pick(model: Any) -> None:  # noqa: F811
    w, rec = new_widget(model)
    try:
        masks = _blocks(w.image_height, w.image_width)
        picked: list[int] = []
        w.show_overlay(masks, on_pick=lambda k: picked.append(k) or 100 + k)
        (msg,) = rec.of("everything")
        c = msg[0]
        assert c["count"] == 2 and c["image_id"] == w.image_id and c["source"] == "overlay"
        labels = decode_label_map(msg[1][0], c["width"], c["height"])
        assert (_at_display(w, labels, 20, 20), _at_display(w, labels, 100, 70)) == (1, 2)
        assert _at_display(w, labels, 120, 20) == 0

        _browser(w, {"type": "keep", "index": 1})  # a click on mask 2 in keep mode
        assert picked == [1] and w.objects == [] and w.error == ""
        assert w.keep(0) == 100 and picked == [1, 0]  # on_pick's result comes back

        # A bad index from the browser is reported, naming it; from Python it raises.
        _browser(w, {"type": "keep", "index": 2})
        assert "index" in w.error and "got 2" in w.error and picked == [1, 0]
        for bad in (2, -1, True, "0", None):
            with pytest.raises(ValueError, match="index must be an integer in 0..1"):
                w.keep(bad)
        assert picked == [1, 0] and w.objects == []

        # A new view (re-render) gets the overlay again.
        rec.clear()
        _browser(w, {"type": "sync"})
        (again,) = rec.of("everything")
        assert again[0]["count"] == 2 and again[0]["source"] == "overlay"
        np.testing.assert_array_equal(
            decode_label_map(again[1][0], c["width"], c["height"]), labels
        )

        with pytest.raises(ValueError, match=r"masks\[1\] must be a bool array"):
            w.show_overlay([masks[0], masks[1][:10]])
        with pytest.raises(ValueError, match=r"masks\[0\] must be a bool array"):
            w.show_overlay([masks[0].astype(np.uint8)])
        with pytest.raises(TypeError, match="on_pick must be callable"):
            w.show_overlay(masks, on_pick=3)  # type: ignore[arg-type]
        _browser(w, {"type": "keep", "index": 0})  # the refused calls changed nothing
        assert picked == [1, 0, 0]

        # clear_everything drops overlay and picker: keep is segment-everything's again.
        w.clear_everything()
        assert rec.of("clear_everything")
        with pytest.raises(ValueError, match="no segment-everything result"):
            w.keep(0)

        # An empty list clears; a new image drops the picker.
        w.show_overlay(masks, on_pick=picked.append)
        rec.clear()
        w.show_overlay([])
        assert rec.of("clear_everything") and not rec.of("everything")
        with pytest.raises(ValueError, match="no segment-everything result"):
            w.keep(0)
        w.show_overlay(masks, on_pick=picked.append)
        w.set_image(IMG2)
        w.wait(TIMEOUT)
        with pytest.raises(ValueError, match="no segment-everything result"):
            w.keep(0)
        rec.clear()
        _browser(w, {"type": "sync"})
        assert not rec.of("everything")  # nothing of the old image is drawn again
        assert picked == [1, 0, 0]
    finally:
        w.close()


def test_segment_everything_replaces_the_overlay_and_keeps_its_own_masks(
    model: Any,  # noqa: F811
) -> None:
    w, rec = new_widget(model)
    try:
        picked: list[int] = []
        w.show_overlay(_blocks(w.image_height, w.image_width), on_pick=picked.append)
        rec.clear()
        params = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
        records = w.segment_everything(**params).result(TIMEOUT)
        assert records
        kinds = [m[0]["type"] for m in rec.msgs if "everything" in m[0]["type"]]
        assert kinds == ["clear_everything", "everything"]  # the overlay goes at once
        assert rec.of("everything")[0][0]["source"] == "everything"
        oid = w.keep(0)  # segment-everything's keep, not the overlay's picker
        w.wait(TIMEOUT)
        assert picked == [] and [o["id"] for o in w.objects] == [oid]
        assert w.objects[0]["points"] == [list(map(float, records[0]["point_coords"][0]))]
    finally:
        w.close()
