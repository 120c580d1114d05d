"""SAM's ViT image encoder: 1024² image -> 256 x 64 x 64 embedding.

Architecture (Kirillov et al. 2023, section 3 and appendix A; ViTDet, Li et al. 2022):
16 x 16 patches, a learned absolute position embedding, transformer blocks that attend
inside 14 x 14 windows except a few global blocks, decomposed relative position biases
(MViTv2, Li et al. 2022) in every block, and a conv "neck" down to 256 channels. Module and
parameter names follow ``segment_anything/modeling/image_encoder.py`` so the official
checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MLPBlock

__all__ = ["ImageEncoderViT"]


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: B x 3 x H x W -> B x H/p x W/p x C."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B x C x H x W -> B x H x W x C (the blocks work channels-last).
        return self.proj(x).permute(0, 2, 3, 1)


def _relative_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """Gather ``table`` ((2*size-1) x D) into size x size x D, entry [i, j] = offset i - j."""
    if table.shape[0] != 2 * size - 1:
        raise ValueError(
            f"relative position table has {table.shape[0]} rows, expected {2 * size - 1} "
            f"for a {size}-token axis"
        )
    idx = torch.arange(size, device=table.device)
    # Offset i - j runs from -(size-1) to size-1; shift it to a row index 0 .. 2*size-2.
    offsets = idx[:, None] - idx[None, :] + (size - 1)
    return table[offsets]


class Attention(nn.Module):
    """Multi-head self attention on a B x H x W x C grid with decomposed relative positions.

    The relative bias for query (qy, qx) and key (ky, kx) is
    ``q · Rh[qy - ky] + q · Rw[qx - kx]`` (unscaled q), added to the scaled logits.
    """

    def __init__(
        self, dim: int, num_heads: int, grid_size: tuple[int, int], qkv_bias: bool = True
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Zero-initialised as in the published model; trained values come from checkpoints.
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        n = self.num_heads
        # B x H x W x 3C -> B x HW x 3 x n x d -> 3 x B x n x HW x d (the qkv weight rows are
        # ordered [q|k|v], each [head 0 | head 1 | ...], as in the checkpoints).
        qkv = self.qkv(x).reshape(b, h * w, 3, n, c // n).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self._relative_bias(q, h, w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        # B x n x HW x d -> B x HW x n x d -> B x H x W x C
        out = out.transpose(1, 2).reshape(b, h, w, c)
        return self.proj(out)

    def _relative_bias(self, q: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Additive attention bias B x n x HW x HW from queries B x n x HW x d."""
        b, n, _, d = q.shape
        rh = _relative_table(self.rel_pos_h, h)  # H x H x d
        rw = _relative_table(self.rel_pos_w, w)  # W x W x d
        # B x n x HW x d -> B x n x H x W x d
        grid_q = q.reshape(b, n, h, w, d)
        bias_h = torch.einsum("bnyxd,ykd->bnyxk", grid_q, rh)  # over key rows ky
        bias_w = torch.einsum("bnyxd,xkd->bnyxk", grid_q, rw)  # over key columns kx
        # B x n x H x W x kH x kW -> B x n x HW x (kH kW)
        bias = bias_h[..., :, None] + bias_w[..., None, :]
        return bias.reshape(b, n, h * w, h * w)


def _to_windows(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """B x H x W x C -> (B * nWin) x window x window x C, zero-padding H and W up to a
    multiple of ``window``. Returns the windows and the padded (H, W)."""
    b, h, w, c = x.shape
    pad_h = -h % window
    pad_w = -w % window
    if pad_h or pad_w:
        # F.pad pads from the last axis backwards: (C: 0, 0), (W: 0, pad_w), (H: 0, pad_h).
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    # B x Hp x Wp x C -> B x nH x win x nW x win x C -> B x nH x nW x win x win x C
    x = x.reshape(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def _from_windows(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of ``_to_windows``: (B * nWin) x win x win x C -> B x H x W x C (unpadded)."""
    hp, wp = padded
    h, w = size
    n_h, n_w = hp // window, wp // window
    c = windows.shape[-1]
    b = windows.shape[0] // (n_h * n_w)
    # (B nH nW) x win x win x C -> B x nH x nW x win x win x C -> B x nH x win x nW x win x C
    x = windows.reshape(b, n_h, n_w, window, window, c).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp, wp, c)
    if hp != h or wp != w:
        x = x[:, :h, :w, :]
    return x.contiguous()


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size == 0`` means global attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        window_size: int,
        grid_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attn_grid = grid_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, attn_grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window_size > 0:
            size = (y.shape[1], y.shape[2])
            windows, padded = _to_windows(y, self.window_size)
            y = _from_windows(self.attn(windows), self.window_size, padded, size)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """B x 3 x S x S normalised, padded image (S = ``img_size``) -> B x out x S/p x S/p."""

    def __init__(
        self,
        *,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        window_size: int = 14,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        # 1 x grid x grid x C, added to the channels-last patch tokens.
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        global_set = set(global_attn_indexes)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                window_size=0 if i in global_set else window_size,
                grid_size=(grid, grid),
            )
            for i in range(depth)
        )
        # Indices 0..3 match the checkpoint keys neck.0 .. neck.3.
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        # B x H x W x C -> B x C x H x W for the conv neck.
        return self.neck(x.permute(0, 3, 1, 2))
