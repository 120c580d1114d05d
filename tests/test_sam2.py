"""SAM 2.1 hiera_t against the published ``sam2`` package (``SAM2ImagePredictor``) with
identical random weights: image features, low-res logits, IoU predictions and masks agree
within 1e-4 relative (max abs difference / max abs reference value).

One image is encoded once per module by each side (1024 x 1024 on a CPU); every prompt
test reuses both encodings. Our model is loaded from the oracle's state dict saved in the
official ``{"model": state_dict}`` layout, so this also covers strict loading.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _sam2_oracle import oracle_model, rel_err, save_official_layout
from _torchvision_shim import import_sam2

from sam_widget.models.sam2 import Sam2, build_sam2
from sam_widget.models.sam2.mask_decoder import Sam2MaskDecoder
from sam_widget.models.sam2.transformer import build_two_way_transformer

TOL = 1e-4
VARIANT = "sam2.1_hiera_t"
ORIGINAL = (150, 200)  # H, W: not square, so the squashing to 1024 x 1024 matters


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    sam2 = import_sam2()
    ref_model = oracle_model(VARIANT, seed=1)
    path = save_official_layout(ref_model, tmp_path_factory.mktemp("sam2") / "ckpt.pt")
    ours = build_sam2(VARIANT, checkpoint=path, device="cpu")
    image = np.random.default_rng(1).integers(0, 256, (*ORIGINAL, 3), dtype=np.uint8)
    predictor = sam2.sam2_image_predictor.SAM2ImagePredictor(ref_model)
    predictor.set_image(image)
    with torch.no_grad():
        x = torch.from_numpy(ours.geometry.apply_image(image)).permute(2, 0, 1)[None]  # HWC -> 1CHW
        features = ours.encode(x)
        ctx = ours.prepare(features)
    return {"ref": predictor, "ours": ours, "features": features, "ctx": ctx, "image": image}


def _ours_predict(
    pair: dict[str, Any],
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
    multimask_output: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Our model through the interface, as a predictor would call it: (mask logits at the
    original size, IoU, low-res logits clamped as the published predictor returns them)."""
    model: Sam2 = pair["ours"]
    geo = model.geometry
    coords = labels = boxes = masks = None
    if point_coords is not None:
        coords = torch.as_tensor(geo.apply_coords(point_coords, ORIGINAL), dtype=torch.float32)
        coords = coords.reshape(1, -1, 2)
        labels = torch.as_tensor(point_labels).reshape(1, -1)
    if box is not None:
        boxes = torch.as_tensor(geo.apply_boxes(box, ORIGINAL), dtype=torch.float32)
    if mask_input is not None:
        masks = torch.as_tensor(mask_input, dtype=torch.float32).reshape(-1, 1, 256, 256)
    with torch.no_grad():
        low, iou = model.decode(pair["ctx"], coords, labels, boxes, masks, multimask_output)
        up = geo.upscale(low, (1024, 1024), ORIGINAL)
    assert model.low_res_clamp is not None
    return up, iou, low.clamp(-model.low_res_clamp, model.low_res_clamp)


def _check(ours: tuple[torch.Tensor, ...], ref: tuple[np.ndarray, ...]) -> None:
    up, iou, low = (t.squeeze(0) if t.dim() > 3 or t.shape[0] == 1 else t for t in ours)
    ref_up, ref_iou, ref_low = (torch.from_numpy(np.asarray(a)) for a in ref)
    up, iou, low = up.reshape(ref_up.shape), iou.reshape(ref_iou.shape), low.reshape(ref_low.shape)
    assert rel_err(low, ref_low) < TOL
    assert rel_err(iou, ref_iou) < TOL
    assert rel_err(up, ref_up) < TOL
    # Binary masks: any pixel that differs lies within the tolerance of the threshold.
    differ = (up > 0) != (ref_up > 0)
    if differ.any():
        assert ref_up[differ].abs().max().item() <= TOL * ref_up.abs().max().item()


def test_image_features_match(pair: dict[str, Any]) -> None:
    ref = pair["ref"]._features
    ours = pair["features"]
    assert {k: tuple(v.shape) for k, v in ours.items()} == pair["ours"].feature_shapes
    assert ours["image_embed"].shape == (1, 256, 64, 64)
    assert rel_err(ours["image_embed"], ref["image_embed"]) < TOL
    assert rel_err(ours["high_res_s0"], ref["high_res_feats"][0]) < TOL
    assert rel_err(ours["high_res_s1"], ref["high_res_feats"][1]) < TOL


POINTS = np.array([[40.0, 30.0], [150.0, 100.0], [90.0, 120.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([20.0, 15.0, 170.0, 140.0])
PROMPTS = {
    "one point": {"point_coords": POINTS[:1], "point_labels": LABELS[:1]},
    "points": {"point_coords": POINTS, "point_labels": LABELS},
    "box": {"box": BOX},
    "points+box": {"point_coords": POINTS, "point_labels": LABELS, "box": BOX},
}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_predict_matches(pair: dict[str, Any], prompt: str, multimask: bool) -> None:
    kwargs = PROMPTS[prompt]
    ref = pair["ref"].predict(multimask_output=multimask, return_logits=True, **kwargs)
    ours = _ours_predict(pair, multimask_output=multimask, **kwargs)
    assert ours[0].shape[-2:] == ORIGINAL
    _check(ours, ref)


@pytest.mark.parametrize("multimask", [True, False])
def test_mask_input_matches(pair: dict[str, Any], multimask: bool) -> None:
    """The low-res logits of a first click fed back with a second click (the refinement
    loop), and a mask prompt alone."""
    first = pair["ref"].predict(**PROMPTS["one point"], multimask_output=True)
    prev = first[2][np.argmax(first[1])][None]  # 1 x 256 x 256
    for kwargs in ({**PROMPTS["points"], "mask_input": prev}, {"mask_input": prev}):
        ref = pair["ref"].predict(multimask_output=multimask, return_logits=True, **kwargs)
        _check(_ours_predict(pair, multimask_output=multimask, **kwargs), ref)


def test_batched_boxes_match(pair: dict[str, Any]) -> None:
    """Several boxes at once: the published predictor repeats the image per box."""
    boxes = np.stack([BOX, BOX * 0.5, BOX + 10.0])
    ref = pair["ref"].predict(box=boxes, multimask_output=False, return_logits=True)
    up, iou, low = _ours_predict(pair, box=boxes, multimask_output=False)
    assert up.shape == (3, 1, *ORIGINAL)
    assert rel_err(low, torch.from_numpy(ref[2])) < TOL
    assert rel_err(iou, torch.from_numpy(ref[1])) < TOL
    assert rel_err(up, torch.from_numpy(ref[0])) < TOL


def test_dynamic_single_mask_matches_published() -> None:
    """multimask=False falls back to the best multimask output when token 0's mask is
    unstable: on logits built so that some prompts are stable and some are not, our choice
    equals the published decoder's."""
    import_sam2()
    from sam2.modeling.sam.mask_decoder import MaskDecoder as RefDecoder

    ref = RefDecoder.__new__(RefDecoder)  # only its stability settings are read
    ref.dynamic_multimask_stability_delta = 0.05
    ref.dynamic_multimask_stability_thresh = 0.98
    decoder = Sam2MaskDecoder(32, build_two_way_transformer(1, 32, 2, 64)).eval()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 16, 16, generator=gen) * 3
    logits[0, 0] = 5.0  # far from the threshold everywhere: stable
    logits[1, 0] = 0.01  # inside +-delta everywhere: unstable (stability 0)
    logits[2, 0] = -5.0  # empty at both thresholds: stability 1 (stable)
    logits[3, 0, :8] = 4.0  # half in, half out, crisp: stable
    logits[3, 0, 8:] = -4.0
    iou = torch.rand(6, 4, generator=gen)
    want_masks, want_iou = RefDecoder._dynamic_multimask_via_stability(ref, logits, iou)
    got_masks, got_iou = decoder._dynamic_single_mask(logits, iou)
    assert torch.equal(got_masks, want_masks)
    assert torch.equal(got_iou, want_iou)
    stable = decoder.stability_scores(logits[:, 0]) >= 0.98
    assert stable[:4].tolist() == [True, False, True, True]  # both branches were taken


def test_hole_filling_is_not_done(pair: dict[str, Any]) -> None:
    """Published hole filling (max_hole_area > 0) needs sam2's CUDA extension; without it
    the published predictor warns and returns the unfilled masks, which equal ours."""
    sam2 = import_sam2()
    base = pair["ref"]
    filling = sam2.sam2_image_predictor.SAM2ImagePredictor(
        base.model, max_hole_area=64.0, max_sprinkle_area=64.0
    )
    # Share the encoded image instead of encoding it again.
    filling._features, filling._orig_hw, filling._is_image_set = (
        base._features,
        base._orig_hw,
        True,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = filling.predict(**PROMPTS["points"], multimask_output=True, return_logits=True)
    assert any("post-processing" in str(w.message) for w in caught)
    _check(_ours_predict(pair, **PROMPTS["points"], multimask_output=True), ref)


def test_object_score_matches_published_decoder(pair: dict[str, Any]) -> None:
    """The object-score logit (which the image predictor ignores) equals the published mask
    decoder's ``object_score_logits`` for the same prompt."""
    ref = pair["ref"]
    geo = pair["ours"].geometry
    coords = torch.as_tensor(geo.apply_coords(POINTS, ORIGINAL), dtype=torch.float32)[None]
    labels = torch.as_tensor(LABELS, dtype=torch.int32)[None]
    with torch.no_grad():
        sparse, dense = ref.model.sam_prompt_encoder(
            points=(coords, labels), boxes=None, masks=None
        )
        *_, want = ref.model.sam_mask_decoder(
            image_embeddings=ref._features["image_embed"],
            image_pe=ref.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=ref._features["high_res_feats"],
        )
        got = pair["ours"].decode_full(pair["ctx"], coords, labels, None, None, True)
    assert got.object_score is not None and got.object_score.shape == want.shape == (1, 1)
    assert rel_err(got.object_score, want) < TOL
