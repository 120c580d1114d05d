"""``build_sam`` and its helpers, where they have always been imported from.

The work is done by :mod:`sam_widget.models.registry` (any registered variant of any family)
and :mod:`sam_widget.models.sam.build` (SAM's modules, ``assemble_sam``, ``detect_variant``).
"""

from __future__ import annotations

from .registry import build_sam, list_models, resolve_device
from .sam.build import assemble_sam, detect_variant

__all__ = ["assemble_sam", "build_sam", "detect_variant", "list_models", "resolve_device"]
