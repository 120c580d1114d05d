"""Pixel-edge polygon outlines of binary masks, and their exact rasterization.

Pixel (row r, col c) is the unit square [c, c+1] x [r, r+1]. :func:`mask_to_polygons` walks
the grid edges between set and unset pixels; :func:`polygons_to_mask` sets the pixels whose
centre is inside under the even-odd rule. Every pixel centre lies half a pixel away from the
traced edges, and the number of edges crossed on the way from a centre to the image border
is odd exactly for set pixels, so the round trip is exact (holes included) whatever way the
edges are linked into rings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .rle import check_mask

__all__ = ["mask_to_polygons", "polygons_to_mask"]

# Directions on the vertex grid, clockwise on screen (y down): E, S, W, N.
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, 1, 0, -1])


def mask_to_polygons(mask: np.ndarray) -> list[list[int]]:
    """Pixel-edge outlines of an (H, W) mask as COCO-style flat ``[x0, y0, x1, y1, ...]`` rings.

    Vertices are integer grid corners (pixel (r, c) spans [c, c+1] x [r, r+1]); only corners
    where the outline turns are listed. :func:`polygons_to_mask` inverts this exactly.
    """
    m = check_mask(mask)
    h, w = m.shape
    p = np.pad(m, 1)  # (H+2) x (W+2), padded with False
    inside = p[1:-1, 1:-1]
    # Each boundary edge, walked with the set pixel on its right: start corner and direction.
    r_top, c_top = np.nonzero(inside & ~p[:-2, 1:-1])  # top edge: (c, r) -> east
    r_rgt, c_rgt = np.nonzero(inside & ~p[1:-1, 2:])  # right edge: (c+1, r) -> south
    r_bot, c_bot = np.nonzero(inside & ~p[2:, 1:-1])  # bottom edge: (c+1, r+1) -> west
    r_lft, c_lft = np.nonzero(inside & ~p[1:-1, :-2])  # left edge: (c, r+1) -> north
    xs = np.concatenate([c_top, c_rgt + 1, c_bot + 1, c_lft]).astype(np.int64)
    ys = np.concatenate([r_top, r_rgt, r_bot + 1, r_lft + 1]).astype(np.int64)
    ds = np.concatenate(
        [
            np.full(len(r_top), 0),
            np.full(len(r_rgt), 1),
            np.full(len(r_bot), 2),
            np.full(len(r_lft), 3),
        ]
    ).astype(np.int64)
    n = len(ds)
    if n == 0:
        return []
    # Look edges up by (start corner, direction).
    key = (ys * (w + 1) + xs) * 4 + ds
    order = np.argsort(key)
    sorted_key = key[order]
    end_vertex = (ys + _DY[ds]) * (w + 1) + (xs + _DX[ds])

    def find(k: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(sorted_key, k), 0, n - 1)
        return np.where(sorted_key[pos] == k, order[pos], -1)

    # Next edge: prefer a right turn (hugs the same pixel at diagonal touches), then
    # straight on, then a left turn. A corner never has a U-turn.
    nxt = find(end_vertex * 4 + (ds + 1) % 4)
    for turn in (0, 3):
        nxt = np.where(nxt < 0, find(end_vertex * 4 + (ds + turn) % 4), nxt)
    nxt_l = nxt.tolist()
    corner = (ds[nxt] != ds).tolist()  # the outline turns at this edge's end
    x_end = (xs + _DX[ds]).tolist()
    y_end = (ys + _DY[ds]).tolist()
    seen = bytearray(n)
    rings: list[list[int]] = []
    for start in range(n):
        if seen[start]:
            continue
        ring: list[int] = []
        e = start
        while not seen[e]:
            seen[e] = 1
            if corner[e]:
                ring += (x_end[e], y_end[e])
            e = nxt_l[e]
        rings.append(ring)
    return rings


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterize flat ``[x0, y0, x1, y1, ...]`` rings to an (H, W) bool mask.

    A pixel is set when its centre (c + 0.5, r + 0.5) is inside under the even-odd rule over
    all rings together (so a ring inside another is a hole).
    """
    if height < 0 or width < 0:
        raise ValueError(f"height and width must be >= 0, got {height}x{width}")
    crossings_r: list[np.ndarray] = []
    crossings_x: list[np.ndarray] = []
    for i, poly in enumerate(polygons):
        pts = np.asarray(poly, dtype=np.float64)
        if pts.ndim != 1 or pts.size % 2 or pts.size < 6 or not np.isfinite(pts).all():
            raise ValueError(
                f"polygons[{i}] must be a flat list [x0, y0, x1, y1, ...] of at least 3 finite "
                "points"
            )
        x0, y0 = pts[0::2], pts[1::2]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        sloped = y0 != y1  # horizontal edges cross no scanline
        x0, y0, x1, y1 = x0[sloped], y0[sloped], x1[sloped], y1[sloped]
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        # Scanline r (y = r + 0.5) crosses an edge when lo <= r + 0.5 < hi.
        r_first = np.clip(np.ceil(lo - 0.5), 0, height).astype(np.int64)
        r_stop = np.clip(np.ceil(hi - 0.5), 0, height).astype(np.int64)
        count = np.maximum(r_stop - r_first, 0)
        edge = np.repeat(np.arange(len(count)), count)
        rows = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        rows += r_first[edge]
        yc = rows + 0.5
        t = (yc - y0[edge]) / (y1[edge] - y0[edge])
        crossings_r.append(rows)
        crossings_x.append(x0[edge] + t * (x1[edge] - x0[edge]))
    toggles = np.zeros((height, width + 1), dtype=np.int64)
    if crossings_r:
        rows = np.concatenate(crossings_r)
        xcross = np.concatenate(crossings_x)
        # Pixels whose centre lies right of the crossing (c + 0.5 > x) change parity.
        first_col = np.clip(np.floor(xcross + 0.5), 0, width).astype(np.int64)
        np.add.at(toggles, (rows, first_col), 1)
    return (np.cumsum(toggles[:, :width], axis=1) % 2).astype(bool)
