"""``Sam2``: SAM 2 / 2.1 for images (Ravi et al. 2024, "SAM 2", arXiv:2408.00714), as the
published ``SAM2ImagePredictor`` runs it, behind :class:`sam_widget.models.interface.
SegmentModel`.

Encoding (``SAM2Base.forward_image`` and ``SAM2ImagePredictor.set_image``, sam2 1.1.0): the
1024 x 1024 image, scaled to [0, 1] and normalised with ImageNet mean and std, goes through
the Hiera trunk and the FPN neck; the stride-4 and stride-8 maps are projected by the mask
decoder's ``conv_s0`` / ``conv_s1`` (once per image), and ``no_mem_embed`` (the "no memory"
token of video tracking) is added to the stride-16 map, which becomes the image embedding.
Module and parameter names match the official checkpoints, so their image keys load
strictly (``checkpoint.py`` sets the video-only ones aside).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..sam.common import tensor_state_key
from .config import Sam2Config
from .geometry import ResizeSquare
from .hiera import Hiera
from .mask_decoder import DecoderOutput, Sam2ImageContext, Sam2MaskDecoder
from .neck import FpnNeck
from .prompt_encoder import Sam2PromptEncoder
from .transformer import build_two_way_transformer

__all__ = ["ImageEncoder", "Sam2"]


class ImageEncoder(nn.Module):
    """Trunk + neck (keys ``image_encoder.trunk.*`` / ``image_encoder.neck.*``):
    B x 3 x 1024 x 1024 normalised -> neck maps at strides 4, 8 and 16 (``d_model``
    channels each)."""

    def __init__(self, config: Sam2Config) -> None:
        super().__init__()
        self.trunk = Hiera(config.trunk)
        self.neck = FpnNeck(
            config.d_model, config.trunk.channel_list, config.fpn_top_down_levels, config.scalp
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.trunk(x))


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)  # any shape -> 1-D
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


class Sam2(nn.Module):
    """A SAM 2 / 2.1 image model. ``variant``, ``config``, ``pretrained`` and
    ``checkpoint`` as in docs/ARCHITECTURE.md; the interface methods below."""

    family: str = "sam2"
    mask_threshold: float = 0.0
    image_format: str = "RGB"
    # The published predictor clamps the low-res logits it returns (not those it upscales
    # to masks) to +-32 (``SAM2ImagePredictor._predict``).
    low_res_clamp: float | None = 32.0
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, config: Sam2Config) -> None:
        super().__init__()
        d = config.d_model
        grid = config.image_embedding_size
        self.config = config
        self.image_encoder = ImageEncoder(config)
        self.sam_prompt_encoder = Sam2PromptEncoder(
            embed_dim=d,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        )
        self.sam_mask_decoder = Sam2MaskDecoder(
            d,
            build_two_way_transformer(
                config.decoder_depth, d, config.decoder_num_heads, config.decoder_mlp_dim
            ),
            num_multimask_outputs=config.num_multimask_outputs,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
            stability_delta=config.dynamic_multimask_stability_delta,
            stability_thresh=config.dynamic_multimask_stability_thresh,
        )
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        if config.release == "sam2.1":
            # Video-only and unused here, but kept: it tells SAM 2.1 state dicts from SAM 2
            # ones, whose image modules are the same (checkpoint.py).
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, config.mem_dim))
        self.set_pixel_stats()
        self.pretrained = False
        self.checkpoint: str | None = None
        self._geometry = ResizeSquare(config.image_size)
        self._weights_id: tuple[tuple[Any, ...], str] | None = None

    def set_pixel_stats(self, device: torch.device | str | None = None) -> None:
        """(Re)create the normalisation buffers (not in the checkpoints): ImageNet mean and
        std on the 0..255 scale, 3 x 1 x 1, on ``device`` (None: the default device)."""
        mean = torch.tensor(self.config.pixel_mean, device=device) * 255.0
        std = torch.tensor(self.config.pixel_std, device=device) * 255.0
        # 3 -> 3 x 1 x 1, broadcast over an image
        self.register_buffer("pixel_mean", mean.reshape(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.reshape(-1, 1, 1), persistent=False)

    # ---------------------------------------------------------------------------------
    # identity and geometry

    @property
    def variant(self) -> str:
        return self.config.variant

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def low_res_size(self) -> tuple[int, int]:
        grid = 4 * self.config.image_embedding_size
        return (grid, grid)

    @property
    def geometry(self) -> ResizeSquare:
        return self._geometry

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def feature_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every feature :meth:`encode` returns (float32)."""
        d, grid = self.config.d_model, self.config.image_embedding_size
        return {
            "image_embed": (1, d, grid, grid),
            "high_res_s0": (1, d // 8, 4 * grid, 4 * grid),
            "high_res_s1": (1, d // 4, 2 * grid, 2 * grid),
        }

    @property
    def weights_id(self) -> str:
        """Stable hex digest (BLAKE2b-128) of the variant name and every state-dict tensor;
        recomputed after the weights change (in-place edits, loading, replacement)."""
        state = self.state_dict()
        fingerprint = tuple(tensor_state_key(t) for t in state.values())
        if self._weights_id is not None and self._weights_id[0] == fingerprint:
            return self._weights_id[1]
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"sam-widget weights v1\0{self.variant}\0".encode())
        for name in sorted(state):
            t = state[name]
            digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            digest.update(_tensor_bytes(t))
        value = digest.hexdigest()
        self._weights_id = (fingerprint, value)
        return value

    def encoder_blocks(self) -> list[nn.Module]:
        """The trunk's blocks in the order they run (progress reporting)."""
        return list(self.image_encoder.trunk.blocks)

    # ---------------------------------------------------------------------------------
    # the model interface

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x 1024 x 1024 RGB in 0..255 -> normalised with ImageNet mean and std."""
        size = self.config.image_size
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
            raise ValueError(
                f"x must be B x 3 x {size} x {size} (geometry.apply_image), got {tuple(x.shape)}"
            )
        return (x.float() - self.pixel_mean) / self.pixel_std

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """1 x 3 x 1024 x 1024 float RGB 0..255 -> ``image_embed`` 1 x 256 x 64 x 64,
        ``high_res_s0`` 1 x 32 x 256 x 256, ``high_res_s1`` 1 x 64 x 128 x 128."""
        s4, s8, s16 = self.image_encoder(self.preprocess(x))
        decoder = self.sam_mask_decoder
        # 1 x 1 x C -> 1 x C x 1 x 1, added at every cell.
        embed = s16 + self.no_mem_embed.reshape(1, -1, 1, 1)
        return {
            "image_embed": embed,
            "high_res_s0": decoder.conv_s0(s4),
            "high_res_s1": decoder.conv_s1(s8),
        }

    def prepare(self, features: Mapping[str, torch.Tensor]) -> Sam2ImageContext:
        """Per-image decoder context from :meth:`encode`'s features."""
        pe = self.sam_prompt_encoder
        return self.sam_mask_decoder.prepare(
            features["image_embed"],
            features["high_res_s0"],
            features["high_res_s1"],
            pe.get_dense_pe(),
            pe.no_mask_dense(),
        )

    def decode_full(
        self,
        ctx: Sam2ImageContext,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> DecoderOutput:
        """:meth:`decode` with the object-score logit too (:class:`DecoderOutput`)."""
        sparse, dense = self.sam_prompt_encoder.embed_prompts(coords, labels, boxes, mask_input)
        return self.sam_mask_decoder.decode(ctx, sparse, dense, multimask, object_score=True)

    def decode(
        self,
        ctx: Sam2ImageContext,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the 1024 x 1024 input frame -> (low-res logits B x C x 256 x 256, not
        clamped; IoU B x C). Box corners go before the clicks as labelled points; with
        ``multimask`` False the stability fallback applies (see ``mask_decoder.py``)."""
        sparse, dense = self.sam_prompt_encoder.embed_prompts(coords, labels, boxes, mask_input)
        out = self.sam_mask_decoder.decode(ctx, sparse, dense, multimask)
        return out.masks, out.iou

    def decode_points(
        self, ctx: Sam2ImageContext, coords: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B single positive points (B x 2, input frame) -> :meth:`decode`'s outputs."""
        if coords.dim() != 2 or coords.shape[-1] != 2:
            raise ValueError(f"coords must be B x 2, got {tuple(coords.shape)}")
        # B x 2 -> B x 1 x 2: one positive point per prompt.
        points = coords[:, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.int64, device=coords.device)
        return self.decode(ctx, points, labels, None, None, multimask)
