"""Point grids, crop boxes, and moving boxes/points between crop and image frames.

The crop layout and grid rules are those of the published automatic mask generator
(``segment_anything/utils/amg.py``): layer 0 is the whole image; layer i >= 1 cuts the image
into 2**i x 2**i overlapping crops; the grid of layer i has
``int(points_per_side / downscale**i)`` points per side, at the centres of equal cells of
the unit square.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "build_all_layer_point_grids",
    "build_point_grid",
    "generate_crop_boxes",
    "is_box_near_crop_edge",
]


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) float64 XY points at the cell centres of an n x n grid on [0, 1]^2.

    Points run along x first (row by row).
    """
    if n_per_side < 1:
        raise ValueError(f"points per side must be >= 1, got {n_per_side}")
    half_cell = 1.0 / (2 * n_per_side)
    ticks = np.linspace(half_cell, 1.0 - half_cell, n_per_side)
    ys, xs = np.meshgrid(ticks, ticks, indexing="ij")  # each n x n; row = y, col = x
    # n x n x 2 -> n*n x 2 (x varies fastest)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One normalized grid per crop layer 0..n_layers."""
    grids = []
    for i in range(n_layers + 1):
        n = int(n_per_side / (scale_per_layer**i))
        if n < 1:
            raise ValueError(
                f"crop layer {i} would get {n_per_side}/{scale_per_layer}**{i} < 1 points per "
                "side; lower crop_n_points_downscale_factor or crop_n_layers"
            )
        grids.append(build_point_grid(n))
    return grids


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY ints, image pixels) and the layer index of each.

    im_size: (H, W). Layer i >= 1 has 2**i crops per side that overlap by
    ``int(overlap_ratio * min(H, W) * 2 / 2**i)`` pixels; crops are listed column by column
    (x0 outer, y0 inner) as in the published layout.
    """
    im_h, im_w = im_size
    boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layers: list[int] = [0]
    short_side = min(im_h, im_w)
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        # Crop length so that per_side crops overlapping by `overlap` cover the side.
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        xs = [int((crop_w - overlap) * i) for i in range(per_side)]
        ys = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0 in xs:
            for y0 in ys:
                boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
                layers.append(layer)
    return boxes, layers


def is_box_near_crop_edge(
    boxes: torch.Tensor,
    crop_box: Sequence[int],
    orig_box: Sequence[int],
    atol: float = 20.0,
) -> torch.Tensor:
    """(N,) bool: a box (XYXY, crop frame) lies within ``atol`` pixels of an edge of its crop
    that is not also an edge of the image (such masks are probably cut off by the crop)."""
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([x0, y0, x0, y0], dtype=torch.float32, device=boxes.device)
    img_boxes = boxes.to(torch.float32) + offset  # N x 4, image frame
    crop_t = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    orig_t = torch.as_tensor(orig_box, dtype=torch.float32, device=boxes.device)
    near_crop = (img_boxes - crop_t).abs() <= atol
    near_image = (img_boxes - orig_t).abs() <= atol
    return (near_crop & ~near_image).any(dim=1)
