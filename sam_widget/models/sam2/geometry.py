"""SAM 2's image geometry: the whole image is resized (squashed) to a 1024 x 1024 square,
prompts are scaled per axis, and low-res logits go straight from 256 x 256 to the original
size.

Facts from ``sam2/utils/transforms.py`` (``SAM2Transforms``, sam2 1.1.0): the image is
converted to float in [0, 1] and resized with torchvision's tensor ``Resize`` (bilinear,
antialiased); coordinates are divided by the original width / height and multiplied by
1024 (``transform_coords``); ``postprocess_masks`` upsamples the low-res logits bilinearly
(``align_corners=False``) to the original size in one step.

Hole filling: the published ``postprocess_masks`` can fill small holes and remove small
specks (``max_hole_area`` / ``max_sprinkle_area``, both 0 by default in
``SAM2ImagePredictor``) with connected components from its CUDA extension; without that
extension it warns and skips the step. Ours never fills holes: it returns what the
published predictor returns with its defaults, and on a machine without the extension with
any setting.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ResizeSquare"]


class ResizeSquare:
    """:class:`sam_widget.models.interface.ImageGeometry` of SAM 2: every image becomes a
    ``target_length`` square (aspect ratio not kept, no padding)."""

    def __init__(self, target_length: int = 1024) -> None:
        if int(target_length) <= 0:
            raise ValueError(f"target_length must be a positive integer, got {target_length!r}")
        self.target_length = int(target_length)

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """Always ``(target_length, target_length)``."""
        return (self.target_length, self.target_length)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(1024, 1024, 3)`` float32 RGB in 0..255.

        Bilinear with antialiasing on float values, as the published transform resizes the
        [0, 1] tensor; kept in float (not rounded to uint8) so the encoder sees the same
        values as the published one.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise TypeError("image must be a uint8 numpy array (H, W, 3)")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
        # H x W x 3 -> 1 x 3 x H x W float
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        size = (self.target_length, self.target_length)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        # 1 x 3 x h x w -> h x w x 3
        return y[0].permute(1, 2, 0).contiguous().numpy()

    def _scale(self, original_size: tuple[int, ...]) -> tuple[float, float]:
        h, w = int(original_size[0]), int(original_size[1])
        if h <= 0 or w <= 0:
            raise ValueError(f"original_size must be positive (H, W), got {original_size!r}")
        return self.target_length / w, self.target_length / h

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(..., 2)`` XY original pixels -> input frame (new float64 array)."""
        sx, sy = self._scale(original_size)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] *= sx
        out[..., 1] *= sy
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(..., 4)`` XYXY original pixels -> ``(N, 4)`` input frame."""
        # N x 4 -> N x 2 x 2 corners -> N x 4
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """``(..., 2)`` XY original pixels -> input frame (new float32 tensor)."""
        h, w = int(original_size[0]), int(original_size[1])
        self._scale(original_size)
        out = coords.to(torch.float32, copy=True)
        # Same operations as the published transform_coords: divide, then scale.
        out[..., 0] = out[..., 0] / w
        out[..., 1] = out[..., 1] / h
        return out * self.target_length

    def apply_boxes_torch(
        self, boxes: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """``(N, 4)`` XYXY original pixels -> ``(N, 4)`` input frame (float32)."""
        # N x 4 -> N x 2 x 2 corners -> N x 4
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def upscale(
        self,
        low_res: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int] | None,
    ) -> torch.Tensor:
        """Low-res logits ``[B x] C x 256 x 256`` -> float logits ``[B x] C x H x W`` of the
        original size (one bilinear step, as published), or of ``input_size`` when
        ``original_size`` is None."""
        squeeze = low_res.dim() == 3
        x = low_res.unsqueeze(0) if squeeze else low_res
        if x.dim() != 4:
            raise ValueError(f"low_res must be C x h x w or B x C x h x w, got {tuple(x.shape)}")
        target = original_size if original_size is not None else input_size
        size = (int(target[0]), int(target[1]))
        out = F.interpolate(x.float(), size, mode="bilinear", align_corners=False)
        return out[0] if squeeze else out
