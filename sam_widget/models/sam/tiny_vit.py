"""TinyViT image encoder of MobileSAM (the ``vit_t`` variant).

MobileSAM (Zhang et al. 2023, "Faster Segment Anything") replaces SAM's ViT-H image encoder by
a 5M-parameter TinyViT (Wu et al. 2022, "TinyViT: Fast Pretraining Distillation for Small
Vision Transformers") distilled from it, followed by SAM's usual neck. Structure, as in
MobileSAM's ``mobile_sam/modeling/tiny_vit_sam.py``:

- ``patch_embed``: two stride-2 3x3 conv+BatchNorm with GELU between: 1024² -> 256².
- ``layers[0]``: MBConv blocks (inverted residual, depthwise 3x3), then a patch merging 2x down.
- ``layers[1:]``: TinyViT blocks (windowed attention with a learned per-head bias per relative
  offset, a depthwise "local" conv, an MLP), each stage but the last ending in patch merging.
  MobileSAM's merge into the last stage keeps the resolution (stride 1), so the encoder output
  is 1/16 of the input: 1024² -> 64², like SAM's ViT.
- ``neck``: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d to 256 channels (as in SAM).

The classification head (``norm_head``, ``head``) is unused but kept: MobileSAM's checkpoint
carries it and we load strictly.

Inference-only: no dropout, drop-path, gradient checkpointing or layer-wise lr decay (they do
not change eval-mode outputs and own no state-dict entries).

One deliberate difference from MobileSAM's code: its attention caches ``biases[:, idxs]`` when
``.eval()`` is called, so a model put in eval mode *before* loading weights (as its
``build_sam_vit_t`` does) uses stale all-zero biases until ``.eval()`` is called again (its
README does call it). We index the live parameter on every forward, which equals MobileSAM
used as its README shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d
from .fused import gelu_

# Rows per step of the MBConv blocks in eval mode (MBConv.forward).
_STRIP_ROWS = 32


class ConvBN(nn.Module):
    """Bias-free conv followed by BatchNorm2d (MobileSAM's ``Conv2d_BN``: keys ``c``, ``bn``).

    Padding is ``kernel_size // 2`` (shape-preserving at stride 1), as everywhere in TinyViT.
    B x in_chans x H x W -> B x out_chans x H/stride x W/stride.
    """

    def __init__(
        self, in_chans: int, out_chans: int, kernel_size: int = 1, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(
            in_chans, out_chans, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(self.c(x))
        # Eval: BatchNorm with running statistics is a per-channel affine map, folded into
        # the conv (one pass over the activations instead of two; same values up to float
        # rounding).
        bn, conv = self.bn, self.c
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return F.conv2d(
            x,
            conv.weight * scale[:, None, None, None],
            bn.bias - bn.running_mean * scale,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 ConvBN with GELU between: B x 3 x H x W -> B x C x H/4 x W/4.

    Kept as an ``nn.Sequential`` named ``seq`` so the keys are ``seq.0.*`` and ``seq.2.*``.
    """

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, 3, stride=2),
            nn.GELU(),
            ConvBN(embed_dim // 2, embed_dim, 3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise 3x3, 1x1 project, add, GELU.

    B x C x H x W -> B x C x H x W. GELU after the expand and depthwise convs and after the
    residual sum (not on the projection before the sum).
    """

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden, 1)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        if self.training or h <= _STRIP_ROWS:
            return self._block(x, 0, h)
        # Eval: in strips of rows. At 256² the 4x expanded activations are 64 MB tensors;
        # strips keep them in cache and below the allocator's reuse limit (a fresh 64 MB
        # tensor costs 16k page faults). Same values: every output row sees the same inputs.
        out = torch.empty_like(x)
        for r0 in range(0, h, _STRIP_ROWS):
            r1 = min(h, r0 + _STRIP_ROWS)
            out[:, :, r0:r1] = self._block(x, r0, r1)
        return out

    def _block(self, x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        """Output rows r0..r1 - 1, from input rows r0 - 1..r1 (the depthwise conv's reach)."""
        lo, hi = max(0, r0 - 1), min(x.shape[-2], r1 + 1)
        # In-place GELU and sum on our own intermediates.
        y = gelu_(self.conv1(x[:, :, lo:hi]))
        # zero padding of the 3x3 conv is right at the image edges; the extra rows at a
        # strip edge are dropped
        y = gelu_(self.conv2(y)[:, :, r0 - lo : r1 - lo])
        return gelu_(self.conv3(y).add_(x[:, :, r0:r1]))


class PatchMerging(nn.Module):
    """Channel change and downsampling between stages: 1x1, depthwise 3x3 (stride), 1x1.

    B x in_dim x H x W -> B x out_dim x H' x W' with H' = ceil(H / stride). GELU after the
    first two convs. MobileSAM uses stride 1 for the merge into its last stage.
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_dim, out_dim, 1)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return self.conv3(x)


def relative_offset_index(window_size: int) -> torch.Tensor:
    """Bias-table index for every (query, key) pair of a window: ``(ws², ws²)`` int64.

    Tokens are numbered row-major inside a window. A pair with row/column distance
    ``(|dr|, |dc|)`` reads bias column ``|dr| * ws + |dc|``. This is the order in which
    MobileSAM's (LeViT-style) enumeration first meets each distinct offset, so the column
    layout of ``attention_biases`` matches its checkpoint.
    """
    pos = torch.arange(window_size)
    rows = pos.repeat_interleave(window_size)  # token n -> its row n // ws
    cols = pos.repeat(window_size)  # token n -> its column n % ws
    d_row = (rows[:, None] - rows[None, :]).abs()
    d_col = (cols[:, None] - cols[None, :]).abs()
    return d_row * window_size + d_col


class Attention(nn.Module):
    """Multi-head self-attention inside one window, with a learned bias per relative offset.

    LayerNorm is applied inside (pre-norm). Input and output: Bw x N x C (Bw = batch x windows,
    N = ws² tokens of one window). ``attention_biases`` is (num_heads, ws²): one value per head
    and per absolute row/column distance; it is added to the scaled q·k logits.
    """

    attention_bias_idxs: torch.Tensor

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        # Output features are grouped per head as [q | k | v] (each head_dim wide), unlike
        # SAM's ViT which groups [all q | all k | all v].
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        # Derived from window_size; not in the checkpoint.
        self.register_buffer(
            "attention_bias_idxs", relative_offset_index(window_size), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(self.norm(x))
        # Bw x N x 3C -> Bw x N x heads x 3*head_dim -> Bw x heads x N x 3*head_dim
        qkv = qkv.view(bw, n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        # heads x N x N, broadcast over windows; scale is head_dim ** -0.5.
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        # Written out: with a float mask SDPA takes its generic CPU path, which also scans
        # for fully masked rows; this is about 5 % faster for the whole encoder.
        logits = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # Bw x heads x N x N
        out = torch.softmax(logits.add_(bias), dim=-1) @ v
        # Bw x heads x N x head_dim -> Bw x N x heads x head_dim -> Bw x N x C
        out = out.transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    """Pre-norm MLP: LayerNorm, Linear, GELU, Linear. ... x C -> ... x C."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (residual), depthwise local conv (not residual), MLP (residual).

    Input and output: B x H x W x C (channels last). The feature map is zero-padded at the
    bottom/right to a multiple of the window size before attention; padded tokens take part
    as keys (no masking; after the attention's LayerNorm they equal its bias), exactly like
    MobileSAM, and are cropped afterwards.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, local_conv_size: int
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention within non-overlapping ws x ws windows: B x H x W x C -> B x H x W x C."""
        b, h, w, c = x.shape
        ws = self.window_size
        pad_h, pad_w = (-h) % ws, (-w) % ws
        # pad order for a channels-last map: (C left, C right, W left, W right, H top, H bottom)
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (h + pad_h) // ws, (w + pad_w) // ws
        # B x Hp x Wp x C -> B x nh x ws x nw x ws x C -> B x nh x nw x ws x ws x C
        x = x.view(b, nh, ws, nw, ws, c).permute(0, 1, 3, 2, 4, 5)
        # B x nh x nw x ws x ws x C -> (B*nh*nw) x ws² x C
        x = self.attn(x.reshape(b * nh * nw, ws * ws, c))
        # (B*nh*nw) x ws² x C -> B x nh x nw x ws x ws x C -> B x nh x ws x nw x ws x C
        x = x.view(b, nh, nw, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        # B x nh x ws x nw x ws x C -> B x Hp x Wp x C, then crop the padding
        return x.reshape(b, nh * ws, nw * ws, c)[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.window_attention(x)
        # B x H x W x C -> B x C x H x W for the depthwise conv, then back
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks then patch merging. B x C x H x W -> B x C' x H' x W'."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, downsample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MBConv(dim, expand_ratio) for _ in range(depth)])
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class AttentionStage(nn.Module):
    """Stages 1..: TinyViT blocks then (except the last stage) patch merging.

    B x C x H x W -> B x C' x H' x W' (C' = C, H' = H for the last stage).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        local_conv_size: int,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                TinyViTBlock(dim, num_heads, window_size, mlp_ratio, local_conv_size)
                for _ in range(depth)
            ]
        )
        # None owns no keys, like the last stage in MobileSAM's checkpoint.
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B x C x H x W -> B x H x W x C
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        # B x H x W x C -> B x C x H x W
        x = x.permute(0, 3, 1, 2)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """MobileSAM's image encoder: B x in_chans x img_size x img_size -> B x 256 x S x S.

    ``S = img_size // 16`` (64 for the 1024 input SAM uses). The input is SAM-preprocessed
    (normalized, padded to ``img_size``). Use in eval mode: BatchNorm then uses the running
    statistics from the checkpoint. ``drop_rate`` and ``drop_path_rate`` exist for signature
    compatibility with MobileSAM's constructor and must be 0 (this module is inference-only).
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
    ) -> None:
        super().__init__()
        n_stages = len(embed_dims)
        if n_stages < 2 or not len(depths) == len(num_heads) == len(window_sizes) == n_stages:
            raise ValueError(
                "embed_dims, depths, num_heads and window_sizes must have one entry per stage "
                f"(at least 2), got lengths {len(embed_dims)}, {len(depths)}, {len(num_heads)}, "
                f"{len(window_sizes)}"
            )
        if drop_rate != 0.0 or drop_path_rate != 0.0:
            raise ValueError(
                "drop_rate and drop_path_rate must be 0.0: this TinyViT is inference-only, "
                f"got {drop_rate} and {drop_path_rate}"
            )
        self.img_size = img_size
        self.in_chans = in_chans

        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        layers: list[nn.Module] = []
        for i in range(n_stages):
            downsample = None
            if i < n_stages - 1:
                # The merge into the last stage keeps the resolution (MobileSAM's stride-1
                # rule for out_dim 320/448/576, the last dims of every published TinyViT).
                stride = 1 if i == n_stages - 2 else 2
                downsample = PatchMerging(embed_dims[i], embed_dims[i + 1], stride)
            if i == 0:
                assert downsample is not None
                layers.append(ConvStage(embed_dims[0], depths[0], mbconv_expand_ratio, downsample))
            else:
                layers.append(
                    AttentionStage(
                        embed_dims[i],
                        depths[i],
                        num_heads[i],
                        window_sizes[i],
                        mlp_ratio,
                        local_conv_size,
                        downsample,
                    )
                )
        self.layers = nn.ModuleList(layers)

        # ImageNet classification head of TinyViT: unused by SAM, present in the checkpoint.
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head: nn.Module = (
            nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        )

        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x in_chans x H x W float (H = W = img_size in SAM) -> B x 256 x H/16 x W/16."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"x must be B x {self.in_chans} x H x W, got shape {tuple(x.shape)}")
        # Channels-last activations: oneDNN's depthwise and 1x1 convs run faster on a CPU
        # in this layout (benchmarks/README.md); the output is returned contiguous.
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x).contiguous()
