"""Model families and the variant registry.

- ``interface.py``: the one model interface (``SegmentModel``, ``ImageGeometry``) that code
  outside ``models/`` uses.
- ``registry.py``: variants by name (``list_models``, ``build_sam``); families register
  themselves when their package is imported.
- ``sam/``: SAM (ViT-B/L/H) and MobileSAM (TinyViT).
- ``build.py``: ``build_sam`` and SAM's build helpers, at their historical import path.
"""
