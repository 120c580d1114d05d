"""Model families and the variant registry.

- ``sam/``: SAM (ViT-B/L/H) and MobileSAM (TinyViT): encoders, prompt encoder, mask decoder.
- ``build.py``: ``build_sam(variant, ...)``.
"""
