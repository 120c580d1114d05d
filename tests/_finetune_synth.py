"""Synthetic segmentation data for the fine-tuning tests: bright shapes (ellipses,
rectangles, triangles) with their own colour on a textured background."""

from __future__ import annotations

import numpy as np


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * w
    kind = int(rng.integers(3))
    if kind == 0:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    if kind == 1:
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    # triangle: below the two sloped edges from the apex (cx, cy - ry), above the base
    inside = yy <= cy + ry
    slope = rx / (2 * ry)
    return inside & (np.abs(xx - cx) <= (yy - (cy - ry)) * slope)


def make_dataset(n: int, seed: int, size: tuple[int, int] = (96, 128)) -> list:
    """``n`` (image (H, W, 3) uint8, masks (1, H, W) bool) pairs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = size
        base = rng.uniform(40, 110, size=3)
        noise = rng.normal(0, 18, size=(h, w, 3))
        stripes = 20 * np.sin(np.arange(w) / rng.uniform(2, 6))[None, :, None]
        img = base + noise + stripes
        mask = _shape_mask(rng, h, w)
        colour = rng.uniform(170, 250, size=3)
        img[mask] = colour + rng.normal(0, 10, size=(int(mask.sum()), 3))
        out.append((np.clip(img, 0, 255).astype(np.uint8), mask[None]))
    return out
