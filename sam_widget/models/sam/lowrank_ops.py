"""The operations of the low-rank point decoder (``lowrank.py``) on the image tokens.

The image tokens of prompt b are ``a[b] * Y + L[b] @ U[b] + c[b]`` (see ``lowrank.py``).
Everything that works on the few prompt tokens (projections, token vectors against U) runs
for a whole chunk of B prompts at once; everything that works on the N = H x W positions
runs one prompt at a time on contiguous R x N blocks, so no B x n x T x N tensor is ever
permuted between prompt-major and head-major layout.

Letters: B prompts, n heads, T tokens, d head dim, N positions, R low-rank terms, C channels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .transformer import Attention

__all__ = ["Keys", "Stage", "heads", "image_to_tokens", "layer_norm", "tokens_to_image"]


def heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """... x M x C_int -> ... x n x M x d."""
    *lead, m, c = x.shape
    # ... x M x C -> ... x M x n x d -> ... x n x M x d
    return x.reshape(*lead, m, n, c // n).transpose(-3, -2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """B x n x M x d -> B x M x (n d)."""
    b, n, m, d = x.shape
    # B x n x M x d -> B x M x n x d -> B x M x C_int
    return x.transpose(1, 2).reshape(b, m, n * d)


@dataclass
class Stage:
    """Per-image constants entering one two-way layer (or, last, the final attention).

    ``y``: image part Y = X * G (N x C; X image embedding + no-mask embedding, G product of
    the LayerNorm gains so far); ``mean``: N channel means of Y; ``centered``: Y - mean
    (N x C); ``sq``: N sums over channels of centered²; ``proj``: name -> Y @ W^T (no bias)
    for the projections this stage needs, n x N x d (``conv1``: N x 4C/4).

    For this stage's LayerNorm: ``z[j]`` (n x d x N) = (centered * Γ_j) @ W_o,j^T split by
    head, W_o,j the output projection of layer j's image -> token attention and Γ_j the
    product of the LayerNorm gains of layers j .. this one - 1; ``g[k]`` (N) =
    centered @ Γ_k. They give the terms U_r . Y_c[p] of the rows that layer j added at the
    cost of d instead of C per row and position (see ``layer_norm``).
    """

    y: torch.Tensor
    mean: torch.Tensor
    centered: torch.Tensor
    sq: torch.Tensor
    proj: dict[str, torch.Tensor]
    z: list[torch.Tensor] = field(default_factory=list)
    g: list[torch.Tensor] = field(default_factory=list)


@dataclass
class _Group:
    """The n T rows that layer ``layer``'s image -> token attention added at ``start``:
    row (h, t) was ``v[:, h, t] @ W_o,h^T`` (``v``: B x n x T x d) and has since passed
    LayerNorms whose row means were ``mu`` (one B x nT tensor per LayerNorm)."""

    layer: int
    start: int
    v: torch.Tensor
    mu: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Keys:
    """Image tokens of B prompts, ``a * Y + L @ U + c``.

    ``a``: B x N; ``lowbuf``: B x R_max x N, L stored transposed, rows [0, r) in use (new
    terms are written in place, never concatenated); ``rowbuf``: B x R_max x C, U;
    ``const``: B x C, c. ``groups``: the attention-made rows; ``extra``: offsets of the
    row pairs that LayerNorms added; ``unit``: a is still exactly 1 (no LayerNorm yet).
    """

    a: torch.Tensor
    lowbuf: torch.Tensor
    rowbuf: torch.Tensor
    const: torch.Tensor
    r: int = 0
    groups: list[_Group] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    unit: bool = True

    @classmethod
    def image_only(cls, b: int, n: int, c: int, r_max: int, like: torch.Tensor) -> Keys:
        """Keys equal to the image part (a = 1, no terms, c = 0) for ``b`` prompts."""
        return cls(
            like.new_ones(b, n),
            like.new_empty(b, r_max, n),
            like.new_empty(b, r_max, c),
            like.new_zeros(b, c),
        )

    @property
    def rows(self) -> torch.Tensor:
        return self.rowbuf[:, : self.r]

    def low(self, b: int) -> torch.Tensor:
        """L^T of prompt b, r x N (contiguous)."""
        return self.lowbuf[b, : self.r]


def _coefficients(keys: Keys, q: torch.Tensor, lin: nn.Linear) -> torch.Tensor | None:
    """Token vectors q (B x n x T x d) against the rows projected by ``lin``:
    (U W^T)_h q_h^T -> B x nT x R, the coefficients of L in the logits (None when R = 0)."""
    if not keys.r:
        return None
    b, n, t, _ = q.shape
    # U W^T: B x R x C_int -> B x n x R x d; @ q^T -> B x n x R x T
    m = heads(F.linear(keys.rows, lin.weight), n) @ q.transpose(-2, -1)
    # B x n x R x T -> B x n x T x R -> B x nT x R
    return m.transpose(-2, -1).reshape(b, n * t, keys.r)


def _logits(
    keys: Keys, q: torch.Tensor, img: torch.Tensor, pe: torch.Tensor, coef: torch.Tensor | None
) -> Iterator[tuple[int, torch.Tensor]]:
    """The logits of each prompt in turn, a * (q . Y W^T) + q . (PE W^T + b) + L-part:
    yields (b, n x T x N), one buffer reused (the constant c W^T part is the caller's).

    ``q``: B x n x T x d token vectors; ``img``/``pe``: the per-image projections,
    transposed (n x d x N); ``coef``: B x nT x R (``_coefficients``). Everything is done
    per prompt into one n x T x N buffer that stays in the core's cache: the same products
    for the whole chunk at once write two B x n x T x N tensors (15 MB each at B = 16) and
    took about twice as long on a 2-core Xeon.
    """
    b, n, t, _ = q.shape
    q = q.contiguous()
    out = q.new_empty(n, t, img.shape[-1])
    flat = out.view(n * t, -1)  # n x T x N viewed as nT x N
    # Before the first LayerNorm a = 1: one product with Y W^T + PE W^T + b, not two.
    both = img + pe if keys.unit else None
    for i in range(b):
        if both is not None:
            torch.bmm(q[i], both, out=out)  # n x T x d @ n x d x N
        else:
            torch.bmm(q[i], img, out=out).mul_(keys.a[i])
            out.baddbmm_(q[i], pe)
        if coef is not None:
            flat.addmm_(coef[i], keys.low(i))  # nT x R @ R x N
        yield i, out


def tokens_to_image(
    attn: Attention,
    keys: Keys,
    queries: torch.Tensor,
    img_k: torch.Tensor,
    pe_k: torch.Tensor,
    img_v: torch.Tensor,
) -> torch.Tensor:
    """``attn(queries, keys + PE, keys)`` for the prompt tokens ``queries`` (B x T x C)
    -> B x T x C. ``img_k``/``img_v``: Y W_k^T, Y W_v^T; ``pe_k``: PE W_k^T + b_k
    (n x N x d each)."""
    n = attn.num_heads
    q = heads(attn.q_proj(queries), n)  # B x n x T x d
    q = q * (1.0 / math.sqrt(q.shape[-1]))
    b, _, t, d = q.shape
    hw = keys.a.shape[1]
    # The softmax runs over positions, so the per-row constant q . (c W_k^T) drops out.
    coef = _coefficients(keys, q, attn.k_proj)
    out = q.new_empty(b, n, t, d)
    al = q.new_empty(b, n * t, keys.r) if keys.r else None
    probs = q.new_empty(n, t, hw)
    for i, logits in _logits(keys, q, img_k, pe_k, coef):
        torch.softmax(logits, dim=-1, out=probs)
        if al is not None:
            # A @ L: nT x N @ N x R -> nT x R
            torch.mm(probs.view(n * t, hw), keys.low(i).T, out=al[i])
        # image part: (A * a) @ Y W_v^T, n x T x N @ n x N x d -> n x T x d
        torch.bmm(probs.mul_(keys.a[i]), img_v, out=out[i])
    if al is not None:
        # (A @ L) @ (U W_v^T): B x n x T x R @ B x n x R x d -> B x n x T x d
        out = out + al.view(b, n, t, -1) @ heads(F.linear(keys.rows, attn.v_proj.weight), n)
    # constant part (each softmax row sums to 1): c W_v^T + b_v, B x C_int -> B x n x 1 x d
    out = out + heads(attn.v_proj(keys.const)[:, None, :], n)
    return attn.out_proj(_merge(out))


def image_to_tokens(
    attn: Attention,
    keys: Keys,
    layer: int,
    tokens: torch.Tensor,
    token_pe: torch.Tensor,
    img_q: torch.Tensor,
    pe_q: torch.Tensor,
) -> None:
    """``keys += attn(keys + PE, tokens + token_pe, tokens)`` in place: the attention
    weights become n (T - 1) new terms of L, the head values times the output projection the
    new rows of U, the output bias goes into c. ``tokens``/``token_pe``: B x T x C;
    ``img_q``: Y W_q^T, ``pe_q``: PE W_q^T + b_q (n x N x d)."""
    n = attn.num_heads
    k = heads(attn.k_proj(tokens + token_pe), n)  # B x n x T x d
    k = k * (1.0 / math.sqrt(k.shape[-1]))
    v = heads(attn.v_proj(tokens), n)  # B x n x T x d
    b, _, t, d = k.shape
    hw = keys.a.shape[1]
    coef = _coefficients(keys, k, attn.q_proj)
    # The softmax runs over the tokens: the constant k . (c W_q^T) stays, B x n x T x 1.
    kc = k @ heads(F.linear(keys.const, attn.q_proj.weight)[:, None, :], n).transpose(-2, -1)
    r = keys.r
    # Each position's weights over the T tokens sum to 1, so the last token's term is
    # folded into the others and c: sum_t A_t V_t = sum_{t<T-1} A_t (V_t - V_T-1) + V_T-1.
    # n (T - 1) new terms instead of n T.
    m = t - 1
    for i, logits in _logits(keys, k, img_q, pe_q, coef):
        logits.add_(kc[i])
        # softmax over the T tokens (dim 1 of n x T x N), first T - 1 of them written
        # straight into the new rows of L^T (n x (T-1) x N view)
        logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
        new = keys.lowbuf[i, r : r + n * m].view(n, m, hw)
        # (one reciprocal per position and a product: faster than dividing every weight)
        torch.mul(logits[:, :m], logits.sum(dim=1, keepdim=True).reciprocal_(), out=new)
    v_last = v[:, :, m:]  # B x n x 1 x d
    v = v[:, :, :m] - v_last  # B x n x (T-1) x d
    # rows V_h @ W_o,h^T, per head for all prompts: W_o C x (n d) -> n x d x C;
    # B x n x T' x d -> n x (B T') x d; @ n x d x C -> n x (B T') x C -> n x B x T' x C
    w_o = attn.out_proj.weight.reshape(-1, n, d).permute(1, 2, 0)
    made = torch.bmm(v.transpose(0, 1).reshape(n, b * m, d), w_o).view(n, b, m, -1)
    # n x B x T' x C -> B x n x T' x C, into the rows (h, t) of each prompt
    keys.rowbuf[:, r : r + n * m].view(b, n, m, -1).copy_(made.transpose(0, 1))
    assert attn.out_proj.bias is not None
    # c + sum_h V_T-1,h W_o,h^T + b_o: B x n x d -> n x B x d; @ n x d x C, summed over heads
    last = torch.bmm(v_last[:, :, 0].transpose(0, 1), w_o).sum(dim=0)  # B x C
    keys.const = keys.const + last + attn.out_proj.bias
    keys.groups.append(_Group(layer, r, v.contiguous()))
    keys.r = r + n * m


def layer_norm(norm: nn.LayerNorm, keys: Keys, stage: Stage, index: int) -> None:
    """LayerNorm over the channels of every position, in place: -> the same form with image
    part Y * gamma (R grows by 2). ``index``: the layer whose LayerNorm this is.

    Per position p, with Yc, Uc, cc the channel-centred Y, U, c (and Uc . Yc = U . Yc):
    C var = a² |Yc|² + 2a (L . (U Yc) + c . Yc) + L G L^T + 2 L . (Uc cc) + |cc|²,
    G = Uc Uc^T (R x R). No E[x²] - mean², so no cancellation. U Yc costs d per row instead
    of C: a row of layer j is (v W_o,h^T) * Γ - sum of (row mean at LayerNorm k) * Γ_k, so
    its product with Yc[p] is v . z[j][h, :, p] - sum mu_k g[k][p] (``Stage``).
    """
    c = stage.y.shape[-1]
    b, hw = keys.a.shape
    r = keys.r
    rows, a = keys.rows, keys.a
    mu = rows.mean(dim=-1)  # B x R
    rows.sub_(mu[:, :, None])  # U <- Uc, in place (scaled by gamma below)
    const_c = keys.const - keys.const.mean(dim=-1, keepdim=True)  # B x C
    gram = torch.bmm(rows, rows.transpose(1, 2))  # B x R x R
    gram_c2 = 2 * torch.bmm(rows, const_c[:, :, None])  # B x R x 1
    cross_c = const_c @ stage.centered.T  # B x N
    # rows added by earlier LayerNorms: B x 2 x C -> 2B x C; @ C x N -> 2B x N -> B x 2 x N
    extra = [
        (rows[:, off : off + 2].reshape(2 * b, c) @ stage.centered.T).view(b, 2, hw)
        for off in keys.extra
    ]
    x = a.new_empty(r, hw)  # U Yc of one prompt, then the per-row factor of the sum
    quad = a.new_empty(hw)
    a2 = 2 * a
    # per prompt: a² |Yc|² + 2a cc . Yc + |cc|², the quadratic terms are added in the loop
    total = torch.addcmul(a2 * cross_c, a * a, stage.sq).add_((const_c * const_c).sum(-1)[:, None])
    inv = torch.empty_like(a)  # B x N: 1 / sigma
    for i in range(b):
        for grp in keys.groups:
            nh, t = grp.v.shape[1], grp.v.shape[2]
            xg = x[grp.start : grp.start + nh * t]
            # attention rows: v . z, n x T x d @ n x d x N -> n x T x N (rows (h, t) of xg)
            torch.bmm(grp.v[i], stage.z[grp.layer], out=xg.view(nh, t, hw))
            for k, m in zip(range(grp.layer, index), grp.mu, strict=True):
                xg.addcmul_(m[i][:, None], stage.g[k][None, :], value=-1.0)
        for off, ex in zip(keys.extra, extra, strict=True):
            x[off : off + 2] = ex[i]
        low = keys.low(i)
        # x <- 2 Uc cc + 2 a (U Yc) + G L^T; quad = sum over rows of x * L^T
        torch.addcmul(gram_c2[i], x, a2[i], out=x)
        x.addmm_(gram[i], low)
        torch.sum(x.mul_(low), dim=0, out=quad)
        # (a Y + L Uc + cc - a mean_Y) * inv * gamma + beta, with Y * gamma the next image
        # part: L <- L * inv (while this prompt's L is in cache); new terms -a mean_Y inv
        # (row gamma) and inv (row cc * gamma).
        torch.rsqrt(total[i].add_(quad).div_(c).add_(norm.eps), out=inv[i])
        low.mul_(inv[i])
        torch.mul(a[i] * stage.mean, inv[i], out=keys.lowbuf[i, r]).neg_()
        keys.lowbuf[i, r + 1] = inv[i]
    gamma, beta = norm.weight, norm.bias
    for grp in keys.groups:
        nh, t = grp.v.shape[1], grp.v.shape[2]
        grp.mu.append(mu[:, grp.start : grp.start + nh * t])
    rows.mul_(gamma)
    keys.rowbuf[:, r] = gamma
    keys.rowbuf[:, r + 1] = const_c * gamma
    keys.a = a * inv
    keys.unit = False
    keys.const = beta.expand(b, -1)
    keys.extra.append(r)
    keys.r = r + 2
