"""Test-only stand-in for the torchvision modules that the published oracles import.

The published ``segment-anything`` and ``sam2`` packages are our oracles in the fidelity
tests. ``segment_anything`` imports ``torchvision.transforms.functional.{resize,
to_pil_image}`` (image resizing in ``utils/transforms.py``); ``sam2`` imports
``torchvision.transforms.{Normalize, Resize, ToTensor}`` (``sam2/utils/transforms.py``, where
Resize and Normalize are put through ``torch.jit.script``, so they are scriptable
``nn.Module``s here); both import ``torchvision.ops.boxes.{batched_nms, box_area}`` (their
automatic mask generators). torchvision has no CPU build on our machines, so this module
installs minimal, independently written equivalents into ``sys.modules`` before an oracle is
imported. Nothing in ``sam_widget`` may import this file.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def _to_pil_image(pic: np.ndarray) -> Image.Image:
    # The oracle only ever passes HWC uint8 RGB arrays.
    arr = np.asarray(pic)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise TypeError(f"shim to_pil_image expects HWC uint8 RGB, got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr, mode="RGB")


def _resize(
    img: Image.Image, size: tuple[int, int], *args: object, **kwargs: object
) -> Image.Image:
    # torchvision resizes PIL images with PIL's own bilinear filter; size is (h, w).
    h, w = int(size[0]), int(size[1])
    return img.resize((w, h), Image.BILINEAR)


class _ToTensor:
    """``(H, W, C)`` uint8 array -> ``C x H x W`` float32 tensor in [0, 1] (torchvision's
    ``ToTensor`` for numpy images; the oracle passes only HWC uint8 RGB arrays)."""

    def __call__(self, pic: np.ndarray) -> torch.Tensor:
        arr = np.asarray(pic)
        if arr.dtype != np.uint8 or arr.ndim != 3:
            raise TypeError(f"shim ToTensor expects HWC uint8, got {arr.dtype} {arr.shape}")
        # H x W x C -> C x H x W
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().float().div(255.0)


class _Resize(nn.Module):
    """Resize a ``[B x] C x H x W`` float tensor to ``size`` (h, w): bilinear with
    antialiasing, torchvision's default for tensors (``antialias=True``)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size: list[int] = [int(size[0]), int(size[1])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batched = x.dim() == 4
        y = x if batched else x.unsqueeze(0)
        y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return y if batched else y.squeeze(0)


class _Normalize(nn.Module):
    """``(x - mean) / std`` per channel of a ``[B x] C x H x W`` tensor."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean: list[float] = [float(m) for m in mean]
        self.std: list[float] = [float(s) for s in std]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        return (x - mean) / std


def _box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    # Greedy NMS: visit boxes by descending score, drop any whose IoU with a kept box
    # exceeds the threshold. Returns kept indices in descending score order.
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes.to(torch.float64)
    areas = _box_area(boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for idx in order.tolist():
        if suppressed[idx]:
            continue
        keep.append(idx)
        x0 = torch.maximum(boxes[idx, 0], boxes[:, 0])
        y0 = torch.maximum(boxes[idx, 1], boxes[:, 1])
        x1 = torch.minimum(boxes[idx, 2], boxes[:, 2])
        y1 = torch.minimum(boxes[idx, 3], boxes[:, 3])
        inter = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
        iou = inter / (areas[idx] + areas - inter)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def _batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    # NMS independently per category: offset each category's boxes so they never overlap.
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms(boxes + offsets[:, None], scores, iou_threshold)


def install() -> None:
    """Register the stand-in ``torchvision`` modules (idempotent)."""
    if "torchvision" in sys.modules and getattr(
        sys.modules["torchvision"], "_sam_widget_shim", False
    ):
        return
    tv = types.ModuleType("torchvision")
    tv._sam_widget_shim = True  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.resize = _resize  # type: ignore[attr-defined]
    functional.to_pil_image = _to_pil_image  # type: ignore[attr-defined]
    transforms.ToTensor = _ToTensor  # type: ignore[attr-defined]
    transforms.Resize = _Resize  # type: ignore[attr-defined]
    transforms.Normalize = _Normalize  # type: ignore[attr-defined]
    ops = types.ModuleType("torchvision.ops")
    boxes_mod = types.ModuleType("torchvision.ops.boxes")
    boxes_mod.batched_nms = _batched_nms  # type: ignore[attr-defined]
    boxes_mod.box_area = _box_area  # type: ignore[attr-defined]
    tv.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    ops.boxes = boxes_mod  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
            "torchvision.ops": ops,
            "torchvision.ops.boxes": boxes_mod,
        }
    )


def import_reference() -> types.ModuleType:
    """Install the shim and return the published ``segment_anything`` package."""
    install()
    import segment_anything

    return segment_anything


def import_sam2() -> types.ModuleType:
    """Install the shim and return the published ``sam2`` package (SAM 2 / 2.1 oracle)
    with its image predictor, builder and automatic mask generator imported."""
    install()
    import sam2
    import sam2.automatic_mask_generator
    import sam2.build_sam
    import sam2.sam2_image_predictor  # noqa: F401

    return sam2
