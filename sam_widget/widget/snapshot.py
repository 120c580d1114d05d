"""Pictures of an image with its masks as plain RGB arrays (numpy only, no matplotlib).

:func:`render` draws masks (filled with their colour at an opacity, with a solid outline),
points (green: foreground, red: background, with a white ring) and boxes over an image;
:func:`snapshot` does it for a ``SamWidget``'s current image, objects and masks, for
reports, static notebooks and GitHub, where a widget cannot render.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .objects import PALETTE

__all__ = ["hex_to_rgb", "render", "snapshot"]

POSITIVE = (0, 200, 83)
NEGATIVE = (230, 40, 40)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b) ints 0..255."""
    if not isinstance(color, str) or len(color) != 7 or color[0] != "#":
        raise ValueError(f"color must be '#rrggbb', got {color!r}")
    try:
        return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
    except ValueError:
        raise ValueError(f"color must be '#rrggbb', got {color!r}") from None


def _outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: mask pixels with a 4-neighbour outside the mask (or at the border)."""
    pad = np.pad(mask, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~inner


def _disc(out: np.ndarray, x: float, y: float, r: float, rgb: Sequence[int]) -> None:
    h, w = out.shape[:2]
    x0, x1 = max(0, int(x - r - 1)), min(w, int(x + r + 2))
    y0, y1 = max(0, int(y - r - 1)), min(h, int(y + r + 2))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= r * r
    out[y0:y1, x0:x1][inside] = rgb


def _rect(out: np.ndarray, box: Any, rgb: Sequence[int], width: int) -> None:
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1, w - 1))
    y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1, h - 1))
    out[y0 : min(y0 + width, h), x0 : x1 + 1] = rgb
    out[max(y1 - width + 1, 0) : y1 + 1, x0 : x1 + 1] = rgb
    out[y0 : y1 + 1, x0 : min(x0 + width, w)] = rgb
    out[y0 : y1 + 1, max(x1 - width + 1, 0) : x1 + 1] = rgb


def render(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray = (),
    colors: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
    points: Any = None,
    labels: Any = None,
    boxes: Any = None,
    marker_radius: float | None = None,
) -> np.ndarray:
    """A new (H, W, 3) uint8 RGB image: ``image`` with ``masks`` and prompts drawn on it.

    Args:
        image: (H, W, 3) uint8 RGB (or (H, W) uint8 grey).
        masks: (H, W) bool masks, drawn in order (later ones on top).
        colors: one ``"#rrggbb"`` per mask (default: the widget's palette in order).
        alpha: fill opacity 0..1 (outlines are opaque).
        points: (N, 2) XY image pixels, with ``labels`` (N,) 1 foreground / 0 background.
        boxes: (M, 4) XYXY image pixels.
        marker_radius: point radius in pixels (default: 1.2 % of the longer side, >= 2).
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, w = img.shape[:2]
    mask_list = [np.asarray(m) for m in masks]
    for i, m in enumerate(mask_list):
        if m.shape != (h, w):
            raise ValueError(f"masks[{i}] must have the image's shape {(h, w)}, got {m.shape}")
    if colors is None:
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(mask_list))]
    if len(colors) != len(mask_list):
        raise ValueError(
            f"colors must have one entry per mask ({len(mask_list)}), got {len(colors)}"
        )
    out = img.astype(np.float32)
    for m, c in zip(mask_list, colors, strict=True):
        m = m.astype(bool)
        rgb = np.array(hex_to_rgb(c), dtype=np.float32)
        out[m] = (1.0 - alpha) * out[m] + alpha * rgb
        out[_outline(m)] = rgb
    res = np.clip(out.round(), 0, 255).astype(np.uint8)
    if boxes is not None:
        for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            _rect(res, b, (255, 255, 255), max(1, round(max(h, w) / 200)))
    if points is not None:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labs = np.ones(len(pts)) if labels is None else np.asarray(labels).reshape(-1)
        if len(labs) != len(pts):
            raise ValueError(f"labels must have one entry per point ({len(pts)}), got {len(labs)}")
        r = marker_radius if marker_radius is not None else max(2.0, 0.012 * max(h, w))
        for (x, y), lab in zip(pts, labs, strict=True):
            _disc(res, x, y, r + max(1.0, r / 3), (255, 255, 255))
            _disc(res, x, y, r, POSITIVE if lab == 1 else NEGATIVE)
    return res


def snapshot(widget: Any, *, prompts: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a ``SamWidget``: its image, every object's mask in the
    object's colour at the widget's opacity (the active object with a thicker look: drawn
    last), and (``prompts``) each object's points and box. Blocks until masks are ready."""
    for attr in ("image", "masks", "objects"):
        if not hasattr(widget, attr):
            raise TypeError(f"widget must be a SamWidget, got {type(widget).__name__}")
    objects = list(widget.objects)
    masks = list(widget.masks)
    order = list(range(len(objects)))
    active = getattr(widget, "active", -1)
    # The active object on top, as in the widget.
    order.sort(key=lambda i: objects[i]["id"] == active)
    points: list[list[float]] = []
    labels: list[int] = []
    boxes: list[list[float]] = []
    if prompts:
        for o in objects:
            points.extend(o.get("points") or [])
            labels.extend(o.get("labels") or [])
            if o.get("box") is not None:
                boxes.append(o["box"])
    return render(
        widget.image,
        [masks[i] for i in order],
        [objects[i]["color"] for i in order],
        alpha=float(getattr(widget, "opacity", 0.5)),
        points=points or None,
        labels=labels or None,
        boxes=boxes or None,
    )
