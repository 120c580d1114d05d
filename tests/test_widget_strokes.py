"""Brush and eraser: the stroke rasteriser, stroke validation, and strokes through the widget
(masks, history, persistence, exports, no decoder run for a stroke)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from test_widget import IMG, TIMEOUT, new_widget
from test_widget import model as model  # noqa: F401  (fixture)

from sam_widget.widget import objects as objmod
from sam_widget.widget.strokes import compose, stroke_pixels
from sam_widget.widget.widget import SamWidget

H, W = IMG.shape[:2]


def _stroke(points: list[list[float]], radius: float, erase: bool = False) -> dict[str, Any]:
    return {"points": points, "radius": radius, "erase": erase}


# ---------------------------------------------------------------------------- rasteriser


def test_one_point_paints_the_pixels_whose_centres_are_within_the_radius() -> None:
    got = stroke_pixels(_stroke([[10.5, 20.5]], 2.0), 40, 30)
    # centred on pixel (row 20, col 10): the lattice points within distance 2 (13 of them)
    rows, cols = np.nonzero(got)
    assert len(rows) == 13
    assert set(zip((rows - 20).tolist(), (cols - 10).tolist(), strict=True)) == {
        (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dx * dx + dy * dy <= 4
    }


def test_a_segment_paints_a_capsule_and_is_clipped_to_the_image() -> None:
    got = stroke_pixels(_stroke([[4.5, 10.5], [15.5, 10.5]], 0.5), 20, 20)
    assert np.nonzero(got)[0].tolist() == [10] * 12  # one row, centres 4.5 .. 15.5
    assert np.nonzero(got)[1].tolist() == list(range(4, 16))
    # a thick stroke along the edge: nothing outside, the inside half painted
    edge = stroke_pixels(_stroke([[0, 0], [0, 20]], 3.0), 20, 20)
    assert edge[:, :3].all() and not edge[:, 3:].any()


def test_diagonal_polyline_matches_distance_to_its_segments() -> None:
    pts = [[2.0, 3.0], [17.0, 11.0], [5.0, 18.0]]
    got = stroke_pixels(_stroke(pts, 2.5), 24, 22)
    # brute force over every pixel centre, with the distance to each segment
    yy, xx = np.mgrid[0:24, 0:22] + 0.5
    best = np.full((24, 22), np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        for t in np.linspace(0.0, 1.0, 2001):  # dense samples of the segment
            best = np.minimum(best, np.hypot(xx - (ax + t * (bx - ax)), yy - (ay + t * (by - ay))))
    sure_in, sure_out = best <= 2.5 - 0.01, best > 2.5 + 0.01
    assert got[sure_in].all() and not got[sure_out].any()


def test_compose_applies_strokes_in_order() -> None:
    base = np.zeros((10, 10), dtype=bool)
    base[0:5] = True
    out = compose(
        base,
        [
            _stroke([[5, 8]], 1.2),  # brush below the base
            _stroke([[0, 2.5], [10, 2.5]], 0.6, erase=True),  # erase row 2 only
            _stroke([[5.5, 2.5]], 0.5),  # repaint one pixel of the erased row
        ],
        10,
        10,
    )
    assert out[8, 5] and out[7, 4] and not out[9, 9]
    assert out[2].tolist() == [False] * 5 + [True] + [False] * 4
    assert out[0:2].all() and out[3:5].all()
    assert base[2].all()  # the input is not modified


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("strokes", "error", "match"),
    [
        ({"points": [[1, 1]]}, TypeError, "strokes must be a list"),
        ([[1, 2]], TypeError, r"strokes\[0\] must be a dict"),
        ([_stroke([[1, 1]], 0)], ValueError, r"radius must be in \(0, 1000\]"),
        ([_stroke([[1, 1]], float("nan"))], ValueError, "radius must be finite"),
        ([_stroke([[1, 1]], 2, erase=1)], TypeError, "erase must be True or False"),  # type: ignore[arg-type]
        ([_stroke([], 2)], ValueError, "non-empty list"),
        ([_stroke([[1, 500]], 2)], ValueError, r"points\[0\]: y=500 is outside"),
        ([{**_stroke([[1, 1]], 2), "size": 3}], ValueError, "unknown key"),
        ([_stroke([[1, 1]] * (objmod.MAX_STROKE_POINTS + 1), 2)], ValueError, "at most 10000"),
        (
            [_stroke([[1, 1]], 2)] * (objmod.MAX_STROKES + 1),
            ValueError,
            "1001 strokes; at most 1000",
        ),
    ],
)
def test_bad_strokes_are_refused_with_a_clear_error(
    strokes: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        objmod.normalize_objects([{"id": 1, "strokes": strokes}], W, H, 1)


def test_strokes_are_normalised_and_part_of_the_prompts() -> None:
    objs, _ = objmod.normalize_objects(
        [{"id": 1, "strokes": [{"points": np.array([[1, 2]]), "radius": 3}]}], W, H, 1
    )
    assert objs[0]["strokes"] == [{"points": [[1.0, 2.0]], "radius": 3.0, "erase": False}]
    other = {**objs[0], "strokes": [_stroke([[1, 2]], 3, erase=True)]}
    assert not objmod.same_prompts(objs[0], other)  # a stroke change is a new mask state


# ---------------------------------------------------------------------------- the widget


def _count_decodes(w: SamWidget) -> list[int]:
    calls = [0]
    original = w.predictor.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    w.predictor.decode = counting
    return calls


def test_brush_only_object_then_eraser_undo_redo(model: Any) -> None:
    w, rec = new_widget(model)
    try:
        brush = [[20.0, 30.0], [60.0, 30.0]]
        oid = w.paint(brush, 5)  # no SAM prompt: the object is the brush alone
        assert w.objects[0]["strokes"] == [_stroke(brush, 5.0)]
        expected = stroke_pixels(_stroke(brush, 5), H, W)
        assert np.array_equal(w.masks[0], expected) and w.scores == [None]
        w.paint([[40.0, 30.0]], 3, erase=True)
        erased = expected & ~stroke_pixels(_stroke([[40, 30]], 3), H, W)
        assert np.array_equal(w.masks[0], erased) and erased.sum() < expected.sum()
        label = w.label_map()
        assert np.array_equal(label == 1, erased)
        # the browser is sent the composed mask at display size
        w.wait(TIMEOUT)
        sent = rec.of("mask", object_id=oid)[-1][0]
        assert sent["seq"] == w.objects[0]["seq"]
        # history steps through strokes like clicks
        assert w.undo() and np.array_equal(w.masks[0], expected)
        assert w.redo() and np.array_equal(w.masks[0], erased)
        w.clear()
        assert not w.masks[0].any() and w.objects[0]["strokes"] == []
    finally:
        w.close()


def test_strokes_on_a_sam_mask_cost_no_decoder_run(model: Any) -> None:
    w, _ = new_widget(model)
    try:
        oid = w.add_point(40, 30)
        sam = w.masks[0]
        calls = _count_decodes(w)
        w.paint([[110.0, 80.0], [120.0, 85.0]], 4, object_id=oid)
        w.paint([[40.0, 30.0]], 2, erase=True)
        w.wait(TIMEOUT)
        got = w.masks[0]
        brush = stroke_pixels(_stroke([[110, 80], [120, 85]], 4), H, W)
        eraser = stroke_pixels(_stroke([[40, 30]], 2), H, W)
        assert np.array_equal(got, (sam | brush) & ~eraser)
        assert calls[0] == 0
        # another click decodes again and keeps the strokes on top
        w.add_point(45, 32)
        after = w.masks[0]
        assert calls[0] == 1
        assert not (after & eraser).any() and after[brush].all()
    finally:
        w.close()


def test_strokes_survive_to_dict_from_dict_and_exports(model: Any, tmp_path: Any) -> None:
    w, _ = new_widget(model)
    try:
        w.paint([[10.0, 10.0], [30.0, 12.0]], 4)
        w.paint([[20.0, 11.0]], 2, erase=True)
        before = w.masks[0]
        data = json.loads(json.dumps(w.to_dict()))
        assert data["objects"][0]["strokes"][1]["erase"] is True
        w2 = SamWidget.from_dict(data, IMG, model="tiny")
        try:
            assert np.array_equal(w2.masks[0], before)
            assert w2.undo() and w2.objects[0]["strokes"] == [
                _stroke([[10.0, 10.0], [30.0, 12.0]], 4.0)
            ]
        finally:
            w2.close()
        npz = np.load(w.save_masks(tmp_path / "m.npz"), allow_pickle=False)
        assert np.array_equal(npz["masks"][0], before)
        coco = json.loads(w.export_coco(tmp_path / "c.json").read_text())
        assert coco["annotations"][0]["area"] == int(before.sum())
    finally:
        w.close()


def test_paint_refuses_bad_input_and_changes_nothing(model: Any) -> None:
    w, _ = new_widget(model)
    try:
        with pytest.raises(ValueError, match="radius"):
            w.paint([[1, 1]], -1)
        with pytest.raises(ValueError, match="outside the image"):
            w.paint([[1, 1], [W + 5, 1]], 2)
        with pytest.raises(TypeError, match="points must be a list"):
            w.paint("1,1", 2)
        assert w.objects == [] and not w.can_undo
    finally:
        w.close()
