"""SAM 2's prompt encoder: SAM's (same modules, same checkpoint names) with box corners
given as labelled points.

The published ``SAM2ImagePredictor._predict`` turns a box into two points labelled 2 (top
left) and 3 (bottom right), puts them before the clicks, and calls the prompt encoder with
``boxes=None``, so every prompt with points gets one padding point (label -1) at the end.
Labels 2 and 3 add ``point_embeddings[2]`` / ``[3]`` to the corner's position encoding,
exactly what SAM's box path adds (``sam2/modeling/sam/prompt_encoder.py``).
"""

from __future__ import annotations

import torch

from ..sam.prompt_encoder import PromptEncoder

__all__ = ["Sam2PromptEncoder"]


class Sam2PromptEncoder(PromptEncoder):
    """:class:`PromptEncoder` whose point labels also take 2 / 3 (box corners)."""

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """B x N x 2 XY (input frame, pixels) and B x N labels in {-1, 0, 1, 2, 3} ->
        B x N(+1) x C."""
        out = super().embed_points(coords, labels, pad)
        if pad:
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        # B x N -> B x N x 1 masks, broadcast against C vectors.
        is_tl = (labels == 2).unsqueeze(-1)
        is_br = (labels == 3).unsqueeze(-1)
        return out + is_tl * self._embedding(2) + is_br * self._embedding(3)

    def embed_prompts(
        self,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompts as the published image predictor feeds them.

        ``coords`` B x N x 2 and ``labels`` B x N (or None), ``boxes`` B x 4 XYXY (or None),
        all in the 1024 x 1024 input frame; ``masks`` B x 1 x 256 x 256 logits (or None).
        Returns sparse tokens B x M x C (box corners, clicks, one padding point; B x 0 x C
        without points and box) and the dense mask embedding B x C x 64 x 64, or None
        without a mask prompt.
        """
        if boxes is not None:
            # B x 4 -> B x 2 x 2 corners labelled (2, 3), before the clicks.
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([2, 3], device=boxes.device).expand(corners.shape[0], 2)
            if coords is not None and labels is not None:
                coords = torch.cat([corners.to(coords.dtype), coords], dim=1)
                labels = torch.cat([corner_labels.to(labels.dtype), labels], dim=1)
            else:
                coords, labels = corners, corner_labels
        points = (coords, labels) if coords is not None and labels is not None else None
        return self.encode(points, None, masks)
