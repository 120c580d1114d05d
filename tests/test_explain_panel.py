"""ExplainPanel: a kernel-side view beside the widget that follows its active object after
each decode (the panel inside the widget, ``SamWidget(explain=True)``, is tested in
tests/test_widget_explain.py and tests/e2e/test_explain_panel.py)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from sam_widget.explain import explain
from sam_widget.explain.panel import ExplainPanel, heat_rgb
from sam_widget.widget.widget import SamWidget


def _decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _until(cond, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_panel_updates_after_a_click() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[12:36, 16:48] = (200, 180, 40)
    w = SamWidget(img, model="tiny")
    try:
        panel = ExplainPanel(w, size=64)
        assert panel.explanation is None and panel.candidates[0].value == b""
        w.wait(60)
        w.add_point(30, 20)
        w.wait(60)
        _until(lambda: panel.explanation is not None)
        ex = panel.explanation
        assert ex is not None
        expected = explain(w.predictor, point_coords=[[30, 20]], point_labels=[1])
        np.testing.assert_allclose(ex.iou_predictions, expected.iou_predictions, rtol=1e-5)
        # one point: the widget shows the multimask candidate with the highest IoU
        shown = 1 + int(np.argmax(ex.iou_predictions[1:]))
        for k in range(4):
            assert f"IoU {ex.iou_predictions[k]:.3f}" in panel.captions[k].value
            assert ("shown" in panel.captions[k].value) == (k == shown)
            pic = _decoded(panel.candidates[k].value)
            assert max(pic.shape[:2]) == 64
        assert "highest IoU" in panel.why.value
        for image in (panel.attention, panel.point_pe, panel.pca):
            assert _decoded(image.value).shape[2] == 3
        # a second point: unambiguous, mask 0 is the one shown; the panel follows
        w.add_point(50, 30, label=0)
        w.wait(60)
        _until(lambda: panel.explanation is not ex)
        assert "shown" in panel.captions[0].value and "single-mask" in panel.why.value
        panel.close()
        w.add_point(10, 10)
        w.wait(60)
        # closed: no update for the third point (still 2 points + the padding point)
        assert panel.explanation.token_kinds == ["positive", "negative", "padding"]
    finally:
        w.close()


def test_heat_rgb_and_bad_input() -> None:
    out = heat_rgb(np.array([[0.0, 1.0], [0.5, 0.25]]))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].sum() > out[1, 0].sum() > out[1, 1].sum() > out[0, 0].sum()
    np.testing.assert_array_equal(heat_rgb(np.ones((2, 2))), heat_rgb(np.zeros((2, 2))))
    with pytest.raises(TypeError, match="SamWidget"):
        ExplainPanel(object())
