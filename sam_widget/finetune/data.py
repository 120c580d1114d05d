"""Training data for ``finetune``: images with their object masks, from any of three sources.

- a list of ``(image, masks)`` pairs: ``image`` anything :func:`sam_widget.engine.images.
  to_rgb_uint8` accepts (H x W x 3 uint8 array, PIL image, path); ``masks`` an (N, H, W)
  bool/0-1 array or a list of (H, W) masks;
- a COCO JSON file (path, or a parsed dict): every image with at least one annotation; image
  files are found through ``file_name``, relative to ``image_root`` (default: the JSON file's
  folder);
- an annotator project file (SQLite), read through :mod:`sam_widget.data.store`.

Nothing here writes: sources are only read. Empty masks are dropped (with a warning); an image
left with no mask is dropped too; no mask at all is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import read_coco_json
from ..engine.images import to_rgb_uint8

__all__ = ["Sample", "data_hash", "load_samples", "split_samples"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its object masks.

    ``image``: (H, W, 3) uint8 RGB; ``masks``: (N, H, W) bool, N >= 1, none empty;
    ``name``: where it came from (for messages).
    """

    image: np.ndarray
    masks: np.ndarray
    name: str


def _mask_stack(masks: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    """(N, H, W) or list of (H, W) masks -> (N, H, W) bool; shape errors name ``where``."""
    if isinstance(masks, np.ndarray):
        arr = masks
    elif isinstance(masks, Sequence) and not isinstance(masks, (str, bytes)):
        if len(masks) == 0:
            return np.zeros((0, *shape), dtype=bool)
        items = [np.asarray(m) for m in masks]
        bad = [i for i, m in enumerate(items) if m.shape != shape]
        if bad:
            raise ValueError(
                f"{where}: mask {bad[0]} has shape {items[bad[0]].shape}, expected the "
                f"image's (H, W) = {shape}"
            )
        arr = np.stack(items)
    else:
        try:  # e.g. a torch tensor
            arr = np.asarray(masks)
        except Exception:
            raise TypeError(
                f"{where}: masks must be an (N, H, W) array or a list of (H, W) arrays, got "
                f"{type(masks).__name__}"
            ) from None
    if arr.ndim == 2:
        arr = arr[None]  # H x W -> 1 x H x W: one mask
    if arr.ndim != 3 or tuple(arr.shape[1:]) != shape:
        raise ValueError(
            f"{where}: masks must be (N, H, W) with (H, W) = the image's {shape}, got shape "
            f"{tuple(arr.shape)}"
        )
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{where}: masks must be bool or 0/1 numbers, got dtype {arr.dtype}")
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(
                f"{where}: masks must hold only 0/1 (or bool) values; for a label map use "
                "sam_widget.data.io.label_map_to_masks first"
            )
        arr = arr.astype(bool)
    return np.ascontiguousarray(arr)


def _make_sample(image: Any, masks: Any, name: str) -> Sample | None:
    rgb = to_rgb_uint8(image, "RGB")
    stack = _mask_stack(masks, (int(rgb.shape[0]), int(rgb.shape[1])), name)
    # N x H x W -> N x HW: which masks have a pixel
    keep = stack.reshape(len(stack), -1).any(axis=1)
    if not keep.all():
        warnings.warn(
            f"{name}: {int((~keep).sum())} empty mask(s) ignored", UserWarning, stacklevel=3
        )
    stack = stack[keep]
    if len(stack) == 0:
        return None
    return Sample(np.ascontiguousarray(rgb), stack, name)


def _from_pairs(pairs: Sequence[Any]) -> list[Sample]:
    out = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"data[{i}] must be an (image, masks) pair, got {type(pair).__name__}")
        sample = _make_sample(pair[0], pair[1], f"data[{i}]")
        if sample is not None:
            out.append(sample)
    return out


def _from_coco(data: dict[str, Any], root: Path, source: str) -> list[Sample]:
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise ValueError(f"data: COCO file {source} has no 'images' list")
    annotated = {a.get("image_id") for a in data.get("annotations", []) if isinstance(a, dict)}
    out = []
    for entry in images:
        if entry.get("id") not in annotated:
            continue
        coco = read_coco_json(data, image_id=entry["id"])
        file_name = entry.get("file_name") or ""
        path = root / file_name
        if not file_name or not path.is_file():
            raise FileNotFoundError(
                f"data: image {entry.get('id')} of COCO file {source} names file "
                f"{file_name!r}, not found under {root} (pass image_root=...)"
            )
        sample = _make_sample(path, coco.masks, f"{source} image {entry['id']} ({file_name})")
        if sample is not None:
            out.append(sample)
    return out


def _from_project(path: Path) -> list[Sample]:
    from .project import read_project

    return [
        s
        for s in (_make_sample(img, masks, name) for img, masks, name in read_project(path))
        if s is not None
    ]


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def load_samples(data: Any, *, image_root: str | os.PathLike[str] | None = None) -> list[Sample]:
    """Read ``data`` (see the module docstring) into samples. Raises ``ValueError`` when
    there is no non-empty mask at all, ``TypeError`` for an unknown kind of source."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fspath(data)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"data: file not found: {path}")
        if _is_sqlite(path):
            samples = _from_project(path)
        else:
            try:
                with open(path, encoding="utf-8") as fh:
                    parsed = json.load(fh)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(
                    f"data: {path} is neither an annotator project (SQLite) nor a COCO JSON "
                    f"file ({exc})"
                ) from None
            if not isinstance(parsed, dict):
                raise ValueError(f"data: {path} is not a COCO JSON object")
            root = Path(os.fspath(image_root)) if image_root is not None else path.parent
            samples = _from_coco(parsed, root, str(path))
    elif isinstance(data, dict):
        if image_root is None:
            raise ValueError("data: a parsed COCO dict needs image_root=<folder of its images>")
        samples = _from_coco(data, Path(os.fspath(image_root)), "<COCO dict>")
    elif isinstance(data, (list, tuple)):
        samples = _from_pairs(data)
    else:
        raise TypeError(
            "data must be an annotator project file, a COCO JSON file (path) or a list of "
            f"(image, masks) pairs, got {type(data).__name__}"
        )
    if not samples:
        raise ValueError("data has no masks: at least one non-empty object mask is needed")
    return samples


def split_samples(
    samples: list[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Held-out split by image: ``round(val_fraction * n)`` images (at least 1) go to
    validation, chosen by ``seed``. Raises ``ValueError`` when either side would be empty."""
    if not isinstance(val_fraction, (int, float)) or not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    n = len(samples)
    n_val = max(1, round(float(val_fraction) * n))
    if n < 2 or n_val >= n:
        raise ValueError(
            f"the validation split is empty or leaves no training data: data has {n} "
            "image(s) with masks; give at least 2 images (or pass val_data=...)"
        )
    order = np.random.default_rng(seed).permutation(n)
    val = {int(i) for i in order[:n_val]}
    return [s for i, s in enumerate(samples) if i not in val], [samples[i] for i in sorted(val)]


def data_hash(samples: Sequence[Sample]) -> str:
    """SHA-256 over every image's pixels and every mask, in order (the checkpoint's record
    of what it was trained on)."""
    h = hashlib.sha256(b"sam-widget finetune data v1\0")
    for s in samples:
        h.update(repr((s.image.shape, s.masks.shape)).encode())
        h.update(np.ascontiguousarray(s.image).data)
        # (N, H, W) bool -> 8 pixels per byte
        h.update(np.packbits(s.masks.reshape(-1)).data)  # N x H x W -> NHW bits
    return h.hexdigest()
