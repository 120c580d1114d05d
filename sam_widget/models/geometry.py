"""SAM's image geometry: resize the longest side to 1024 and pad to a square; prompts scale
with the image; low-res mask logits go back by bilinear upsampling and cropping.

:class:`ResizeLongestSide` is the ``geometry`` of the SAM family
(:class:`sam_widget.models.interface.ImageGeometry`). Semantics follow the published
``segment_anything/utils/transforms.py`` (facts: rounding of the new size, PIL bilinear
resampling as torchvision uses for PIL images, coordinate scaling by new/old per axis) and
``Sam.postprocess_masks``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

__all__ = ["ResizeLongestSide", "upscale_logits"]


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

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of an image of ``original_size`` (H, W) resized for the model: the
        longest side ``target_length``, aspect ratio kept (the rest of the square is padding)."""
        return self._new_size(original_size)

    def upscale(
        self,
        low_res: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int] | None,
    ) -> torch.Tensor:
        """Low-res logits ``[B x] C x 256 x 256`` -> float logits in the original frame, or
        the input frame when ``original_size`` is None (:func:`upscale_logits`)."""
        return upscale_logits(low_res, input_size, original_size, self.target_length)

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
