"""Brush and eraser strokes -> pixels: the one definition of what a stroke paints.

A stroke (:mod:`.objects`) is ``{"points": [[x, y], ...], "radius": r, "erase": bool}`` in
original-image pixels (continuous: pixel ``(row i, column j)`` covers ``[j, j + 1) x
[i, i + 1)``, its centre is ``(j + 0.5, i + 0.5)``). It paints every pixel whose centre lies
within ``r`` of the polyline through its points (a round brush dragged along it; one point
paints a disc). The object's mask is its SAM mask, then each stroke in turn: a brush stroke
sets its pixels, an eraser stroke clears them (:func:`compose`). Pure numpy; only the
bounding box of each segment is touched, so a stroke costs about its own area.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["compose", "stroke_pixels"]


def _paint_segment(
    out: np.ndarray,
    a: tuple[float, float],
    b: tuple[float, float],
    radius: float,
    value: bool = True,
) -> None:
    """Set to ``value`` the pixels of ``out`` ((H, W) bool) whose centres are within
    ``radius`` of segment a-b (XY, pixels)."""
    h, w = out.shape
    (ax, ay), (bx, by) = a, b
    # Only pixels whose centres can be within reach: the segment's box grown by the radius.
    j0 = max(0, int(np.floor(min(ax, bx) - radius - 0.5)))
    j1 = min(w, int(np.ceil(max(ax, bx) + radius + 0.5)) + 1)
    i0 = max(0, int(np.floor(min(ay, by) - radius - 0.5)))
    i1 = min(h, int(np.ceil(max(ay, by) + radius + 0.5)) + 1)
    if j0 >= j1 or i0 >= i1:
        return
    cx = np.arange(j0, j1, dtype=np.float64)[None, :] + 0.5  # (1, w') pixel centres, x
    cy = np.arange(i0, i1, dtype=np.float64)[:, None] + 0.5  # (h', 1) pixel centres, y
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 > 0.0:
        # Parameter of the closest point on the segment, clamped to its ends.
        t = np.clip(((cx - ax) * dx + (cy - ay) * dy) / length2, 0.0, 1.0)
    else:
        t = np.zeros((1, 1))
    ex, ey = cx - (ax + t * dx), cy - (ay + t * dy)
    window = out[i0:i1, j0:j1]  # a view: writes go to ``out``
    window[ex * ex + ey * ey <= radius * radius] = value


def _apply(out: np.ndarray, stroke: Mapping[str, Any], value: bool) -> None:
    pts = [(float(x), float(y)) for x, y in stroke["points"]]
    radius = float(stroke["radius"])
    if len(pts) == 1:
        pts = pts * 2
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        _paint_segment(out, a, b, radius, value)


def stroke_pixels(stroke: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels one stroke paints (see the module docstring)."""
    out = np.zeros((int(height), int(width)), dtype=bool)
    _apply(out, stroke, True)
    return out


def compose(base: np.ndarray | None, strokes: Sequence[Mapping[str, Any]], height: int,
            width: int) -> np.ndarray:  # fmt: skip
    """(H, W) bool: ``base`` (SAM's mask; None: empty) with ``strokes`` applied in order,
    brush strokes adding their pixels and eraser strokes removing them. A new array."""
    out = np.zeros((int(height), int(width)), dtype=bool) if base is None else base.copy()
    if out.shape != (int(height), int(width)):
        raise ValueError(f"base must have shape ({height}, {width}), got {out.shape}.")
    for stroke in strokes:
        _apply(out, stroke, not stroke["erase"])  # in place, segment by segment
    return out
