"""``SamWidget`` and its parts (prompts and history, the background session, results,
persistence, segment-everything, the mask codec)."""

from .widget import ObjectsError, SamWidget

__all__ = ["ObjectsError", "SamWidget"]
