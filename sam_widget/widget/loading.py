"""Which predictor a widget makes: checks the ``model`` argument now, builds later (on the
widget's worker thread). Also the words the widget uses about its model: the one message
when loading fails (with the next step: URL, cache path, ``checkpoint=``) and the notice
for an untrained model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ModelLoadError",
    "model_factory",
    "model_from_record",
    "model_record",
    "untrained_notice",
]


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
        from ..models.registry import get_entry

        get_entry(model)  # ValueError listing the registered variants
        variant = model
        path = _checkpoint_path(checkpoint)
        return (lambda: _build(variant, path, device)), variant
    if checkpoint is not None or device is not None:
        raise ValueError("checkpoint and device only apply when model is a variant name.")
    from ..engine.predictor import SamPredictor
    from ..models.interface import SegmentModel

    if isinstance(model, SamPredictor):
        base: Any = model
        cache = getattr(base, "cache", None)
        return lambda: registry.make_predictor(base.model, cache), str(base.model.variant)
    if isinstance(model, SegmentModel):
        sam: Any = model
        return lambda: registry.make_predictor(sam), str(sam.variant)
    raise TypeError(
        "model must be a variant name, a model from build_sam or a SamPredictor, got "
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


def model_record(variant: str, checkpoint: Any, predictor: Any) -> dict[str, Any]:
    """What a widget's model actually is, for ``to_dict``: the variant, whether its weights
    are trained (None while still loading), the checkpoint file (absolute path; None: the
    official weights or none) and the weights' id (``sam.weights_id``, None while loading)."""
    model = getattr(predictor, "model", None)
    path = None if checkpoint is None else str(Path(os.fspath(checkpoint)).expanduser().resolve())
    return {
        "variant": variant,
        "pretrained": None if model is None else bool(getattr(model, "pretrained", True)),
        "checkpoint": path,
        "weights_id": None if model is None else getattr(model, "weights_id", None),
    }


def model_from_record(record: Any) -> tuple[Any, Any]:
    """``(model, checkpoint)`` arguments that rebuild the model of a ``to_dict`` record: the
    same variant with the same checkpoint file, the official weights, or (for a record of
    an untrained model) an untrained one again. A plain variant name (older files) is
    taken as is."""
    if isinstance(record, str):
        return record, None
    if not isinstance(record, dict) or not isinstance(record.get("variant"), str):
        raise ValueError(
            "data['model'] must be a variant name or a dict with 'variant' (from to_dict()); "
            f"got {record!r}. Pass model= explicitly."
        )
    variant = record["variant"]
    if record.get("checkpoint"):
        return variant, record["checkpoint"]  # the same weights file
    if record.get("pretrained") is False:
        import warnings

        from ..models.build import build_sam

        with warnings.catch_warnings():
            # The widget's notice says it (once): the masks of random weights are meaningless.
            warnings.simplefilter("ignore", UserWarning)
            return build_sam(variant, pretrained=False), None
    return variant, record.get("checkpoint")
