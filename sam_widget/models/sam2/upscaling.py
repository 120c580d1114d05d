"""SAM 2's mask upscaling with the high-resolution skips, on channels-last tensors.

The published decoder (``sam2/modeling/sam/mask_decoder.py``) runs, on the B x C x 64 x 64
image tokens after the transformer::

    x = GELU(LayerNorm2d(ConvT1(src) + feat_s1))    # B x C/4 x 128 x 128
    x = GELU(ConvT2(x) + feat_s0)                   # B x C/8 x 256 x 256

A 2 x 2 transposed convolution with stride 2 maps every input cell to its own 2 x 2 block of
output cells, so it is one matrix product per cell: ``(B, HW, C_in) @ (C_in, C_out * 4)``,
then each cell's four outputs are put in place. Done that way on channels-last tensors the
transformer's B x HW x C tokens need no transpose, the LayerNorm runs along the last axis,
and the bias plus skip map (prepared once per image, channels last) is added in the same
pass that puts the blocks in place. Same values as the published modules up to float
rounding (different summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..sam.common import LayerNorm2d

__all__ = ["prepare_skip", "upscale_masks_features"]


def prepare_skip(feat: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """1 x C x H x W skip map -> 1 x H x W x C (channels last) with ``conv``'s bias added."""
    bias = conv.bias if conv.bias is not None else torch.zeros_like(feat[0, :, 0, 0])
    # 1 x C x H x W -> 1 x H x W x C
    return (feat.permute(0, 2, 3, 1) + bias).contiguous()


def _up2(x: torch.Tensor, conv: nn.ConvTranspose2d, skip: torch.Tensor) -> torch.Tensor:
    """B x h x w x C_in (any memory layout of those dims) -> B x 2h x 2w x C_out:
    ``conv``'s 2 x 2 stride-2 transposed convolution (weights only) plus ``skip`` (1 x 2h x
    2w x C_out, bias included)."""
    b, h, w, c_in = x.shape
    c_out = conv.weight.shape[1]
    # C_in x C_out x 2 x 2 -> C_in x 2 x 2 x C_out -> C_in x (2 2 C_out): each output
    # pixel's channels side by side, so the blocks below are put in place in runs of C_out
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)
    # B x h x w x C_in -> B x hw x C_in @ C_in x (2 2 C_out) -> B x h x w x 2 x 2 x C_out
    y = (x.reshape(b, h * w, c_in) @ weight).view(b, h, w, 2, 2, c_out)
    # -> B x h x 2 x w x 2 x C_out: output row 2i + di, column 2j + dj
    y = y.permute(0, 1, 3, 2, 4, 5)
    # 1 x 2h x 2w x C -> 1 x h x 2 x w x 2 x C, broadcast over B; the sum is written
    # contiguously (one pass: puts the blocks in place and adds bias + skip).
    out = y.new_empty((b, h, 2, w, 2, c_out))
    torch.add(y, skip.view(1, h, 2, w, 2, c_out), out=out)
    # -> B x 2h x 2w x C_out
    return out.view(b, 2 * h, 2 * w, c_out)


def upscale_masks_features(
    tokens: torch.Tensor,
    size: tuple[int, int],
    upscaling: nn.Sequential,
    skip_s1: torch.Tensor,
    skip_s0: torch.Tensor,
) -> torch.Tensor:
    """Transformer image tokens B x HW x C -> mask features B x 4H x 4W x C/8 (channels
    last). ``upscaling``: the published ``output_upscaling`` modules (ConvT, LayerNorm2d,
    GELU, ConvT, GELU); ``skip_s1`` / ``skip_s0``: from :func:`prepare_skip`."""
    up1, norm, _act1, up2, _act2 = upscaling
    assert isinstance(up1, nn.ConvTranspose2d) and isinstance(up2, nn.ConvTranspose2d)
    assert isinstance(norm, LayerNorm2d)
    h, w = size
    # B x HW x C -> B x H x W x C (a view)
    x = _up2(tokens.view(tokens.shape[0], h, w, -1), up1, skip_s1)
    x = F.gelu(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
    return F.gelu(_up2(x, up2, skip_s0))
