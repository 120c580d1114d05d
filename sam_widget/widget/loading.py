"""Which predictor a widget makes: checks the ``model`` argument now, builds later (on the
widget's worker thread). Also the words the widget uses about its model: the one message
when loading fails (with the next step: URL, cache path, ``checkpoint=``) and the notice
for an untrained model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ModelLoadError", "model_factory", "untrained_notice"]


class ModelLoadError(RuntimeError):
    """Loading the model failed; the message is complete (what failed and what to do)."""


def _official(variant: str) -> Any:
    from ..engine.checkpoints import OFFICIAL

    return OFFICIAL.get(variant)


def _checkpoint_path(checkpoint: Any) -> Path | None:
    """The checkpoint file, checked now: a missing file is refused at construction."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            f"checkpoint must be a path (str or os.PathLike) or None, got "
            f"{type(checkpoint).__name__}."
        )
    path = Path(os.fspath(checkpoint)).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} {what}; pass the path of a weights file."
        )
    return path


def download_failed_message(variant: str, exc: BaseException) -> str:
    """One message for a failed download of ``variant``'s weights, with the next step."""
    from ..engine.checkpoints import cache_dir

    info = _official(variant)
    reason = (str(exc) or type(exc).__name__).splitlines()[0].rstrip(".")
    if not reason.endswith(("?", "!")):
        reason += "."
    if info is None:  # pragma: no cover - only variants with official weights download
        return reason
    url = "" if info.url in reason else f" ({info.url})"
    return (
        f"{reason} Next step: download the file{url} on a machine with internet access, "
        f'then pass it: SamWidget(image, checkpoint="/path/to/{info.filename}"), or save it '
        f"as {cache_dir() / info.filename} and run the cell again."
    )


def _build(variant: str, checkpoint: Path | None, device: Any) -> Any:
    from ..engine import model_cache as registry
    from ..engine.checkpoints import DownloadError

    try:
        model = registry.get_model(variant, checkpoint, device)
    except DownloadError as exc:
        raise ModelLoadError(download_failed_message(variant, exc)) from exc
    return registry.make_predictor(model)


def model_factory(model: Any, checkpoint: Any, device: Any) -> tuple[Callable[[], Any], str]:
    """Check ``model`` and ``checkpoint`` now (cheap) and return ``(factory, variant
    name)``; ``factory()`` makes the widget's own predictor (shared model and embedding
    cache). A ``checkpoint`` that is not an existing file is refused here
    (``FileNotFoundError``), not later in the background."""
    from ..engine import model_cache as registry

    if isinstance(model, str):
        from ..models.sam.config import get_config

        get_config(model)  # ValueError listing the variants
        variant = model
        path = _checkpoint_path(checkpoint)
        return (lambda: _build(variant, path, device)), variant
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


def untrained_notice(variant: str) -> str:
    """The widget's notice for a model with random weights: said once, with the way to real
    masks (the weights file and ``checkpoint=``, which also works offline)."""
    info = _official(variant)
    text = f"Untrained model: {variant!r} has random weights, so its masks are meaningless."
    if info is None:
        return text
    return (
        f"{text} For real masks pass the weights file: "
        f'SamWidget(image, checkpoint="/path/to/{info.filename}") (from {info.url}).'
    )
