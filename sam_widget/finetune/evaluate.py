"""Validation: mean IoU of held-out masks for 1 click, 3 clicks and a box.

Deterministic prompts (the same before and after training): the first click is the point
deepest inside the mask, each further click the point deepest inside the error region of the
previous prediction (foreground for a missed part, background for a false part), with the
previous low-res logits as the mask prompt; the box is the mask's tight box. A single click
returns 3 candidates, of which the one with the highest predicted IoU is kept (what the
widget shows). IoU is measured in the original image frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch

from .prepare import Prepared
from .prompts import cell_to_input, deepest_corrective_points, deepest_points, tight_boxes

__all__ = ["METRICS", "evaluate"]

METRICS = ("iou_1click", "iou_3click", "iou_box")
_CHUNK = 16  # masks decoded at once


def _ious(model: Any, prep: Prepared, low: torch.Tensor, masks: np.ndarray) -> list[float]:
    """(B, 256, 256) low-res logits -> IoU of each thresholded upscaled mask with ``masks``."""
    # B x h x w -> B x 1 x h x w -> B x 1 x H x W -> B x H x W
    up = model.geometry.upscale(low[:, None], prep.input_size, prep.original_size)[:, 0] > 0
    gt = torch.from_numpy(masks).to(up.device)
    # B x H x W -> B x HW, summed per mask
    inter = (up & gt).flatten(1).sum(dim=1).to(torch.float64)
    union = (up | gt).flatten(1).sum(dim=1).to(torch.float64)
    return (inter / union.clamp(min=1)).tolist()


@torch.no_grad()
def _evaluate_chunk(
    fam: ModuleType, model: Any, prep: Prepared, sel: slice, transform: Any
) -> dict[str, list[float]]:
    device = prep.features.device
    masks = prep.masks[sel]
    target = prep.target[sel]
    b = len(masks)
    gh, gw = target.shape[-2:]
    out: dict[str, list[float]] = {}

    cells, _ = deepest_points(target.cpu())
    coords = cell_to_input(cells, prep.cell).to(device)[:, None]  # B x 1 x 2
    labels = torch.ones(b, 1, device=device)
    low, iou = fam.decode(model, prep.features, coords, labels, None, None, True)
    pick = iou.argmax(dim=1)
    prev = low[torch.arange(b, device=device), pick]  # B x 256 x 256
    out["iou_1click"] = _ious(model, prep, prev, masks)
    for _ in range(2):
        new_xy, new_label = deepest_corrective_points(
            prev[:, :gh, :gw].cpu(), target.cpu(), prep.cell
        )
        # B x 2 -> B x 1 x 2 (one more point per prompt), B -> B x 1
        coords = torch.cat([coords, new_xy.to(device)[:, None]], dim=1)
        labels = torch.cat([labels, new_label.to(device)[:, None]], dim=1)
        # previous logits B x 256 x 256 -> B x 1 x 256 x 256 mask prompt
        low, _ = fam.decode(model, prep.features, coords, labels, None, prev[:, None], False)
        prev = low[:, 0]
    out["iou_3click"] = _ious(model, prep, prev, masks)

    boxes = transform.apply_boxes(tight_boxes(masks), prep.original_size)
    box_t = torch.as_tensor(np.asarray(boxes), dtype=torch.float32, device=device)
    low, _ = fam.decode(model, prep.features, None, None, box_t, None, False)
    out["iou_box"] = _ious(model, prep, low[:, 0], masks)
    return out


def evaluate(
    fam: ModuleType,
    model: Any,
    samples: Sequence[Prepared],
    transform: Any,
    tick: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Mean IoU over every mask of ``samples`` for each of ``METRICS``."""
    scores: dict[str, list[float]] = {k: [] for k in METRICS}
    for prep in samples:
        for start in range(0, len(prep.masks), _CHUNK):
            got = _evaluate_chunk(fam, model, prep, slice(start, start + _CHUNK), transform)
            for k in METRICS:
                scores[k].extend(got[k])
        if tick is not None:
            tick()
    return {k: float(np.mean(v)) for k, v in scores.items()}
