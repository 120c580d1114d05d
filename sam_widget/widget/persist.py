"""Saving and restoring a widget: prompts + history as data, masks as files.

``to_dict`` format (version 1, JSON-serialisable)::

    {"format": "sam_widget.prompts", "version": 1,
     "image": {"width": W, "height": H},
     "model": "vit_t", "refine": true,
     "objects": [object dicts without "seq"], "active": id,
     "next_id": int,
     "history": {"states": [{"objects": [...], "active": id}, ...], "index": i}}

Masks are not stored: they follow deterministically from the prompts (docs in
``sam_widget.chain``), so ``SamWidget.from_dict(d, image, model=...)`` reproduces them, and
undo/redo replay the stored history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import objects as objmod
from .history import History

__all__ = ["FORMAT", "VERSION", "export_coco", "load_dict", "save_masks", "to_dict"]

FORMAT = "sam_widget.prompts"
VERSION = 1


def to_dict(w: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "image": {"width": int(w.image_width), "height": int(w.image_height)},
        "model": w._variant,
        "refine": bool(w.refine),
        "objects": [objmod.strip_seq(o) for o in w.objects],
        "active": int(w.active),
        "next_id": int(w._next_id),
        "history": w._history.to_data(),
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


def load_dict(w: Any, data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict from to_dict(), got {type(data).__name__}.")
    version = data.get("version")
    if version != VERSION:
        raise ValueError(f"unsupported prompts format version {version!r}; expected {VERSION}.")
    width, height = int(w.image_width), int(w.image_height)
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
    # Everything is valid: apply (nothing above changed the widget).
    ids = [o["id"] for s in history.states for o in s["objects"]]
    w._next_id = max([w._next_id, int(data.get("next_id", 1) or 1)] + [i + 1 for i in ids])
    w._history = history
    w._restore(current)


def _stack(w: Any) -> np.ndarray:
    masks = w.masks
    if not masks:
        return np.zeros((0, int(w.image_height), int(w.image_width)), dtype=bool)
    # N x (H x W) -> N x H x W
    return np.stack(masks)


def save_masks(w: Any, path: str | os.PathLike[str]) -> Path:
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".png"):
        raise ValueError(f"path must end in .npz or .png, got {str(p)!r}.")
    stack = _stack(w)
    if suffix == ".npz":
        np.savez_compressed(
            p,
            masks=stack,
            ids=np.array(w.object_ids, dtype=np.int64),
            names=np.array([str(o["name"]) for o in w.objects], dtype=np.str_),
            colors=np.array([str(o["color"]) for o in w.objects], dtype=np.str_),
        )
    else:
        from ..data.io import write_label_png

        write_label_png(p, stack, overlap="last", height=stack.shape[1], width=stack.shape[2])
    return p


def export_coco(w: Any, path: str | os.PathLike[str]) -> Path:
    """COCO JSON: one annotation per object (RLE), one category per distinct object name;
    each annotation also carries ``object_id``, ``name`` and ``score`` (predicted IoU)."""
    from ..data.io import to_coco_json

    p = Path(os.fspath(path))
    stack = _stack(w)
    scores = [0.0 if s is None else float(s) for s in w.scores]
    data = to_coco_json(stack, height=stack.shape[1], width=stack.shape[2], scores=scores)
    names = [str(o["name"]) for o in w.objects]
    categories = {name: i for i, name in enumerate(dict.fromkeys(names), start=1)}
    data["categories"] = [{"id": i, "name": n} for n, i in categories.items()]
    for ann, obj in zip(data["annotations"], w.objects, strict=True):
        ann["category_id"] = categories[str(obj["name"])]
        ann["object_id"] = int(obj["id"])
        ann["name"] = str(obj["name"])
    with open(p, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return p
