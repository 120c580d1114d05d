"""Per-image precomputation for fine-tuning: the cached image embedding (computed once with
the predictor's embedding path, so it is shared with the embedding cache) and the ground
truth on the decoder's low-res grid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.embedding_cache import EmbeddingCache
from ..engine.predictor import SamPredictor
from .data import Sample

__all__ = ["Prepared", "prepare_samples"]


@dataclass(eq=False)
class Prepared:
    """One sample ready for the decoder.

    ``features``: 1 x C x 64 x 64 float32 image embedding on the training device;
    ``original_size`` (H, W); ``input_size`` (h, w), the resized frame (longest side 1024);
    ``masks``: (N, H, W) bool ground truth (original frame); ``target``: (N, gh, gw) bool
    ground truth on the valid (unpadded) part of the low-res grid, gh = ceil(h / cell);
    ``cell``: input pixels per low-res cell (4); ``name``: for messages.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    masks: np.ndarray
    target: torch.Tensor
    cell: int
    name: str

    def coords_to_input(self, coords: np.ndarray, transform: Any) -> np.ndarray:
        """(B, 2) XY original pixels -> (B, 2) input frame."""
        return np.asarray(transform.apply_coords(coords, self.original_size))


def low_res_target(
    masks: np.ndarray, input_size: tuple[int, int], image_size: int, grid: int
) -> torch.Tensor:
    """(N, H, W) bool -> (N, gh, gw) bool: nearest-resized to the input frame, padded to the
    ``image_size`` square, averaged over each cell (image_size / grid pixels) and
    thresholded at 0.5, then cropped to the cells that cover the image."""
    cell = image_size // grid
    h, w = input_size
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    out = []
    for start in range(0, len(masks), 8):  # chunks bound the 1024² float copies
        # N x H x W -> N x 1 x H x W
        m = torch.from_numpy(masks[start : start + 8]).to(torch.float32)[:, None]
        m = F.interpolate(m, size=(h, w), mode="nearest")
        m = F.pad(m, (0, gw * cell - w, 0, gh * cell - h))
        out.append(F.avg_pool2d(m, cell)[:, 0] >= 0.5)
    return torch.cat(out, dim=0)


def prepare_samples(
    model: Any,
    samples: Sequence[Sample],
    *,
    cache: EmbeddingCache | None,
    device: torch.device,
    low_res: int,
    tick: Callable[[], None] | None = None,
) -> list[Prepared]:
    """Embed every sample's image once (``SamPredictor.compute_embedding``: cache-aware, no
    gradients) and build its low-res targets. Masks too small to cover half a low-res cell
    anywhere are dropped with the sample's other masks kept."""
    predictor = SamPredictor(model, cache=cache)
    image_size = int(predictor.transform.target_length)
    out = []
    for s in samples:
        emb = predictor.compute_embedding(s.image)
        target = low_res_target(s.masks, emb.input_size, image_size, low_res)
        keep = target.flatten(1).any(dim=1).numpy()  # N x gh x gw -> N x (gh gw)
        if not keep.all():
            warnings.warn(
                f"{s.name}: {int((~keep).sum())} mask(s) too small for the decoder's "
                f"{low_res} x {low_res} grid ignored",
                UserWarning,
                stacklevel=3,
            )
        if keep.any():
            out.append(
                Prepared(
                    features=emb.features.detach().to(device),
                    original_size=emb.original_size,
                    input_size=emb.input_size,
                    masks=s.masks[keep],
                    target=target[torch.from_numpy(keep)].to(device),
                    cell=image_size // low_res,
                    name=s.name,
                )
            )
        if tick is not None:
            tick()
    return out
