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


def test_clicks_and_strokes_are_counted_per_object(
    setup: tuple[Path, Path, list[Path]],  # noqa: F811
) -> None:
    """Two clicks and a stroke on one object, one click on another: the exact counts in each
    record's extra and in the summary; undoing a stroke adds none; an older project's
    ``edits`` count as clicks; an accepted proposal's other extra fields survive edits."""
    folder, project, _ = setup
    a = open_annotator(folder, project)
    try:
        w = a.widget
        first = w.add_point(20, 15)  # click 1 (makes the object)
        w.add_point(30, 20, label=0)  # click 2
        w.paint([[5.0, 40.0], [30.0, 42.0]], 3)  # stroke 1 on the active object
        w.new_object()  # no click
        second = w.add_point(50, 10)  # click 1 of the second object
        w.wait(TIMEOUT)
        counts = [(o.extra["clicks"], o.extra["strokes"]) for o in a.objects(0)]
        assert counts == [(2, 1), (1, 0)] and first != second
        s = a.summary()
        image = s["images"][0]
        assert (image["clicks"], image["strokes"], image["edits"]) == (3, 1, 4)
        assert (s["clicks"], s["strokes"]) == (3, 1)
        assert (s["clicks_per_object"], s["strokes_per_object"]) == (1.5, 0.5)
        assert s["images"][1]["clicks"] == 0 and s["images"][1]["strokes"] == 0

        w.paint([[40.0, 30.0]], 2, erase=True, object_id=first)  # an eraser stroke: 2
        w.undo()  # takes it back: nothing added
        w.wait(TIMEOUT)
        assert [(o.extra["clicks"], o.extra["strokes"]) for o in a.objects(0)] == [(2, 2), (1, 0)]

        # An older project's count of prompt changes ("edits") is read as clicks, and goes
        # on from there; other extra fields (an accepted proposal's) are kept.
        a.next()
        old = a.project.add_object(
            a.images[1], np.zeros((w.image_height, w.image_width), bool),
            prompts={"points": [[5.0, 5.0]], "labels": [1], "box": None, "candidate": None},
            extra={"edits": 3, "point_coords": [[5.0, 5.0]]},
        )  # fmt: skip
        assert a.summary()["images"][1]["clicks"] == 3
        a.goto(1)  # shows the stored object
        w = a.widget
        w.add_point(10, 8, object_id=w.objects[0]["id"])
        w.wait(TIMEOUT)
        (rec,) = a.objects(1)
        assert rec.id == old.id and rec.extra["clicks"] == 4 and rec.extra["strokes"] == 0
        assert rec.extra["point_coords"] == [[5.0, 5.0]] and "edits" not in rec.extra
        assert a.summary()["clicks"] == 2 + 1 + 4
    finally:
        a.close()
