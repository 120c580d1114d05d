"""``Sam``: image encoder + prompt encoder + mask decoder, with pre/post-processing.

Same attribute names and ``forward`` contract as ``segment_anything/modeling/sam.py``, and
the family-neutral :class:`sam_widget.models.interface.SegmentModel` (``encode``,
``prepare``, ``decode``, ``decode_points``, ``geometry``) that code outside ``models/``
uses; see docs/ARCHITECTURE.md ("Model contract").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import ResizeLongestSide
from .common import tensor_state_key
from .mask_decoder import ImageContext, MaskDecoder
from .prompt_encoder import PromptEncoder

if TYPE_CHECKING:
    from .config import SamConfig

__all__ = ["Sam"]

_BLOCK_NAME = re.compile(r"(^|\.)blocks\.\d+$")
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """Raw bytes of a tensor (any dtype, any device), C order."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    # Reinterpret as bytes so dtypes numpy lacks (bfloat16) work too.
    return memoryview(np.ascontiguousarray(flat.view(torch.uint8).numpy()).data)


class Sam(nn.Module):
    """Segment Anything model.

    ``image_encoder`` maps B x 3 x S x S (normalised, padded; S = ``image_encoder.img_size``)
    to B x C x H x W; the prompt encoder and mask decoder work on that embedding.
    """

    family: str = "sam"
    # decode_points takes iou_thresh / out / extent (models/interface.py).
    decode_points_hints: bool = True
    mask_threshold: float = 0.0
    image_format: str = "RGB"
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: Sequence[float] = _PIXEL_MEAN,
        pixel_std: Sequence[float] = _PIXEL_STD,
        *,
        config: SamConfig | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # 3 -> 3 x 1 x 1, broadcast over C x H x W images. Not in the checkpoints.
        self.register_buffer(
            "pixel_mean", torch.tensor(list(pixel_mean), dtype=torch.float32).view(-1, 1, 1), False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(list(pixel_std), dtype=torch.float32).view(-1, 1, 1), False
        )
        self.config = config
        # False: untrained random weights (everything user-facing must say so).
        self.pretrained = pretrained
        # The checkpoint file loaded (set by build_sam), or None.
        self.checkpoint: str | None = None
        self._weights_id: tuple[tuple[Any, ...], str] | None = None

    @property
    def variant(self) -> str:
        """Variant name from the config (``"custom"`` for a model assembled by hand)."""
        return self.config.variant if self.config is not None else "custom"

    @property
    def img_size(self) -> int:
        """Side of the encoder's square input (1024)."""
        return int(self.image_encoder.img_size)  # type: ignore[arg-type]

    @property
    def image_size(self) -> int:
        """Side of the encoder's square input (1024); interface name of ``img_size``."""
        return self.img_size

    @property
    def low_res_size(self) -> tuple[int, int]:
        """(h, w) of the decoder's mask logits: 4x the embedding grid (256 x 256)."""
        h, w = self.prompt_encoder.image_embedding_size
        return (4 * int(h), 4 * int(w))

    @property
    def geometry(self) -> ResizeLongestSide:
        """Longest side to ``img_size``, padded to a square (the published transform)."""
        geometry = self.__dict__.get("_geometry")
        if geometry is None or geometry.target_length != self.img_size:
            geometry = ResizeLongestSide(self.img_size)
            self.__dict__["_geometry"] = geometry
        return geometry

    @property
    def feature_shapes(self) -> dict[str, tuple[int, ...]]:
        """What ``encode`` returns: ``{"image_embed": (1, 256, 64, 64)}``."""
        h, w = self.prompt_encoder.image_embedding_size
        return {"image_embed": (1, int(self.prompt_encoder.embed_dim), int(h), int(w))}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def encoder_blocks(self) -> list[nn.Module]:
        """The image encoder's blocks in the order they run (progress reporting): ViT
        ``blocks.<i>``, TinyViT ``layers.<j>.blocks.<i>``."""
        enc = self.image_encoder
        blocks = [m for name, m in enc.named_modules() if _BLOCK_NAME.search(name)]
        return blocks or list(enc.children())

    # ---------------------------------------------------------------------------------
    # weights identity

    def _weights_fingerprint(self) -> tuple[Any, ...]:
        # Cheap identity of the current tensors (see tensor_state_key).
        return tuple(
            (name, tensor_state_key(t)) for name, t in self.state_dict(keep_vars=True).items()
        )

    @property
    def weights_id(self) -> str:
        """Stable hex digest (BLAKE2b-128) of the variant name and every state-dict tensor
        (names, dtypes, shapes, bytes). Computed lazily; recomputed after the weights change
        (``load_state_dict``, in-place edits, replaced parameters). Not tracked: writes
        through ``param.data``, which bypass version counters."""
        fingerprint = self._weights_fingerprint()
        cached = self._weights_id
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"sam-widget weights v1\0{self.variant}\0".encode())
        state = self.state_dict()
        for name in sorted(state):
            t = state[name]
            digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            digest.update(_tensor_bytes(t))
        value = digest.hexdigest()
        self._weights_id = (fingerprint, value)
        return value

    # ---------------------------------------------------------------------------------
    # pre / post processing

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """3 x h x w (or B x 3 x h x w) RGB in 0..255, resized so the longest side is at most
        ``img_size`` -> normalised and zero-padded at the bottom/right to img_size²."""
        x = (x - self.pixel_mean) / self.pixel_std
        size = self.img_size
        h, w = x.shape[-2:]
        if h > size or w > size:
            raise ValueError(
                f"image must be at most {size} x {size} (resize it first), got {h} x {w}"
            )
        # F.pad pads the last axes first: (W: 0, size - w), (H: 0, size - h).
        return F.pad(x, (0, size - w, 0, size - h))

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: tuple[int, ...],
        original_size: tuple[int, ...],
    ) -> torch.Tensor:
        """B x C x h x w low-res masks -> B x C x H x W at ``original_size`` (H, W).

        Upscales to the padded input square, crops the padding (``input_size`` = the resized
        image's (h, w) before padding) and resizes to the original image, bilinearly.
        """
        size = self.img_size
        masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : int(input_size[0]), : int(input_size[1])]
        out_hw = (int(original_size[0]), int(original_size[1]))
        return F.interpolate(masks, out_hw, mode="bilinear", align_corners=False)

    # ---------------------------------------------------------------------------------
    # the model interface (sam_widget.models.interface.SegmentModel)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """1 x 3 x h x w float RGB 0..255 in the input frame -> ``{"image_embed":
        1 x 256 x 64 x 64}`` (normalised and padded here)."""
        return {"image_embed": self.image_encoder(self.preprocess(x))}

    def prepare(self, features: Mapping[str, torch.Tensor]) -> ImageContext:
        """Per-image decoder context from ``encode``'s features."""
        return self.prepare_image(features["image_embed"])

    def decode(
        self,
        ctx: ImageContext,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the input frame -> (low-res logits B x C x 256 x 256, IoU B x C)."""
        return self.predict_with_context(ctx, coords, labels, boxes, mask_input, multimask)

    def decode_points(
        self,
        ctx: ImageContext,
        coords: torch.Tensor,
        multimask: bool,
        *,
        iou_thresh: float | None = None,
        out: torch.Tensor | None = None,
        extent: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B single positive points (B x 2, input frame) -> (low-res logits B x C x 256 x 256,
        IoU B x C), by the decoder's exact low-rank path. ``iou_thresh``: prompts whose best
        IoU prediction is not above it get zero logits (no mask head); ``out``: a buffer for
        the logits; ``extent``: (rows, cols) of logits needed from the top left (the rest
        is left as it was). See ``MaskDecoder.decode_points``."""
        if coords.dim() != 2 or coords.shape[-1] != 2:
            raise ValueError(f"coords must be B x 2, got {tuple(coords.shape)}")
        # B x 2 -> B x 1 x 2: one positive point per prompt.
        points = coords[:, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.int64, device=coords.device)
        sparse, _ = self.prompt_encoder.encode((points, labels), None, None)
        return self.mask_decoder.decode_points(
            ctx, sparse, multimask, iou_thresh=iou_thresh, out=out, extent=extent
        )

    # ---------------------------------------------------------------------------------
    # decoding with a per-image context (fast path)

    def prepare_image(self, image_embeddings: torch.Tensor) -> ImageContext:
        """Per-image precomputation for ``predict_with_context``; ``image_embeddings`` is the
        encoder output for one image, 1 x C x H x W (or C x H x W)."""
        if image_embeddings.dim() == 3:
            image_embeddings = image_embeddings.unsqueeze(0)
        return self.mask_decoder.prepare_image(
            image_embeddings,
            self.prompt_encoder.get_dense_pe(),
            self.prompt_encoder.no_mask_dense(),
        )

    def predict_with_context(
        self,
        ctx: ImageContext,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode B prompts for the image of ``ctx``.

        ``point_coords``: B x N x 2 XY and ``point_labels``: B x N (1 fg, 0 bg, -1 pad), in
        the model input frame (resized image, pixels); ``boxes``: B x 4 XYXY, same frame;
        ``mask_input``: B x 1 x 256 x 256 logits (e.g. previous ``low_res_logits``).
        Returns low-res logits B x C' x 256 x 256 and IoU predictions B x C' (C' = 3 with
        ``multimask_output``, else 1).
        """
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        points = None
        if point_coords is not None and point_labels is not None:
            points = (point_coords, point_labels)
        sparse, dense = self.prompt_encoder.encode(points, boxes, mask_input)
        return self.mask_decoder.decode(ctx, sparse, dense, multimask_output)

    @torch.no_grad()
    def forward(
        self, batched_input: list[dict[str, Any]], multimask_output: bool
    ) -> list[dict[str, torch.Tensor]]:
        """End-to-end prediction, same contract as the published ``Sam.forward``.

        Each record: ``image`` 3 x h x w (already resized, 0..255), ``original_size`` (H, W),
        optional ``point_coords`` B x N x 2 with ``point_labels`` B x N, ``boxes`` B x 4,
        ``mask_inputs`` B x 1 x 256 x 256 (prompts in the resized frame). Each output:
        ``masks`` B x C' x H x W bool, ``iou_predictions`` B x C', ``low_res_logits``
        B x C' x 256 x 256.
        """
        images = torch.stack([self.preprocess(rec["image"]) for rec in batched_input], dim=0)
        embeddings = self.image_encoder(images)
        outputs = []
        for rec, emb in zip(batched_input, embeddings, strict=True):
            ctx = self.prepare_image(emb)
            low_res, iou = self.predict_with_context(
                ctx,
                point_coords=rec.get("point_coords"),
                point_labels=rec.get("point_labels"),
                boxes=rec.get("boxes"),
                mask_input=rec.get("mask_inputs"),
                multimask_output=multimask_output,
            )
            masks = self.postprocess_masks(
                low_res, tuple(rec["image"].shape[-2:]), tuple(rec["original_size"])
            )
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou,
                    "low_res_logits": low_res,
                }
            )
        return outputs
