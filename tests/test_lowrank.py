"""The low-rank point decoder (``modeling/lowrank.py``) against the standard decoder path.

The standard path (``Sam.predict_with_context``) is itself tested against the published
model in test_modeling.py; here both run on the same weights and embeddings.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_model_pair

from sam_widget.models.sam import Sam
from sam_widget.models.sam.common import LayerNorm2d
from sam_widget.models.sam.lowrank import decode_points_lowrank, prepare_lowrank

REL_TOL = 1e-4


@pytest.fixture(scope="module")
def model() -> Sam:
    ours, _ = make_model_pair("tiny", seed=11)
    return ours


def _prompts(b: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B x N x 2 points in the 1024² input frame and B x N labels (first point positive,
    the others any of fg / bg / padding)."""
    gen = torch.Generator().manual_seed(seed)
    coords = torch.rand(b, n, 2, generator=gen) * 1024
    labels = torch.randint(-1, 2, (b, n), generator=gen)
    labels[:, 0] = 1
    return coords, labels


def _embedding(model: Sam, seed: int, offset: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    c = model.mask_decoder.transformer_dim
    return torch.randn(1, c, 64, 64, generator=gen) * 2.0 + offset


def _strong_layer_norms_(model: Sam, seed: int) -> None:
    """Non-trivial gains (around 1 +- 0.5) and biases (+- 0.5) for every LayerNorm and
    LayerNorm2d of the decoder, in place."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.mask_decoder.modules():
            if isinstance(mod, torch.nn.LayerNorm | LayerNorm2d):
                mod.weight.copy_(1.0 + 0.5 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.5 * torch.randn(mod.bias.shape, generator=gen))


def _compare(model: Sam, emb: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor) -> None:
    with torch.no_grad():
        ctx = model.prepare_image(emb)
    lctx = prepare_lowrank(model, emb)
    for multimask in (True, False):
        with torch.no_grad():
            ref_low, ref_iou = model.predict_with_context(
                ctx, coords, labels, multimask_output=multimask
            )
        low, iou, kept = decode_points_lowrank(lctx, coords, labels, multimask)
        assert low.shape == ref_low.shape and iou.shape == ref_iou.shape
        assert bool(kept.all())
        scale = float(ref_low.abs().max())
        assert float((low - ref_low).abs().max()) <= REL_TOL * scale
        assert float((iou - ref_iou).abs().max()) <= REL_TOL * max(1.0, float(ref_iou.abs().max()))
        # the masks differ between prompts, so agreement is not a constant artefact
        if len(coords) > 1:
            assert float((ref_low[0] - ref_low[-1]).abs().max()) > 100 * REL_TOL * scale


@pytest.mark.parametrize(("b", "n"), [(1, 1), (16, 1), (16, 2), (5, 2)])
def test_matches_standard_path_tiny(model: Sam, b: int, n: int) -> None:
    coords, labels = _prompts(b, n, seed=b * 10 + n)
    _compare(model, _embedding(model, seed=b + n), coords, labels)


def test_matches_with_strong_layer_norms_and_offset_embedding() -> None:
    """Non-trivial LayerNorm gains/biases everywhere (incl. norm4 and the upscaling's
    LayerNorm2d) and an embedding whose per-position mean dominates its spread: the case
    where a naive E[x²] - mean² variance loses precision."""
    model, _ = make_model_pair("tiny", seed=5)
    _strong_layer_norms_(model, seed=6)
    coords, labels = _prompts(16, 2, seed=7)
    _compare(model, _embedding(model, seed=8, offset=20.0), coords, labels)


def test_iou_threshold_decodes_only_prompts_with_a_candidate(model: Sam) -> None:
    emb = _embedding(model, seed=3)
    coords, labels = _prompts(16, 1, seed=4)
    with torch.no_grad():
        ref_low, ref_iou = model.predict_with_context(model.prepare_image(emb), coords, labels)
    best = ref_iou.max(dim=1).values.sort().values
    thresh = float(best[7] + best[8]) / 2  # half-way: no prompt sits on the threshold
    low, iou, kept = decode_points_lowrank(
        prepare_lowrank(model, emb), coords, labels, True, thresh
    )
    expected = (ref_iou > thresh).any(dim=1)
    assert 0 < int(expected.sum()) < 16
    assert torch.equal(kept, expected)
    scale = float(ref_low.abs().max())
    assert float((low[kept] - ref_low[kept]).abs().max()) <= REL_TOL * scale
    assert float(low[~kept].abs().max()) == 0.0
    assert float((iou - ref_iou).abs().max()) <= REL_TOL


def test_bad_prompts_raise(model: Sam) -> None:
    lctx = prepare_lowrank(model, _embedding(model, seed=1))
    with pytest.raises(ValueError, match="point_coords"):
        decode_points_lowrank(lctx, torch.zeros(2, 2), torch.ones(2, 1))
    with pytest.raises(ValueError, match="point_labels"):
        decode_points_lowrank(lctx, torch.zeros(2, 1, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="image_embeddings"):
        prepare_lowrank(model, torch.zeros(2, 8, 4, 4, 4))


def test_matches_with_a_deeper_decoder_and_chunks() -> None:
    """Three two-way layers: rows pass up to two LayerNorms before the last one (products
    of gains and two mean corrections in the head-structured cross terms), with strong
    LayerNorm gains; and more prompts than one internal chunk, with multi-point prompts."""
    import dataclasses

    from sam_widget.models.build import assemble_sam
    from sam_widget.models.sam.config import get_config

    torch.manual_seed(21)
    model = assemble_sam(dataclasses.replace(get_config("tiny"), decoder_depth=3)).eval()
    _strong_layer_norms_(model, seed=22)
    coords, labels = _prompts(37, 3, seed=23)
    _compare(model, _embedding(model, seed=24, offset=3.0), coords, labels)


def test_out_buffer_is_filled_and_checked(model: Sam) -> None:
    emb = _embedding(model, seed=12)
    lctx = prepare_lowrank(model, emb)
    coords, labels = _prompts(5, 1, seed=13)
    low, iou, _ = decode_points_lowrank(lctx, coords, labels, True)
    buf = torch.full_like(low, float("nan"))
    low2, iou2, _ = decode_points_lowrank(lctx, coords, labels, True, out=buf)
    assert low2 is buf and torch.equal(low2, low) and torch.equal(iou2, iou)
    with pytest.raises(ValueError, match="out must be"):
        decode_points_lowrank(lctx, coords, labels, False, out=buf)


@pytest.mark.parametrize("cut", [(5, 0), (0, 9), (13, 22), (10_000, 10_000)])
def test_extent_computes_only_the_top_left_logits(model: Sam, cut: tuple[int, int]) -> None:
    # The generator needs only the low-res logits that the resized image covers; the head
    # then skips whole embedding cells of the padding. Inside the extent: the same logits
    # as a full decode; beyond the cells that cover it: ``out`` untouched.
    emb = _embedding(model, seed=16)
    lctx = prepare_lowrank(model, emb)
    coords, labels = _prompts(4, 1, seed=17)
    full, iou, _ = decode_points_lowrank(lctx, coords, labels, True)
    rows, cols = full.shape[-2:]
    extent = (max(1, rows - cut[0]), max(1, cols - cut[1]))
    buf = torch.full_like(full, float("nan"))
    low, iou2, _ = decode_points_lowrank(lctx, coords, labels, True, out=buf, extent=extent)
    er, ec = min(rows, extent[0]), min(cols, extent[1])
    torch.testing.assert_close(low[..., :er, :ec], full[..., :er, :ec], rtol=1e-5, atol=1e-5)
    assert torch.equal(iou2, iou)
    # whole 4 x 4 blocks of the embedding cells that cover the extent are written, no more
    cr, cc = -(-er // 4) * 4, -(-ec // 4) * 4
    assert not low[..., :cr, :cc].isnan().any()
    assert low[..., cr:, :].isnan().all() and low[..., :, cc:].isnan().all()
    assert full.abs().max() > 1.0


def test_bad_extent_raises(model: Sam) -> None:
    lctx = prepare_lowrank(model, _embedding(model, seed=18))
    coords, labels = _prompts(2, 1, seed=19)
    for bad in [(0, 4), (4,), (4.0, 4), (4, -1)]:
        with pytest.raises(ValueError, match="extent must be"):
            decode_points_lowrank(lctx, coords, labels, True, extent=bad)  # type: ignore[arg-type]


def test_mask_head_without_the_fused_kernel(model: Sam, monkeypatch: pytest.MonkeyPatch) -> None:
    # The head's second conv + GELU is one oneDNN call where available (fused.py); the
    # plain path (other builds, devices) gives the same logits.
    from sam_widget.models.sam import fused

    emb = _embedding(model, seed=14)
    lctx = prepare_lowrank(model, emb)
    coords, labels = _prompts(6, 1, seed=15)
    low, iou, _ = decode_points_lowrank(lctx, coords, labels, True)
    monkeypatch.setattr(fused, "_probe", {"ok": False})
    low2, iou2, _ = decode_points_lowrank(lctx, coords, labels, True)
    torch.testing.assert_close(low2, low, rtol=1e-5, atol=1e-5)
    assert torch.equal(iou2, iou)
    assert low.abs().max() > 1.0  # real logits, not an all-zero output
