"""Switching a live widget (or annotator) to another model, e.g. a fine-tuned checkpoint.

``swap_predictor(old, model, rgb)`` makes the new predictor. When the new model's image
encoder is the old one's (a checkpoint from :func:`sam_widget.finetune.finetune` trains only
the decoder and prompt encoder), the current image embedding is carried over, re-labelled
with the new weights id, and also put in the embedding cache under the new model's key, so
nothing is encoded again. Otherwise the new predictor has no image and the caller encodes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..engine.embedding_cache import ImageEmbedding, embedding_key

__all__ = ["carry_to_cache", "resolve_model", "swap_predictor"]


def resolve_model(model: Any, current: Any) -> tuple[Any, str | None]:
    """``(model, checkpoint path or None)`` for ``use_model(model)``: a fine-tuned
    checkpoint's path (loaded with :func:`sam_widget.finetune.load_finetuned`, which refuses
    another variant or other image-encoder weights than ``current``'s), a model from
    ``build_sam`` or a ``SamPredictor`` (its model)."""
    from ..engine.predictor import SamPredictor
    from ..models.interface import SegmentModel

    if isinstance(model, (str, os.PathLike)):
        from ..finetune import load_finetuned

        return load_finetuned(model, like=current), os.path.abspath(os.fspath(model))
    if isinstance(model, SamPredictor):
        return model.model, None
    if isinstance(model, SegmentModel):
        return model, None
    raise TypeError(
        "model must be a fine-tuned checkpoint path, a model from build_sam or a SamPredictor, "
        f"got {type(model).__name__}"
    )


def same_encoder(a: Any, b: Any) -> bool:
    """Whether models ``a`` and ``b`` compute the same image embeddings (same variant and
    image-encoder weights; a family without fine-tuning support: only the same model)."""
    if a is b:
        return True
    if getattr(a, "variant", None) != getattr(b, "variant", None):
        return False
    from ..finetune.loop import family_training

    try:
        fam = family_training(a)
    except ValueError:
        return False
    return bool(fam.encoder_id(a) == fam.encoder_id(b))


def carry_to_cache(cache: Any, rgb: np.ndarray, emb: ImageEmbedding, model: Any) -> ImageEmbedding:
    """``emb`` (computed by a model with the same encoder as ``model``) re-labelled for
    ``model`` and, when ``cache`` is not None, stored there under ``model``'s key for the
    pixels ``rgb`` ((H, W, 3) uint8), as if ``model`` had encoded them."""
    weights_id = str(model.weights_id)
    key = embedding_key(rgb, weights_id) if cache is not None else ""
    new = ImageEmbedding(
        dict(emb.named_features), emb.original_size, emb.input_size, weights_id, key
    )
    if cache is not None:
        cache.put(new)
    return new


def swap_predictor(old: Any, model: Any, rgb: np.ndarray | None) -> tuple[Any, bool]:
    """``(new predictor on model, carried)``: the new predictor shares ``old``'s embedding
    cache; ``carried`` says it already has ``old``'s current image embedding (same encoder),
    else the caller must encode the image ``rgb`` again."""
    from ..engine import model_cache as registry

    new = registry.make_predictor(model, old.cache)
    emb = old.embedding
    if emb is None or rgb is None or not same_encoder(old.model, model):
        return new, False
    new.set_embedding(carry_to_cache(old.cache, rgb, emb, model))
    return new, True
