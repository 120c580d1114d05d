"""The one model interface: what every SAM family implements and everything above
``models/`` (predictor, automatic masks, widget, annotator, batch, fine-tuning, explain) uses.

A family (``models/sam`` for SAM and MobileSAM, ``models/sam2`` for SAM 2 / 2.1) is one
folder whose ``__init__`` registers it in :mod:`sam_widget.models.registry`
(``register_family(name, build=..., detect=...)`` and one ``register_model`` per variant;
the registry imports every package under ``models/`` on first use). Code outside ``models/``
never imports a family's modules and never reads a family's submodules or private methods;
it calls only what is written here.

Frames (all coordinates XY, boxes XYXY, sizes (H, W)):

- *original*: pixels of the user's image, ``original_size``.
- *input*: the frame the model's prompts live in, ``input_size = geometry.input_size(
  original_size)``. SAM resizes the longest side to 1024 and pads (input_size keeps the
  aspect ratio); SAM 2 resizes to 1024 x 1024 (input_size is (1024, 1024)).
- *low-res*: the decoder's mask grid, ``low_res_size`` (256 x 256 for both families), which
  covers the padded model frame (SAM) or the whole squashed frame (SAM 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["ImageGeometry", "SegmentModel"]


@runtime_checkable
class ImageGeometry(Protocol):
    """How a family maps images, prompts and masks between the frames above.

    SAM's is :class:`sam_widget.models.geometry.ResizeLongestSide` (the published
    ``SamPredictor.transform``); SAM 2's resizes to a square. Numpy methods take single
    images or arrays of prompts, ``*_torch`` methods batched tensors.
    """

    target_length: int

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """The input frame of an image of ``original_size``."""
        ...

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> the resized ``(h, w, 3)`` image the encoder sees (before
        normalisation and padding), values 0..255: uint8 for SAM (PIL resize), float32 for
        SAM 2 (it resizes float values, as the published transforms do);
        ``(h, w) == input_size``."""
        ...

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(..., 2)`` XY original pixels -> input frame (new float64 array)."""
        ...

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """``(..., 4)`` XYXY original pixels -> ``(N, 4)`` input frame."""
        ...

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor: ...

    def apply_boxes_torch(
        self, boxes: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor: ...

    def upscale(
        self,
        low_res: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int] | None,
    ) -> torch.Tensor:
        """Low-res logits ``[B x] C x h x w`` -> float logits ``[B x] C x H x W``: the
        original frame, or the input frame when ``original_size`` is None."""
        ...


@runtime_checkable
class SegmentModel(Protocol):
    """A promptable segmentation model (an ``nn.Module``) of any registered family.

    Identity: ``family`` ("sam", "sam2"), ``variant`` (a registry name such as "vit_t" or
    "sam2.1_hiera_t"), ``pretrained`` (False: untrained random weights, and everything
    user-facing says so), ``weights_id`` (stable hash of variant + weights; the embedding
    cache key), ``checkpoint`` (the path loaded, or None).

    Geometry: ``geometry`` (:class:`ImageGeometry`), ``image_size`` (1024),
    ``low_res_size`` ((256, 256)), ``mask_threshold`` (0.0), ``device``.

    Work, always under ``torch.no_grad`` by the caller, tensors on ``device``:

    - ``encode(x)``: ``x`` 1 x 3 x h x w float RGB 0..255 in the input frame (``h, w ==
      input_size``; the family normalises and pads) -> features, a mapping of named
      tensors with batch dim 1. ``"image_embed"`` (1 x C x 64 x 64) is always there; SAM 2
      adds its high-resolution maps. Features are what the embedding cache stores.
      ``feature_shapes``: name -> shape of every feature ``encode`` returns (float32), so
      that stored features are checked before they are read.
    - ``prepare(features) -> context``: per-image precomputation shared by all prompts of
      that image (opaque to callers; valid only for this model).
    - ``decode(ctx, coords, labels, boxes, mask_input, multimask)``: ``coords`` B x N x 2
      and ``labels`` B x N (1 object, 0 background, -1 ignored) or None, ``boxes`` B x 4 or
      None, all in the input frame; ``mask_input`` B x 1 x 256 x 256 logits or None. Returns
      low-res logits B x C x 256 x 256 and predicted IoU B x C (C = 3 with multimask, else 1).
      The family's own single-mask rule applies when ``multimask`` is False.
    - ``decode_points(ctx, coords, multimask)``: many single-point prompts at once
      (automatic masks): ``coords`` B x 2 input frame, label 1 each, no mask input. Same
      results as ``decode`` up to float rounding; may use a faster exact path. A family may
      also take the keyword-only hints ``iou_thresh`` (prompts whose best IoU prediction is
      not above it may get zero logits), ``out`` (a B x C x 256 x 256 buffer to write the
      logits into) and ``extent`` ((rows, cols) of logits needed from the top left); it then
      sets ``decode_points_hints = True`` (the automatic mask generator's fast path).

    Optional: ``encoder_blocks()`` -> the encoder's modules in the order they run; the
    predictor reports encoding progress as each one finishes (without it, only at the end).
    ``low_res_clamp`` (float): ``predict`` returns the low-res logits clamped to +-that
    (SAM 2: 32, as its published predictor; masks still come from the unclamped logits).
    ``config``: the family's frozen config of the variant (from the registry).
    """

    # Read-only members (plain attributes or properties both fit).
    @property
    def family(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def pretrained(self) -> bool: ...

    @property
    def checkpoint(self) -> str | None: ...

    @property
    def image_size(self) -> int: ...

    @property
    def low_res_size(self) -> tuple[int, int]: ...

    @property
    def mask_threshold(self) -> float: ...

    @property
    def weights_id(self) -> str: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def geometry(self) -> ImageGeometry: ...

    @property
    def feature_shapes(self) -> Mapping[str, tuple[int, ...]]: ...

    def encode(self, x: torch.Tensor) -> Mapping[str, torch.Tensor]: ...

    def prepare(self, features: Mapping[str, torch.Tensor]) -> Any: ...

    def decode(
        self,
        ctx: Any,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode_points(
        self, ctx: Any, coords: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
