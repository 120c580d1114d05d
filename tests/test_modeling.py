"""Our SAM against the published implementation, with identical (perturbed random) weights.

Fidelity criteria: image embeddings, low-res logits and IoU predictions within 1e-4 of the
reference (relative to its largest magnitude), identical binary masks (up to pixels whose
reference logit is within that tolerance of the threshold). The "tiny" variant is used
everywhere except one full-size vit_b run.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import (
    assert_close_rel,
    assert_masks_match,
    build_reference,
    make_model_pair,
    random_model_input,
)

from sam_widget.models.build import assemble_sam, build_sam
from sam_widget.models.sam import Sam

# Model input frames (resized images, longest side 1024) and the original sizes they came
# from; small originals keep postprocessing cheap.
FRAME_A, ORIG_A = (768, 1024), (48, 64)
FRAME_B, ORIG_B = (1024, 704), (64, 44)


def _t(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------------------------------
# state dict layout


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h", "tiny"])
def test_state_dict_keys_and_shapes_equal_published(variant: str) -> None:
    # Built on the meta device: shapes only, no memory, no initialisation cost.
    with torch.device("meta"):
        ref = build_reference(variant)
        ours = assemble_sam(variant)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes


# ---------------------------------------------------------------------------------------
# end to end through Sam.forward


def _forward_inputs(best_logits: torch.Tensor | None) -> list[list[dict[str, Any]]]:
    """Two Sam.forward calls' batched inputs; the second needs mask logits from the first."""
    img_a = random_model_input(*FRAME_A, seed=1)
    img_b = random_model_input(*FRAME_B, seed=2)
    several = {
        "point_coords": _t(
            [[[300, 200], [620, 410], [500, 100]], [[50, 700], [900, 60], [10, 10]]]
        ),
        "point_labels": _t([[1, 0, 1], [1, 1, 0]]),
    }
    first = [
        {"image": img_a, "original_size": ORIG_A, **several},
        {
            "image": img_b,
            "original_size": ORIG_B,
            "point_coords": _t([[[200, 300]], [[600, 900]]]),
            "point_labels": _t([[1], [0]]),
            "boxes": _t([[100, 150, 500, 700], [20, 400, 690, 1000]]),
        },
    ]
    if best_logits is None:
        return [first]
    second = [{"image": img_a, "original_size": ORIG_A, **several, "mask_inputs": best_logits}]
    return [first, second]


@pytest.fixture(scope="module")
def tiny_forward(tiny_pair: tuple[Sam, torch.nn.Module]) -> dict[str, Any]:
    """Both models' Sam.forward outputs for two calls (multimask on, then off with a mask
    prompt made from the first call), with the image embeddings each encoder produced."""
    ours, ref = tiny_pair
    results: dict[str, Any] = {"ours": [], "ref": [], "ours_emb": [], "ref_emb": []}
    best: torch.Tensor | None = None
    for call, multimask in enumerate((True, False)):
        batched = _forward_inputs(best)[call]
        for name, model in (("ours", ours), ("ref", ref)):
            seen: list[torch.Tensor] = []
            handle = model.image_encoder.register_forward_hook(
                lambda m, i, out, seen=seen: seen.append(out)
            )
            try:
                results[name].append(model(batched, multimask_output=multimask))
            finally:
                handle.remove()
            results[name + "_emb"].append(seen[0])
        if call == 0:
            # Feed the reference's best candidate per prompt back as the mask prompt.
            out = results["ref"][0][0]
            idx = out["iou_predictions"].argmax(dim=1)
            best = out["low_res_logits"][torch.arange(len(idx)), idx].unsqueeze(1)
    results["inputs"] = _forward_inputs(best)
    return results


@pytest.mark.parametrize("call", [0, 1], ids=["multimask", "single"])
def test_forward_image_embeddings_match(tiny_forward: dict[str, Any], call: int) -> None:
    assert_close_rel(tiny_forward["ours_emb"][call], tiny_forward["ref_emb"][call])


@pytest.mark.parametrize(
    ("call", "record"),
    [(0, 0), (0, 1), (1, 0)],
    ids=["several-points", "points+box", "points+mask-input"],
)
def test_forward_outputs_match(
    tiny_pair: tuple[Sam, torch.nn.Module], tiny_forward: dict[str, Any], call: int, record: int
) -> None:
    ours = tiny_forward["ours"][call][record]
    ref = tiny_forward["ref"][call][record]
    rec = tiny_forward["inputs"][call][record]
    n_prompts = rec["point_coords"].shape[0]
    n_masks = 3 if call == 0 else 1
    assert ours["low_res_logits"].shape == (n_prompts, n_masks, 256, 256)
    assert ours["masks"].shape == (n_prompts, n_masks, *rec["original_size"])
    assert_close_rel(ours["low_res_logits"], ref["low_res_logits"])
    assert_close_rel(ours["iou_predictions"], ref["iou_predictions"])
    ref_model = tiny_pair[1]
    ref_logits = ref_model.postprocess_masks(
        ref["low_res_logits"], rec["image"].shape[-2:], rec["original_size"]
    )
    assert_masks_match(ours["masks"], ref["masks"], ref_logits)
    # Also at low resolution, where (random weights) both signs occur, so thresholding is
    # really exercised even when a cropped full-size mask happens to be empty.
    ref_low = ref["low_res_logits"]
    assert bool((ref_low > 0).any()) and bool((ref_low < 0).any())
    assert_masks_match(ours["low_res_logits"] > 0, ref_low > 0, ref_low)


def test_preprocess_and_postprocess_match_reference(tiny_pair: tuple[Sam, Any]) -> None:
    ours, ref = tiny_pair
    img = random_model_input(*FRAME_B, seed=5)
    assert torch.equal(ours.preprocess(img), ref.preprocess(img))
    low = torch.randn((2, 3, 256, 256), generator=torch.Generator().manual_seed(6))
    assert torch.allclose(
        ours.postprocess_masks(low, FRAME_B, (101, 70)),
        ref.postprocess_masks(low, FRAME_B, (101, 70)),
        atol=1e-6,
    )


def test_preprocess_rejects_oversized_image(tiny_pair: tuple[Sam, Any]) -> None:
    with pytest.raises(ValueError, match="at most 1024"):
        tiny_pair[0].preprocess(torch.zeros(3, 1025, 100))


# ---------------------------------------------------------------------------------------
# decoder: plain path, per-image fast path and the reference, on one shared embedding


def _prompt_case(kind: str, prev_logits: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    p: dict[str, torch.Tensor | None] = {
        "point_coords": None,
        "point_labels": None,
        "boxes": None,
        "mask_input": None,
    }
    if kind == "one-point":
        p.update(point_coords=_t([[[400, 300]]]), point_labels=_t([[1]]))
    elif kind == "points":
        p.update(
            point_coords=_t([[[400, 300], [100, 80], [700, 600]]]), point_labels=_t([[1, 0, 1]])
        )
    elif kind == "box":
        p.update(boxes=_t([[100, 150, 600, 500]]))
    elif kind == "points+box":
        p.update(point_coords=_t([[[300, 250], [90, 90]]]), point_labels=_t([[1, 0]]))
        p.update(boxes=_t([[80, 60, 640, 700]]))
    elif kind == "batch-with-padding-labels":
        p.update(
            point_coords=_t([[[300, 250], [0, 0]], [[10, 700], [900, 20]], [[512, 512], [5, 5]]]),
            point_labels=_t([[1, -1], [0, 1], [1, 0]]),
        )
    elif kind == "batch-boxes+points":
        p.update(point_coords=_t([[[300, 250]], [[700, 100]]]), point_labels=_t([[1], [0]]))
        p.update(boxes=_t([[100, 100, 500, 500], [600, 0, 1000, 300]]))
    elif kind == "no-prompt":
        pass
    elif kind == "points+mask":
        assert prev_logits is not None
        p.update(point_coords=_t([[[400, 300], [100, 80]]]), point_labels=_t([[1, 0]]))
        p.update(mask_input=prev_logits)
    else:
        raise AssertionError(kind)
    return p


DECODER_CASES = [
    "one-point",
    "points",
    "box",
    "points+box",
    "batch-with-padding-labels",
    "batch-boxes+points",
    "no-prompt",
    "points+mask",
]


@pytest.fixture(scope="module")
def shared_embedding(tiny_forward: dict[str, Any]) -> torch.Tensor:
    """The reference encoder's embedding of image A, 1 x 256 x 64 x 64."""
    return tiny_forward["ref_emb"][0][:1]


@pytest.mark.parametrize("kind", DECODER_CASES)
@torch.no_grad()
def test_decoder_paths_match_reference(
    tiny_pair: tuple[Sam, Any], shared_embedding: torch.Tensor, kind: str
) -> None:
    """Prompt encoder outputs, then the plain and the per-image (fast) decoder paths with
    multimask on and off, against the reference decoder's four masks."""
    ours, ref = tiny_pair
    emb = shared_embedding
    ref_pe = ref.prompt_encoder.get_dense_pe()
    prev = None
    if kind == "points+mask":
        # A previous prediction's logits fed back, as an interactive session does.
        first = _prompt_case("points", None)
        sparse, dense = ref.prompt_encoder(
            (first["point_coords"], first["point_labels"]), None, None
        )
        prev, _ = ref.mask_decoder(emb, ref_pe, sparse, dense, False)
    p = _prompt_case(kind, prev)
    points = None
    if p["point_coords"] is not None:
        points = (p["point_coords"], p["point_labels"])

    ref_sparse, ref_dense = ref.prompt_encoder(points, p["boxes"], p["mask_input"])
    # All four masks (0: single-mask output, 1..3: multimask outputs) in one run.
    ref_all, ref_all_iou = ref.mask_decoder.predict_masks(
        image_embeddings=emb,
        image_pe=ref_pe,
        sparse_prompt_embeddings=ref_sparse,
        dense_prompt_embeddings=ref_dense,
    )

    sparse, dense = ours.prompt_encoder(points, p["boxes"], p["mask_input"])
    assert_close_rel(sparse, ref_sparse)
    assert_close_rel(dense, ref_dense)
    ctx = ours.prepare_image(emb)
    for multimask, chosen in ((True, slice(1, None)), (False, slice(0, 1))):
        ref_masks, ref_iou = ref_all[:, chosen], ref_all_iou[:, chosen]
        plain = ours.mask_decoder(emb, ours.prompt_encoder.get_dense_pe(), sparse, dense, multimask)
        fast = ours.predict_with_context(ctx, **p, multimask_output=multimask)
        assert fast[0].shape == (ref_sparse.shape[0], 3 if multimask else 1, 256, 256)
        for masks, iou in (plain, fast):
            assert_close_rel(masks, ref_masks)
            assert_close_rel(iou, ref_iou)
            assert_masks_match(masks > 0, ref_masks > 0, ref_masks)


@torch.no_grad()
def test_integer_labels_equal_float_labels(tiny_pair: tuple[Sam, Any]) -> None:
    ours, _ = tiny_pair
    coords = _t([[[300, 250], [0, 0], [20, 30]]])
    as_float = ours.prompt_encoder.encode((coords, _t([[1, -1, 0]])), None, None)[0]
    for dtype in (torch.int32, torch.int64):
        labels = torch.tensor([[1, -1, 0]], dtype=dtype)
        assert torch.equal(ours.prompt_encoder.encode((coords, labels), None, None)[0], as_float)


@torch.no_grad()
def test_fast_path_batch_equals_prompts_one_by_one(
    tiny_pair: tuple[Sam, Any], shared_embedding: torch.Tensor
) -> None:
    ours, _ = tiny_pair
    ctx = ours.prepare_image(shared_embedding)
    p = _prompt_case("batch-with-padding-labels", None)
    coords, labels = p["point_coords"], p["point_labels"]
    assert coords is not None and labels is not None
    masks, iou = ours.predict_with_context(ctx, coords, labels)
    for i in range(coords.shape[0]):
        one_masks, one_iou = ours.predict_with_context(ctx, coords[i : i + 1], labels[i : i + 1])
        assert_close_rel(masks[i : i + 1], one_masks)
        assert_close_rel(iou[i : i + 1], one_iou)


@torch.no_grad()
def test_prepare_image_computes_first_layer_image_side_once(
    tiny_pair: tuple[Sam, Any], shared_embedding: torch.Tensor
) -> None:
    ours, _ = tiny_pair
    layer0 = ours.mask_decoder.transformer.layers[0]
    calls = {"k": 0, "v": 0}

    def count(name: str) -> Any:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            calls[name] += 1

        return hook

    handles = [
        layer0.cross_attn_token_to_image.k_proj.register_forward_hook(count("k")),
        layer0.cross_attn_token_to_image.v_proj.register_forward_hook(count("v")),
    ]
    try:
        ctx = ours.prepare_image(shared_embedding)
        assert calls == {"k": 1, "v": 1}
        p = _prompt_case("batch-boxes+points", None)
        ours.predict_with_context(ctx, p["point_coords"], p["point_labels"], p["boxes"])
        ours.predict_with_context(ctx, p["point_coords"], p["point_labels"])
        assert calls == {"k": 1, "v": 1}  # reused, not recomputed per click or per prompt
        # A mask prompt changes the image side: the plain path recomputes it.
        prev = torch.zeros((2, 1, 256, 256))
        ours.predict_with_context(ctx, p["point_coords"], p["point_labels"], mask_input=prev)
        assert calls == {"k": 2, "v": 2}
    finally:
        for h in handles:
            h.remove()


def test_prepare_image_rejects_batches(tiny_pair: tuple[Sam, Any]) -> None:
    with pytest.raises(ValueError, match="1 x C x H x W"):
        tiny_pair[0].prepare_image(torch.zeros(2, 256, 64, 64))


# ---------------------------------------------------------------------------------------
# dense positional encoding cache


def test_dense_pe_is_cached_and_invalidated(reference: Any) -> None:
    ours, ref = make_model_pair("tiny", seed=3)
    pe = ours.prompt_encoder.get_dense_pe()
    assert pe.shape == (1, 256, 64, 64)
    assert ours.prompt_encoder.get_dense_pe() is pe  # cached
    assert_close_rel(pe, ref.prompt_encoder.get_dense_pe(), rel=1e-6)

    # New frequencies loaded in place (same tensor object): the cache must notice.
    other = ref.state_dict()
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    other[key] = torch.randn(other[key].shape, generator=torch.Generator().manual_seed(9))
    ours.load_state_dict(other, strict=True)
    ref.load_state_dict(other, strict=True)
    fresh = ours.prompt_encoder.get_dense_pe()
    assert not torch.allclose(fresh, pe)
    assert_close_rel(fresh, ref.prompt_encoder.get_dense_pe(), rel=1e-6)

    # Computed in inference mode: not handed out again outside it (autograd rejects
    # inference tensors).
    with torch.inference_mode():
        assert ours.prompt_encoder.get_dense_pe().is_inference()
    assert not ours.prompt_encoder.get_dense_pe().is_inference()

    # Converted to another dtype: recomputed in that dtype.
    ours.double()
    assert ours.prompt_encoder.get_dense_pe().dtype == torch.float64


# ---------------------------------------------------------------------------------------
# weights identity


def test_weights_id_is_stable_and_follows_the_weights() -> None:
    torch.manual_seed(11)
    a = build_sam("tiny", device="cpu")
    torch.manual_seed(11)
    b = build_sam("tiny", device="cpu")
    torch.manual_seed(12)
    c = build_sam("tiny", device="cpu")
    first = a.weights_id
    assert isinstance(first, str) and len(first) == 32 and int(first, 16) >= 0
    assert a.weights_id == first == b.weights_id  # same weights, same id
    assert c.weights_id != first  # other weights

    param = a.mask_decoder.iou_token.weight
    saved = param.detach().clone()
    with torch.no_grad():
        param[0, 0] += 1.0
    changed = a.weights_id
    assert changed != first  # in-place edit noticed
    with torch.no_grad():
        param.copy_(saved)
    assert a.weights_id == first  # the id is a function of the values

    a.load_state_dict(c.state_dict(), strict=True)
    assert a.weights_id == c.weights_id

    # Same tensors under another variant name: another id.
    custom = Sam(c.image_encoder, c.prompt_encoder, c.mask_decoder)
    assert custom.variant == "custom"
    assert custom.weights_id != c.weights_id


# ---------------------------------------------------------------------------------------
# full size (one encoder forward per model)


@pytest.mark.slow
def test_vit_b_full_size_matches_reference() -> None:
    ours, ref = make_model_pair("vit_b", seed=21)
    rec = {
        "image": random_model_input(*FRAME_A, seed=22),
        "original_size": ORIG_A,
        "point_coords": _t([[[300, 200], [620, 410]], [[50, 700], [900, 60]]]),
        "point_labels": _t([[1, 0], [1, 1]]),
        "boxes": _t([[100, 150, 600, 700], [20, 400, 1000, 760]]),
    }
    out: dict[str, Any] = {}
    for name, model in (("ours", ours), ("ref", ref)):
        seen: list[torch.Tensor] = []
        handle = model.image_encoder.register_forward_hook(
            lambda m, i, o, seen=seen: seen.append(o)
        )
        try:
            out[name] = model([rec], multimask_output=True)[0]
        finally:
            handle.remove()
        out[name + "_emb"] = seen[0]
    assert_close_rel(out["ours_emb"], out["ref_emb"])
    assert_close_rel(out["ours"]["low_res_logits"], out["ref"]["low_res_logits"])
    assert_close_rel(out["ours"]["iou_predictions"], out["ref"]["iou_predictions"])
    ref_logits = ref.postprocess_masks(out["ref"]["low_res_logits"], FRAME_A, ORIG_A)
    assert_masks_match(out["ours"]["masks"], out["ref"]["masks"], ref_logits)

    # Single-mask output with the best candidate fed back, on the same embedding.
    with torch.no_grad():
        emb = out["ref_emb"]
        idx = out["ref"]["iou_predictions"].argmax(dim=1)
        prev = out["ref"]["low_res_logits"][torch.arange(2), idx].unsqueeze(1)
        points = (rec["point_coords"], rec["point_labels"])
        sparse, dense = ref.prompt_encoder(points, None, prev)
        ref_masks, ref_iou = ref.mask_decoder(
            emb, ref.prompt_encoder.get_dense_pe(), sparse, dense, False
        )
        ctx = ours.prepare_image(emb)
        masks, iou = ours.predict_with_context(
            ctx, *points, mask_input=prev, multimask_output=False
        )
        assert_close_rel(masks, ref_masks)
        assert_close_rel(iou, ref_iou)
        fast_masks, fast_iou = ours.predict_with_context(ctx, *points, rec["boxes"])
        ref_sparse, ref_dense = ref.prompt_encoder(points, rec["boxes"], None)
        ref_masks, ref_iou = ref.mask_decoder(
            emb, ref.prompt_encoder.get_dense_pe(), ref_sparse, ref_dense, True
        )
        assert_close_rel(fast_masks, ref_masks)
        assert_close_rel(fast_iou, ref_iou)
