"""sam_widget.plot and snapshots: what is drawn where, and a clear error without matplotlib."""

from __future__ import annotations

import sys
from typing import Any

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from test_explain import PROMPTS, predictor  # noqa: E402,F401  (module fixture)

from sam_widget import plot  # noqa: E402
from sam_widget.explain import explain  # noqa: E402
from sam_widget.widget.snapshot import hex_to_rgb, render, snapshot  # noqa: E402


def _image(h: int = 40, w: int = 60) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (100, 100, 100)
    return img


def test_render_blends_masks_and_outlines_them() -> None:
    img = _image()
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    out = render(img, [mask], ["#ff0000"], alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[20, 30], [178, 50, 50])  # 0.5 * grey + 0.5 * red
    np.testing.assert_array_equal(out[10, 30], [255, 0, 0])  # outline, opaque
    np.testing.assert_array_equal(out[29, 39], [255, 0, 0])
    np.testing.assert_array_equal(out[5, 5], [100, 100, 100])  # outside: untouched
    np.testing.assert_array_equal(out[9, 30], [100, 100, 100])
    np.testing.assert_array_equal(img[20, 30], [100, 100, 100])  # input not modified
    # later masks are drawn on top
    top = render(img, [mask, mask], ["#ff0000", "#0000ff"], alpha=1.0)
    np.testing.assert_array_equal(top[20, 30], [0, 0, 255])


def test_render_points_and_boxes() -> None:
    out = render(_image(), points=[[10, 10], [50, 30]], labels=[1, 0], boxes=[[5, 5, 55, 35]])
    assert out[10, 10, 1] > 150 and out[10, 10, 0] < 50  # green: foreground
    assert out[30, 50, 0] > 200 and out[30, 50, 1] < 60  # red: background
    np.testing.assert_array_equal(out[5, 30], [255, 255, 255])  # box edges
    np.testing.assert_array_equal(out[20, 55], [255, 255, 255])
    np.testing.assert_array_equal(out[20, 30], [100, 100, 100])  # box inside


def test_render_bad_input() -> None:
    with pytest.raises(ValueError, match="image"):
        render(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"masks\[0\]"):
        render(_image(), [np.zeros((3, 3), bool)])
    with pytest.raises(ValueError, match="colors"):
        render(_image(), [np.zeros((40, 60), bool)], ["#ff0000", "#00ff00"])
    with pytest.raises(ValueError, match="alpha"):
        render(_image(), alpha=2)
    with pytest.raises(ValueError, match="rrggbb"):
        hex_to_rgb("red")


class FakeWidget:
    """What snapshot reads from a SamWidget."""

    def __init__(self) -> None:
        self.image = _image()
        a = np.zeros((40, 60), bool)
        a[0:20, 0:30] = True
        b = np.zeros((40, 60), bool)
        b[10:30, 20:50] = True
        self.masks = [a, b]
        self.objects = [
            {"id": 1, "color": "#ff0000", "points": [[5, 5]], "labels": [1], "box": None},
            {"id": 2, "color": "#0000ff", "points": [], "labels": [], "box": [20, 10, 49, 29]},
        ]
        self.active = 1
        self.opacity = 1.0


def test_snapshot_draws_objects_in_their_colours_active_on_top() -> None:
    w = FakeWidget()
    out = snapshot(w, prompts=False)
    np.testing.assert_array_equal(out[15, 25], [255, 0, 0])  # overlap: active (id 1) on top
    np.testing.assert_array_equal(out[25, 40], [0, 0, 255])
    np.testing.assert_array_equal(out[35, 55], [100, 100, 100])
    with_prompts = snapshot(w)
    assert with_prompts[5, 5, 1] > 150  # the positive point
    np.testing.assert_array_equal(with_prompts[10, 35], [255, 255, 255])  # the box
    with pytest.raises(TypeError, match="SamWidget"):
        snapshot(object())


def test_snapshot_of_a_real_widget() -> None:
    from sam_widget.widget.widget import SamWidget

    img = np.zeros((48, 64, 3), np.uint8)
    img[12:36, 16:48] = (200, 180, 40)
    w = SamWidget(img, model="tiny")
    try:
        w.wait(60)
        w.add_point(30, 20)
        w.wait(60)
        out = snapshot(w, prompts=False)
        expected = render(img, w.masks, [o["color"] for o in w.objects], alpha=w.opacity)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(w.snapshot(prompts=False), out)
        assert (w.snapshot() != out).any()  # the click's marker
        assert out.shape == (48, 64, 3)
    finally:
        w.close()


def test_show_candidates_and_attention(predictor: Any) -> None:  # noqa: F811
    ex = explain(predictor, **PROMPTS["box and points"])
    img = np.zeros((*predictor.original_size, 3), np.uint8)
    fig = plot.show_candidates(img, ex)
    titles = [a.get_title() for a in fig.axes]
    assert len(titles) == 4
    for k, t in enumerate(titles):
        assert t.startswith(f"mask {k}") and f"{ex.iou_predictions[k]:.2f}" in t
    assert "chosen" in titles[ex.chosen] and sum("chosen" in t for t in titles) == 1
    plt.close(fig)

    ax = plot.show_attention(img, ex, 2)
    shown = ax.get_images()[-1].get_array()
    rows, cols = shown.shape
    # The image (120 x 160) fills the top-left of the 1024 canvas: 48 x 64 of 64 x 64 cells.
    assert (rows, cols) == (48, 64)
    np.testing.assert_allclose(shown, ex.final_attention(2)[:48, :64])
    plt.close(ax.figure)

    fig = plot.show_point_encoding(img, ex, 0)
    sim = fig.axes[1].get_images()[-1].get_array()
    # The point's encoding is most similar to the dense encoding of the cell it lies in.
    x, y = ex.token_xy_input[0]
    iy, ix = np.unravel_index(np.argmax(sim), sim.shape)
    assert abs(ix - x / 16) <= 1.5 and abs(iy - y / 16) <= 1.5
    plt.close(fig)

    ax = plot.show_embedding_pca(predictor)
    assert ax.get_images()[0].get_array().shape == (64, 64, 3)
    plt.close(ax.figure)


def test_missing_matplotlib_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    # snapshot and render need no matplotlib
    assert plot.render(_image()).shape == (40, 60, 3)
    with pytest.raises(ImportError, match=r"pip install 'sam-widget\[plot\]'"):
        plot.show_masks(_image())


def test_show_amg_stages() -> None:
    from sam_widget.engine.amg.rle import mask_to_rle
    from sam_widget.explain import AmgExplanation, AmgStage

    masks = [np.zeros((40, 60), bool) for _ in range(3)]
    for k, m in enumerate(masks):
        m[5 * k : 5 * k + 10, 10:30] = True
    recs = [{"segmentation": mask_to_rle(m)} for m in masks]
    ex = AmgExplanation(
        image_size=(40, 60),
        crop_boxes=[[0, 0, 60, 40], [0, 0, 35, 25]],
        crop_layers=[0, 1],
        grid_points=[np.array([[15.0, 10.0], [45.0, 30.0]]), np.array([[10.0, 8.0]])],
        decoded=9,
        stages=[AmgStage("candidates", "", recs, 6), AmgStage("box_nms", "", recs[:1], 2)],
    )
    np.testing.assert_array_equal(ex.stages[1].masks(), masks[:1])
    fig = plot.show_amg_stages(_image(), ex)
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in axes] == ["candidates: 3 (-6)", "box_nms: 1 (-2)"]
    xs = np.concatenate([line.get_xdata() for line in axes[0].get_lines()])
    assert sorted(xs.tolist()) == [10.0, 15.0, 45.0]  # every grid point is drawn
    assert len(axes[0].patches) == 1  # the crop box (the whole image is not drawn)
    plt.close(fig)
