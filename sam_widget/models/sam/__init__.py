"""Our PyTorch implementation of the Segment Anything model (one concern per module).

``TinyViT`` (MobileSAM's encoder) lives in ``tiny_vit.py`` and is imported from there
directly, so this package does not depend on it.
"""

from __future__ import annotations

from .common import MLP, LayerNorm2d, MLPBlock
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
