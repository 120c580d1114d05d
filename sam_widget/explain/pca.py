"""The image embedding seen as colours: its 256 channels projected on 3 principal axes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["embedding_pca"]


def embedding_pca(embedding: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of an image embedding.

    ``embedding``: a predictor (its current image's embedding is used), or a C x H x W /
    1 x C x H x W array or tensor. Each cell's C-vector is projected onto the 3 principal
    axes of all cells' vectors (centred); each axis is scaled to 0..255 between its 1st and
    99th percentile. Cells that the encoder saw as similar get similar colours. The sign of
    a principal axis is arbitrary; it is fixed so that the largest-magnitude loading is
    positive (stable colours for the same embedding).
    """
    if hasattr(embedding, "get_image_embedding"):
        embedding = embedding.get_image_embedding()
    if isinstance(embedding, torch.Tensor):
        arr = embedding.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            arr = np.asarray(embedding, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"embedding must be numeric (C x H x W), got {err}") from None
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] < 3:
        raise ValueError(
            f"embedding must be C x H x W (or 1 x C x H x W) with C >= 3, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("embedding contains NaN or infinite values")
    c, h, w = arr.shape
    # C x H x W -> C x HW -> HW x C
    x = arr.reshape(c, h * w).T
    x = x - x.mean(axis=0, keepdims=True)
    # Principal axes: right singular vectors of the centred HW x C matrix.
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:3]  # 3 x C
    signs = np.sign(axes[np.arange(3), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    proj = x @ axes.T  # HW x 3
    lo = np.percentile(proj, 1, axis=0)
    hi = np.percentile(proj, 99, axis=0)
    scaled = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    # HW x 3 -> H x W x 3
    return (np.clip(scaled, 0.0, 1.0) * 255.0).round().astype(np.uint8).reshape(h, w, 3)
