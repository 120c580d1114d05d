"""Mask-to-mask refinement (``use_m2m``) of the automatic mask generator's candidates.

As the published SAM 2 generator (``sam2/automatic_mask_generator.py``, ``_process_batch``
and ``refine_with_m2m``): every candidate of a batch, before any filtering, is decoded
again with its own grid point (label 1) and its own low-res logits as ``mask_input``
(clamped to the model's ``low_res_clamp`` where it has one, +-32 for SAM 2, as the
published predictor returns them), with multimask output off (the family's single-mask
rule applies). The refined logits and IoU predictions replace the candidate's; the
generator then filters them with the same ``pred_iou_thresh`` / ``stability_score_thresh``
/ ``mask_threshold`` as unrefined candidates.
"""

from __future__ import annotations

from typing import Any

import torch

from ...models.interface import SegmentModel

__all__ = ["refine_with_m2m"]


@torch.no_grad()
def refine_with_m2m(
    model: SegmentModel,
    ctx: Any,
    coords: torch.Tensor,
    low: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every candidate again with its own logits as mask input.

    ``coords``: (K, 2) float32, XY, model input frame, one point per candidate; ``low``:
    (K, h, w) float32 low-res logits of the candidates; ``chunk``: candidates per decoder
    call (the published code uses ``points_per_batch``). Returns the refined low-res logits
    (K, h, w), not clamped, and predicted IoU (K,).
    """
    clamp = getattr(model, "low_res_clamp", None)
    lows: list[torch.Tensor] = []
    ious: list[torch.Tensor] = []
    for s in range(0, len(coords), chunk):
        part = low[s : s + chunk]
        if clamp is not None:
            part = part.clamp(-float(clamp), float(clamp))
        # K x 2 -> K x 1 x 2 (one positive point per prompt); K x h x w -> K x 1 x h x w.
        points = coords[s : s + chunk, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.int64, device=coords.device)
        out_low, out_iou = model.decode(ctx, points, labels, None, part[:, None], False)
        lows.append(out_low[:, 0])  # K x 1 x h x w -> K x h x w
        ious.append(out_iou[:, 0])  # K x 1 -> K
    if not lows:
        return low[:0], low.new_zeros((0,))
    return torch.cat(lows), torch.cat(ious)
