"""Fine-tuned checkpoints: write, read back, and switch a predictor to one.

File layout: ``torch.save({"model": state_dict, "metadata": {...}})`` with tensors and plain
types only (str, int, float, bool, None, lists, dicts), written atomically, so
``build_sam(variant, checkpoint=path)`` loads it strictly with ``weights_only=True`` (it
reads the state dict under ``"model"``; the metadata's ``pretrained`` keeps a fine-tuned
untrained base marked untrained).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from ..data.atomic import atomic_write_with
from ..engine.checkpoints import load_checkpoint
from ..engine.embedding_cache import ImageEmbedding

__all__ = ["load_finetuned", "read_metadata", "save_checkpoint", "use_model"]

_FORMAT = "sam-widget finetune v1"


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` is plain data a ``weights_only`` load accepts; floats that are
    not finite are refused (they would not survive JSON-like consumers)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metadata {where} is {value}, not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"metadata {where} must be plain data, got {type(value).__name__}")


def save_checkpoint(path: str | os.PathLike[str], model: Any, metadata: dict[str, Any]) -> None:
    """Write ``model``'s full state dict (CPU copies) and ``metadata`` to ``path``
    atomically (the old file, if any, stays intact until the new one is complete)."""
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {"model": state, "metadata": _plain(dict(metadata), "metadata")}
    atomic_write_with(path, lambda fh: torch.save(payload, fh))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a fine-tuned checkpoint (safe load). ``ValueError`` if the file has
    none (a plain state dict, e.g. official weights)."""
    _, meta = load_checkpoint(path)
    if meta is None or meta.get("format") != _FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a sam-widget fine-tuned checkpoint")
    return meta


def load_finetuned(
    path: str | os.PathLike[str], like: Any = None, device: str | torch.device | None = None
) -> Any:
    """Build the model stored in a fine-tuned checkpoint (its variant from the metadata).

    ``like``: a model the result must be interchangeable with (the model in use): the same
    variant, and the same image encoder weights, so that its image embeddings stay valid;
    ``ValueError`` otherwise (e.g. a checkpoint of another variant). The result goes to
    ``like``'s device unless ``device`` is given.
    """
    from ..models.build import build_sam

    meta = read_metadata(path)
    variant = str(meta.get("variant"))
    if like is not None:
        like_variant = str(getattr(like, "variant", ""))
        if like_variant != variant:
            raise ValueError(
                f"checkpoint {os.fspath(path)} is a fine-tuned {variant!r} model, but the model "
                f"in use is {like_variant!r}"
            )
        if device is None:
            device = like.device
    model = build_sam(variant, checkpoint=path, device=device)
    if like is not None:
        from .loop import family_training

        fam = family_training(like)
        if fam.encoder_id(model) != fam.encoder_id(like):
            raise ValueError(
                f"checkpoint {os.fspath(path)} has other image-encoder weights than the model in "
                "use, so its image embeddings would not be valid; build a new widget with it"
            )
    return model


def carry_embedding(emb: ImageEmbedding, new_model: Any) -> ImageEmbedding:
    """``emb`` re-labelled for ``new_model`` (same features). Only valid when the encoder is
    unchanged, which :func:`load_finetuned` (``like=``) checks."""
    return ImageEmbedding(
        emb.features, emb.original_size, emb.input_size, str(new_model.weights_id), ""
    )


def use_model(predictor: Any, path: str | os.PathLike[str]) -> Any:
    """A new :class:`SamPredictor` on the fine-tuned model at ``path`` that keeps
    ``predictor``'s current image without encoding it again (the encoder did not change).

    The model side of ``SamWidget.use_model`` / ``SamAnnotator.use_model``: they swap their
    predictor for this one and decode their objects again.
    """
    from ..engine.predictor import SamPredictor

    model = load_finetuned(path, like=predictor.model)
    new = SamPredictor(model, cache=predictor.cache)
    emb = predictor.embedding
    if emb is not None:
        new.set_embedding(carry_embedding(emb, model))
    return new
