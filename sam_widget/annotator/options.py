"""Arguments of :class:`~sam_widget.annotator.SamAnnotator`: categories and the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["categories_of", "predictors_for"]


def categories_of(categories: Any) -> list[tuple[str, str | None]]:
    """``categories`` (None, a list of names or a ``{name: color}`` dict) as (name, color)."""
    if categories is None:
        return []
    if isinstance(categories, str):
        raise TypeError("categories must be a list of names or a {name: color} dict, not a str")
    if isinstance(categories, Mapping):
        return [(str(k), v) for k, v in categories.items()]
    return [(str(c), None) for c in categories]


def predictors_for(model: Any, checkpoint: Any, device: Any, cache: Any) -> tuple[Any, Any]:
    """(widget predictor, prefetch predictor) on one model, sharing ``cache``."""
    from ..engine import model_cache as registry
    from ..engine.predictor import SamPredictor
    from ..models.interface import SegmentModel

    sam: Any
    if isinstance(model, str):
        sam = registry.get_model(model, checkpoint, device)
    elif checkpoint is not None or device is not None:
        raise ValueError("checkpoint and device only apply when model is a variant name")
    elif isinstance(model, SamPredictor):
        sam = model.model
    elif isinstance(model, SegmentModel):
        sam = model
    else:
        raise TypeError(
            f"model must be a variant name, a model from build_sam or a SamPredictor, got {model!r}"
        )
    return registry.make_predictor(sam, cache), registry.make_predictor(sam, cache)
