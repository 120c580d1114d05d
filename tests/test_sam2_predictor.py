"""``SamPredictor`` and ``SamAutomaticMaskGenerator`` on a SAM 2.1 model, through the model
interface only: the predictor's ``predict`` equals the published ``SAM2ImagePredictor.predict``
(same random weights, hiera_t, within 1e-4 relative), and the automatic mask generator runs
on it. One image is encoded once per module by each side."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _sam2_oracle import oracle_pair, published_records, rel_err

from sam_widget.engine.amg import SamAutomaticMaskGenerator

TOL = 1e-4
ORIGINAL = (120, 160)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pair = oracle_pair("sam2.1_hiera_t", 3, tmp_path_factory.mktemp("sam2p"), ORIGINAL)
    pair["ours"].set_embedding(pair["embedding"])
    return {**pair, "features": pair["embedding"].named_features}


PROMPTS = {
    "point": {"point_coords": np.array([[50.0, 40.0]]), "point_labels": np.array([1])},
    "box": {"box": np.array([10.0, 20.0, 140.0, 100.0])},
    "points+box": {
        "point_coords": np.array([[50.0, 40.0], [100.0, 90.0]]),
        "point_labels": np.array([1, 0]),
        "box": np.array([10.0, 20.0, 140.0, 100.0]),
    },
}


def test_features_are_the_published_ones(pair: dict[str, Any]) -> None:
    ours, ref = pair["features"], pair["ref"]._features
    assert torch.equal(pair["ours"].features, ours["image_embed"])
    assert rel_err(ours["image_embed"], ref["image_embed"]) < TOL
    assert rel_err(ours["high_res_s0"], ref["high_res_feats"][0]) < TOL
    assert rel_err(ours["high_res_s1"], ref["high_res_feats"][1]) < TOL


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_predict_equals_published(pair: dict[str, Any], prompt: str, multimask: bool) -> None:
    kwargs = PROMPTS[prompt]
    logits, iou, low = pair["ours"].predict(
        **kwargs, multimask_output=multimask, return_logits=True
    )
    ref_logits, ref_iou, ref_low = pair["ref"].predict(
        **kwargs, multimask_output=multimask, return_logits=True
    )
    assert logits.shape == ref_logits.shape and logits.shape[-2:] == ORIGINAL
    assert rel_err(torch.from_numpy(logits), torch.from_numpy(ref_logits)) < TOL
    assert rel_err(torch.from_numpy(iou), torch.from_numpy(ref_iou)) < TOL
    # Clamped to +-32 like the published ones (model.low_res_clamp).
    assert np.abs(low).max() <= pair["ours"].model.low_res_clamp
    assert rel_err(torch.from_numpy(low), torch.from_numpy(ref_low)) < TOL
    masks, _, _ = pair["ours"].predict(**kwargs, multimask_output=multimask)
    ref_masks, _, _ = pair["ref"].predict(**kwargs, multimask_output=multimask)
    differ = masks != ref_masks
    if differ.any():  # only on the threshold, within float rounding
        assert np.abs(ref_logits[differ]).max() <= TOL * np.abs(ref_logits).max()


def test_refinement_with_mask_input(pair: dict[str, Any]) -> None:
    _, iou, low = pair["ours"].predict(**PROMPTS["point"])
    prev = low[int(np.argmax(iou))][None]
    kwargs = {**PROMPTS["points+box"], "mask_input": prev}
    logits, iou2, _ = pair["ours"].predict(**kwargs, multimask_output=False, return_logits=True)
    ref_logits, ref_iou, _ = pair["ref"].predict(
        **kwargs, multimask_output=False, return_logits=True
    )
    assert rel_err(torch.from_numpy(logits), torch.from_numpy(ref_logits)) < TOL
    assert rel_err(torch.from_numpy(iou2), torch.from_numpy(ref_iou)) < TOL


def test_automatic_masks_run_on_sam2(pair: dict[str, Any]) -> None:
    """With the filters off the grid points give records; each record is consistent with
    its own mask (area, box) at the original size. The image's features come from the
    predictor's cache (no second encoding)."""
    generator = SamAutomaticMaskGenerator(
        pair["ours"],
        points_per_side=3,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    records = generator.generate(pair["image"])
    assert records
    for rec in records:
        seg = rec["segmentation"]
        assert seg.shape == ORIGINAL
        assert rec["area"] == int(seg.sum())
        if rec["area"]:
            ys, xs = np.nonzero(seg)
            x0, y0, w, h = rec["bbox"]
            assert (x0, y0) == (xs.min(), ys.min())
            assert (x0 + w, y0 + h) in {(xs.max(), ys.max()), (xs.max() + 1, ys.max() + 1)}


def test_automatic_masks_equal_published_records(pair: dict[str, Any]) -> None:
    """With the published generator's defaults for SAM 2 (``use_m2m=False``,
    ``multimask_output=True``, ``mask_threshold=0``) and the same thresholds, our generator
    on the same image gives the published ``SAM2AutomaticMaskGenerator``'s records."""
    params = {
        "points_per_side": 4,
        "points_per_batch": 8,
        "pred_iou_thresh": 0.5,
        # Random weights give speckled masks whose boxes are all the whole image: stability
        # filtering and box NMS would leave one record, so they are off here.
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
    }
    ours = SamAutomaticMaskGenerator(pair["ours"], **params).generate(pair["image"])
    ref = published_records(pair, **params)
    assert len(ours) == len(ref) >= 3

    def key(rec: dict[str, Any]) -> tuple[float, ...]:
        return tuple(rec["point_coords"][0]) + (rec["predicted_iou"],)

    for a, b in zip(sorted(ours, key=key), sorted(ref, key=key), strict=True):
        assert np.allclose(a["point_coords"], b["point_coords"])
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], rel=TOL)
        assert a["stability_score"] == pytest.approx(b["stability_score"], abs=1e-3)
        differ = a["segmentation"] != b["segmentation"]
        if differ.any():
            # Float rounding only: the pixels that differ are those whose published logit
            # is within rounding of the threshold (random weights give many such pixels).
            logits, ious, _ = pair["ref"].predict(
                point_coords=np.asarray(b["point_coords"]), point_labels=np.array([1]),
                multimask_output=True, return_logits=True,
            )  # fmt: skip
            c = int(np.argmin(np.abs(ious - b["predicted_iou"])))
            assert np.abs(logits[c][differ]).max() < 1e-4
            assert differ.sum() <= 2
        for rec in (a, b):  # each record's area and box are those of its own mask
            ys, xs = np.nonzero(rec["segmentation"])
            assert rec["area"] == len(ys)
            assert list(rec["bbox"][:2]) == [xs.min(), ys.min()]
