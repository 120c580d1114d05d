"""``SamAutomaticMaskGenerator`` with SAM 2's own keywords (``use_m2m``,
``multimask_output``, ``mask_threshold``) on a SAM 2.1 model gives the published
``SAM2AutomaticMaskGenerator``'s records (same random hiera_t weights, one encoding per
side per module); its family defaults and bad values."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from _sam2_oracle import oracle_pair, published_records
from conftest import make_model_pair

from sam_widget.engine.amg import SamAutomaticMaskGenerator
from sam_widget.engine.predictor import SamPredictor

TOL = 1e-4
ORIGINAL = (120, 160)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return oracle_pair("sam2.1_hiera_t", 5, tmp_path_factory.mktemp("sam2amg"), ORIGINAL)


def assert_same_records(ours: list[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    assert len(ours) == len(ref)

    def key(rec: dict[str, Any]) -> tuple[float, ...]:
        return tuple(rec["point_coords"][0]) + (round(rec["predicted_iou"], 3),)

    for a, b in zip(sorted(ours, key=key), sorted(ref, key=key), strict=True):
        assert np.allclose(a["point_coords"], b["point_coords"])
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], rel=TOL, abs=TOL)
        assert a["stability_score"] == pytest.approx(b["stability_score"], abs=TOL)
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["area"] == b["area"] and a["bbox"] == b["bbox"]
        assert a["crop_box"] == b["crop_box"]


BASE: dict[str, Any] = {
    "points_per_side": 4,
    "points_per_batch": 5,  # batches and m2m chunks that do not divide the grid
    # Random weights give speckled masks whose boxes are all the whole image: box NMS
    # would leave one record, so it is off.
    "box_nms_thresh": 1.0,
}
CASES: dict[str, dict[str, Any]] = {
    # Thresholds between the values these weights give: each filter drops some masks.
    "m2m": {"use_m2m": True, "pred_iou_thresh": 0.51, "stability_score_thresh": 0.5},
    "single": {"multimask_output": False, "pred_iou_thresh": 0.52, "stability_score_thresh": 0.5},
    "m2m+single+threshold": {
        "use_m2m": True,
        "multimask_output": False,
        "mask_threshold": 0.5,
        "pred_iou_thresh": 0.51,
        "stability_score_thresh": 0.3,
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_records_equal_published(pair: dict[str, Any], case: str) -> None:
    params = {**BASE, **CASES[case]}
    ref = published_records(pair, **params)
    candidates = params["points_per_side"] ** 2 * (3 if params.get("multimask_output", 1) else 1)
    assert 3 <= len(ref) < candidates  # the filters keep some masks, not all
    ours = SamAutomaticMaskGenerator(pair["ours"], **params).generate(pair["image"])
    assert_same_records(ours, ref)


def test_family_defaults(pair: dict[str, Any]) -> None:
    """Keywords not given take the published generator's defaults of the model's family."""
    gen = SamAutomaticMaskGenerator(pair["ours"])
    ref = pair["sam2"].automatic_mask_generator.SAM2AutomaticMaskGenerator
    published = inspect.signature(ref.__init__).parameters
    for name in ("pred_iou_thresh", "mask_threshold", "use_m2m", "multimask_output"):
        assert getattr(gen, name) == published[name].default, name
    assert gen.pred_iou_thresh == 0.8
    assert SamAutomaticMaskGenerator(pair["ours"], pred_iou_thresh=0.9).pred_iou_thresh == 0.9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"use_m2m": 1}, TypeError, "use_m2m must be a bool"),
        ({"multimask_output": "no"}, TypeError, "multimask_output must be a bool"),
        ({"mask_threshold": "0"}, TypeError, "mask_threshold must be a number"),
        ({"mask_threshold": float("nan")}, ValueError, "mask_threshold must be in"),
        ({"pred_iou_thresh": 1.5}, ValueError, "pred_iou_thresh must be in"),
    ],
)
def test_bad_values(pair: dict[str, Any], kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SamAutomaticMaskGenerator(pair["ours"], **kwargs)


def test_sam_keeps_its_defaults_and_m2m_refines_on_sam() -> None:
    """A SAM model keeps the published SAM generator's defaults; ``use_m2m`` with
    ``multimask_output=False`` on SAM gives, per record, the predictor's single-mask
    prediction at its point with its own single-mask logits as mask input."""
    from segment_anything import SamAutomaticMaskGenerator as Published

    sam, _ = make_model_pair("tiny", seed=0)
    gen = SamAutomaticMaskGenerator(sam)
    published = inspect.signature(Published.__init__).parameters
    assert gen.pred_iou_thresh == published["pred_iou_thresh"].default == 0.88
    assert gen.mask_threshold == sam.mask_threshold and not gen.use_m2m and gen.multimask_output
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    params: dict[str, Any] = {
        "points_per_side": 2,
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
    }
    params["box_nms_thresh"] = 1.0
    records = SamAutomaticMaskGenerator(
        sam, use_m2m=True, multimask_output=False, **params
    ).generate(image)
    plain = SamAutomaticMaskGenerator(sam, multimask_output=False, **params).generate(image)
    assert len(records) == len(plain) == 4
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    changed = []
    for rec in records:
        point: dict[str, Any] = {
            "point_coords": np.array(rec["point_coords"]),
            "point_labels": np.array([1]),
        }
        _, iou0, low = predictor.predict(**point, multimask_output=False)
        _, iou, _ = predictor.predict(**point, mask_input=low, multimask_output=False)
        assert rec["predicted_iou"] == pytest.approx(float(iou[0]), rel=TOL, abs=TOL)
        match = [r for r in plain if r["point_coords"] == rec["point_coords"]]
        assert match[0]["predicted_iou"] == pytest.approx(float(iou0[0]), rel=TOL, abs=TOL)
        changed.append(abs(rec["predicted_iou"] - match[0]["predicted_iou"]) > 1e-3)
    assert any(changed)  # refinement changed the predictions
