"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Each layer (Kirillov et al. 2023, appendix A, "Lightweight mask decoder"): token self
attention, tokens -> image cross attention, token MLP, image -> tokens cross attention; a
final tokens -> image attention follows the layers. Positional encodings are re-added to
queries and keys at every attention. Names follow
``segment_anything/modeling/transformer.py`` for checkpoint loading.

Split for the per-click fast path: everything a layer computes from the image side alone
(keys + PE and their projections) is an ``ImageSide``. For layer 0 without a mask prompt
the image side is the same for every prompt of an image, so ``TwoWayTransformer.prepare``
computes it once per image (batch 1) and ``forward_prepared`` broadcasts it over prompts
instead of copying the 256 x 64 x 64 embedding per prompt. The later layers' image sides
depend on the prompt; ``prepare`` readies them as one ``FusedProjection`` each: the three
projections of the image tokens side by side in one matmul, with the PE's share folded into
a per-image bias (``(keys + pe) W^T + b = keys W^T + (pe W^T + b)``), and the same for the
final attention's key and value projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .common import MLPBlock

__all__ = [
    "Attention",
    "FusedProjection",
    "ImageSide",
    "TransformerContext",
    "TwoWayAttentionBlock",
    "TwoWayTransformer",
]


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections into ``dim / downsample_rate``
    channels and an output projection back to ``dim``."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must divide the internal dim ({self.internal_dim})"
            )
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C_int -> B x n_heads x N x d."""
        b, n, c = x.shape
        # B x N x C -> B x N x n x d -> B x n x N x d
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention on head-split projections -> B x Nq x C (after ``out_proj``).

        ``q`` is Bq x n x Nq x d, ``k``/``v`` are Bk x n x Nk x d. Batches must be equal or
        one of them 1 (broadcast). With Bk == 1 < Bq every query row attends to the same
        keys, so the queries of all batch items are stacked into one batch (exact, no copy
        of the keys).

        Written out (not ``F.scaled_dot_product_attention``): one side is always a handful
        of prompt tokens, where the fused CPU kernel is several times slower than two small
        matmuls and a softmax. When the keys are the few tokens (image -> tokens), the
        logits are laid out Nk x Nq and normalised along Nk: a softmax along a short last
        axis (4096 rows of ~9) is about 20x slower on a CPU than along an inner axis.
        """
        bq, bk = q.shape[0], k.shape[0]
        n, nq, d = q.shape[1], q.shape[2], q.shape[3]
        stacked = bk == 1 and bq > 1
        if stacked:
            # Bq x n x Nq x d -> n x Bq x Nq x d -> 1 x n x (Bq Nq) x d
            q = q.transpose(0, 1).reshape(1, n, bq * nq, d)
        scale = 1.0 / math.sqrt(d)
        if k.shape[2] < q.shape[2]:
            # B x n x Nk x d @ B x n x d x Nq -> B x n x Nk x Nq (batch 1 broadcasts)
            logits_t = (k @ q.transpose(-2, -1)) * scale
            # softmax over keys; B x n x Nk x Nq -> B x n x Nq x Nk (view) @ v
            out = torch.softmax(logits_t, dim=-2).transpose(-2, -1) @ v
        else:
            # B x n x Nq x d @ B x n x d x Nk -> B x n x Nq x Nk (batch 1 broadcasts)
            logits = (q @ k.transpose(-2, -1)) * scale
            out = torch.softmax(logits, dim=-1) @ v  # B x n x Nq x d
        if stacked:
            # 1 x n x (Bq Nq) x d -> n x Bq x Nq x d -> Bq x n x Nq x d
            out = out.reshape(n, bq, nq, d).transpose(0, 1)
        b = out.shape[0]
        # B x n x Nq x d -> B x Nq x n x d -> B x Nq x C_int
        out = out.transpose(1, 2).reshape(b, nq, n * d)
        return self.out_proj(out)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q``: B x Nq x C, ``k``/``v``: B x Nk x C -> B x Nq x C."""
        return self.attend(
            self.heads(self.q_proj(q)), self.heads(self.k_proj(k)), self.heads(self.v_proj(v))
        )


@dataclass
class FusedProjection:
    """Several linear projections of the image tokens in one matmul (batch 1 context).

    ``weight``: C x P, the projections' weights side by side (transposed); ``bias``: HW x P,
    each projection's bias plus, for those applied to keys + PE, the PE's projection;
    ``splits``: the P columns of each projection, in order.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    splits: tuple[int, ...]

    @classmethod
    def of(cls, pe: torch.Tensor, projections: list[tuple[nn.Linear, bool]]) -> FusedProjection:
        """``pe``: 1 x HW x C; ``projections``: (linear, applied to keys + PE?) in order."""
        weight = torch.cat([lin.weight for lin, _ in projections], dim=0).t().contiguous()
        biases = [
            lin(pe[0]) if with_pe else lin.bias.expand(pe.shape[1], -1)
            for lin, with_pe in projections
        ]
        splits = tuple(int(lin.out_features) for lin, _ in projections)
        return cls(weight, torch.cat(biases, dim=-1).contiguous(), splits)

    def __call__(self, keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """B x HW x C image tokens -> each projection, B x HW x P_i (column views)."""
        if keys.shape[0] == 1:
            # 1 x HW x C -> HW x C: one matmul with the bias added in place
            out = torch.addmm(self.bias, keys[0], self.weight).unsqueeze(0)
        else:
            out = torch.matmul(keys, self.weight) + self.bias
        return tuple(out.split(self.splits, dim=-1))


@dataclass
class ImageSide:
    """What one two-way layer computes from the image tokens alone (batch Bi = 1 or B).

    ``keys``: Bi x HW x C image tokens; ``t2i_k`` / ``t2i_v``: head-split key/value
    projections of the tokens -> image attention; ``i2t_q``: head-split query projection
    of the image -> tokens attention (all Bi x n_heads x HW x d).
    """

    keys: torch.Tensor
    t2i_k: torch.Tensor
    t2i_v: torch.Tensor
    i2t_q: torch.Tensor


class TwoWayAttentionBlock(nn.Module):
    """One two-way layer; ``skip_first_layer_pe``: the first layer's self attention uses
    the raw tokens (no PE added, no residual), as in the published model."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def image_side(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageSide:
        """Image-only part of this layer. ``keys``: Bi x HW x C, ``key_pe``: 1 or Bi x HW x C."""
        keys_pe = keys + key_pe
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return ImageSide(
            keys=keys,
            t2i_k=t2i.heads(t2i.k_proj(keys_pe)),
            t2i_v=t2i.heads(t2i.v_proj(keys)),
            i2t_q=i2t.heads(i2t.q_proj(keys_pe)),
        )

    def fuse_image_side(self, key_pe: torch.Tensor) -> FusedProjection:
        """The projections of :meth:`image_side` as one ``FusedProjection`` for image
        tokens with positional encoding ``key_pe`` (1 x HW x C)."""
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return FusedProjection.of(
            key_pe, [(t2i.k_proj, True), (t2i.v_proj, False), (i2t.q_proj, True)]
        )

    def image_side_fused(self, keys: torch.Tensor, fused: FusedProjection) -> ImageSide:
        """:meth:`image_side` through ``fused`` (from :meth:`fuse_image_side`); same values
        up to float rounding."""
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        k, v, q = fused(keys)
        return ImageSide(keys=keys, t2i_k=t2i.heads(k), t2i_v=t2i.heads(v), i2t_q=i2t.heads(q))

    def tokens_self_attention(self, queries: torch.Tensor, query_pe: torch.Tensor) -> torch.Tensor:
        """The layer's first step, on the prompt tokens alone: self attention (with the
        positional encoding, except in the first layer) and ``norm1``. B x N x C."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        return cast(torch.Tensor, self.norm1(queries))

    def forward_image_side(
        self, queries: torch.Tensor, query_pe: torch.Tensor, side: ImageSide
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layer with a precomputed image side. ``queries``/``query_pe``: B x N x C.
        Returns (queries B x N x C, keys B x HW x C)."""
        queries = self.tokens_self_attention(queries, query_pe)

        # Tokens attend to the image.
        t2i = self.cross_attn_token_to_image
        q_heads = t2i.heads(t2i.q_proj(queries + query_pe))
        queries = self.norm2(queries + t2i.attend(q_heads, side.t2i_k, side.t2i_v))

        queries = self.norm3(queries + self.mlp(queries))

        # The image attends to the tokens.
        i2t = self.cross_attn_image_to_token
        tokens_pe = queries + query_pe
        k_heads = i2t.heads(i2t.k_proj(tokens_pe))
        v_heads = i2t.heads(i2t.v_proj(queries))
        keys = self.norm4(side.keys + i2t.attend(side.i2t_q, k_heads, v_heads))
        return queries, keys

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes: ``queries``/``query_pe`` B x N x C, ``keys`` B x HW x C, ``key_pe``
        1 or B x HW x C."""
        return self.forward_image_side(queries, query_pe, self.image_side(keys, key_pe))


@dataclass
class TransformerContext:
    """Per-image precomputation for ``TwoWayTransformer.forward_prepared`` (batch 1).

    ``image_pe``: 1 x HW x C; ``first``: layer 0's image side; ``size``: (H, W);
    ``later``: the image-side projections of layers 1 .. depth - 1; ``final``: the final
    attention's key and value projections (``FusedProjection``, PE folded in).
    """

    image_pe: torch.Tensor
    first: ImageSide
    size: tuple[int, int]
    later: list[FusedProjection]
    final: FusedProjection


class TwoWayTransformer(nn.Module):
    """Decoder transformer over prompt tokens and a B x C x H x W image embedding."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                activation,
                attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def _layer(self, i: int) -> TwoWayAttentionBlock:
        return cast(TwoWayAttentionBlock, self.layers[i])

    @staticmethod
    def _tokens(grid: torch.Tensor) -> torch.Tensor:
        # B x C x H x W -> B x C x HW -> B x HW x C. Made contiguous once here: every later
        # add and projection on the image tokens is several times slower on a strided view.
        return grid.flatten(2).transpose(1, 2).contiguous()

    def prepare(self, image_embedding: torch.Tensor, image_pe: torch.Tensor) -> TransformerContext:
        """Precompute the prompt-independent part for one image.

        ``image_embedding``: 1 x C x H x W (image embedding plus the no-mask dense
        embedding); ``image_pe``: 1 x C x H x W.
        """
        if image_embedding.shape[0] != 1:
            raise ValueError(
                f"image_embedding must have batch 1, got shape {tuple(image_embedding.shape)}"
            )
        keys = self._tokens(image_embedding)
        pe = self._tokens(image_pe)
        h, w = image_embedding.shape[-2:]
        final = self.final_attn_token_to_image
        return TransformerContext(
            image_pe=pe,
            first=self._layer(0).image_side(keys, pe),
            size=(h, w),
            later=[self._layer(i).fuse_image_side(pe) for i in range(1, self.depth)],
            final=FusedProjection.of(pe, [(final.k_proj, True), (final.v_proj, False)]),
        )

    def _finish(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        point_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        start: int,
        ctx: TransformerContext | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layers ``start`` .. depth - 1 and the final attention; with ``ctx`` (the image's
        context) the image-side projections go through its fused matmuls."""
        final = self.final_attn_token_to_image
        for i in range(start, self.depth):
            layer = self._layer(i)
            if ctx is None:
                queries, keys = layer(queries, keys, point_embedding, image_pe)
            else:
                side = layer.image_side_fused(keys, ctx.later[i - 1])
                queries, keys = layer.forward_image_side(queries, point_embedding, side)
        q = queries + point_embedding
        if ctx is None:
            attn = final(q, keys + image_pe, keys)
        else:
            k, v = ctx.final(keys)
            attn = final.attend(final.heads(final.q_proj(q)), final.heads(k), final.heads(v))
        queries = self.norm_final_attn(queries + attn)
        return queries, keys

    def forward_prepared(
        self, ctx: TransformerContext, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same result as ``forward(image, pe, point_embedding)`` for the image ``ctx`` was
        prepared from, broadcast over the B prompts of ``point_embedding`` (B x N x C).
        Returns (tokens B x N x C, image tokens B x HW x C)."""
        queries, keys = self._layer(0).forward_image_side(
            point_embedding, point_embedding, ctx.first
        )
        return self._finish(queries, keys, point_embedding, ctx.image_pe, start=1, ctx=ctx)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image_embedding``: B x C x H x W; ``image_pe``: 1 or B x C x H x W;
        ``point_embedding``: B x N x C. Returns (tokens B x N x C, image tokens B x HW x C)."""
        keys = self._tokens(image_embedding)
        pe = self._tokens(image_pe)
        return self._finish(point_embedding, keys, point_embedding, pe, start=0)
