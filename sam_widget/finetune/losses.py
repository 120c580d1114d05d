"""Losses of SAM's training recipe (Kirillov et al. 2023, appendix A, "Losses"): a linear
combination of focal loss (Lin et al. 2017) and dice loss (Milletari et al. 2016) at 20:1 for
the masks, mean squared error between the predicted IoU and the IoU of the predicted mask
with the ground truth (weight 1), and, for an ambiguous prompt, only the lowest mask loss
over the candidates is back-propagated.

All functions take low-res logits ``(B, C, h, w)`` (C candidates per prompt) and a target
``(B, h, w)`` bool on the same grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["FOCAL_WEIGHT", "mask_iou", "prompt_loss", "sigmoid_focal", "soft_dice"]

FOCAL_WEIGHT = 20.0  # focal : dice = 20 : 1 (SAM appendix A)


def sigmoid_focal(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Per-candidate focal loss, mean over pixels: (B, C, h, w), (B, 1, h, w) -> (B, C).
    ``alpha``, ``gamma``: the RetinaNet defaults."""
    t = target.expand_as(logits)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    # B x C x h x w -> B x C x hw, mean per candidate
    return (a_t * (1 - p_t) ** gamma * ce).flatten(2).mean(dim=2)


def soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Per-candidate dice loss on sigmoid probabilities: (B, C, h, w), (B, 1, h, w) -> (B, C)."""
    # B x C x h x w -> B x C x hw
    p = torch.sigmoid(logits).flatten(2)
    t = target.expand_as(logits).flatten(2)
    inter = (p * t).sum(dim=2)
    return 1.0 - (2.0 * inter + eps) / (p.sum(dim=2) + t.sum(dim=2) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded logits (> 0) with the target: (B, C, h, w), (B, h, w) -> (B, C).
    An empty prediction of an empty target counts as 1."""
    pred = logits > 0
    # B x h x w -> B x 1 x h x w -> B x C x h x w; then B x C x hw, summed per candidate
    t = target[:, None].expand_as(pred)
    inter = (pred & t).flatten(2).sum(dim=2).to(torch.float32)
    union = (pred | t).flatten(2).sum(dim=2).to(torch.float32)
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))


def prompt_loss(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one round of prompts and the index of the candidate it picked.

    ``logits``: (B, C, h, w); ``iou_pred``: (B, C); ``target``: (B, h, w) bool. Mask loss =
    20 * focal + dice per candidate, minimum over candidates; IoU loss = MSE of every
    candidate's predicted IoU against its actual IoU. Returns the mean over the batch (a
    scalar) and ``best`` (B,) long, the candidate with the lowest mask loss.
    """
    t = target[:, None].to(logits.dtype)  # B x h x w -> B x 1 x h x w
    per_mask = FOCAL_WEIGHT * sigmoid_focal(logits, t) + soft_dice(logits, t)
    best_loss, best = per_mask.min(dim=1)
    with torch.no_grad():
        actual = mask_iou(logits, target)
    iou_loss = F.mse_loss(iou_pred, actual, reduction="none").mean(dim=1)
    return (best_loss + iou_loss).mean(), best
