"""SAM 2's mask decoder (``sam2/modeling/sam/mask_decoder.py``, sam2 1.1.0).

Differences from SAM's decoder: an extra object-score token before the IoU token with its
own 3-layer head (the logit that an object is present); the IoU head ends in a sigmoid;
the mask upscaling adds the stride-8 and stride-4 high-resolution features of the image
encoder (``conv_s1`` / ``conv_s0`` projections, applied once per image at encoding;
computed channels last, see ``upscaling.py``); and
with ``multimask=False`` the single-mask output falls back to the best of the three
multimask outputs when its stability score (IoU of the masks thresholded at +delta and
-delta) is below ``stability_thresh`` ("dynamic multimask via stability", switched on by
the published ``build_sam2`` for image prediction).

Per-image context: the image embedding, the high-resolution maps, the dense positional
encoding, and the transformer's first-layer image side for prompts without a mask input
(:meth:`TwoWayTransformer.prepare`), so a click does not recompute them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..sam.common import MLP, LayerNorm2d
from ..sam.transformer import TransformerContext, TwoWayTransformer
from .upscaling import prepare_skip, upscale_masks_features

__all__ = ["DecoderOutput", "Sam2ImageContext", "Sam2MaskDecoder"]


@dataclass
class Sam2ImageContext:
    """What every prompt of one image shares (batch 1).

    ``image_embed``: 1 x C x 64 x 64 (``no_mem_embed`` already added); ``skip_s0``:
    1 x 256 x 256 x C/8 and ``skip_s1``: 1 x 128 x 128 x C/4 (the projected high-res maps,
    channels last, plus the upscaling convolutions' biases; ``upscaling.prepare_skip``);
    ``image_pe``: 1 x C x 64 x 64; ``no_mask``: the transformer context of the image with the
    no-mask dense embedding added.
    """

    image_embed: torch.Tensor
    skip_s0: torch.Tensor
    skip_s1: torch.Tensor
    image_pe: torch.Tensor
    no_mask: TransformerContext


@dataclass
class DecoderOutput:
    """All of the decoder's outputs for B prompts.

    ``masks``: B x C x 256 x 256 logits and ``iou``: B x C (sigmoid) after the multimask /
    single-mask choice; ``object_score``: B x 1 logit that an object is present, when asked
    for (the published image predictor computes and ignores it), else None.
    """

    masks: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor | None


class Sam2MaskDecoder(nn.Module):
    """Prompt tokens + image features -> mask logits, IoU predictions, object score."""

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        stability_delta: float = 0.05,
        stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer_dim = d
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.obj_score_token = nn.Embedding(1, d)
        # Indices 0, 1, 3 match the checkpoint keys output_upscaling.{0,1,3}.
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(d, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)
        self.pred_obj_score_head = MLP(d, d, 1, 3)
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh

    # ---------------------------------------------------------------------------------
    # per image

    def prepare(
        self,
        image_embed: torch.Tensor,
        feat_s0: torch.Tensor,
        feat_s1: torch.Tensor,
        image_pe: torch.Tensor,
        no_mask_dense: torch.Tensor,
    ) -> Sam2ImageContext:
        """Context for one image (all inputs batch 1; ``no_mask_dense`` 1 x C x 64 x 64)."""
        up1, up2 = self.output_upscaling[0], self.output_upscaling[3]
        assert isinstance(up1, nn.ConvTranspose2d) and isinstance(up2, nn.ConvTranspose2d)
        return Sam2ImageContext(
            image_embed=image_embed,
            skip_s0=prepare_skip(feat_s0, up2),
            skip_s1=prepare_skip(feat_s1, up1),
            image_pe=image_pe,
            no_mask=self.transformer.prepare(image_embed + no_mask_dense, image_pe),
        )

    # ---------------------------------------------------------------------------------
    # per prompt batch

    def _output_tokens(self, batch: int) -> torch.Tensor:
        """B x (2 + mask tokens) x C: object score, IoU, mask tokens."""
        tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )
        return tokens.unsqueeze(0).expand(batch, -1, -1)

    def _hypernetworks(self, mask_tokens: torch.Tensor) -> torch.Tensor:
        """B x T x C mask tokens -> B x T x C/8: token t through its own 3-layer MLP
        (``output_hypernetworks_mlps[t]``), all T at once as batched matmuls."""
        mlps = [m for m in self.output_hypernetworks_mlps if isinstance(m, MLP)]
        depth = len(mlps[0].layers)
        # T x B x C: one batch entry per token's MLP
        x = mask_tokens.transpose(0, 1)
        for i in range(depth):
            layers = [layer for m in mlps if isinstance(layer := m.layers[i], nn.Linear)]
            # T x C_in x C_out weights (Linear stores C_out x C_in) and T x 1 x C_out biases
            weight = torch.stack([layer.weight for layer in layers]).transpose(1, 2)
            bias = torch.stack([layer.bias for layer in layers]).unsqueeze(1)
            x = torch.baddbmm(bias, x, weight)
            if i < depth - 1:
                x = torch.relu(x)
        return x.transpose(0, 1)  # T x B x C/8 -> B x T x C/8

    def decode(
        self,
        ctx: Sam2ImageContext,
        sparse: torch.Tensor,
        dense: torch.Tensor | None,
        multimask: bool,
        *,
        object_score: bool = False,
    ) -> DecoderOutput:
        """``sparse``: B x N x C prompt tokens; ``dense``: B x C x 64 x 64 mask-prompt
        embedding or None (no mask prompt: the prepared context is used). The object-score
        head runs only with ``object_score=True`` (image prediction does not use it);
        otherwise ``DecoderOutput.object_score`` is None."""
        batch = sparse.shape[0]
        tokens = torch.cat([self._output_tokens(batch), sparse], dim=1)
        if dense is None:
            hs, keys = self.transformer.forward_prepared(ctx.no_mask, tokens)
        else:
            hs, keys = self.transformer(ctx.image_embed + dense, ctx.image_pe, tokens)
        h, w = ctx.image_embed.shape[-2:]
        # B x 4H x 4W x C/8, channels last
        x = upscale_masks_features(keys, (h, w), self.output_upscaling, ctx.skip_s1, ctx.skip_s0)
        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens, :]
        hyper = self._hypernetworks(mask_tokens)
        b, hh, ww, c8 = x.shape
        # B x T x C/8 @ (B x HW x C/8)^T -> B x T x HW -> B x T x H x W
        masks = (hyper @ x.view(b, hh * ww, c8).transpose(1, 2)).view(b, -1, hh, ww)
        iou = torch.sigmoid(self.iou_prediction_head(hs[:, 1, :]))
        score = self.pred_obj_score_head(hs[:, 0, :]) if object_score else None
        if multimask:
            masks, iou = masks[:, 1:], iou[:, 1:]
        elif not self.training:
            masks, iou = self._dynamic_single_mask(masks, iou)
        else:
            masks, iou = masks[:, :1], iou[:, :1]
        return DecoderOutput(masks, iou, score)

    def stability_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """... x H x W logits -> ... IoU of the masks at +delta and -delta (1 when empty)."""
        flat = logits.flatten(-2)  # ... x H x W -> ... x HW
        inter = (flat > self.stability_delta).sum(-1).float()
        union = (flat > -self.stability_delta).sum(-1).float()
        return torch.where(union > 0, inter / union, torch.ones_like(union))

    def _dynamic_single_mask(
        self, masks: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B x 4 x H x W, B x 4 -> B x 1 x H x W, B x 1: token 0's mask when stable, else
        the multimask output with the highest predicted IoU."""
        rows = torch.arange(masks.shape[0], device=masks.device)
        best = iou[:, 1:].argmax(dim=-1) + 1
        stable = self.stability_scores(masks[:, 0]) >= self.stability_thresh  # B
        choice = torch.where(stable, torch.zeros_like(best), best)
        return masks[rows, choice].unsqueeze(1), iou[rows, choice].unsqueeze(1)
