"""Automatic mask generation ("segment everything") and its utilities.

``SamAutomaticMaskGenerator`` is imported lazily so that the numpy-only helpers here (RLE,
used by :mod:`sam_widget.io`) load without the model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SamAutomaticMaskGenerator"]

if TYPE_CHECKING:
    from .generator import SamAutomaticMaskGenerator


def __getattr__(name: str) -> Any:
    if name == "SamAutomaticMaskGenerator":
        from .generator import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator
    raise AttributeError(f"module 'sam_widget.amg' has no attribute {name!r}")
