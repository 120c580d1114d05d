"""Prompt simulation: SAM's interactive training recipe (Kirillov et al. 2023, "Segment
Anything", section 3 and appendix A, "Training algorithm").

- First prompt per mask, with equal probability: one foreground point sampled uniformly
  inside the ground-truth mask, or its bounding box with noise (standard deviation 10% of
  the box side, at most 20 pixels, per coordinate).
- Each later round adds one corrective point sampled uniformly from the error region between
  the previous prediction and the ground truth: a false negative pixel gives a foreground
  point (label 1), a false positive pixel a background point (label 0). The previous low-res
  logits are passed as the mask prompt.

Validation uses deterministic versions: the point deepest inside the mask (or inside the
error region) and the tight box, so "before" and "after" see the same prompts.

Frames: ``original`` (image pixels), ``input`` (resized so the longest side is 1024), and
the ``low-res`` grid (256 x 256 over the padded 1024 square: one cell = 4 x 4 input pixels).
Point coordinates are pixel indices, XY (the prompt encoder adds the 0.5 to the centre).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "box_noise",
    "cell_to_input",
    "corrective_points",
    "deepest_points",
    "random_points",
    "tight_boxes",
]


def random_points(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One point uniformly inside each mask: (B, H, W) bool -> (B, 2) float64, XY, original
    pixels. Every mask must be non-empty."""
    out = np.empty((len(masks), 2), dtype=np.float64)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        i = int(rng.integers(len(ys)))
        out[k] = (xs[i], ys[i])
    return out


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """(B, H, W) bool -> (B, 4) float64 XYXY, original pixels (inclusive pixel indices)."""
    out = np.empty((len(masks), 4), dtype=np.float64)
    for k, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        out[k] = (cols[0], rows[0], cols[-1], rows[-1])
    return out


def box_noise(
    boxes: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    fraction: float = 0.1,
    max_noise: float = 20.0,
) -> np.ndarray:
    """Jitter each coordinate of (B, 4) XYXY boxes by N(0, sigma), sigma = ``fraction`` of the
    box side, each offset clipped to ``max_noise`` pixels (SAM appendix A); clipped to the
    image of ``size`` (H, W); corners kept ordered."""
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    # (B,) sides -> (B, 4) per-coordinate sigma: x0, y0 use the width/height, x1, y1 too.
    sigma = fraction * np.stack([w, h, w, h], axis=1)
    noise = np.clip(rng.normal(size=boxes.shape) * sigma, -max_noise, max_noise)
    out = boxes + noise
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, size[1] - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, size[0] - 1)
    x0, x1 = np.minimum(out[:, 0], out[:, 2]), np.maximum(out[:, 0], out[:, 2])
    y0, y1 = np.minimum(out[:, 1], out[:, 3]), np.maximum(out[:, 1], out[:, 3])
    return np.stack([x0, y0, x1, y1], axis=1)


def cell_to_input(cells: torch.Tensor, cell: int) -> torch.Tensor:
    """(B, 2) long (row, col) low-res cells -> (B, 2) float XY input-frame pixel indices at
    the centre of each cell's ``cell`` x ``cell`` block."""
    centre = (cell - 1) / 2.0
    # (row, col) -> (x, y)
    return cells.flip(-1).to(torch.float32) * cell + centre


def corrective_points(
    pred_logits: torch.Tensor, target: torch.Tensor, generator: torch.Generator, cell: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """One corrective point per mask, uniform over the error region (SAM appendix A).

    ``pred_logits``: (B, h, w) low-res logits (the valid, unpadded part of the grid);
    ``target``: (B, h, w) bool ground truth on the same grid. Returns ``coords`` (B, 2) float
    XY in the input frame and ``labels`` (B,) float: 1 where the chosen cell is a false
    negative (object missed), 0 where it is a false positive, -1 (an ignored point) when the
    prediction has no error.
    """
    err = (pred_logits > 0) != target
    b, h, w = err.shape
    # B x h x w -> B x hw
    flat = err.reshape(b, h * w)
    has_err = flat.any(dim=1)
    weights = torch.where(has_err[:, None], flat, torch.ones_like(flat)).to(torch.float32)
    idx = torch.multinomial(weights, 1, generator=generator)[:, 0]
    cells = torch.stack([idx // w, idx % w], dim=1)
    # B x h x w -> B x hw: the target at each chosen flat index
    hit = target.reshape(b, h * w).gather(1, idx[:, None])[:, 0]
    labels = torch.where(
        has_err, hit.to(torch.float32), torch.full_like(hit, -1.0, dtype=torch.float32)
    )
    return cell_to_input(cells, cell), labels


def _erode(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 binary erosion of B x 1 x h x w float {0, 1}; outside the grid counts as 0."""
    # background = 1 - x, padded with 1 (outside), dilated by max-pooling, then inverted back.
    bg = F.pad(1.0 - x, (1, 1, 1, 1), value=1.0)
    return 1.0 - F.max_pool2d(bg, 3, stride=1)


def deepest_points(regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each (h, w) bool region of a (B, h, w) stack: the cell that survives the most 3 x 3
    erosions (the one nearest the mean of the last surviving cells). Returns cells (B, 2)
    long (row, col) and ``found`` (B,) bool (False for an empty region; its cell is (0, 0))."""
    b, h, w = regions.shape
    # B x h x w -> B x 1 x h x w
    cur = regions.to(torch.float32)[:, None]
    last = cur.clone()
    for _ in range(max(h, w)):
        alive = cur.flatten(1).any(dim=1)  # B x 1 x h x w -> B x hw
        if not bool(alive.any()):
            break
        last[alive] = cur[alive]
        cur = _erode(cur)
    # h -> h x 1 -> h x w row indices; w -> 1 x w -> h x w column indices
    ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    keep = last[:, 0] > 0  # B x 1 x h x w -> B x h x w
    # B x h x w -> B x hw sums: the mean cell of the last surviving layer
    count = keep.flatten(1).sum(dim=1).clamp(min=1).to(torch.float32)
    my = (keep * ys).flatten(1).sum(dim=1) / count
    mx = (keep * xs).flatten(1).sum(dim=1) / count
    # h x w grid against B means -> B x h x w squared distances
    dist = (ys[None] - my[:, None, None]) ** 2 + (xs[None] - mx[:, None, None]) ** 2
    dist = torch.where(keep, dist, torch.full_like(dist, float("inf")))
    # B x h x w -> B x hw; argmin gives the flat cell index
    idx = dist.flatten(1).argmin(dim=1)
    cells = torch.stack([idx // w, idx % w], dim=1)
    return cells, keep.flatten(1).any(dim=1)


def deepest_corrective_points(
    pred_logits: torch.Tensor, target: torch.Tensor, cell: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic corrective points for validation: the deepest cell of the error region
    (``deepest_points``), labelled as in :func:`corrective_points`."""
    err = (pred_logits > 0) != target
    b, h, w = err.shape
    cells, found = deepest_points(err)
    hit = target[torch.arange(b), cells[:, 0], cells[:, 1]].to(torch.float32)
    labels = torch.where(found, hit, torch.full_like(hit, -1.0))
    return cell_to_input(cells, cell), labels
