"""Mask decoder for many point prompts on one image, with the image tokens kept low-rank.

In SAM's decoder (``mask_decoder.py`` / ``transformer.py``) the image tokens of a prompt
change only by (a) adding the output of an image -> tokens attention, i.e. per position a
softmax-weighted sum of a few per-prompt vectors, and (b) LayerNorm. So for every prompt the
image tokens (HW x C) can be written exactly as

    x = a * Y + L @ U + c

with ``Y = X * G`` shared by all prompts (X: image embedding + no-mask dense embedding,
HW x C; G: product of the LayerNorm gains so far, C), ``a`` a per-prompt scalar per position
(HW), ``L`` per-prompt coefficients (HW x R), ``U`` per-prompt rows (R x C) and ``c`` a
per-prompt constant (C). R grows by n_heads x (T - 1) + 2 per layer (T prompt tokens).

- adding an attention output ``A_h @ (V_h W_o,h^T) + b_o``: the attention weights become
  new columns of L, the head values times the output projection new rows of U, b_o goes
  into c (each position's weights over the T tokens sum to 1, so one token per head is
  folded into the others and c);
- LayerNorm: the per-position mean and variance follow from per-image statistics of Y and
  per-prompt cross terms (Y_centered @ U^T: HW x R, and R x R Gram matrices); after it
  a' = a / sigma, G' = G * gamma, and two columns are added;
- a linear map W of x (or of x + PE): a * (Y W^T) + L @ (U W^T) + (c W^T + PE W^T + b),
  where Y W^T and PE W^T are per-image constants;
- the first transposed conv of the output upscaling (kernel 2, stride 2: each output pixel
  reads one input position) is such a linear map too; LayerNorm2d, GELU and the second
  conv are then evaluated per prompt (``MaskDecoder.upscaling_linear``).

So the per-prompt work that scales with HW is O(HW x R x (R + d)) in the transformer
(the LayerNorm's U . Y terms use the head structure of the rows, ``lowrank_ops.layer_norm``)
instead of O(HW x C x C) per projection. Results equal the standard path up to float
rounding (see tests/test_lowrank.py). Only point prompts without mask input are supported.

Reached through ``MaskDecoder.decode_points`` (which keeps the per-image part in its
``ImageContext``); built only from the decoder's public pieces (``prompt_tokens``,
``mask_slice``, ``heads``, ``upscaling_linear``, the transformer's layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from .fused import gelu_, linear_gelu
from .lowrank_ops import Keys, Stage, heads, image_to_tokens, layer_norm, tokens_to_image
from .transformer import TwoWayAttentionBlock

if TYPE_CHECKING:
    from .mask_decoder import MaskDecoder
    from .prompt_encoder import PromptEncoder
    from .sam import Sam

__all__ = [
    "LowRankContext",
    "decode_points_lowrank",
    "decode_sparse_lowrank",
    "prepare_decoder_lowrank",
    "prepare_lowrank",
]

# Prompts per transformer pass: the token-side work is batched over them, the
# position-side work runs one prompt at a time (lowrank_ops). 8, 16 and 32 measured the
# same within the noise on a 2-core Xeon (4 and 2 were slower).
_CHUNK = 16
# Positions per mask-head step (whole image rows). With the head split by kernel row
# (_MaskHead) a whole 64 x 64 grid needs 2 MB work buffers; 1024 and 2048 were slower.
_TILE = 4096


@dataclass
class LowRankContext:
    """Per-image precomputation for ``decode_points_lowrank`` (see ``prepare_lowrank``).

    ``stages[i]``: image part entering two-way layer i, ``stages[depth]``: after the last
    layer (used by the final attention and the upscaling); ``pe_proj``: name -> PE @ W^T + b
    in head layout n x N x d; ``size``: (H, W) of the embedding grid; ``prompt_encoder``:
    set by ``prepare_lowrank`` for ``decode_points_lowrank`` (coordinates in).
    """

    decoder: MaskDecoder
    stages: list[Stage]
    pe_proj: dict[str, torch.Tensor]
    size: tuple[int, int]
    prompt_encoder: PromptEncoder | None = None


def _stage(y: torch.Tensor, projections: dict[str, tuple[nn.Linear, int]]) -> Stage:
    mean = y.mean(dim=-1)
    centered = y - mean[:, None]
    proj = {
        name: _layout(name, heads(F.linear(y, lin.weight), n))
        for name, (lin, n) in projections.items()
    }
    return Stage(y, mean, centered, (centered * centered).sum(dim=-1), proj)


def _layout(name: str, x: torch.Tensor) -> torch.Tensor:
    """n x N x d head layout -> the layout ``lowrank_ops`` reads: transposed (n x d x N) for
    the logit-side projections (keys of t2i, queries of i2t), as is for the values."""
    # n x N x d -> n x d x N
    return (x.transpose(-2, -1) if name.endswith(("_k", "_q")) else x).contiguous()


def _gains(
    gammas: Sequence[torch.Tensor], start: int, stop: int, like: torch.Tensor
) -> torch.Tensor:
    """Product of the LayerNorm gains of layers start .. stop - 1 (ones when empty)."""
    out = torch.ones_like(like)
    for g in gammas[start:stop]:
        out = out * g
    return out


@torch.no_grad()
def prepare_lowrank(sam: Sam, image_embeddings: torch.Tensor) -> LowRankContext:
    """Per-image constants. ``image_embeddings``: 1 x C x H x W (or C x H x W) encoder output."""
    if image_embeddings.dim() == 3:
        image_embeddings = image_embeddings.unsqueeze(0)
    pe = sam.prompt_encoder
    ctx = prepare_decoder_lowrank(
        sam.mask_decoder, image_embeddings, pe.get_dense_pe(), pe.no_mask_dense()
    )
    ctx.prompt_encoder = pe
    return ctx


@torch.no_grad()
def prepare_decoder_lowrank(
    dec: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    no_mask_dense: torch.Tensor,
) -> LowRankContext:
    """Per-image constants of ``dec`` for one image. ``image_embeddings``: 1 x C x H x W
    encoder output; ``image_pe``: 1 x C x H x W dense PE; ``no_mask_dense``: broadcastable
    to the embedding (the prompt encoder's "no mask" embedding)."""
    if image_embeddings.dim() != 4 or image_embeddings.shape[0] != 1:
        raise ValueError(
            f"image_embeddings must be 1 x C x H x W, got shape {tuple(image_embeddings.shape)}"
        )
    tr = dec.transformer
    layers = [cast(TwoWayAttentionBlock, layer) for layer in tr.layers]
    gammas = [layer.norm4.weight for layer in layers]
    src = image_embeddings + no_mask_dense
    h, w = int(src.shape[-2]), int(src.shape[-1])
    # 1 x C x H x W -> C x N -> N x C
    x = src[0].flatten(1).transpose(0, 1).contiguous()
    pe = image_pe[0].flatten(1).transpose(0, 1).contiguous()
    stages: list[Stage] = []
    pe_proj: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        needed = {
            "t2i_k": (t2i.k_proj, t2i.num_heads),
            "t2i_v": (t2i.v_proj, t2i.num_heads),
            "i2t_q": (i2t.q_proj, i2t.num_heads),
        }
        st = _stage(x * _gains(gammas, 0, i, x[0]), needed)
        for j in range(i + 1):
            att = layers[j].cross_attn_image_to_token
            zj = F.linear(st.centered * _gains(gammas, j, i, x[0]), att.out_proj.weight.T)
            # N x (n d) -> N x n x d -> n x d x N
            st.z.append(zj.reshape(zj.shape[0], att.num_heads, -1).permute(1, 2, 0).contiguous())
        st.g = [st.centered @ _gains(gammas, k, i, x[0]) for k in range(i)]
        stages.append(st)
        for name in ("t2i_k", "i2t_q"):
            lin, n = needed[name]
            pe_proj[f"{i}.{name}"] = _layout(name, heads(F.linear(pe, lin.weight, lin.bias), n))
    fin = tr.final_attn_token_to_image
    last = _stage(
        x * _gains(gammas, 0, len(layers), x[0]),
        {"t2i_k": (fin.k_proj, fin.num_heads), "t2i_v": (fin.v_proj, fin.num_heads)},
    )
    pe_proj["final.t2i_k"] = _layout(
        "t2i_k", heads(F.linear(pe, fin.k_proj.weight, fin.k_proj.bias), fin.num_heads)
    )
    last.proj["conv1"] = F.linear(last.y, dec.upscaling_linear().w1)  # N x (2 x 2 x C/4)
    stages.append(last)
    return LowRankContext(dec, stages, pe_proj, (h, w))


def _is_exact_gelu(act: nn.Module) -> bool:
    return isinstance(act, nn.GELU) and act.approximate == "none"


def _gelu_(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)``, in place when ``act`` is the exact GELU (SAM's default)."""
    return gelu_(x) if _is_exact_gelu(act) else cast(torch.Tensor, act(x))


class _MaskHead:
    """The mask head of the decoder for single prompts: final image tokens -> upscaling
    (``MaskDecoder.upscaling_linear``) -> product with the hypernetwork outputs.

    Each transposed conv (kernel 2, stride 2) writes a 2 x 2 block per input pixel, so low-res
    row 4y + 2 dy1 + dy2 only needs the conv outputs of sub-row dy1, then dy2. Computing the
    head per (dy1, dy2) makes each product with the hypernetwork a run of whole low-res
    rows (x, dx1, dx2 already in column order 4x + 2 dx1 + dx2): no 7-d permute of the
    logits. Done in steps of whole embedding rows, with one set of work buffers for all
    prompts (fresh multi-megabyte tensors cost page faults comparable to the arithmetic).
    """

    def __init__(self, ctx: LowRankContext, extent: Sequence[int] | None = None) -> None:
        up = ctx.decoder.upscaling_linear()
        self.ctx, self.norm, self.act1, self.act2 = ctx, up.norm, up.act1, up.act2
        # the second conv and its GELU as one call (``fused.linear_gelu``)
        self.exact_gelu2 = _is_exact_gelu(up.act2)
        c4, c8 = len(up.b1), len(up.b2)
        self.c4, self.c8 = c4, c8
        # (kH kW C_out) x C_in rows, split by kernel row: w1[dy1] is (2 x C/4) x C (dx1, c)
        self.w1 = up.w1.view(2, 2 * c4, -1)
        self.b1 = up.b1.repeat(2)  # (2 x C/4), the same for both kernel rows
        # conv2: w2[dy2] is (2 x C/8) x C/4 (rows dx2, c), as F.linear takes it
        self.w2 = up.w2.reshape(2, 2 * c8, c4).contiguous()
        self.b2 = up.b2.repeat(2)
        h, w = ctx.size
        # Embedding cells whose 4 x 4 low-res blocks cover the top-left ``extent``: only
        # those are computed (each transposed conv, LayerNorm2d and GELU is per position).
        if extent is None:
            extent = (4 * h, 4 * w)
        self.hv, self.wv = min(h, -(-int(extent[0]) // 4)), min(w, -(-int(extent[1]) // 4))
        img = ctx.stages[-1].proj["conv1"]  # N x (dy1 dx1 C/4)
        if self.wv < w:
            # N x (2 2 C/4) -> H x W x (2 2 C/4) -> the Hv x Wv corner, positions row-major
            img = img.view(h, w, -1)[: self.hv, : self.wv].reshape(self.hv * self.wv, -1)
        self.img = img.view(-1, 2, 2 * c4)  # N' x dy1 x (dx1, C/4)
        self.step = max(1, _TILE // self.wv)
        m = self.step * self.wv  # positions per step
        like = ctx.stages[-1].y
        self.y = like.new_empty(m, 2 * c4)
        # conv2 output when its activation is not the exact GELU (else ``linear_gelu``)
        self.z = None if self.exact_gelu2 else like.new_empty(2 * m, 2 * c8)

    def __call__(self, keys: Keys, b: int, hyper: torch.Tensor, out: torch.Tensor) -> None:
        """Low-res mask logits of prompt b -> ``out`` (C' x 4H x 4W), from its
        hypernetwork outputs ``hyper`` (C' x C/8)."""
        ctx, norm, c4, c8 = self.ctx, self.norm, self.c4, self.c8
        h, w = ctx.size
        hv, wv = self.hv, self.wv
        n = hyper.shape[0]
        # the first conv is linear in the tokens: a * (Y W1^T) + L @ (U W1^T) + c W1^T + bias
        rows = keys.rows[b]
        low, a = keys.low(b), keys.a[b]
        if wv < w:
            # R x N -> R x H x W -> R x Hv x Wv -> R x N' (a copy; N' positions row-major)
            low = low.view(-1, h, w)[:, :hv, :wv].reshape(low.shape[0], -1)
            a = a.view(h, w)[:hv, :wv].reshape(-1)
        # C' x 4H x 4W -> C' x H x dy1 x dy2 x 4W
        dest = out.view(n, h, 2, 2, 4 * w)
        for dy1 in range(2):
            base = F.linear(keys.const[b], self.w1[dy1], self.b1)  # (2 x C/4)
            rows_w = F.linear(rows, self.w1[dy1])  # R x (2 x C/4)
            img = self.img[:, dy1]  # N' x (2 x C/4)
            for y0 in range(0, hv, self.step):
                y1 = min(hv, y0 + self.step)
                lo, hi = y0 * wv, y1 * wv
                y = torch.addcmul(base, a[lo:hi, None], img[lo:hi], out=self.y[: hi - lo])
                y.addmm_(low[:, lo:hi].T, rows_w)
                # N' x (dx1 x C/4) -> (N' 2) x C/4, rows in order (y, x, dx1)
                g = _gelu_(
                    self.act1,
                    F.layer_norm(y.view(-1, c4), (c4,), norm.weight, norm.bias, norm.eps),
                )
                for dy2 in range(2):
                    # (N' 2) x C/4 -> (N' 2) x (dx2 x C/8)
                    if self.exact_gelu2:
                        z = linear_gelu(g, self.w2[dy2], self.b2)
                    else:
                        assert self.z is not None
                        z = torch.addmm(self.b2, g, self.w2[dy2].T, out=self.z[: len(g)])
                        z = _gelu_(self.act2, z)
                    # C' x C/8 @ C/8 x (N' 2 2): columns (y, x, dx1, dx2) = low-res rows
                    dest[:, y0:y1, dy1, dy2, : 4 * wv].copy_(
                        (hyper @ z.view(-1, c8).T).view(n, y1 - y0, -1)
                    )


@torch.inference_mode()
def decode_points_lowrank(
    ctx: LowRankContext,
    point_coords: torch.Tensor,
    point_labels: torch.Tensor,
    multimask_output: bool = True,
    iou_thresh: float | None = None,
    *,
    out: torch.Tensor | None = None,
    extent: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``decode_sparse_lowrank`` of point prompts (a context from ``prepare_lowrank``).

    ``point_coords``: B x N x 2 float XY in the model input frame (resized image, pixels);
    ``point_labels``: B x N (1 fg, 0 bg, -1 padding).
    """
    if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
        raise ValueError(f"point_coords must be B x N x 2, got {tuple(point_coords.shape)}")
    if point_labels.shape != point_coords.shape[:2]:
        raise ValueError(
            f"point_labels must be B x N = {tuple(point_coords.shape[:2])}, "
            f"got {tuple(point_labels.shape)}"
        )
    if ctx.prompt_encoder is None:
        raise ValueError("ctx has no prompt encoder: make it with prepare_lowrank(sam, ...)")
    sparse, _ = ctx.prompt_encoder.encode((point_coords, point_labels), None, None)
    return decode_sparse_lowrank(ctx, sparse, multimask_output, iou_thresh, out=out, extent=extent)


@torch.inference_mode()
def decode_sparse_lowrank(
    ctx: LowRankContext,
    sparse: torch.Tensor,
    multimask_output: bool = True,
    iou_thresh: float | None = None,
    *,
    out: torch.Tensor | None = None,
    extent: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode B point prompts on the image of ``ctx``.

    ``sparse``: B x N x C sparse prompt embeddings of points (``PromptEncoder.encode``).
    Returns (low-res logits
    B x C' x 4H x 4W, IoU predictions B x C', kept B bool), C' = 3 with
    ``multimask_output`` else 1. With ``iou_thresh`` only prompts with some IoU prediction
    > ``iou_thresh`` are kept and get masks; the logits of the others are left zero.
    Same values as ``Sam.predict_with_context`` up to float rounding. ``out``: a
    B x C' x 4H x 4W tensor to write the logits into (and return), e.g. one buffer reused
    for every batch of a grid (a fresh 50 MB tensor per 64 prompts costs 12k page faults).
    ``extent``: (rows, cols) of low-res logits that are needed, counted from the top left
    (e.g. what the resized image covers; the rest of the padded square is cropped away in
    postprocessing). The mask head then runs only on the embedding cells that cover it, and
    logits beyond those cells are not written: they keep the values of ``out`` (or are
    uninitialised in a new tensor). Default: all.
    """
    if sparse.dim() != 3:
        raise ValueError(f"sparse must be B x N x C, got {tuple(sparse.shape)}")
    b = len(sparse)
    n_out = len(ctx.decoder.mask_slice(multimask_output))
    h, w = ctx.size
    like = ctx.stages[0].y
    shape = (b, n_out, 4 * h, 4 * w)
    if out is not None and (tuple(out.shape) != shape or out.dtype != like.dtype):
        raise ValueError(
            f"out must be a {like.dtype} tensor of shape {shape}, got {out.dtype} "
            f"{tuple(out.shape)}"
        )
    if extent is not None and (
        len(extent) != 2 or any(not isinstance(e, int) or e < 1 for e in extent)
    ):
        raise ValueError(f"extent must be two positive ints (rows, cols), got {extent!r}")
    masks = like.new_empty(shape) if out is None else out
    head = _MaskHead(ctx, extent)
    iou = like.new_empty(b, n_out)
    kept = torch.empty(b, dtype=torch.bool, device=like.device)
    for i in range(0, b, _CHUNK):
        j = min(b, i + _CHUNK)
        _decode(
            ctx,
            sparse[i:j],
            multimask_output,
            iou_thresh,
            head,
            (masks[i:j], iou[i:j], kept[i:j]),
        )
    return masks, iou, kept


def _decode(
    ctx: LowRankContext,
    sparse: torch.Tensor,
    multimask_output: bool,
    iou_thresh: float | None,
    head: _MaskHead,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """``decode_sparse_lowrank`` for one chunk of prompts, into ``out`` (masks, iou, kept)."""
    dec = ctx.decoder
    tr = dec.transformer
    tokens = dec.prompt_tokens(sparse)  # B x T x C
    qpe = tokens
    b, t, c = tokens.shape
    layers = [cast(TwoWayAttentionBlock, layer) for layer in tr.layers]
    r_max = sum(layer.cross_attn_image_to_token.num_heads * (t - 1) + 2 for layer in layers)
    keys = Keys.image_only(b, ctx.stages[0].y.shape[0], c, r_max, tokens)
    queries = tokens
    for i, layer in enumerate(layers):
        st = ctx.stages[i]
        queries = layer.tokens_self_attention(queries, qpe)
        attn_out = tokens_to_image(
            layer.cross_attn_token_to_image,
            keys,
            queries + qpe,
            st.proj["t2i_k"],
            ctx.pe_proj[f"{i}.t2i_k"],
            st.proj["t2i_v"],
        )
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))
        image_to_tokens(
            layer.cross_attn_image_to_token,
            keys,
            i,
            queries,
            qpe,
            st.proj["i2t_q"],
            ctx.pe_proj[f"{i}.i2t_q"],
        )
        layer_norm(layer.norm4, keys, st, i)
    last = ctx.stages[-1]
    masks, iou, kept = out
    chosen = dec.mask_slice(multimask_output)
    # The final attention treats each token on its own, and only the IoU token and the
    # chosen mask tokens are read after it: the others (the unused mask token, the prompt
    # tokens) are left out, 4 of 7 tokens for one point with multimask output.
    used = [0, *(1 + j for j in chosen)]
    queries = queries[:, used]
    attn_out = tokens_to_image(
        tr.final_attn_token_to_image,
        keys,
        queries + qpe[:, used],
        last.proj["t2i_k"],
        ctx.pe_proj["final.t2i_k"],
        last.proj["t2i_v"],
    )
    hs = tr.norm_final_attn(queries + attn_out)  # B x T' x C: IoU token, chosen mask tokens
    iou_all, hyper_all = dec.heads(hs[:, 0, :], hs[:, 1:, :], multimask_output)
    iou.copy_(iou_all)
    if iou_thresh is None:
        kept.fill_(True)
    else:
        torch.any(iou > iou_thresh, dim=1, out=kept)
    for i in (~kept).nonzero()[:, 0].tolist():
        masks[i].zero_()
    idx = kept.nonzero()[:, 0]
    hyper = hyper_all[idx]  # K x C' x C/8
    for k, i in enumerate(idx.tolist()):
        head(keys, i, hyper[k], masks[i])
