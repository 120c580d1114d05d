"""SAM 2 / SAM 2.1 image models (Hiera trunk, FPN neck, SAM 2's prompt encoder and mask
decoder): our PyTorch implementation, one concern per module.

Variants: "sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l" and the
same for "sam2_hiera_*" (``config.VARIANTS``). Importing this package registers the
``"sam2"`` family and these variants (:mod:`sam_widget.models.registry`), so
``build_sam("sam2.1_hiera_t")`` builds them.
"""

from __future__ import annotations

from .. import registry
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


def _register() -> None:
    registry.register_family("sam2", build=build, detect=detect)
    sizes = {"t": "tiny", "s": "small", "b+": "base+", "l": "large"}
    for name, config in VARIANTS.items():
        release, size = name.split("_hiera_")
        generation = "SAM 2.1 (Sep 2024)" if release == "sam2.1" else "SAM 2 (Jul 2024)"
        registry.register_model(
            name,
            family="sam2",
            config=config,
            has_official_weights=config.has_official_weights,
            description=f"{generation} Hiera-{sizes[size]} image model (Ravi et al. 2024)",
        )


_register()
