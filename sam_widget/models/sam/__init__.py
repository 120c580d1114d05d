"""SAM (ViT-B/L/H) and MobileSAM (TinyViT): our PyTorch implementation, one concern per module.

Importing this package registers the ``"sam"`` family and its variants ``vit_b``, ``vit_l``,
``vit_h``, ``vit_t`` and the test-only ``tiny`` (:mod:`sam_widget.models.registry`).
``TinyViT`` (MobileSAM's encoder) lives in ``tiny_vit.py`` and is imported from there
directly, so this package does not depend on it.
"""

from __future__ import annotations

from .. import registry
from .common import MLP, LayerNorm2d, MLPBlock
from .config import VARIANTS
from .image_encoder import ImageEncoderViT
from .mask_decoder import ImageContext, MaskDecoder
from .prompt_encoder import PositionEmbeddingRandom, PromptEncoder
from .sam import Sam
from .transformer import TwoWayTransformer

__all__ = [
    "MLP",
    "ImageContext",
    "ImageEncoderViT",
    "LayerNorm2d",
    "MLPBlock",
    "MaskDecoder",
    "PositionEmbeddingRandom",
    "PromptEncoder",
    "Sam",
    "TwoWayTransformer",
]


def _register() -> None:
    from . import build

    registry.register_family("sam", build=build.build, detect=build.detect_variant)
    descriptions = {
        "vit_b": "SAM ViT-B (Kirillov et al. 2023)",
        "vit_l": "SAM ViT-L",
        "vit_h": "SAM ViT-H",
        "vit_t": "MobileSAM TinyViT-5M (Zhang et al. 2023); the fastest on a CPU",
        "tiny": "test-only 2-block ViT with SAM's real decoder; random weights",
    }
    for name, config in VARIANTS.items():
        registry.register_model(
            name,
            family="sam",
            config=config,
            has_official_weights=config.has_official_weights,
            description=descriptions.get(name, ""),
        )


_register()
