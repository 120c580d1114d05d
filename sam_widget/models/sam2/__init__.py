"""SAM 2 / SAM 2.1 image models (Hiera trunk, FPN neck, SAM 2's prompt encoder and mask
decoder): our PyTorch implementation, one concern per module.

Variants: "sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l" and the
same for "sam2_hiera_*" (``config.VARIANTS``).
"""

from __future__ import annotations

from .build import build, build_sam2, detect
from .config import VARIANTS, HieraConfig, Sam2Config, get_config
from .model import Sam2

__all__ = [
    "VARIANTS",
    "HieraConfig",
    "Sam2",
    "Sam2Config",
    "build",
    "build_sam2",
    "detect",
    "get_config",
]
