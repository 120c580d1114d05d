"""Greedy non-maximum suppression over XYXY boxes (our own; no torchvision).

Semantics follow ``torchvision.ops.nms``, which the published automatic mask generator uses:
boxes are visited by descending score and a box is dropped when its IoU with an already kept
box is strictly greater than the threshold. Box area is ``(x1 - x0) * (y1 - y0)``, so a box
whose corners are the same pixel has area 0; the IoU of two such boxes is 0/0 = NaN, which is
never greater than the threshold (they do not suppress each other). Equal scores keep their
input order (stable sort), as the test oracle does.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["box_area", "nms"]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) XYXY -> (N,) areas ``(x1 - x0) * (y1 - y0)`` in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64, on ``boxes.device``) of the boxes kept, in descending score order.

    boxes: (N, 4) XYXY, any real dtype; scores: (N,) float.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    device = boxes.device
    n = boxes.shape[0]
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    order = torch.argsort(scores.detach().cpu(), descending=True, stable=True).numpy()
    b = boxes.detach().cpu().to(torch.float64).numpy()[order]
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x1 - x0) * (y1 - y0)
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n):
            if suppressed[i]:
                continue
            kept.append(i)
            # Only boxes after i in score order can still be suppressed.
            rest = slice(i + 1, n)
            iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
            ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
            inter = iw * ih
            iou = inter / (areas[i] + areas[rest] - inter)
            suppressed[rest] |= iou > iou_threshold
    return torch.as_tensor(order[kept], dtype=torch.int64, device=device)
