"""Brush and eraser in the annotator: strokes and the composed masks are saved as they are
made (also a change of strokes alone), and reopening restores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_annotator import TIMEOUT, open_annotator
from test_annotator import setup as setup  # noqa: F401  (fixture)

from sam_widget.widget.strokes import stroke_pixels


def test_strokes_and_their_masks_are_stored_and_restored(
    setup: tuple[Path, Path, list[Path]],  # noqa: F811
) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project)
    w = a.widget
    h, wd = w.image_height, w.image_width
    brush = {"points": [[5.0, 40.0], [30.0, 42.0]], "radius": 3.0, "erase": False}
    w.paint(brush["points"], 3)  # an object of the brush alone
    w.new_object()
    clicked = w.add_point(20, 15)
    w.wait(TIMEOUT)
    sam = w.masks[1]
    eraser = {"points": [[20.0, 15.0]], "radius": 4.0, "erase": True}
    w.paint(eraser["points"], 4, erase=True, object_id=clicked)  # a stroke-only change
    w.wait(TIMEOUT)
    stored = a.objects(0)
    assert [o.strokes for o in stored] == [[brush], [eraser]]
    np.testing.assert_array_equal(a.masks(0)[0], stroke_pixels(brush, h, wd))
    np.testing.assert_array_equal(a.masks(0)[1], sam & ~stroke_pixels(eraser, h, wd))
    np.testing.assert_array_equal(a.masks(0), np.stack(w.masks))
    before = np.stack(w.masks)
    a.close()

    b = open_annotator(folder, project)
    try:
        b.widget.wait(TIMEOUT)
        assert [o["strokes"] for o in b.widget.objects] == [[brush], [eraser]]
        np.testing.assert_array_equal(np.stack(b.widget.masks), before)
        # another stroke on a restored object is saved with its new mask
        more = {"points": [[50.0, 10.0]], "radius": 2.0, "erase": False}
        b.widget.paint(more["points"], 2, object_id=b.widget.objects[0]["id"])
        b.widget.wait(TIMEOUT)
        assert b.objects(0)[0].strokes == [brush, more]
        expected = stroke_pixels(brush, h, wd) | stroke_pixels(more, h, wd)
        np.testing.assert_array_equal(b.masks(0)[0], expected)
    finally:
        b.close()
