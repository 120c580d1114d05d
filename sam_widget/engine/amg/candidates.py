"""Row-aligned storage of mask candidates between the generator's filtering stages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Candidates", "crop_runs"]


@dataclass
class Candidates:
    """N mask candidates; row i of every field describes candidate i.

    What is kept of a mask is its low-res logits: full-resolution masks are recomputed from
    them only for the candidates that survive to the output (cheap, and bit-identical).
    """

    low_res: torch.Tensor  # N x h x w float low-res logits (model's padded square frame)
    iou: torch.Tensor  # N float32 predicted IoU
    stability: torch.Tensor  # N float32 stability score
    boxes: torch.Tensor  # N x 4 int64 XYXY (inclusive max pixel), image frame once uncropped
    points: np.ndarray  # N x 2 float64 XY prompt, image frame once uncropped
    crop: torch.Tensor  # N int64 index into the generator's crop list

    def __len__(self) -> int:
        return int(self.iou.shape[0])

    def take(self, idx: torch.Tensor) -> Candidates:
        """The rows ``idx`` (int64 indices or a bool mask), in that order."""
        i = idx.to(self.low_res.device)
        return Candidates(
            self.low_res[i],
            self.iou[i],
            self.stability[i],
            self.boxes[i],
            self.points[idx.cpu().numpy()],
            self.crop[i],
        )

    @staticmethod
    def empty(low_res_shape: Sequence[int], device: torch.device) -> Candidates:
        return Candidates(
            torch.zeros((0, *low_res_shape), device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, device=device),
            torch.zeros((0, 4), dtype=torch.int64, device=device),
            np.zeros((0, 2)),
            torch.zeros(0, dtype=torch.int64, device=device),
        )

    @staticmethod
    def cat(
        parts: Sequence[Candidates], low_res_shape: Sequence[int], device: torch.device
    ) -> Candidates:
        if not parts:
            return Candidates.empty(low_res_shape, device)
        return Candidates(
            torch.cat([p.low_res for p in parts]),
            torch.cat([p.iou for p in parts]),
            torch.cat([p.stability for p in parts]),
            torch.cat([p.boxes for p in parts]),
            np.concatenate([p.points for p in parts]),
            torch.cat([p.crop for p in parts]),
        )


def crop_runs(crop: torch.Tensor, chunk: int) -> Iterator[tuple[int, int, int]]:
    """``(start, stop, crop_index)`` slices of at most ``chunk`` consecutive rows that share
    one crop, covering all rows in order."""
    values = crop.tolist()
    start = 0
    n = len(values)
    while start < n:
        stop = start + 1
        while stop < n and stop - start < chunk and values[stop] == values[start]:
            stop += 1
        yield start, stop, int(values[start])
        start = stop
