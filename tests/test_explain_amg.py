"""explain_amg(): stage counts add up, each stage is a subset of the one before, and the
last stage is exactly what ``generate`` returns.

Model and image as in ``test_amg_api`` (the "tiny" variant with weights shaped so masks
follow image structure). The quality filters and NMS stages are recomputed by explain_amg
from its all-candidates run, so they are checked against ``generate`` with the same
settings: once on the whole image with small-region removal (the last stage is then a second
run), once with one crop layer (crop edges and crop NMS act) and no small-region removal.
Grids are tiny because every generator run decodes with the full-size mask decoder.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_amg import colour_wheel, shaped_tiny

from sam_widget import SamAutomaticMaskGenerator
from sam_widget.data.io import decode_rle
from sam_widget.explain import STAGES, explain_amg
from sam_widget.models.sam import Sam

WHOLE = {
    "points_per_side": 3,
    "pred_iou_thresh": 0.75,
    "stability_score_thresh": 0.5,
    "stability_score_offset": 0.1,
    "box_nms_thresh": 0.5,
    "min_mask_region_area": 30,
}
CROPS = {
    "points_per_side": 2,
    "crop_n_layers": 1,
    "pred_iou_thresh": 0.5,
    "stability_score_thresh": 0.05,
    "stability_score_offset": 0.1,
    "box_nms_thresh": 0.9,
    "crop_nms_thresh": 0.5,
}


@pytest.fixture(scope="module")
def model() -> Sam:
    return shaped_tiny()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return colour_wheel(96, 128, discs=3)


@pytest.fixture(scope="module", params=["whole", "crops"])
def run(request: pytest.FixtureRequest, model: Sam, image: np.ndarray) -> tuple:
    settings = WHOLE if request.param == "whole" else CROPS
    gen = SamAutomaticMaskGenerator(model, **settings)
    return settings, gen.generate(image), explain_amg(gen, image)


def _key(record: dict) -> tuple:
    return (
        tuple(np.round(record["point_coords"][0], 3)),
        tuple(record["crop_box"]),
        round(record["predicted_iou"], 4),
    )


def test_stage_counts_add_up(run: tuple) -> None:
    settings, _, ex = run
    assert [s.name for s in ex.stages] == [name for name, _ in STAGES]
    counts = ex.counts()
    n = settings["points_per_side"] ** 2
    crops = 1 if "crop_n_layers" not in settings else 5
    assert counts["decoded"] == 3 * n * crops == 3 * sum(len(g) for g in ex.grid_points)
    previous = counts["decoded"]
    for stage in ex.stages:
        assert stage.removed >= 0
        assert stage.count == previous - stage.removed
        previous = stage.count
    removing = ["predicted_iou", "stability", "box_nms"]
    if crops > 1:  # masks at the crops' inner edges; duplicates across crops
        removing += ["candidates", "crop_nms"]
    else:
        assert ex.stage("candidates").removed == 0  # one crop: no inner edges
    for name in removing:  # these settings make each of them remove something
        assert ex.stage(name).removed > 0, (name, counts)


def test_each_stage_is_a_subset_of_the_previous(run: tuple) -> None:
    settings, _, ex = run
    for before, after in zip(ex.stages[:-1], ex.stages[1:], strict=True):
        keys = {_key(r) for r in before.records}
        assert {_key(r) for r in after.records} <= keys, after.name
    # The quality filters hold for what they let through.
    iou_t, stab_t = settings["pred_iou_thresh"], settings["stability_score_thresh"]
    assert all(r["predicted_iou"] > iou_t for r in ex.stage("predicted_iou").records)
    assert all(r["stability_score"] >= stab_t for r in ex.stage("stability").records)


def test_last_stage_equals_generate(run: tuple) -> None:
    _, expected, ex = run
    final = ex.stages[-1]
    assert final.count == len(expected) > 0
    masks = final.masks()
    for rec, exp, mask in zip(final.records, expected, masks, strict=True):
        for k in ("area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box"):
            assert rec[k] == exp[k], k
        np.testing.assert_array_equal(mask, exp["segmentation"])
        np.testing.assert_array_equal(decode_rle(rec["segmentation"]), mask)


def test_grid_and_crops(run: tuple, image: np.ndarray) -> None:
    settings, _, ex = run
    h, w = image.shape[:2]
    assert ex.image_size == (h, w)
    assert ex.crop_boxes[0] == [0, 0, w, h]
    assert ex.crop_layers == ([0] if "crop_n_layers" not in settings else [0, 1, 1, 1, 1])
    n = settings["points_per_side"] ** 2
    for (x0, y0, x1, y1), pts in zip(ex.crop_boxes, ex.grid_points, strict=True):
        assert pts.shape == (n, 2)
        assert (pts[:, 0] > x0).all() and (pts[:, 0] < x1).all()
        assert (pts[:, 1] > y0).all() and (pts[:, 1] < y1).all()
    # Every record's prompt is one of its crop's grid points.
    for rec in ex.stage("candidates").records:
        x0, y0, cw, ch = rec["crop_box"]
        crop = ex.crop_boxes.index([x0, y0, x0 + cw, y0 + ch])
        d = np.abs(ex.grid_points[crop] - np.asarray(rec["point_coords"][0])).sum(axis=1)
        assert d.min() < 1e-6


def test_bad_generator() -> None:
    with pytest.raises(TypeError, match="SamAutomaticMaskGenerator"):
        explain_amg(object(), np.zeros((8, 8, 3), np.uint8))
