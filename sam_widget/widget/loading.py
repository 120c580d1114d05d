"""Which predictor a widget makes: checks the ``model`` argument now, builds later (on the
widget's worker thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["model_factory"]


def model_factory(model: Any, checkpoint: Any, device: Any) -> tuple[Callable[[], Any], str]:
    """Check ``model`` now (cheap) and return ``(factory, variant name)``; ``factory()``
    makes the widget's own predictor (shared model and embedding cache)."""
    from ..engine import model_cache as registry

    if isinstance(model, str):
        from ..models.sam.config import get_config

        get_config(model)  # ValueError listing the variants
        variant = model
        return (
            lambda: registry.make_predictor(registry.get_model(variant, checkpoint, device)),
            variant,
        )
    if checkpoint is not None or device is not None:
        raise ValueError("checkpoint and device only apply when model is a variant name.")
    from ..engine.predictor import SamPredictor
    from ..models.sam import Sam

    if isinstance(model, SamPredictor):
        base: Any = model
        cache = getattr(base, "cache", None)
        return lambda: registry.make_predictor(base.model, cache), str(base.model.variant)
    if isinstance(model, Sam):
        sam: Any = model
        return lambda: registry.make_predictor(sam), str(sam.variant)
    raise TypeError(
        "model must be a variant name, a Sam model or a SamPredictor, got "
        f"{type(model).__module__}.{type(model).__qualname__}."
    )
