"""Map images, points and boxes from the original image frame to the model's input frame.

Also here: the checks that prompts are valid in their frame (``check_*``: ``ValueError`` or
``TypeError`` naming the argument) and the way back for masks (:func:`upscale_logits`).

SAM sees every image resized so that its longest side is ``target_length`` (1024) pixels,
keeping the aspect ratio, then padded at the bottom/right to a square. Prompts given in
original-image pixels must be scaled the same way. Semantics follow the published
``segment_anything/utils/transforms.py`` (facts: rounding of the new size, PIL bilinear
resampling as torchvision uses for PIL images, coordinate scaling by new/old per axis).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

__all__ = [
    "ResizeLongestSide",
    "check_box",
    "check_mask_input",
    "check_points",
    "check_prompt_batch",
    "upscale_logits",
]


class ResizeLongestSide:
    """Resize to longest side ``target_length``; scale coordinates and boxes to match.

    Numpy methods take single images / arrays of prompts; ``*_torch`` methods take batched
    tensors. Sizes are ``(H, W)``; coordinates are XY; boxes are XYXY.
    """

    def __init__(self, target_length: int) -> None:
        if int(target_length) <= 0:
            raise ValueError(f"target_length must be a positive integer, got {target_length!r}.")
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """``(new_h, new_w)`` with ``max(new_h, new_w) == long_side_length``, rounded half up."""
        scale = long_side_length * 1.0 / max(oldh, oldw)
        # int(x + 0.5): the published rounding (half up), not Python's round (half to even).
        return int(oldh * scale + 0.5), int(oldw * scale + 0.5)

    def _new_size(self, original_size: tuple[int, ...]) -> tuple[int, int]:
        return self.get_preprocess_shape(
            int(original_size[0]), int(original_size[1]), self.target_length
        )

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Resize an ``(H, W, 3)`` (or ``(H, W)``, ``(H, W, 1|4)``) uint8 image.

        Uses PIL's bilinear filter on the whole image, exactly what torchvision's ``resize``
        does for PIL images in the published code. Returns a new uint8 array ``(h, w[, C])``.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise TypeError("image must be a uint8 numpy array (see sam_widget.images).")
        if image.ndim == 3 and image.shape[2] == 1:
            return self.apply_image(image[:, :, 0])[:, :, None]
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise ValueError(f"image must have shape (H, W[, 1|3|4]), got {image.shape}.")
        new_h, new_w = self._new_size(image.shape[:2])
        pil = Image.fromarray(np.ascontiguousarray(image))
        # PIL sizes are (width, height).
        return np.asarray(pil.resize((new_w, new_h), Image.Resampling.BILINEAR)).copy()

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Scale ``(..., 2)`` XY coordinates; returns a new float64 array."""
        old_h, old_w = int(original_size[0]), int(original_size[1])
        new_h, new_w = self._new_size(original_size)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Scale ``(B, 4)`` (or ``(4,)``) XYXY boxes; returns a new ``(B, 4)`` float64 array."""
        # B x 4 -> B x 2 x 2 (two XY corners) -> B x 4
        corners = self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size)
        return corners.reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """Resize a ``B x C x H x W`` float batch with antialiased bilinear interpolation.

        Not identical to :meth:`apply_image` (which the model expects). Note: the published
        version reads the size from ``shape[0], shape[1]`` (batch and channels) by mistake;
        this one uses the image's height and width.
        """
        if image.ndim != 4:
            raise ValueError(f"image must be B x C x H x W, got shape {tuple(image.shape)}.")
        new_size = self._new_size(image.shape[-2:])
        return F.interpolate(image, new_size, mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Scale ``(..., 2)`` XY coordinates; returns a new float32 tensor."""
        old_h, old_w = int(original_size[0]), int(original_size[1])
        new_h, new_w = self._new_size(original_size)
        out = coords.to(torch.float32, copy=True)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def apply_boxes_torch(
        self, boxes: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Scale ``(B, 4)`` XYXY boxes; returns a new ``(B, 4)`` float32 tensor."""
        # B x 4 -> B x 2 x 2 (two XY corners) -> B x 4
        corners = self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size)
        return corners.reshape(-1, 4)


def upscale_logits(
    low_res: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int] | None,
    img_size: int = 1024,
) -> torch.Tensor:
    """Low-res mask logits ``... x 256 x 256`` -> logits in the input or original frame.

    Same values, bit for bit, as the published ``Sam.postprocess_masks`` (bilinear to the
    padded ``img_size`` square, crop to ``input_size``, bilinear to ``original_size``), but
    the first upsampling is computed only for the unpadded region: with an explicit scale
    factor, bilinear interpolation of a top-left crop of the low-res grid gives exactly the
    same output pixels as the full grid, as long as the crop keeps one extra source row and
    column beyond the last one an output pixel reads (the kernel clamps at the border).

    Args:
        low_res: ``B x C x h x w`` (or ``C x h x w``) float logits, ``h * s == img_size``.
        input_size: ``(H_in, W_in)`` of the resized, unpadded image.
        original_size: ``(H, W)`` of the original image, or ``None`` to stop at the input
            frame (the crop, ``H_in x W_in``).
        img_size: side of the padded square the low-res grid covers.
    Returns:
        ``B x C x H x W`` (or ``C x H x W``) float logits; may be a view of a larger tensor.
    """
    squeeze = low_res.dim() == 3
    x = low_res.unsqueeze(0) if squeeze else low_res
    if x.dim() != 4:
        raise ValueError(f"low_res must be C x h x w or B x C x h x w, got {tuple(x.shape)}.")
    grid_h, grid_w = int(x.shape[-2]), int(x.shape[-1])
    if img_size % grid_h or img_size % grid_w or img_size // grid_h != img_size // grid_w:
        raise ValueError(f"low_res grid {grid_h} x {grid_w} does not divide {img_size}.")
    scale = img_size // grid_h
    in_h, in_w = int(input_size[0]), int(input_size[1])
    # Output row i reads source rows floor((i + 0.5) / scale - 0.5) and the next one.
    need_h = min(grid_h, -(-in_h // scale) + 1)
    need_w = min(grid_w, -(-in_w // scale) + 1)
    up = F.interpolate(
        x[..., :need_h, :need_w], scale_factor=float(scale), mode="bilinear", align_corners=False
    )
    up = up[..., :in_h, :in_w]
    if original_size is not None:
        out_hw = (int(original_size[0]), int(original_size[1]))
        if out_hw != (in_h, in_w):
            # Same size would be the identity (weights exactly 1 and 0): skipped.
            if torch.get_num_threads() == 1 and up.device.type == "cpu":
                # With one thread torch's CPU kernel converts 3-channel inputs to channels-last
                # internally, which is about twice as slow from a strided crop as from a
                # contiguous copy (same values either way).
                up = up.contiguous()
            up = F.interpolate(up, out_hw, mode="bilinear", align_corners=False)
    return up[0] if squeeze else up


# -- prompt checks -----------------------------------------------------------------------


def _as_float_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (array-like of numbers): {err}") from None
    return arr


def check_points(
    point_coords: Any, point_labels: Any, size: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Check ``(N, 2)`` XY points and ``(N,)`` labels against an image of ``size`` (H, W).

    Points must be finite and inside ``[0, W] x [0, H]``; labels 1, 0 or -1. Returns float64
    coords and int32 labels, or ``(None, None)`` for no points (both None or both empty).
    """
    if point_coords is None and point_labels is None:
        return None, None
    if point_labels is None:
        raise ValueError("point_labels must be given with point_coords (one label per point).")
    if point_coords is None:
        raise ValueError("point_coords must be given with point_labels (one point per label).")
    coords = _as_float_array(point_coords, "point_coords")
    if coords.size == 0 and np.asarray(point_labels).size == 0:
        return None, None  # empty point lists: no point prompt
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (N, 2) XY, got {coords.shape}.")
    labels = _as_float_array(point_labels, "point_labels")
    if labels.ndim != 1 or labels.shape[0] != coords.shape[0]:
        raise ValueError(
            f"point_labels must have shape ({coords.shape[0]},) to match point_coords, got "
            f"{labels.shape}."
        )
    if not np.isfinite(coords).all():
        raise ValueError("point_coords contains NaN or infinite values.")
    if not np.isin(labels, (1.0, 0.0, -1.0)).all():
        bad = sorted({float(v) for v in labels[~np.isin(labels, (1.0, 0.0, -1.0))]})
        raise ValueError(
            f"point_labels must be 1 (foreground), 0 (background) or -1 (ignore); got {bad}."
        )
    h, w = size
    outside = (coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h)
    if outside.any():
        first = coords[np.argmax(outside)].tolist()
        raise ValueError(
            f"point_coords {first} lies outside the image (x in [0, {w}], y in [0, {h}])."
        )
    return coords, labels.astype(np.int32)


def check_box(box: Any, size: tuple[int, int]) -> np.ndarray | None:
    """Check one XYXY box (4 finite numbers, x0 <= x1, y0 <= y1, inside the image of
    ``size`` (H, W)); returns it as a ``(1, 4)`` float64 array, or None."""
    if box is None:
        return None
    arr = _as_float_array(box, "box")
    if arr.size != 4 or arr.ndim not in (1, 2):
        raise ValueError(f"box must be 4 numbers XYXY (shape (4,) or (1, 4)), got {arr.shape}.")
    x0, y0, x1, y1 = arr.reshape(4).tolist()
    if not np.isfinite(arr).all():
        raise ValueError("box contains NaN or infinite values.")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must be XYXY with x0 <= x1 and y0 <= y1, got {[x0, y0, x1, y1]}.")
    h, w = size
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise ValueError(
            f"box {[x0, y0, x1, y1]} extends outside the image (x in [0, {w}], y in [0, {h}])."
        )
    return arr.reshape(1, 4)


def check_mask_input(mask_input: Any, low_res: tuple[int, int]) -> np.ndarray | None:
    """Check a ``(1, h, w)`` or ``(h, w)`` finite low-res logits mask; returns ``(h, w)``."""
    if mask_input is None:
        return None
    arr = _as_float_array(mask_input, "mask_input")
    if arr.shape not in ((1, *low_res), low_res):
        raise ValueError(
            f"mask_input must have shape (1, {low_res[0]}, {low_res[1]}) (low-res logits of a "
            f"previous prediction), got {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("mask_input contains NaN or infinite values.")
    return arr.reshape(low_res)


def check_prompt_batch(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    low_res: tuple[int, int],
) -> None:
    """Shape and value checks for ``predict_torch``'s batched tensors."""
    for name, t in (
        ("point_coords", point_coords),
        ("point_labels", point_labels),
        ("boxes", boxes),
        ("mask_input", mask_input),
    ):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor or None, got {type(t).__name__}.")
    if (point_coords is None) != (point_labels is None):
        missing = "point_labels" if point_labels is None else "point_coords"
        raise ValueError(f"{missing} must be given together with the other point argument.")
    batch: dict[str, int] = {}
    if point_coords is not None and point_labels is not None:
        if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
            raise ValueError(f"point_coords must be B x N x 2, got {tuple(point_coords.shape)}.")
        if tuple(point_labels.shape) != tuple(point_coords.shape[:2]):
            raise ValueError(
                f"point_labels must be B x N = {tuple(point_coords.shape[:2])}, got "
                f"{tuple(point_labels.shape)}."
            )
        if not bool(torch.isfinite(point_coords).all()):
            raise ValueError("point_coords contains NaN or infinite values.")
        ok = (point_labels == 1) | (point_labels == 0) | (point_labels == -1)
        if not bool(ok.all()):
            raise ValueError("point_labels must be 1 (foreground), 0 (background) or -1.")
        batch["point_coords"] = int(point_coords.shape[0])
    if boxes is not None:
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be B x 4 XYXY, got {tuple(boxes.shape)}.")
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError("boxes contains NaN or infinite values.")
        if bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
            raise ValueError("boxes must be XYXY with x0 <= x1 and y0 <= y1.")
        batch["boxes"] = int(boxes.shape[0])
    if mask_input is not None:
        if mask_input.dim() != 4 or tuple(mask_input.shape[1:]) != (1, *low_res):
            raise ValueError(
                f"mask_input must be B x 1 x {low_res[0]} x {low_res[1]}, got "
                f"{tuple(mask_input.shape)}."
            )
        batch["mask_input"] = int(mask_input.shape[0])
    if len(set(batch.values())) > 1:
        raise ValueError(f"prompt batch sizes differ: {batch}.")
