"""Brush and eraser end to end: JupyterLab + headless Chromium + the kernel (the tiny
random-weight model). A brush drag makes an object of the brush alone, an eraser drag across
it cuts it; the kernel's strokes and ``w.masks`` follow, and the overlay shows that mask."""

from __future__ import annotations

from typing import Any

from .test_sam_widget import assert_overlay_matches_kernel, kernel_objects, open_sam


def test_brush_then_eraser_change_the_kernels_mask(open_notebook: Any) -> None:
    nb, sam = open_sam(open_notebook)
    nb.kernel("from sam_widget.widget.strokes import compose")

    sam.action("brush")
    assert sam.root.locator("button[data-action=brush]").get_attribute("aria-pressed") == "true"
    sam.drag(150, 150, 420, 200, steps=12)
    nb.wait_kernel_true("len(w.objects) == 1 and len(w.objects[0]['strokes']) == 1", timeout=60)
    (obj,) = kernel_objects(nb)
    (stroke,) = obj["strokes"]
    assert obj["points"] == [] and obj["box"] is None  # an object of the brush alone
    assert stroke["erase"] is False and stroke["radius"] == 10  # the default radius
    (x0, y0), (x1, y1) = stroke["points"][0], stroke["points"][-1]
    for got, want in zip((x0, y0, x1, y1), (150, 150, 420, 200), strict=True):
        assert abs(got - want) <= 1.5, (stroke["points"], "expected ends near", want)
    assert len(stroke["points"]) > 2  # the path the pointer took, not only its ends
    assert nb.kernel_json("bool(w.masks[0][175, 285]) and not w.masks[0][100, 285]")
    sam.wait_drawn(obj["id"], obj["seq"])
    assert_overlay_matches_kernel(nb, sam, "w.masks[0]")
    nb.kernel("_brushed = w.masks[0].copy()")

    # A larger eraser (the ] key, twice: 10 -> 13 -> 16) across the middle of the stroke.
    sam.action("eraser")
    sam.page.keyboard.press("]")
    sam.page.keyboard.press("]")
    assert sam.root.locator("input[data-action=radius]").input_value() == "16"
    sam.drag(285, 120, 285, 230, steps=12)
    nb.wait_kernel_true("len(w.objects[0]['strokes']) == 2", timeout=60)
    (obj,) = kernel_objects(nb)
    eraser = obj["strokes"][1]
    assert eraser["erase"] is True and eraser["radius"] == 16
    assert nb.kernel_json(
        "bool(not w.masks[0][175, 285] and w.masks[0][160, 200] and (w.masks[0] <= _brushed).all())"
    )
    assert nb.kernel_json(
        "bool(np.array_equal(w.masks[0], compose(None, w.objects[0]['strokes'], 400, 600)))"
    )
    sam.wait_drawn(obj["id"], obj["seq"])
    assert_overlay_matches_kernel(nb, sam, "w.masks[0]")

    # Undo steps back over the eraser stroke.
    sam.action("undo")
    nb.wait_kernel_true("len(w.objects[0]['strokes']) == 1", timeout=30)
    assert nb.kernel_json("bool(np.array_equal(w.masks[0], _brushed))")
