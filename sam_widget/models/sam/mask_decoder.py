"""SAM's mask decoder: image embedding + prompt tokens -> mask logits and IoU estimates.

Output tokens (1 IoU token + 4 mask tokens) are prepended to the prompt tokens and run
through the two-way transformer with the image embedding. The image tokens are upscaled 4x
by two transposed convs; each mask token goes through its own hypernetwork MLP to give the
per-pixel weights of its mask, and the IoU token through an MLP head gives one quality
estimate per mask (Kirillov et al. 2023, appendix A). Mask 0 is the single-mask output,
masks 1..3 the multimask outputs. Names follow ``segment_anything/modeling/mask_decoder.py``.

Written once, with three public entry points that share every piece (prompt tokens, the
output upscaling, the IoU and hypernetwork heads):

- ``forward``: the published interface, differentiable (fine-tuning uses it);
- ``decode(ctx, ...)``: prompts against one image's ``ImageContext`` (``prepare_image``):
  without a mask prompt the first layer's image side is shared by all prompts;
- ``decode_points(ctx, ...)``: many point prompts on one image, with the image tokens in
  exact low-rank form (``lowrank.py``; its per-image part is built on first use and kept
  in the context).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import TransformerContext, TwoWayTransformer

__all__ = ["ImageContext", "MaskDecoder", "UpscalingLinear"]


@dataclass
class ImageContext:
    """Everything the decoder reuses across prompts of one image (see
    ``MaskDecoder.prepare_image``). Valid only for the decoder (weights, device, dtype) that
    made it.

    ``image_embeddings``: 1 x C x H x W encoder output; ``image_pe``: 1 x C x H x W dense
    positional encoding; ``no_mask_dense``: the dense embedding of "no mask prompt";
    ``transformer``: the no-mask-prompt precomputation. The low-rank precomputation of
    ``decode_points`` is added on first use (thread-safe).
    """

    image_embeddings: torch.Tensor
    image_pe: torch.Tensor
    no_mask_dense: torch.Tensor
    transformer: TransformerContext
    _lowrank: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class UpscalingLinear(NamedTuple):
    """``output_upscaling`` as linear maps on channels-last tokens (each kernel-2, stride-2
    transposed conv writes one 2 x 2 block per input pixel, with no overlap).

    ``w1``: (kH kW C/4) x C, ``b1``: C/4 (per output pixel); ``norm``: the LayerNorm2d;
    ``w2``: (kH kW C/8) x C/4, ``b2``: C/8; ``act1``/``act2``: the activations.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    norm: LayerNorm2d
    act1: nn.Module
    w2: torch.Tensor
    b2: torch.Tensor
    act2: nn.Module


class MaskDecoder(nn.Module):
    """Prompt tokens + image embedding -> mask logits (4x the embedding grid) and IoU
    estimates. ``forward`` is the published interface; ``prepare_image`` + ``decode`` is the
    per-image fast path and ``decode_points`` the many-points path, with the same results."""

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        # 64² x C -> 128² x C/4 -> 256² x C/8; indices match checkpoint keys
        # output_upscaling.{0,1,3}.
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    # ---------------------------------------------------------------------------------
    # plain path (published semantics)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks B x C' x 4H x 4W (logits) and IoU predictions B x C'.

        ``image_embeddings``: 1 x C x H x W (shared by all prompts) or B x C x H x W;
        ``image_pe``: 1 x C x H x W; ``sparse_prompt_embeddings``: B x N x C;
        ``dense_prompt_embeddings``: B x C x H x W. C' is 3 (masks 1..3) with
        ``multimask_output``, else 1 (mask 0).
        """
        tokens = self.prompt_tokens(sparse_prompt_embeddings)
        # 1 or B x C x H x W + B x C x H x W -> B x C x H x W (one image copy per prompt,
        # unavoidable here because the dense embedding differs per prompt).
        src = image_embeddings + dense_prompt_embeddings
        hs, keys = self.transformer(src, image_pe, tokens)
        return self._heads(hs, keys, src.shape[-2:], multimask_output)

    # ---------------------------------------------------------------------------------
    # per-image precomputation (fast path for interactive clicks)

    def prepare_image(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, no_mask_dense: torch.Tensor
    ) -> ImageContext:
        """Precompute what every prompt without a mask prompt shares for one image.

        ``image_embeddings``: 1 x C x H x W; ``image_pe``: 1 x C x H x W (the prompt
        encoder's ``get_dense_pe()``); ``no_mask_dense``: 1 x C x H x W or C x 1 x 1
        broadcastable (the prompt encoder's ``no_mask_dense()``).
        """
        if image_embeddings.dim() != 4 or image_embeddings.shape[0] != 1:
            raise ValueError(
                f"image_embeddings must be 1 x C x H x W, got shape {tuple(image_embeddings.shape)}"
            )
        src = image_embeddings + no_mask_dense
        return ImageContext(
            image_embeddings=image_embeddings,
            image_pe=image_pe,
            no_mask_dense=no_mask_dense,
            transformer=self.transformer.prepare(src, image_pe),
        )

    def decode(
        self,
        ctx: ImageContext,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same result as ``forward`` on ``ctx``'s image, without per-prompt image copies
        for the first transformer layer.

        ``sparse_prompt_embeddings``: B x N x C. ``dense_prompt_embeddings``: ``None`` when
        there is no mask prompt (fast path), else B x C x H x W (plain path). Returns masks
        B x C' x 4H x 4W (logits) and IoU predictions B x C'.
        """
        if dense_prompt_embeddings is not None:
            return self.forward(
                ctx.image_embeddings,
                ctx.image_pe,
                sparse_prompt_embeddings,
                dense_prompt_embeddings,
                multimask_output,
            )
        tokens = self.prompt_tokens(sparse_prompt_embeddings)
        hs, keys = self.transformer.forward_prepared(ctx.transformer, tokens)
        return self._heads(hs, keys, ctx.transformer.size, multimask_output)

    # ---------------------------------------------------------------------------------
    # many point prompts on one image (low-rank image tokens, lowrank.py)

    def decode_points(
        self,
        ctx: ImageContext,
        sparse_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        *,
        iou_thresh: float | None = None,
        out: torch.Tensor | None = None,
        extent: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same result as ``decode`` without a mask prompt (up to float rounding), for many
        prompts of a few points each: the image tokens are kept in exact low-rank form.

        ``sparse_prompt_embeddings``: B x N x C of point prompts only (no boxes). Returns
        masks B x C' x 4H x 4W (logits) and IoU predictions B x C'. ``iou_thresh``: only
        prompts with some IoU prediction above it get masks (the others' logits are zero);
        ``out``: a B x C' x 4H x 4W buffer for the logits; ``extent``: (rows, cols) of
        logits needed from the top left (the others are left as they were in ``out``).
        """
        from .lowrank import decode_sparse_lowrank, prepare_decoder_lowrank

        with ctx._lock:
            if ctx._lowrank is None:
                ctx._lowrank = prepare_decoder_lowrank(
                    self, ctx.image_embeddings, ctx.image_pe, ctx.no_mask_dense
                )
            lowrank = ctx._lowrank
        masks, iou, _ = decode_sparse_lowrank(
            lowrank, sparse_prompt_embeddings, multimask_output, iou_thresh, out=out, extent=extent
        )
        return masks, iou

    # ---------------------------------------------------------------------------------
    # shared pieces (public: the low-rank path in lowrank.py is built from them)

    def mask_slice(self, multimask_output: bool) -> range:
        """Indices of the mask tokens whose masks are returned: 1..M-1 or 0."""
        return range(1, self.num_mask_tokens) if multimask_output else range(0, 1)

    def heads(
        self, iou_token: torch.Tensor, mask_tokens: torch.Tensor, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output tokens after the transformer -> (IoU predictions B x C', hypernetwork
        weights B x C' x C/8). ``iou_token``: B x C; ``mask_tokens``: B x C' x C, the mask
        tokens of ``mask_slice(multimask_output)`` in that order."""
        chosen = self.mask_slice(multimask_output)
        hyper = torch.stack(
            [
                cast(MLP, self.output_hypernetworks_mlps[i])(mask_tokens[:, k, :])
                for k, i in enumerate(chosen)
            ],
            dim=1,
        )  # B x C' x C/8
        iou = self.iou_prediction_head(iou_token)  # B x (1 + M)
        return iou[:, chosen.start : chosen.stop], hyper

    def upscaling_linear(self) -> UpscalingLinear:
        """``output_upscaling``'s weights laid out as linear maps (see ``UpscalingLinear``)."""
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        assert isinstance(conv1, nn.ConvTranspose2d) and isinstance(conv2, nn.ConvTranspose2d)
        assert isinstance(norm, LayerNorm2d)
        assert conv1.bias is not None and conv2.bias is not None
        # Transposed-conv weight C_in x C_out x kH x kW -> (kH kW C_out) x C_in, as a linear
        # layer's weight.
        w1 = conv1.weight.permute(2, 3, 1, 0).reshape(-1, conv1.in_channels)
        w2 = conv2.weight.permute(2, 3, 1, 0).reshape(-1, conv2.in_channels)
        return UpscalingLinear(w1, conv1.bias, norm, act1, w2, conv2.bias, act2)

    def prompt_tokens(self, sparse: torch.Tensor) -> torch.Tensor:
        """B x N x C prompt tokens -> B x (1 + M + N) x C with the output tokens first."""
        out = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        # (1 + M) x C -> B x (1 + M) x C
        out = out.unsqueeze(0).expand(sparse.shape[0], -1, -1)
        return torch.cat([out, sparse.to(out.dtype)], dim=1)

    def _upscaled_tokens(self, keys: torch.Tensor) -> torch.Tensor:
        """B x HW x C image tokens -> B x HW x 2 x 2 x 2 x 2 x C/8 upscaled features.

        Same values as running ``output_upscaling`` on the B x C x H x W grid, but each
        stride-2, kernel-2 transposed conv is done as one matmul that produces the 2 x 2
        output pixels of every input pixel (these convs have no overlap), so the work stays
        channels-last: about 5x faster than ConvTranspose2d on a CPU. Output pixel
        (4y + 2*dy1 + dy2, 4x + 2*dx1 + dx2) sits at [:, y*W + x, dy1, dx1, dy2, dx2, :].
        """
        up = self.upscaling_linear()
        b, hw, _ = keys.shape
        c4, c8 = len(up.b1), len(up.b2)
        # B x HW x C -> B x HW x (2 x 2 x C/4) -> B x (HW 4) x C/4; the bias repeats for
        # each of the 2 x 2 output pixels.
        y = F.linear(keys, up.w1, up.b1.repeat(4)).reshape(b, hw * 4, c4)
        norm = up.norm
        y = up.act1(F.layer_norm(y, (c4,), norm.weight, norm.bias, norm.eps))
        # B x (HW 4) x C/4 -> B x (HW 4) x (2 x 2 x C/8) -> B x HW x 2 x 2 x 2 x 2 x C/8
        z = F.linear(y, up.w2, up.b2.repeat(4)).reshape(b, hw, 2, 2, 2, 2, c8)
        return cast(torch.Tensor, up.act2(z))

    def _heads(
        self,
        hs: torch.Tensor,
        keys: torch.Tensor,
        size: tuple[int, int] | torch.Size,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformer outputs (tokens B x N x C, image tokens B x HW x C) -> (masks
        B x C' x 4H x 4W, IoU B x C')."""
        b = keys.shape[0]
        h, w = int(size[0]), int(size[1])
        upscaled = self._upscaled_tokens(keys)  # B x HW x 2 x 2 x 2 x 2 x C/8
        # Only the masks that are returned are computed: 1..3 or 0.
        chosen = self.mask_slice(multimask_output)
        iou, hyper = self.heads(
            hs[:, 0, :], hs[:, 1 + chosen.start : 1 + chosen.stop], multimask_output
        )
        n = hyper.shape[1]
        # B x (HW 16) x C/8 @ B x C/8 x C' -> B x (HW 16) x C'
        flat = upscaled.reshape(b, -1, upscaled.shape[-1]) @ hyper.transpose(1, 2)
        # B x H x W x dy1 x dx1 x dy2 x dx2 x C' -> B x C' x H x dy1 x dy2 x W x dx1 x dx2
        masks = flat.reshape(b, h, w, 2, 2, 2, 2, n).permute(0, 7, 1, 3, 5, 2, 4, 6)
        masks = masks.reshape(b, n, 4 * h, 4 * w)
        return masks, iou
