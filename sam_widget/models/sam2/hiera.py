"""Hiera trunk of SAM 2's image encoder (Ryali et al. 2023, "Hiera", arXiv:2306.00989).

A 7x7 stride-4 patch embedding, then four stages of transformer blocks on a B x H x W x C
grid. The first block of stages 2-4 halves the grid by max-pooling its queries (Q-pooling)
and widens channels and heads; its shortcut is a linear projection pooled the same way.
Blocks attend within non-overlapping windows (zero-padded to a multiple of the window
side, with the padding taking part in attention as in the published model), except the
listed global-attention blocks. The positional embedding is a background grid
interpolated bicubically to the patch grid plus a tiled per-window embedding (Bolya et al.
2023, arXiv:2311.05613). Facts from ``sam2/modeling/backbones/hieradet.py`` and
``utils.py`` (sam2 1.1.0); names match the official checkpoints (``image_encoder.trunk.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..sam.common import tensor_state_key
from .config import HieraConfig

__all__ = ["Hiera", "HieraBlock", "window_partition", "window_unpartition"]


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """B x H x W x C -> (B nW) x window x window x C, zero-padding H and W up to multiples of
    ``window`` (bottom/right). Returns the windows and the padded (Hp, Wp)."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    # B x Hp x Wp x C -> B x nh x win x nw x win x C -> B x nh x nw x win x win x C
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    # -> (B nh nw) x win x win x C
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B nW) x win x win x C -> B x H x W x C, the
    padding cropped away."""
    hp, wp = padded
    h, w = size
    nh, nw = hp // window, wp // window
    b = windows.shape[0] // (nh * nw)
    # (B nh nw) x win x win x C -> B x nh x nw x win x win x C -> B x nh x win x nw x win x C
    x = windows.reshape(b, nh, nw, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    # -> B x Hp x Wp x C
    x = x.reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def _pool(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """Max-pool a B x H x W x C grid -> B x H' x W' x C."""
    # B x H x W x C -> B x C x H x W, pool, and back.
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class _GeluMlp(nn.Module):
    """Two linear layers with GELU between (keys ``layers.0`` / ``layers.1``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](F.gelu(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """Multi-head self attention on a B x H x W x C grid, queries optionally max-pooled."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.MaxPool2d | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x H x W x C -> B x H' x W' x C_out (H' = H / stride with Q-pooling)."""
        b, h, w, _ = x.shape
        n = self.num_heads
        # B x H x W x 3C' -> B x HW x 3 x n x d -> three B x HW x n x d
        q, k, v = self.qkv(x).reshape(b, h * w, 3, n, -1).unbind(2)
        if self.q_pool is not None:
            # B x HW x n x d -> B x H x W x (n d), pool -> B x H' x W' x (n d)
            pooled = _pool(q.reshape(b, h, w, -1), self.q_pool)
            h, w = pooled.shape[1], pooled.shape[2]
            # -> B x H'W' x n x d
            q = pooled.reshape(b, h * w, n, -1)
        # B x N x n x d -> B x n x N x d for attention
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        # B x n x N' x d -> B x N' x n x d -> B x H' x W' x C'
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)


class HieraBlock(nn.Module):
    """One Hiera block (published ``MultiScaleBlock``): pre-norm (windowed) attention with
    optional Q-pooling and a projected shortcut when the width changes, then a GELU MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        q_stride: tuple[int, int] | None,
        window_size: int,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = (
            nn.MaxPool2d(kernel_size=q_stride, stride=q_stride, ceil_mode=False)
            if q_stride is not None
            else None
        )
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = _GeluMlp(dim_out, int(dim_out * mlp_ratio))
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x H x W x C -> B x H' x W' x C_out."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = _pool(shortcut, self.pool)
        window = self.window_size
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            h, w = shortcut.shape[1], shortcut.shape[2]
            if self.q_stride is not None:
                # Pooled queries: each window shrank by the stride.
                window = window // self.q_stride[0]
                padded = (h + (-h) % window, w + (-w) % window)
            x = window_unpartition(x, window, padded, (h, w))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: B x 3 x H x W -> B x H/4 x W/4 x C."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B x C x H x W -> B x H x W x C
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The trunk: B x 3 x 1024 x 1024 normalised image -> one B x C_i x H_i x W_i map per
    stage (strides 4, 8, 16, 32), highest resolution first."""

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        if len(cfg.stages) != len(cfg.window_spec):
            raise ValueError("stages and window_spec must have the same length")
        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: cfg.q_pool]
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size)
        )
        win0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, win0, win0))
        blocks = []
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        for i in range(sum(cfg.stages)):
            # The window size lags one block behind the stage: the first block of a stage
            # (which pools) still uses the previous stage's window.
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * cfg.dim_mul)
                heads = int(heads * cfg.head_mul)
                stage += 1
            blocks.append(
                HieraBlock(
                    dim,
                    dim_out,
                    heads,
                    cfg.mlp_ratio,
                    cfg.q_stride if i in q_pool_blocks else None,
                    window,
                )
            )
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = cfg.channel_list
        # (key of the parameters' state and grid size, 1 x H x W x C embedding)
        self._pos_cache: tuple[object, torch.Tensor] | None = None

    def position_embedding(self, size: tuple[int, int]) -> torch.Tensor:
        """1 x H x W x C: background grid (bicubic to H x W) + tiled window embedding.
        Cached (without autograd only) until the parameters change."""
        cache = not torch.is_grad_enabled()
        key = (
            tensor_state_key(self.pos_embed),
            tensor_state_key(self.pos_embed_window),
            size,
            torch.is_inference_mode_enabled(),
        )
        if cache and self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        pos = F.interpolate(self.pos_embed, size=size, mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, size[0] // win.shape[-2], size[1] // win.shape[-1])
        # 1 x C x H x W -> 1 x H x W x C
        pos = pos.permute(0, 2, 3, 1)
        if cache:
            self._pos_cache = (key, pos)
        return pos

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self.position_embedding((x.shape[1], x.shape[2]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                # B x H x W x C -> B x C x H x W
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
