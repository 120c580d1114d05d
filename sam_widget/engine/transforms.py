"""Checks that prompts are valid in their frame (``check_*``: ``ValueError`` or ``TypeError``
naming the argument), for every model family.

The frames themselves (original image -> model input and back) are each family's
``geometry`` (:class:`sam_widget.models.interface.ImageGeometry`); SAM's
:class:`ResizeLongestSide` and :func:`upscale_logits` are re-exported here, where they have
always been imported from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..models.geometry import ResizeLongestSide, upscale_logits

__all__ = [
    "ResizeLongestSide",
    "check_box",
    "check_box_corners",
    "check_mask_input",
    "check_points",
    "check_prompt_batch",
    "upscale_logits",
]


# -- prompt checks -----------------------------------------------------------------------


def _as_float_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (array-like of numbers): {err}") from None
    return arr


def check_points(
    point_coords: Any, point_labels: Any, size: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Check ``(N, 2)`` XY points and ``(N,)`` labels against an image of ``size`` (H, W).

    Points must be finite and inside ``[0, W] x [0, H]``; labels 1, 0 or -1. Returns float64
    coords and int32 labels, or ``(None, None)`` for no points (both None or both empty).
    """
    if point_coords is None and point_labels is None:
        return None, None
    if point_labels is None:
        raise ValueError("point_labels must be given with point_coords (one label per point).")
    if point_coords is None:
        raise ValueError("point_coords must be given with point_labels (one point per label).")
    coords = _as_float_array(point_coords, "point_coords")
    if coords.size == 0 and np.asarray(point_labels).size == 0:
        return None, None  # empty point lists: no point prompt
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (N, 2) XY, got {coords.shape}.")
    labels = _as_float_array(point_labels, "point_labels")
    if labels.ndim != 1 or labels.shape[0] != coords.shape[0]:
        raise ValueError(
            f"point_labels must have shape ({coords.shape[0]},) to match point_coords, got "
            f"{labels.shape}."
        )
    if not np.isfinite(coords).all():
        raise ValueError("point_coords contains NaN or infinite values.")
    if not np.isin(labels, (1.0, 0.0, -1.0)).all():
        bad = sorted({float(v) for v in labels[~np.isin(labels, (1.0, 0.0, -1.0))]})
        raise ValueError(
            f"point_labels must be 1 (foreground), 0 (background) or -1 (ignore); got {bad}."
        )
    h, w = size
    outside = (coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h)
    if outside.any():
        first = coords[np.argmax(outside)].tolist()
        raise ValueError(
            f"point_coords {first} lies outside the image (x in [0, {w}], y in [0, {h}])."
        )
    return coords, labels.astype(np.int32)


def check_box_corners(x0: float, y0: float, x1: float, y1: float, where: str = "box") -> None:
    """The one rule for a box's corners (the predictor and the widget both use it): XYXY
    with ``x0 < x1`` and ``y0 < y1``, i.e. a box of positive area. ``ValueError`` naming
    ``where`` otherwise."""
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"{where} must be XYXY with x0 < x1 and y0 < y1, got {[x0, y0, x1, y1]}.")


def check_box(box: Any, size: tuple[int, int]) -> np.ndarray | None:
    """Check one XYXY box (4 finite numbers, ``check_box_corners``, inside the image of
    ``size`` (H, W)); returns it as a ``(1, 4)`` float64 array, or None."""
    if box is None:
        return None
    arr = _as_float_array(box, "box")
    if arr.size != 4 or arr.ndim not in (1, 2):
        raise ValueError(f"box must be 4 numbers XYXY (shape (4,) or (1, 4)), got {arr.shape}.")
    x0, y0, x1, y1 = arr.reshape(4).tolist()
    if not np.isfinite(arr).all():
        raise ValueError("box contains NaN or infinite values.")
    check_box_corners(x0, y0, x1, y1)
    h, w = size
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise ValueError(
            f"box {[x0, y0, x1, y1]} extends outside the image (x in [0, {w}], y in [0, {h}])."
        )
    return arr.reshape(1, 4)


def check_mask_input(mask_input: Any, low_res: tuple[int, int]) -> np.ndarray | None:
    """Check a ``(1, h, w)`` or ``(h, w)`` finite low-res logits mask; returns ``(h, w)``."""
    if mask_input is None:
        return None
    arr = _as_float_array(mask_input, "mask_input")
    if arr.shape not in ((1, *low_res), low_res):
        raise ValueError(
            f"mask_input must have shape (1, {low_res[0]}, {low_res[1]}) (low-res logits of a "
            f"previous prediction), got {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("mask_input contains NaN or infinite values.")
    return arr.reshape(low_res)


def check_prompt_batch(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    low_res: tuple[int, int],
) -> None:
    """Shape and value checks for ``predict_torch``'s batched tensors."""
    for name, t in (
        ("point_coords", point_coords),
        ("point_labels", point_labels),
        ("boxes", boxes),
        ("mask_input", mask_input),
    ):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor or None, got {type(t).__name__}.")
    if (point_coords is None) != (point_labels is None):
        missing = "point_labels" if point_labels is None else "point_coords"
        raise ValueError(f"{missing} must be given together with the other point argument.")
    batch: dict[str, int] = {}
    if point_coords is not None and point_labels is not None:
        if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
            raise ValueError(f"point_coords must be B x N x 2, got {tuple(point_coords.shape)}.")
        if tuple(point_labels.shape) != tuple(point_coords.shape[:2]):
            raise ValueError(
                f"point_labels must be B x N = {tuple(point_coords.shape[:2])}, got "
                f"{tuple(point_labels.shape)}."
            )
        if not bool(torch.isfinite(point_coords).all()):
            raise ValueError("point_coords contains NaN or infinite values.")
        ok = (point_labels == 1) | (point_labels == 0) | (point_labels == -1)
        if not bool(ok.all()):
            raise ValueError("point_labels must be 1 (foreground), 0 (background) or -1.")
        batch["point_coords"] = int(point_coords.shape[0])
    if boxes is not None:
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be B x 4 XYXY, got {tuple(boxes.shape)}.")
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError("boxes contains NaN or infinite values.")
        bad = ~((boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3]))
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            x0, y0, x1, y1 = boxes[first].tolist()
            check_box_corners(x0, y0, x1, y1, f"boxes[{first}]")
        batch["boxes"] = int(boxes.shape[0])
    if mask_input is not None:
        if mask_input.dim() != 4 or tuple(mask_input.shape[1:]) != (1, *low_res):
            raise ValueError(
                f"mask_input must be B x 1 x {low_res[0]} x {low_res[1]}, got "
                f"{tuple(mask_input.shape)}."
            )
        batch["mask_input"] = int(mask_input.shape[0])
    if len(set(batch.values())) > 1:
        raise ValueError(f"prompt batch sizes differ: {batch}.")
