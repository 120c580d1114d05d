"""Drop-in names for code written for the published ``segment_anything`` / ``mobile_sam``.

A script written for those packages runs after changing only its import::

    from sam_widget import sam_model_registry, SamPredictor, SamAutomaticMaskGenerator
    from sam_widget.compat import ResizeLongestSide     # segment_anything.utils.transforms

    sam = sam_model_registry["vit_b"](checkpoint="sam_vit_b_01ec64.pth")
    sam.to(device="cuda")
    predictor = SamPredictor(sam)

Registry names as in the published packages (``segment_anything/build_sam.py``:
``"default"`` = ``"vit_h"``, ``"vit_l"``, ``"vit_b"``; MobileSAM's ``mobile_sam`` package
adds ``"vit_t"``). Each entry is a builder ``(checkpoint=None) -> Sam`` in eval mode; the
checkpoint files are the official ones (same state-dict keys and shapes).

One difference: the published builders give random, untrained weights when ``checkpoint`` is
``None``. Here ``None`` means the official weights, downloaded once and cached (as
``build_sam`` does); pass ``checkpoint=`` a path to work offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import MappingProxyType

from .engine.amg import SamAutomaticMaskGenerator
from .engine.predictor import SamPredictor
from .engine.transforms import ResizeLongestSide
from .models.build import build_sam
from .models.sam import Sam

__all__ = [
    "ResizeLongestSide",
    "SamAutomaticMaskGenerator",
    "SamPredictor",
    "build_sam_vit_b",
    "build_sam_vit_h",
    "build_sam_vit_l",
    "build_sam_vit_t",
    "sam_model_registry",
]

Checkpoint = str | os.PathLike[str] | None


def _builder(variant: str) -> Callable[..., Sam]:
    def build(checkpoint: Checkpoint = None) -> Sam:
        # On the CPU, as the published builders leave it; the caller moves it (sam.to(...)).
        return build_sam(variant, checkpoint=checkpoint, device="cpu")

    build.__name__ = f"build_sam_{variant}"
    build.__qualname__ = build.__name__
    build.__doc__ = (
        f"SAM {variant!r} in eval mode on the CPU from ``checkpoint`` (a path; ``None``: the "
        "official weights, downloaded once and cached)."
    )
    return build


build_sam_vit_h = _builder("vit_h")
build_sam_vit_l = _builder("vit_l")
build_sam_vit_b = _builder("vit_b")
build_sam_vit_t = _builder("vit_t")

#: Published registry names -> builders (read-only).
sam_model_registry = MappingProxyType(
    {
        "default": build_sam_vit_h,
        "vit_h": build_sam_vit_h,
        "vit_l": build_sam_vit_l,
        "vit_b": build_sam_vit_b,
        "vit_t": build_sam_vit_t,
    }
)
