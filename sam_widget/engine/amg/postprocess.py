"""Per-mask post-processing: boxes, small-region removal; parameter checks."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

__all__ = [
    "masks_to_boxes",
    "remove_small_regions",
]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 XYXY with inclusive max pixel indices.

    An empty mask gets [0, 0, 0, 0] (the published convention).
    """
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.int64, device=masks.device)
    if h == 0 or w == 0:
        return torch.zeros((n, 4), dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=2)  # N x H
    cols = masks.any(dim=1)  # N x W
    # argmax returns the first maximum: first set row/col, and on the flipped axis the last.
    top = rows.to(torch.uint8).argmax(dim=1)
    bottom = h - 1 - rows.flip(1).to(torch.uint8).argmax(dim=1)
    left = cols.to(torch.uint8).argmax(dim=1)
    right = w - 1 - cols.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([left, top, right, bottom], dim=1).to(torch.int64)
    empty = ~rows.any(dim=1)
    boxes[empty] = 0
    return boxes


def _ndimage():  # type: ignore[no-untyped-def]
    try:
        from scipy import ndimage
    except ImportError as exc:  # pragma: no cover - exercised only without scipy
        raise ImportError(
            "min_mask_region_area > 0 needs scipy to find connected regions; install it with "
            "`pip install sam-widget[amg]` (or `pip install scipy`), or set "
            "min_mask_region_area=0"
        ) from exc
    return ndimage


def require_scipy() -> None:
    """Raise a clear ImportError now if scipy (the ``amg`` extra) is missing."""
    _ndimage()


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: Literal["holes", "islands"]
) -> tuple[np.ndarray, bool]:
    """Fill holes / drop islands smaller than ``area_thresh`` pixels in an (H, W) bool mask.

    Regions are 8-connected. "holes": connected regions of unset pixels (the outer
    background included) with fewer than ``area_thresh`` pixels are set. "islands": connected
    regions of set pixels that small are cleared, except that when every region is that small
    the largest one is kept. Returns (mask, changed).
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    ndimage = _ndimage()
    mask = np.asarray(mask, dtype=bool)
    target = ~mask if mode == "holes" else mask
    labels, n = ndimage.label(target, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return mask, False
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]  # sizes of labels 1..n
    small = sizes < area_thresh
    if not small.any():
        return mask, False
    if mode == "holes":
        fill = np.concatenate(([False], small))  # label 0 = the mask itself, kept as is
        return mask | fill[labels], True
    keep = ~small
    if not keep.any():
        keep[int(np.argmax(sizes))] = True  # first largest region
    return np.concatenate(([False], keep))[labels], True


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Validate an int parameter (bools refused) and return it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: object, low: float, high: float) -> float:
    """Validate a finite real parameter in [low, high] and return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return v
