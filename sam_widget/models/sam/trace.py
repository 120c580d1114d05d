"""One SAM decode recomputed step by step, keeping every intermediate tensor (for teaching).

The published decode (``segment_anything/modeling/prompt_encoder.py``, ``mask_decoder.py``,
``transformer.py``; Kirillov et al. 2023, appendix A) is written out here again from the
modules' public attributes only, whose names are fixed by the official checkpoint keys:
``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix``, ``point_embeddings``,
``not_a_point_embed``, ``no_mask_embed``, ``mask_downscaling``; ``mask_decoder.iou_token``,
``mask_tokens``, ``transformer.layers[i]`` (``self_attn``, ``cross_attn_token_to_image``,
``cross_attn_image_to_token``, ``mlp``, ``norm1..4``), ``final_attn_token_to_image``,
``norm_final_attn``, ``output_upscaling``, ``output_hypernetworks_mlps``,
``iou_prediction_head``. Attention is computed with its softmax weights kept, so nothing of
the fast paths (precomputed image sides, low-rank forms) is used: the result is the plain
published math, equal to ``predict`` up to float rounding.

:func:`trace_decode` is the SAM family's entry point for :mod:`sam_widget.explain`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["trace_decode"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _fourier(gauss: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """Random Fourier features of XY in [0, 1]: ``... x 2`` -> ``... x 2F`` (sin, then cos).

    ``gauss``: 2 x F frequency matrix. Positions are first mapped to [-1, 1].
    """
    proj = (2.0 * math.pi) * ((2.0 * unit - 1.0) @ gauss)
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def _embedding_row(module: Any, index: int = 0) -> torch.Tensor:
    """Row ``index`` of an ``nn.Embedding`` as a C vector."""
    return module.weight[index]


def _attention(
    attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention with its weights: ``q`` 1 x Nq x C, ``k``/``v`` 1 x Nk x C ->
    (output 1 x Nq x C after ``out_proj``, softmax weights n_heads x Nq x Nk)."""
    heads = int(attn.num_heads)

    def split(x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # B x N x C -> B x N x heads x d -> B x heads x N x d
        return x.reshape(b, n, heads, c // heads).transpose(1, 2)

    qh, kh, vh = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(v))
    d = qh.shape[-1]
    # B x heads x Nq x d @ B x heads x d x Nk -> B x heads x Nq x Nk
    weights = torch.softmax((qh @ kh.transpose(-2, -1)) / math.sqrt(d), dim=-1)
    out = weights @ vh  # B x heads x Nq x d
    b, _, nq, _ = out.shape
    # B x heads x Nq x d -> B x Nq x heads x d -> B x Nq x C_int
    out = out.transpose(1, 2).reshape(b, nq, heads * d)
    return attn.out_proj(out), weights[0]


def _sparse_tokens(
    pe_enc: Any,
    coords: torch.Tensor | None,
    labels: torch.Tensor | None,
    box: torch.Tensor | None,
) -> dict[str, Any]:
    """Points (+ padding point when there is no box) and box corners -> sparse tokens.

    ``coords``: N x 2 XY and ``labels``: N, ``box``: 4 XYXY, all in the model's input frame
    (pixels of the 1024-square canvas).
    """
    gauss = pe_enc.pe_layer.positional_encoding_gaussian_matrix
    in_h, in_w = (int(s) for s in pe_enc.input_image_size)
    extent = torch.tensor([in_w, in_h], dtype=gauss.dtype, device=gauss.device)
    c = int(pe_enc.embed_dim)
    xy: list[torch.Tensor] = []
    kinds: list[str] = []
    pes: list[torch.Tensor] = []
    learned: list[torch.Tensor] = []
    tokens: list[torch.Tensor] = []
    if coords is not None and labels is not None:
        pts, labs = coords, labels.tolist()
        if box is None:
            # No box: the published encoder appends a padding point at (0, 0), label -1.
            pts = torch.cat([pts, pts.new_zeros(1, 2)], dim=0)
            labs = [*labs, -1]
        # Pixel index -> pixel centre, then to [0, 1] of the input canvas.
        pe = _fourier(gauss, (pts.to(gauss.dtype) + 0.5) / extent)  # N x C
        for i, lab in enumerate(labs):
            xy.append(pts[i])
            pes.append(pe[i])
            if lab == -1:
                # "not a point": the positional part is dropped, only the learned vector.
                kinds.append("padding" if i == len(labs) - 1 and box is None else "ignored")
                emb = _embedding_row(pe_enc.not_a_point_embed)
                learned.append(emb)
                tokens.append(emb)
            elif lab in (0, 1):
                kinds.append("positive" if lab == 1 else "negative")
                emb = _embedding_row(pe_enc.point_embeddings[lab])
                learned.append(emb)
                tokens.append(pe[i] + emb)
            else:
                kinds.append(f"label {lab}")
                learned.append(pe.new_zeros(c))
                tokens.append(pe[i])
    if box is not None:
        # 4 -> 2 corners x 2 coords (top-left, bottom-right)
        corners = box.reshape(2, 2)
        pe = _fourier(gauss, (corners.to(gauss.dtype) + 0.5) / extent)
        for j, kind in enumerate(("box top-left", "box bottom-right")):
            emb = _embedding_row(pe_enc.point_embeddings[2 + j])
            xy.append(corners[j])
            kinds.append(kind)
            pes.append(pe[j])
            learned.append(emb)
            tokens.append(pe[j] + emb)
    ref = gauss
    if not tokens:
        empty = ref.new_zeros((0, c))
        return {
            "token_xy": np.zeros((0, 2), np.float32),
            "token_kinds": [],
            "token_pe": _np(empty),
            "token_learned": _np(empty),
            "tokens": empty,
        }
    return {
        "token_xy": _np(torch.stack(xy)),
        "token_kinds": kinds,
        "token_pe": _np(torch.stack(pes)),
        "token_learned": _np(torch.stack(learned)),
        "tokens": torch.stack(tokens),  # N x C, still a tensor
    }


def _two_way(transformer: Any, queries: torch.Tensor, src: torch.Tensor, pos: torch.Tensor):  # type: ignore[no-untyped-def]
    """The two-way transformer with every attention map kept.

    ``queries``: 1 x T x C tokens (also their PE), ``src``/``pos``: 1 x C x H x W.
    Returns (tokens 1 x T x C, image tokens 1 x HW x C, t2i list, i2t list) where each
    layer's maps are heads x T x HW (t2i: token over image; i2t: transposed to the same
    layout, image position over tokens).
    """
    # 1 x C x H x W -> 1 x C x HW -> 1 x HW x C
    keys = src.flatten(2).transpose(1, 2)
    key_pe = pos.flatten(2).transpose(1, 2)
    query_pe = queries
    t2i_maps: list[torch.Tensor] = []
    i2t_maps: list[torch.Tensor] = []
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries, _ = _attention(layer.self_attn, queries, queries, queries)
        else:
            q = queries + query_pe
            out, _ = _attention(layer.self_attn, q, q, queries)
            queries = queries + out
        queries = layer.norm1(queries)

        out, w = _attention(
            layer.cross_attn_token_to_image, queries + query_pe, keys + key_pe, keys
        )
        queries = layer.norm2(queries + out)
        t2i_maps.append(w)

        queries = layer.norm3(queries + layer.mlp(queries))

        out, w = _attention(
            layer.cross_attn_image_to_token, keys + key_pe, queries + query_pe, queries
        )
        keys = layer.norm4(keys + out)
        # heads x HW x T -> heads x T x HW
        i2t_maps.append(w.transpose(1, 2))
    out, w = _attention(
        transformer.final_attn_token_to_image, queries + query_pe, keys + key_pe, keys
    )
    queries = transformer.norm_final_attn(queries + out)
    t2i_maps.append(w)
    return queries, keys, t2i_maps, i2t_maps


@torch.no_grad()
def trace_decode(
    model: Any,
    image_embedding: torch.Tensor,
    coords: torch.Tensor | None,
    labels: torch.Tensor | None,
    box: torch.Tensor | None,
    mask_input: torch.Tensor | None,
) -> dict[str, Any]:
    """Decode one prompt with a SAM-family model, keeping every intermediate.

    Args:
        model: a SAM / MobileSAM model (``prompt_encoder`` and ``mask_decoder`` as in the
            official checkpoints).
        image_embedding: 1 x C x H x W encoder output (C = 256, H = W = 64).
        coords: N x 2 float XY, labels: N int (1, 0, -1), box: 4 XYXY; all in the model's
            input frame (the resized image, pixels). ``mask_input``: 1 x 1 x 4H x 4W logits.
    Returns:
        A dict of numpy float32 arrays (see :class:`sam_widget.explain.Explanation` for
        each key's meaning) plus ``token_kinds`` (list of str).
    """
    pe_enc = model.prompt_encoder
    dec = model.mask_decoder
    gauss = pe_enc.pe_layer.positional_encoding_gaussian_matrix
    dev, dtype = gauss.device, gauss.dtype
    emb = image_embedding.to(dev, dtype)
    _, c, h, w = emb.shape

    sparse = _sparse_tokens(
        pe_enc,
        None if coords is None else coords.to(dev, dtype),
        None if labels is None else labels.to(dev),
        None if box is None else box.to(dev, dtype),
    )
    # Dense positional encoding of the H x W cell centres.
    ys = (torch.arange(h, device=dev, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=dev, dtype=dtype) + 0.5) / w
    # H x W x 2 grid of (x, y) -> H x W x C -> C x H x W
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    dense_pe = _fourier(gauss, grid).permute(2, 0, 1)

    if mask_input is not None:
        dense = pe_enc.mask_downscaling(mask_input.to(dev, dtype))[0]  # C x H x W
    else:
        # C -> C x 1 x 1 -> C x H x W
        dense = _embedding_row(pe_enc.no_mask_embed).reshape(c, 1, 1).expand(c, h, w)

    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    n_out = out_tokens.shape[0]
    # (1 + M + N) x C -> 1 x T x C
    tokens = torch.cat([out_tokens, sparse["tokens"]], dim=0)[None]
    src = emb + dense[None]
    hs, keys, t2i, i2t = _two_way(dec.transformer, tokens, src, dense_pe[None])

    # 1 x HW x C -> 1 x C x HW -> 1 x C x H x W, upscaled 4x -> 1 x C/8 x 4H x 4W
    upscaled = dec.output_upscaling(keys.transpose(1, 2).reshape(1, c, h, w))
    mask_out = hs[0, 1:n_out]  # M x C
    hyper = torch.stack(
        [mlp(mask_out[i]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)]
    )  # M x C/8
    c8 = upscaled.shape[1]
    # M x C/8 @ C/8 x (4H 4W) -> M x 4H x 4W
    logits = (hyper @ upscaled[0].reshape(c8, -1)).reshape(-1, 4 * h, 4 * w)
    iou = dec.iou_prediction_head(hs[0, 0])

    def maps(stack: list[torch.Tensor]) -> np.ndarray:
        # layers x heads x T x HW -> layers x heads x T x H x W
        return _np(torch.stack(stack).reshape(len(stack), -1, tokens.shape[1], h, w))

    return {
        "gaussian_matrix": _np(gauss),
        "dense_pe": _np(dense_pe),
        "token_xy": sparse["token_xy"],
        "token_kinds": sparse["token_kinds"],
        "token_pe": sparse["token_pe"],
        "token_learned": sparse["token_learned"],
        "sparse_tokens": _np(sparse["tokens"]),
        "dense_embedding": _np(dense),
        "output_tokens_in": _np(out_tokens),
        "output_tokens_out": _np(hs[0, :n_out]),
        "prompt_tokens_out": _np(hs[0, n_out:]),
        "token_to_image": maps(t2i),
        "image_to_token": maps(i2t),
        "upscaled_embedding": _np(upscaled[0]),
        "hypernetwork_weights": _np(hyper),
        "low_res_logits": _np(logits),
        "iou_predictions": _np(iou),
    }
