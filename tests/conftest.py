"""Shared fixtures: our SAM and the published one (the oracle) with identical weights.

``make_model_pair(variant)`` builds the published model with ``segment_anything``'s own
``_build_sam`` (imported through the torchvision shim), perturbs every parameter so that no
zero/one initialisation hides a mistake, and loads that state dict into ours with
``strict=True``. Both are returned in eval mode on the CPU.
"""

from __future__ import annotations

import types
import warnings

import pytest
import torch
from _torchvision_shim import import_reference

from sam_widget.models.build import build_sam
from sam_widget.models.sam import Sam
from sam_widget.models.sam.config import ViTConfig, get_config


@pytest.fixture(scope="session")
def reference() -> types.ModuleType:
    """The published ``segment_anything`` package."""
    return import_reference()


def build_reference(variant: str) -> torch.nn.Module:
    """The published model for one of our ViT variants (random weights, eval mode)."""
    import_reference()
    from segment_anything.build_sam import _build_sam

    enc = get_config(variant).encoder
    assert isinstance(enc, ViTConfig), f"the reference has no {variant!r}"
    return _build_sam(
        encoder_embed_dim=enc.embed_dim,
        encoder_depth=enc.depth,
        encoder_num_heads=enc.num_heads,
        encoder_global_attn_indexes=list(enc.global_attn_indexes),
    )


def perturb_(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Add N(0, scale²) noise to every parameter (in place, reproducibly)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def make_model_pair(variant: str, seed: int = 0) -> tuple[Sam, torch.nn.Module]:
    """(ours, reference) with the same perturbed random weights, eval mode, CPU."""
    torch.manual_seed(seed)
    ref = build_reference(variant)
    perturb_(ref, seed + 1)
    ref.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "untrained weights" for real variants
        ours = build_sam(variant, device="cpu", pretrained=False)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


@pytest.fixture(scope="session")
def tiny_pair() -> tuple[Sam, torch.nn.Module]:
    """Shared (ours, reference) "tiny" models. Tests must not modify them."""
    return make_model_pair("tiny", seed=0)


def random_model_input(h: int, w: int, seed: int) -> torch.Tensor:
    """A 3 x h x w float image in 0..255 (already "resized", i.e. the model input frame)."""
    gen = torch.Generator().manual_seed(seed)
    # Smooth-ish content (low-res noise upsampled) so masks have structure, plus fine noise.
    coarse = torch.rand((1, 3, 8, 8), generator=gen) * 255
    img = torch.nn.functional.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)
    img = img[0] + 20 * torch.rand((3, h, w), generator=gen)
    return img.clamp(0, 255)


def max_rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| relative to max |ref|."""
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    if ref.numel() == 0:
        return 0.0
    scale = ref.detach().abs().max().clamp_min(1e-12)
    return float((ours.detach().double() - ref.detach().double()).abs().max() / scale)


def assert_close_rel(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> None:
    diff = max_rel_diff(ours, ref)
    assert diff <= rel, f"relative difference {diff:.3g} > {rel:g}"


def assert_masks_match(
    ours: torch.Tensor, ref: torch.Tensor, ref_logits: torch.Tensor, rel: float = 1e-4
) -> None:
    """Binary masks equal, except pixels whose reference logit is within float noise of 0."""
    assert ours.shape == ref.shape and ours.dtype == torch.bool
    differ = ours != ref
    if differ.any():
        scale = ref_logits.abs().max()
        near_zero = ref_logits.abs() <= rel * scale
        assert bool(near_zero[differ].all()), f"{int(differ.sum())} mask pixels differ"
