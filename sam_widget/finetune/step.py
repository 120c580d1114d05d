"""One training step: SAM's interactive rounds on the masks of one image (SAM paper,
appendix A, "Training algorithm"; see :mod:`.prompts`).

Round 0 is a point or a noisy box (equal probability, one kind per step so the batch has one
shape); a single point is ambiguous, so it gets 3 candidates and the minimum loss. Each later
round adds one corrective point from the previous prediction's error region and passes the
previous (detached) low-res logits of the chosen candidate as the mask prompt. Gradients of
every round are accumulated (the inputs of a round are detached, so a backward per round
gives the same gradients as one backward of the sum, with one round's activations in memory).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch

from .losses import prompt_loss
from .prepare import Prepared
from .prompts import box_noise, corrective_points, random_points, tight_boxes

__all__ = ["train_step"]


def train_step(
    fam: ModuleType,
    model: Any,
    prep: Prepared,
    *,
    rounds: int,
    masks_per_step: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    transform: Any,
) -> float:
    """Accumulate the gradients of one step on ``prep``; returns the mean loss per round."""
    device = prep.features.device
    n = len(prep.masks)
    chosen = np.sort(rng.permutation(n)[: min(n, masks_per_step)])
    masks = prep.masks[chosen]
    target = prep.target[torch.as_tensor(chosen, device=device)]
    b = len(chosen)
    gh, gw = target.shape[-2:]

    coords: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    if rng.random() < 0.5:
        pts = transform.apply_coords(random_points(masks, rng), prep.original_size)
        # B x 2 -> B x 1 x 2: one point per prompt
        coords = torch.as_tensor(np.asarray(pts), dtype=torch.float32, device=device)[:, None]
        labels = torch.ones(b, 1, device=device)
    else:
        noisy = box_noise(tight_boxes(masks), prep.original_size, rng)
        box_in = transform.apply_boxes(noisy, prep.original_size)
        boxes = torch.as_tensor(np.asarray(box_in), dtype=torch.float32, device=device)

    prev: torch.Tensor | None = None  # B x 1 x 256 x 256, detached
    total = 0.0
    for r in range(rounds):
        if r > 0:
            assert prev is not None
            xy, lab = corrective_points(
                prev[:, 0, :gh, :gw].cpu(), target.cpu(), generator, prep.cell
            )
            # B x 2 -> B x 1 x 2 and B -> B x 1: appended to each prompt's points
            xy, lab = xy.to(device)[:, None], lab.to(device)[:, None]
            coords = xy if coords is None else torch.cat([coords, xy], dim=1)
            labels = lab if labels is None else torch.cat([labels, lab], dim=1)
        multimask = boxes is None and coords is not None and coords.shape[1] == 1
        low, iou = fam.decode(model, prep.features, coords, labels, boxes, prev, multimask)
        loss, best = prompt_loss(low[:, :, :gh, :gw], iou, target)
        (loss / rounds).backward()
        total += float(loss.detach())
        # B x C x 256 x 256 -> the chosen candidate B x 256 x 256 -> B x 1 x 256 x 256
        prev = low.detach()[torch.arange(b, device=device), best][:, None]
    return total / rounds
