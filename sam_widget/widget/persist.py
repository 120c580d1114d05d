"""Saving and restoring prompts, and writing masks to files: functions over plain data.

``to_dict`` format (version 1, JSON-serialisable)::

    {"format": "sam_widget.prompts", "version": 1,
     "image": {"width": W, "height": H, "path": "photo.jpg" or null},
     "model": {"variant": "vit_t", "pretrained": true, "checkpoint": path or null,
               "weights_id": "..." or null},
     "refine": true,
     "objects": [object dicts without "seq"], "active": id,
     "next_id": int,
     "history": {"states": [{"objects": [...], "active": id}, ...], "index": i}}

Masks are not stored: they follow from the prompts and the order they were entered in
(``sam_widget.widget.chain``), so ``SamWidget.from_dict(d)`` replays the history up to its
current entry and reproduces them, with the model that was used (``"model"`` records what
was actually loaded: an untrained model says ``pretrained: false``) and the image file the
widget was made from (when it was given a path; otherwise pass the image). Older files with
``"model": "vit_t"`` (a name only) still load. Every file is written through
:mod:`sam_widget.data.atomic` (a failed write leaves the previous file untouched).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import atomic_write_text, atomic_write_with
from . import objects as objmod
from .history import History
from .loading import model_from_record

__all__ = [
    "FORMAT",
    "VERSION",
    "Loaded",
    "export_coco",
    "parse_dict",
    "save_masks",
    "stack_masks",
    "to_dict",
    "widget_arguments",
]

FORMAT = "sam_widget.prompts"
VERSION = 1


def to_dict(
    *,
    objects: Sequence[Mapping[str, Any]],
    active: int,
    next_id: int,
    history: History,
    width: int,
    height: int,
    model: Mapping[str, Any],
    refine: bool,
    image_path: str | None = None,
) -> dict[str, Any]:
    """The prompts and history as JSON-serialisable data (the format above)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "image": {"width": int(width), "height": int(height), "path": image_path},
        "model": dict(model),
        "refine": bool(refine),
        "objects": [objmod.strip_seq(o) for o in objects],
        "active": int(active),
        "next_id": int(next_id),
        "history": history.to_data(),
    }


def _check_state(state: Any, where: str, width: int, height: int) -> dict[str, Any]:
    if not isinstance(state, Mapping) or "objects" not in state:
        raise ValueError(f"{where} must be a dict with 'objects' and 'active'.")
    try:
        objs, _ = objmod.normalize_objects(state["objects"], width, height, 1)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    if any(o.get("id") is None for o in state["objects"] if isinstance(o, Mapping)):
        raise ValueError(f"{where}: every object needs an 'id'.")
    active = state.get("active", -1)
    ids = [o["id"] for o in objs]
    if (
        isinstance(active, bool)
        or not isinstance(active, int)
        or (active != -1 and active not in ids)
    ):
        raise ValueError(f"{where}.active must be -1 or one of the object ids {ids}.")
    return {"objects": [objmod.strip_seq(o) for o in objs], "active": int(active)}


@dataclass(frozen=True)
class Loaded:
    """A validated ``to_dict`` value: the history (ending at ``current``) and the next id."""

    history: History
    current: dict[str, Any]
    next_id: int


def parse_dict(data: Any, width: int, height: int) -> Loaded:
    """Validate everything in ``data`` (from :func:`to_dict`) for a ``width`` x ``height``
    image; raises ``TypeError``/``ValueError`` naming the part at fault."""
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict from to_dict(), got {type(data).__name__}.")
    version = data.get("version")
    if version != VERSION:
        raise ValueError(f"unsupported prompts format version {version!r}; expected {VERSION}.")
    image = data.get("image")
    if isinstance(image, Mapping) and (image.get("width"), image.get("height")) != (width, height):
        raise ValueError(
            f"the data was made for a {image.get('width')} x {image.get('height')} image; this "
            f"image is {width} x {height}."
        )
    current = _check_state(
        {"objects": data.get("objects", []), "active": data.get("active", -1)},
        "data",
        width,
        height,
    )
    if data.get("history") is not None:
        history = History.from_data(
            data["history"], lambda s, where: _check_state(s, where, width, height)
        )
        history.push(current)  # no-op when the history's current state is this one
    else:
        history = History(current)
    next_id = data.get("next_id", 1) or 1
    if isinstance(next_id, bool) or not isinstance(next_id, int):
        raise ValueError(f"data.next_id must be an integer, got {next_id!r}.")
    return Loaded(history, current, int(next_id))


def widget_arguments(
    data: Any, image: Any, model: Any, kwargs: Mapping[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """``(image, model, kwargs)`` for ``SamWidget(image, model, **kwargs)`` that rebuild
    the widget ``data`` (from :func:`to_dict`) was saved from, given what the caller of
    ``SamWidget.from_dict`` passed: ``image`` None takes the recorded image file (a
    ``TypeError`` when there is none); ``model`` None (and no ``checkpoint`` keyword) the
    recorded model (:func:`~.loading.model_from_record`); ``refine`` the recorded one unless
    given. ``data`` itself is validated later (:func:`parse_dict`)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict from to_dict(), got {type(data).__name__}.")
    kwargs = dict(kwargs)
    if image is None:
        recorded = data.get("image")
        path = recorded.get("path") if isinstance(recorded, Mapping) else None
        if not path:
            raise TypeError(
                "SamWidget.from_dict(data, image): the image is needed; this data records "
                "no image file (widgets made from an array do not). Pass the same image "
                "the data was made on."
            )
        image = path
    if model is None and "checkpoint" not in kwargs:
        model, checkpoint = model_from_record(data.get("model", "vit_t"))
        if checkpoint is not None:
            kwargs["checkpoint"] = checkpoint
    elif model is None:
        model = "vit_t"
    if "refine" not in kwargs and "refine" in data:
        kwargs["refine"] = bool(data["refine"])
    return image, model, kwargs


def stack_masks(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """N x H x W bool from N (H, W) masks (0 x H x W when there are none)."""
    if not masks:
        return np.zeros((0, int(height), int(width)), dtype=bool)
    # N x (H x W) -> N x H x W
    return np.stack(masks)


def save_masks(
    path: str | os.PathLike[str],
    stack: np.ndarray,
    objects: Sequence[Mapping[str, Any]],
) -> Path:
    """Write an N x H x W bool ``stack`` (one mask per object): ``.npz`` (``masks``,
    ``ids``, ``names``, ``colors``) or ``.png`` (label map, later objects on top)."""
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".png"):
        raise ValueError(f"path must end in .npz or .png, got {str(p)!r}.")
    if suffix == ".npz":
        arrays: dict[str, Any] = {
            "masks": stack,
            "ids": np.array([int(o["id"]) for o in objects], dtype=np.int64),
            "names": np.array([str(o["name"]) for o in objects], dtype=np.str_),
            "colors": np.array([str(o["color"]) for o in objects], dtype=np.str_),
        }
        atomic_write_with(p, lambda fh: np.savez_compressed(fh, **arrays))
    else:
        from ..data.io import write_label_png

        write_label_png(p, stack, overlap="last", height=stack.shape[1], width=stack.shape[2])
    return p


def export_coco(
    path: str | os.PathLike[str],
    stack: np.ndarray,
    objects: Sequence[Mapping[str, Any]],
    scores: Sequence[float | None],
) -> Path:
    """COCO JSON: one annotation per object (RLE). The objects are instances of one
    category, "object", unless an object has its own ``"category"`` (a name): then one COCO
    category per distinct name. Each annotation also carries ``object_id``, ``name`` and
    ``score`` (predicted IoU)."""
    from ..data.io import to_coco_json

    p = Path(os.fspath(path))
    values = [0.0 if s is None else float(s) for s in scores]
    categories = [o.get("category") or None for o in objects]
    data = to_coco_json(
        stack,
        height=stack.shape[1],
        width=stack.shape[2],
        scores=values,
        categories=categories,
    )
    for ann, obj in zip(data["annotations"], objects, strict=True):
        ann["object_id"] = int(obj["id"])
        ann["name"] = str(obj["name"])
    atomic_write_text(p, json.dumps(data))
    return p
