"""Model variants: one frozen dataclass per SAM variant, looked up by name.

Every number here is a fact of the published models (Kirillov et al., "Segment Anything",
2023, and ``segment_anything/build_sam.py``; MobileSAM, Zhang et al. 2023, for ``vit_t``),
except the test-only ``"tiny"`` variant. Changing one of them makes the official
checkpoints unloadable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "VARIANTS",
    "SamConfig",
    "TinyViTConfig",
    "ViTConfig",
    "get_config",
]

# ImageNet RGB statistics in 0..255 units; SAM normalises its input with them.
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ViTConfig:
    """SAM's plain ViT image encoder (ViTDet-style backbone with a 256-channel neck)."""

    embed_dim: int
    depth: int
    num_heads: int
    # Blocks that attend over the whole 64 x 64 token grid; all others use 14 x 14 windows.
    global_attn_indexes: tuple[int, ...]
    patch_size: int = 16
    # 14 x 14 windows: the 64 x 64 grid is zero-padded to 70 x 70 = 5 x 5 windows.
    window_size: int = 14
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TinyViTConfig:
    """MobileSAM's TinyViT-5M encoder (``sam_widget.modeling.tiny_vit.TinyViT``)."""

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    # The ImageNet classification head is never used by SAM, but MobileSAM's checkpoint
    # contains its weights, so the module must exist for a strict state-dict load.
    num_classes: int = 1000


@dataclass(frozen=True)
class SamConfig:
    """Everything needed to construct one SAM variant."""

    variant: str
    encoder: ViTConfig | TinyViTConfig
    # False: no published weights exist; the model is always randomly initialised.
    has_official_weights: bool = True
    # The encoder's square input side; images are resized (longest side) and padded to it.
    image_size: int = 1024
    # Channels of the image embedding, prompt tokens and decoder transformer.
    prompt_embed_dim: int = 256
    # Hidden channels of the mask-prompt downscaling convs (4 then 16, then 256).
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    # Cross attention between tokens and image works in 256 / 2 = 128 channels.
    attention_downsample_rate: int = 2
    # Three masks for an ambiguous prompt (whole, part, subpart) plus one single-mask output.
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = field(default=_PIXEL_MEAN)
    pixel_std: tuple[float, float, float] = field(default=_PIXEL_STD)

    @property
    def image_embedding_size(self) -> int:
        """Side of the square image embedding grid (64 for a 1024 input)."""
        if isinstance(self.encoder, ViTConfig):
            return self.image_size // self.encoder.patch_size
        # TinyViT downsamples by 4 (patch embed) and then 2 x 2 x 1 in its stages: 16 in all.
        return self.image_size // 16


def _vit(
    variant: str, embed_dim: int, depth: int, heads: int, globals_: tuple[int, ...]
) -> SamConfig:
    return SamConfig(variant=variant, encoder=ViTConfig(embed_dim, depth, heads, globals_))


_ALL = (
    # Global attention every depth/4 blocks, ending at the last block.
    _vit("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    _vit("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    _vit("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
    SamConfig(variant="vit_t", encoder=TinyViTConfig()),
    # Test-only: a 2-block ViT (one window block, one global block) with the real prompt
    # encoder and mask decoder, so every code path runs in well under a second. It can be
    # built by the published ``_build_sam`` (same fixed hyper-parameters), which the
    # fidelity tests rely on.
    SamConfig(
        variant="tiny",
        encoder=ViTConfig(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,)),
        has_official_weights=False,
    ),
)

VARIANTS: Mapping[str, SamConfig] = MappingProxyType({c.variant: c for c in _ALL})


def get_config(variant: str) -> SamConfig:
    """The configuration of ``variant``; ``ValueError`` listing the known names otherwise."""
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a str, got {type(variant).__name__}")
    try:
        return VARIANTS[variant]
    except KeyError:
        known = ", ".join(repr(v) for v in VARIANTS)
        raise ValueError(f"unknown SAM variant {variant!r}; known variants: {known}") from None
