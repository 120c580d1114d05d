"""SamAutomaticMaskGenerator against the published generator (the oracle), same weights.

Random weights give speckled masks that all span the whole image, which box NMS collapses
to one or two, so the shared weights are shaped (identically for both models) to give
many distinct, compact masks:

- the encoder's ``pos_embed`` is zeroed (as SAM initialises it) so flat image regions give
  flat features;
- each 2x2 kernel of the decoder's transposed upscaling convs is set to its mean (no
  sub-pixel checkerboard);
- the output and prompt-label token embeddings are shrunk (x0.1) so that the point's
  positional encoding, i.e. where the prompt is, drives the masks;
- the IoU head's last bias is raised by 1 so the predicted IoUs straddle the threshold used.

The image is a smooth colour wheel (colour encodes position), with small discs for the crop
test, so masks are contiguous regions with distinct boxes.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from _torchvision_shim import import_reference
from conftest import make_model_pair

from sam_widget import SamAutomaticMaskGenerator
from sam_widget.data.io import decode_rle
from sam_widget.models.sam import Sam

H, W = 160, 240
SEED = 12


def shape_weights_(model: torch.nn.Module) -> None:
    """The deterministic weight edits described in the module docstring (in place; also
    used by benchmarks/bench_amg.py — TinyViT has no ``pos_embed``)."""
    with torch.no_grad():
        pos = getattr(model.image_encoder, "pos_embed", None)
        if pos is not None:
            pos.zero_()
        for i in (0, 3):
            w = model.mask_decoder.output_upscaling[i].weight
            w.copy_(2 * w.mean(dim=(2, 3), keepdim=True).expand_as(w))
        md, pe = model.mask_decoder, model.prompt_encoder
        md.iou_token.weight.mul_(0.1)
        md.mask_tokens.weight.mul_(0.1)
        for emb in pe.point_embeddings:
            emb.weight.mul_(0.1)
        pe.not_a_point_embed.weight.mul_(0.1)
        md.iou_prediction_head.layers[-1].bias.add_(1.0)


def shaped_tiny() -> Sam:
    """Our "tiny" model with random weights from ``SEED``, shaped by :func:`shape_weights_`
    (the model of test_amg_api, test_amg_batches and test_explain_amg)."""
    sam, _ = make_model_pair("tiny", seed=SEED)
    shape_weights_(sam)
    return sam


@pytest.fixture(scope="module")
def pair() -> tuple[Sam, torch.nn.Module]:
    ours, ref = make_model_pair("tiny", seed=SEED)
    shape_weights_(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


def colour_wheel(h: int = H, w: int = W, discs: int = 0, seed: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    angle = np.arctan2(yy - h / 2, xx - w / 2)
    radius = np.hypot(yy - h / 2, xx - w / 2) / (0.5 * np.hypot(h, w))
    rgb = [127 + 120 * np.cos(angle + phase) * radius for phase in (0.0, -2.1, 2.1)]
    img = np.stack(rgb, axis=-1).astype(np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(discs):
        cy, cx, r = rng.integers(10, h - 10), rng.integers(10, w - 10), rng.integers(6, 12)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img


def _cv2_stand_in() -> types.ModuleType:
    """The one OpenCV call the oracle makes for min_mask_region_area > 0."""
    from scipy import ndimage

    def connected_components_with_stats(mask: np.ndarray, connectivity: int):  # type: ignore[no-untyped-def]
        assert connectivity == 8
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        stats = np.zeros((n + 1, 5), np.int32)
        stats[:, -1] = np.bincount(labels.ravel(), minlength=n + 1)  # areas; row 0 = bg
        return n + 1, labels, stats, None

    mod = types.ModuleType("cv2")
    mod.connectedComponentsWithStats = connected_components_with_stats  # type: ignore[attr-defined]
    return mod


def _as_mask(seg: object) -> np.ndarray:
    return seg if isinstance(seg, np.ndarray) else decode_rle(seg)  # type: ignore[arg-type]


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def assert_same_output(ours: list[dict], ref: list[dict]) -> np.ndarray:
    assert len(ours) == len(ref)
    om = np.stack([_as_mask(r["segmentation"]) for r in ours])
    rm = np.stack([_as_mask(r["segmentation"]) for r in ref])
    iou = _iou_matrix(rm, om)
    match = iou.argmax(axis=1)
    assert len(set(match.tolist())) == len(ref), "two reference masks matched the same mask"
    assert iou[np.arange(len(ref)), match].min() >= 0.99
    for i, j in enumerate(match.tolist()):
        r, o = ref[i], ours[j]
        assert o["crop_box"] == r["crop_box"]
        np.testing.assert_allclose(o["point_coords"], r["point_coords"], atol=1e-6)
        assert o["predicted_iou"] == pytest.approx(r["predicted_iou"], abs=1e-3)
        assert o["stability_score"] == pytest.approx(r["stability_score"], abs=0.02)
        assert abs(o["area"] - r["area"]) <= 0.01 * r["area"] + 1
        assert o["area"] == int(_as_mask(o["segmentation"]).sum())
        assert np.abs(np.array(o["bbox"]) - np.array(r["bbox"])).max() <= 2
    return om


def assert_distinct(masks: np.ndarray, at_least: int = 5) -> None:
    assert len(masks) >= at_least
    iou = _iou_matrix(masks, masks)
    np.fill_diagonal(iou, 0.0)
    assert iou.max() < 0.95
    assert len({int(m.sum()) for m in masks}) == len(masks)


BASE = {
    "points_per_side": 6,
    "pred_iou_thresh": 0.75,
    "stability_score_thresh": 0.2,
    "stability_score_offset": 0.1,
}


def test_matches_oracle_single_crop(pair) -> None:
    ours_model, ref_model = pair
    ref_gen = import_reference().SamAutomaticMaskGenerator
    img = colour_wheel()
    ref = ref_gen(ref_model, **BASE).generate(img)
    ours = SamAutomaticMaskGenerator(ours_model, **BASE).generate(img)
    masks = assert_same_output(ours, ref)
    assert_distinct(masks, at_least=8)
    assert all(m.dtype == np.bool_ and m.shape == (H, W) for m in masks)
    for rec, mask in zip(ours, masks, strict=True):
        rows, cols = np.nonzero(mask)
        assert rec["bbox"] == [
            cols.min(),
            rows.min(),
            cols.max() - cols.min(),
            rows.max() - rows.min(),
        ]
        assert rec["predicted_iou"] > BASE["pred_iou_thresh"]
        assert rec["stability_score"] >= BASE["stability_score_thresh"]
    # The IoU filter really removes candidates here: without it there are more masks.
    loose = SamAutomaticMaskGenerator(ours_model, **{**BASE, "pred_iou_thresh": 0.0})
    assert len(loose.generate(img)) > len(ours)


def test_matches_oracle_with_crops_coco_rle(pair) -> None:
    from pycocotools import mask as coco_mask

    ours_model, ref_model = pair
    ref_gen = import_reference().SamAutomaticMaskGenerator
    img = colour_wheel(discs=8)
    params = {
        **BASE,
        "stability_score_thresh": 0.1,
        "crop_n_layers": 1,
        "crop_n_points_downscale_factor": 2,
        "output_mode": "coco_rle",
    }
    ref = ref_gen(ref_model, **params).generate(img)
    ours = SamAutomaticMaskGenerator(ours_model, **params).generate(img)
    masks = assert_same_output(ours, ref)
    assert_distinct(masks, at_least=5)
    from_crops = [r for r in ours if r["crop_box"] != [0, 0, W, H]]
    assert from_crops, "no mask came from a crop of layer 1"
    for rec, mask in zip(ours, masks, strict=True):
        seg = rec["segmentation"]
        assert isinstance(seg["counts"], str) and seg["size"] == [H, W]
        np.testing.assert_array_equal(
            coco_mask.decode({"size": seg["size"], "counts": seg["counts"].encode()}), mask
        )
    for rec in from_crops:  # masks of a crop lie inside it
        x, y, w, h = rec["crop_box"]
        m = _as_mask(rec["segmentation"])
        assert m[y : y + h, x : x + w].sum() == m.sum()


def test_matches_oracle_small_region_removal(pair, monkeypatch) -> None:
    ours_model, ref_model = pair
    monkeypatch.setitem(sys.modules, "cv2", _cv2_stand_in())
    ref_gen = import_reference().SamAutomaticMaskGenerator
    img = colour_wheel()
    params = {
        **BASE,
        "min_mask_region_area": 300,
        "points_per_batch": 10,
        "output_mode": "uncompressed_rle",
    }
    ref = ref_gen(ref_model, **params).generate(img)
    ours = SamAutomaticMaskGenerator(ours_model, **params).generate(img)
    masks = assert_same_output(ours, ref)
    assert_distinct(masks, at_least=5)
    plain = SamAutomaticMaskGenerator(ours_model, **BASE).generate(img)
    changed = {r["area"] for r in ours} - {r["area"] for r in plain}
    assert changed, "post-processing changed no mask: the test would not cover it"
    for rec in ours:
        assert isinstance(rec["segmentation"]["counts"], list)
