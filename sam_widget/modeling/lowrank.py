"""Mask decoder for many point prompts on one image, with the image tokens kept low-rank.

In SAM's decoder (``mask_decoder.py`` / ``transformer.py``) the image tokens of a prompt
change only by (a) adding the output of an image -> tokens attention, i.e. per position a
softmax-weighted sum of a few per-prompt vectors, and (b) LayerNorm. So for every prompt the
image tokens (HW x C) can be written exactly as

    x = a * Y + L @ U + c

with ``Y = X * G`` shared by all prompts (X: image embedding + no-mask dense embedding,
HW x C; G: product of the LayerNorm gains so far, C), ``a`` a per-prompt scalar per position
(HW), ``L`` per-prompt coefficients (HW x R), ``U`` per-prompt rows (R x C) and ``c`` a
per-prompt constant (C). R grows by n_heads x T + 2 per layer (T prompt tokens).

- adding an attention output ``A_h @ (V_h W_o,h^T) + b_o``: the attention weights become
  new columns of L, the head values times the output projection new rows of U, b_o goes
  into c;
- LayerNorm: the per-position mean and variance follow from per-image statistics of Y and
  per-prompt cross terms (Y_centered @ U^T: HW x R, and R x R Gram matrices); after it
  a' = a / sigma, G' = G * gamma, and two columns are added;
- a linear map W of x (or of x + PE): a * (Y W^T) + L @ (U W^T) + (c W^T + PE W^T + b),
  where Y W^T and PE W^T are per-image constants;
- the first transposed conv of the output upscaling (kernel 2, stride 2: each output pixel
  reads one input position) is such a linear map too; LayerNorm2d, GELU and the second
  conv are then evaluated per prompt as in ``MaskDecoder._upscaled_tokens``.

So the per-prompt work that scales with HW is O(HW x R x (C + R)) instead of
O(HW x C x C) per projection. Results equal the standard path up to float rounding (see
tests/test_lowrank.py). Only point prompts without mask input are supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import Attention, TwoWayAttentionBlock

if TYPE_CHECKING:
    from .sam import Sam

__all__ = ["LowRankContext", "decode_points_lowrank", "prepare_lowrank"]

# Prompts per mask-head call (see decode_points_lowrank).
_HEAD_CHUNK = 1
# Prompts per transformer pass: the per-prompt low-rank tensors are a few MB each, a
# small group of prompts keeps them in cache.
_CHUNK = 8


@dataclass
class _ImagePart:
    """Per-image constants for one stage (image part ``Y = X * G``, HW x C).

    ``mean``: HW per-position channel mean of Y; ``centered``: Y - mean (HW x C);
    ``sq``: HW sum over channels of ``centered²``; ``proj``: name -> Y @ W^T (no bias) for
    the projections this stage needs, in head layout n x HW x d (``conv1``: HW x 4C/4).
    """

    y: torch.Tensor
    mean: torch.Tensor
    centered: torch.Tensor
    sq: torch.Tensor
    proj: dict[str, torch.Tensor]


@dataclass
class LowRankContext:
    """Per-image precomputation for ``decode_points_lowrank`` (see ``prepare_lowrank``).

    ``stages[i]``: image part entering two-way layer i, ``stages[depth]``: after the last
    layer (used by the final attention and the upscaling); ``pe_proj``: name -> PE @ W^T + b
    in head layout n x HW x d; ``size``: (H, W) of the embedding grid.
    """

    sam: Sam
    stages: list[_ImagePart]
    pe_proj: dict[str, torch.Tensor]
    size: tuple[int, int]


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """... x N x C_int -> ... x n x N x d."""
    *lead, m, c = x.shape
    # ... x N x C -> ... x N x n x d -> ... x n x N x d
    return x.reshape(*lead, m, n, c // n).transpose(-3, -2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """B x n x N x d -> B x N x (n d)."""
    b, n, m, d = x.shape
    # B x n x N x d -> B x N x n x d -> B x N x C_int
    return x.transpose(1, 2).reshape(b, m, n * d)


def _image_part(y: torch.Tensor, projections: dict[str, tuple[nn.Linear, int]]) -> _ImagePart:
    mean = y.mean(dim=-1)
    centered = y - mean[:, None]
    proj = {
        name: _heads(F.linear(y, lin.weight), n).contiguous()
        for name, (lin, n) in projections.items()
    }
    return _ImagePart(y, mean, centered, (centered * centered).sum(dim=-1), proj)


@torch.no_grad()
def prepare_lowrank(sam: Sam, image_embeddings: torch.Tensor) -> LowRankContext:
    """Per-image constants. ``image_embeddings``: 1 x C x H x W (or C x H x W) encoder output."""
    if image_embeddings.dim() == 3:
        image_embeddings = image_embeddings.unsqueeze(0)
    if image_embeddings.dim() != 4 or image_embeddings.shape[0] != 1:
        raise ValueError(
            f"image_embeddings must be 1 x C x H x W, got shape {tuple(image_embeddings.shape)}"
        )
    dec = sam.mask_decoder
    tr = dec.transformer
    src = image_embeddings + sam.prompt_encoder.no_mask_dense()
    h, w = int(src.shape[-2]), int(src.shape[-1])
    # 1 x C x H x W -> C x HW -> HW x C
    x = src[0].flatten(1).transpose(0, 1).contiguous()
    pe = sam.prompt_encoder.get_dense_pe()[0].flatten(1).transpose(0, 1).contiguous()
    stages: list[_ImagePart] = []
    pe_proj: dict[str, torch.Tensor] = {}
    gain = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
    for i in range(tr.depth):
        layer = cast(TwoWayAttentionBlock, tr.layers[i])
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        needed = {
            "t2i_k": (t2i.k_proj, t2i.num_heads),
            "t2i_v": (t2i.v_proj, t2i.num_heads),
            "i2t_q": (i2t.q_proj, i2t.num_heads),
        }
        stages.append(_image_part(x * gain, needed))
        for name in ("t2i_k", "i2t_q"):
            lin, n = needed[name]
            pe_proj[f"{i}.{name}"] = _heads(F.linear(pe, lin.weight, lin.bias), n).contiguous()
        gain = gain * layer.norm4.weight
    fin = tr.final_attn_token_to_image
    last = _image_part(
        x * gain, {"t2i_k": (fin.k_proj, fin.num_heads), "t2i_v": (fin.v_proj, fin.num_heads)}
    )
    pe_proj["final.t2i_k"] = _heads(F.linear(pe, fin.k_proj.weight, fin.k_proj.bias), fin.num_heads)
    conv1 = cast(nn.ConvTranspose2d, dec.output_upscaling[0])
    last.proj["conv1"] = F.linear(last.y, _conv1_weight(conv1))  # HW x (2 x 2 x C/4)
    stages.append(last)
    return LowRankContext(sam, stages, pe_proj, (h, w))


def _conv1_weight(conv: nn.ConvTranspose2d) -> torch.Tensor:
    # C_in x C_out x kH x kW -> kH x kW x C_out x C_in -> (kH kW C_out) x C_in
    return conv.weight.permute(2, 3, 1, 0).reshape(-1, conv.in_channels)


@dataclass
class _Keys:
    """Per-prompt image tokens ``a * Y + L @ U + c``: a B x HW, ``low`` = L stored
    transposed, B x R x HW (so attention weights append without a copy); U B x R x C;
    c B x C."""

    a: torch.Tensor
    low: torch.Tensor
    rows: torch.Tensor
    const: torch.Tensor

    def take(self, idx: torch.Tensor) -> _Keys:
        return _Keys(self.a[idx], self.low[idx], self.rows[idx], self.const[idx])


def _logits(
    keys: _Keys,
    q: torch.Tensor,
    img: torch.Tensor,
    pe: torch.Tensor,
    lin: nn.Linear,
) -> torch.Tensor:
    """Dot products of token-side vectors ``q`` (B x n x T x d) with the head-split
    projection ``lin(keys [+ PE])`` of the image tokens -> B x n x T x HW (unscaled).

    ``img``: Y @ W^T (n x HW x d); ``pe``: PE @ W^T + b (n x HW x d): both per image.
    """
    b, n, t, d = q.shape
    hw = keys.a.shape[1]
    # image and PE parts per head: B x n x T x d -> n x B x T x d -> n x (B T) x d;
    # @ n x d x HW -> n x (B T) x HW -> n x B x T x HW
    qh = q.transpose(0, 1).reshape(n, b * t, d)
    img_t = (qh @ img.transpose(-2, -1)).reshape(n, b, t, hw)
    head_major = torch.addcmul(
        (qh @ pe.transpose(-2, -1)).reshape(n, b, t, hw), img_t, keys.a[None, :, None, :]
    )
    # low-rank part: U W^T (B x R x C_int) -> B x n x R x d; @ q^T -> B x n x R x T
    m = _heads(F.linear(keys.rows, lin.weight), n) @ q.transpose(-2, -1)
    r = m.shape[2]
    # B x n x R x T -> B x n x T x R -> B x (n T) x R; @ L^T (B x R x HW) -> B x (n T) x HW
    out = m.transpose(-2, -1).reshape(b, n * t, r) @ keys.low
    # constant part c W^T: B x C_int -> B x n x 1 x d; . q -> B x n x T x 1
    cw = _heads(F.linear(keys.const, lin.weight)[:, None, :], n)
    # B x (n T) x HW -> B x n x T x HW; n x B x T x HW -> B x n x T x HW (view)
    out = out.reshape(b, n, t, hw).add_(head_major.permute(1, 0, 2, 3))
    return out.add_(q @ cw.transpose(-2, -1))


def _tokens_to_image(
    attn: Attention,
    keys: _Keys,
    queries: torch.Tensor,
    img_k: torch.Tensor,
    pe_k: torch.Tensor,
    img_v: torch.Tensor,
) -> torch.Tensor:
    """``attn(queries, keys + PE, keys)`` for tokens ``queries`` (B x T x C) -> B x T x C."""
    n = attn.num_heads
    q = _heads(attn.q_proj(queries), n)  # B x n x T x d
    scale = 1.0 / math.sqrt(q.shape[-1])
    probs = torch.softmax(_logits(keys, q, img_k, pe_k, attn.k_proj) * scale, dim=-1)
    b, _, t, hw = probs.shape
    # image part: A * a, B x n x T x HW -> n x B x T x HW -> n x (B T) x HW;
    # @ n x HW x d -> n x (B T) x d -> n x B x T x d -> B x n x T x d
    pa = (probs * keys.a[:, None, None, :]).transpose(0, 1).reshape(n, b * t, hw)
    out = (pa @ img_v).reshape(n, b, t, -1).transpose(0, 1)
    # low-rank part: A @ L: B x (n T) x HW @ B x HW x R -> B x (n T) x R -> B x n x T x R
    al = (probs.reshape(b, n * t, hw) @ keys.low.transpose(1, 2)).reshape(b, n, t, -1)
    # U W_v^T: B x R x C_int -> B x n x R x d
    out = out + al @ _heads(F.linear(keys.rows, attn.v_proj.weight), n)
    # constant part (softmax rows sum to 1): c W_v^T + b_v, B x C_int -> B x n x 1 x d
    out = out + _heads(attn.v_proj(keys.const)[:, None, :], n)
    return attn.out_proj(_merge(out))


def _image_to_tokens(
    attn: Attention,
    keys: _Keys,
    tokens: torch.Tensor,
    token_pe: torch.Tensor,
    img_q: torch.Tensor,
    pe_q: torch.Tensor,
) -> _Keys:
    """``keys + attn(keys + PE, tokens + token_pe, tokens)`` in low-rank form (R grows by
    n T). ``tokens``/``token_pe``: B x T x C."""
    n = attn.num_heads
    k = _heads(attn.k_proj(tokens + token_pe), n)  # B x n x T x d
    v = _heads(attn.v_proj(tokens), n)  # B x n x T x d
    scale = 1.0 / math.sqrt(k.shape[-1])
    # logits laid out B x n x T x HW, softmax over the tokens (dim -2)
    probs = torch.softmax(_logits(keys, k, img_q, pe_q, attn.q_proj) * scale, dim=-2)
    b, _, t, hw = probs.shape
    # new columns of L (rows of L^T): B x n x T x HW -> B x (n T) x HW
    cols = probs.reshape(b, n * t, hw)
    # new rows: V_h @ W_o,h^T; W_o: C x (n d) -> C x n x d; -> B x n x T x C -> B x (n T) x C
    w_o = attn.out_proj.weight.reshape(-1, n, v.shape[-1])
    rows = torch.einsum("bhtd,chd->bhtc", v, w_o).reshape(b, n * t, -1)
    assert attn.out_proj.bias is not None
    return _Keys(
        keys.a,
        torch.cat([keys.low, cols], dim=1),
        torch.cat([keys.rows, rows], dim=1),
        keys.const + attn.out_proj.bias,
    )


def _layer_norm(norm: nn.LayerNorm, keys: _Keys, img: _ImagePart) -> _Keys:
    """LayerNorm over channels of ``a * Y + L U + c`` -> the same form with image part
    ``Y * gamma`` (R grows by 2). Variance from centred terms, no E[x²] - mu²."""
    c = img.y.shape[-1]
    rows_c = keys.rows - keys.rows.mean(dim=-1, keepdim=True)  # B x R x C
    const_c = keys.const - keys.const.mean(dim=-1, keepdim=True)  # B x C
    a, low = keys.a, keys.low
    # cross terms with the image part: B x R x C @ C x HW -> B x R x HW; B x C @ C x HW
    cross = rows_c @ img.centered.T
    cross_c = const_c @ img.centered.T  # B x HW
    gram = rows_c @ rows_c.transpose(1, 2)  # B x R x R
    gram_c = (rows_c @ const_c[:, :, None]).transpose(1, 2)  # B x 1 x R
    # sum_r L_r (2 a cross_r + (Gram L)_r): one pass over B x R x HW
    quad = torch.baddbmm(cross * (2 * a)[:, None, :], gram, low)
    total = a * a * img.sq + 2 * a * cross_c + (quad * low).sum(1) + 2 * (gram_c @ low)[:, 0]
    total = total + (const_c * const_c).sum(-1)[:, None]
    inv = torch.rsqrt(total / c + norm.eps)  # B x HW
    gamma, beta = norm.weight, norm.bias
    b = a.shape[0]
    extra_low = torch.stack([-a * img.mean * inv, inv], dim=1)  # B x 2 x HW
    extra_rows = torch.stack([gamma.expand(b, -1), const_c * gamma], dim=1)  # B x 2 x C
    return _Keys(
        a * inv,
        torch.cat([low * inv[:, None, :], extra_low], dim=1),
        torch.cat([rows_c * gamma, extra_rows], dim=1),
        beta.expand(b, -1),
    )


def _upscaled(ctx: LowRankContext, keys: _Keys) -> torch.Tensor:
    """Final image tokens -> B x HW x 2 x 2 x 2 x 2 x C/8 features, as
    ``MaskDecoder._upscaled_tokens``."""
    conv1, norm, act1, conv2, act2 = ctx.sam.mask_decoder.output_upscaling
    assert isinstance(conv1, nn.ConvTranspose2d) and isinstance(conv2, nn.ConvTranspose2d)
    assert isinstance(norm, LayerNorm2d)
    assert conv1.bias is not None and conv2.bias is not None
    w1 = _conv1_weight(conv1)  # (2 x 2 x C/4) x C
    c4, c8 = conv1.out_channels, conv2.out_channels
    b, hw = keys.a.shape
    img = ctx.stages[-1].proj["conv1"]  # HW x (2 x 2 x C/4)
    # a * (Y W1^T) + c W1^T + bias, then + L @ (U W1^T) in the same pass
    base = torch.addcmul(
        F.linear(keys.const, w1, conv1.bias.repeat(4))[:, None, :], keys.a[..., None], img
    )
    y = torch.baddbmm(base, keys.low.transpose(1, 2), F.linear(keys.rows, w1))
    # B x HW x (2 x 2 x C/4) -> B x (HW 4) x C/4
    y = act1(F.layer_norm(y.reshape(b, hw * 4, c4), (c4,), norm.weight, norm.bias, norm.eps))
    w2 = conv2.weight.permute(2, 3, 1, 0).reshape(4 * c8, c4)
    # B x (HW 4) x C/4 -> B x (HW 4) x (2 x 2 x C/8) -> B x HW x 2 x 2 x 2 x 2 x C/8
    z = F.linear(y, w2, conv2.bias.repeat(4)).reshape(b, hw, 2, 2, 2, 2, c8)
    return cast(torch.Tensor, act2(z))


@torch.no_grad()
def decode_points_lowrank(
    ctx: LowRankContext,
    point_coords: torch.Tensor,
    point_labels: torch.Tensor,
    multimask_output: bool = True,
    iou_thresh: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode B point prompts on the image of ``ctx``.

    ``point_coords``: B x N x 2 float XY in the model input frame (resized image, pixels);
    ``point_labels``: B x N (1 fg, 0 bg, -1 padding). Returns (low-res logits
    B x C' x 4H x 4W, IoU predictions B x C', kept B bool), C' = 3 with
    ``multimask_output`` else 1. With ``iou_thresh`` only prompts with some IoU prediction
    > ``iou_thresh`` are kept and get masks; the logits of the others are left zero.
    Same values as ``Sam.predict_with_context`` up to float rounding.
    """
    if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
        raise ValueError(f"point_coords must be B x N x 2, got {tuple(point_coords.shape)}")
    if point_labels.shape != point_coords.shape[:2]:
        raise ValueError(
            f"point_labels must be B x N = {tuple(point_coords.shape[:2])}, "
            f"got {tuple(point_labels.shape)}"
        )
    parts = [
        _decode(
            ctx,
            point_coords[i : i + _CHUNK],
            point_labels[i : i + _CHUNK],
            multimask_output,
            iou_thresh,
        )
        for i in range(0, len(point_coords), _CHUNK)
    ]
    if len(parts) == 1:
        return parts[0]
    low, iou, kept = zip(*parts, strict=True)
    return torch.cat(low), torch.cat(iou), torch.cat(kept)


def _decode(
    ctx: LowRankContext,
    point_coords: torch.Tensor,
    point_labels: torch.Tensor,
    multimask_output: bool,
    iou_thresh: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``decode_points_lowrank`` for one chunk of prompts."""
    sam = ctx.sam
    dec = sam.mask_decoder
    tr = dec.transformer
    sparse, _ = sam.prompt_encoder.encode((point_coords, point_labels), None, None)
    tokens = dec._tokens(sparse)  # B x T x C
    qpe = tokens
    b, hw = tokens.shape[0], ctx.stages[0].y.shape[0]
    dt, dev = tokens.dtype, tokens.device
    keys = _Keys(
        torch.ones(b, hw, dtype=dt, device=dev),
        torch.zeros(b, 0, hw, dtype=dt, device=dev),
        torch.zeros(b, 0, tokens.shape[-1], dtype=dt, device=dev),
        torch.zeros(b, tokens.shape[-1], dtype=dt, device=dev),
    )
    queries = tokens
    for i in range(tr.depth):
        layer = cast(TwoWayAttentionBlock, tr.layers[i])
        img = ctx.stages[i]
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(queries, queries, queries)
        else:
            q = queries + qpe
            queries = queries + layer.self_attn(q, q, queries)
        queries = layer.norm1(queries)
        t2i = layer.cross_attn_token_to_image
        out = _tokens_to_image(
            t2i,
            keys,
            queries + qpe,
            img.proj["t2i_k"],
            ctx.pe_proj[f"{i}.t2i_k"],
            img.proj["t2i_v"],
        )
        queries = layer.norm2(queries + out)
        queries = layer.norm3(queries + layer.mlp(queries))
        keys = _image_to_tokens(
            layer.cross_attn_image_to_token,
            keys,
            queries,
            qpe,
            img.proj["i2t_q"],
            ctx.pe_proj[f"{i}.i2t_q"],
        )
        keys = _layer_norm(layer.norm4, keys, img)
    last = ctx.stages[-1]
    out = _tokens_to_image(
        tr.final_attn_token_to_image,
        keys,
        queries + qpe,
        last.proj["t2i_k"],
        ctx.pe_proj["final.t2i_k"],
        last.proj["t2i_v"],
    )
    hs = tr.norm_final_attn(queries + out)  # B x T x C

    chosen = range(1, dec.num_mask_tokens) if multimask_output else range(0, 1)
    iou = dec.iou_prediction_head(hs[:, 0, :])[:, chosen.start : chosen.stop]  # B x C'
    if iou_thresh is None:
        kept = torch.ones(b, dtype=torch.bool, device=dev)
    else:
        kept = (iou > iou_thresh).any(dim=1)
    h, w = ctx.size
    masks = torch.zeros(b, len(chosen), 4 * h, 4 * w, dtype=dt, device=dev)
    idx_all = kept.nonzero()[:, 0]
    hyper_all = torch.stack(
        [cast(MLP, dec.output_hypernetworks_mlps[j])(hs[idx_all, 1 + j, :]) for j in chosen],
        dim=1,
    )  # K x C' x C/8
    # The mask head is memory-bound (K x HW x 16 x C/8 activations): a few prompts at a
    # time keep its intermediates small.
    for start in range(0, len(idx_all), _HEAD_CHUNK):
        idx = idx_all[start : start + _HEAD_CHUNK]
        hyper = hyper_all[start : start + _HEAD_CHUNK]
        up = _upscaled(ctx, keys.take(idx))  # K x HW x 2 x 2 x 2 x 2 x C/8
        k, n = len(idx), hyper.shape[1]
        # K x (HW 16) x C/8 @ K x C/8 x C' -> K x (HW 16) x C'
        flat = up.reshape(k, -1, up.shape[-1]) @ hyper.transpose(1, 2)
        # K x H x W x dy1 x dx1 x dy2 x dx2 x C' -> K x C' x H x dy1 x dy2 x W x dx1 x dx2
        m = flat.reshape(k, h, w, 2, 2, 2, 2, n).permute(0, 7, 1, 3, 5, 2, 4, 6)
        masks[idx] = m.reshape(k, n, 4 * h, 4 * w)
    return masks, iou, kept
