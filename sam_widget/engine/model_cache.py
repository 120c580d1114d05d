"""Models shared between widgets of one kernel.

Building the same variant + checkpoint + device twice returns the same model object (a
module-level registry of weak references: a model lives as long as some widget or user code
holds it, then its memory is freed). Every model has one shared :class:`EmbeddingCache`, so
all predictors built on it (one per widget: predictor state is per widget) reuse each other's
image embeddings.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.interface import SegmentModel
    from .embedding_cache import EmbeddingCache
    from .predictor import SamPredictor

__all__ = ["cache_for", "get_model", "make_predictor", "model_key"]

_lock = threading.RLock()
_models: weakref.WeakValueDictionary[tuple[str, str | None, str], SegmentModel] = (
    weakref.WeakValueDictionary()
)
_caches: weakref.WeakKeyDictionary[Any, EmbeddingCache] = weakref.WeakKeyDictionary()


def model_key(
    variant: str, checkpoint: str | os.PathLike[str] | None, device: Any
) -> tuple[str, str | None, str]:
    """Registry key: variant, resolved checkpoint path (None: official/random), device."""
    from ..models.build import resolve_device

    ckpt = None if checkpoint is None else str(Path(os.fspath(checkpoint)).expanduser().resolve())
    return (str(variant), ckpt, str(resolve_device(device)))


def get_model(
    variant: str, checkpoint: str | os.PathLike[str] | None = None, device: Any = None
) -> SegmentModel:
    """The shared model for ``(variant, checkpoint, device)``, built on first use.

    Builds are serialised (two widgets asking at once share one build).
    """
    key = model_key(variant, checkpoint, device)
    with _lock:
        model = _models.get(key)
        if model is None:
            from ..models.build import build_sam

            model = build_sam(variant, checkpoint, key[2])
            _models[key] = model
        return model


def cache_for(model: Any) -> EmbeddingCache:
    """The embedding cache shared by every widget predictor of ``model``."""
    with _lock:
        cache = _caches.get(model)
        if cache is None:
            from .embedding_cache import EmbeddingCache

            cache = EmbeddingCache()
            _caches[model] = cache
        return cache


def make_predictor(model: SegmentModel, cache: EmbeddingCache | None = None) -> SamPredictor:
    """A new predictor (own state) on ``model`` sharing ``cache`` (default: the model's)."""
    from .predictor import SamPredictor

    return SamPredictor(model, cache=cache if cache is not None else cache_for(model))
