"""Annotate a dataset: :class:`SamAnnotator` (many images, one widget, saved as you go)."""

from .annotator import SamAnnotator

__all__ = ["SamAnnotator"]
