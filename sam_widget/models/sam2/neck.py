"""SAM 2's feature-pyramid neck (published ``FpnNeck`` in
``sam2/modeling/backbones/image_encoder.py``, a modified FPN after Lin et al. 2017).

Each trunk stage gets a 1x1 lateral convolution to ``d_model`` channels. Going from the
coarsest level to the finest, a level listed in ``top_down_levels`` adds the previous
(coarser) output upsampled 2x by nearest neighbour; the others keep their lateral features
only. ``scalp`` coarsest levels are then dropped: with SAM 2's settings (levels 2 and 3
top-down, scalp 1) the stride-32 level only feeds the stride-16 one, and the outputs are
the stride-4, 8 and 16 maps. The neck's sine position encodings are not computed: only the
video memory uses them. ``convs[j]`` belongs to the j-th coarsest level, as in the
official checkpoints (``image_encoder.neck.convs.<j>.conv``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FpnNeck"]


class FpnNeck(nn.Module):
    """Trunk maps (finest first, channels ``reversed(channel_list)``) -> ``d_model``-channel
    maps of the kept levels, finest first."""

    def __init__(
        self,
        d_model: int,
        channel_list: tuple[int, ...],
        top_down_levels: tuple[int, ...],
        scalp: int,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.channel_list = tuple(channel_list)
        self.top_down_levels = frozenset(top_down_levels)
        self.scalp = scalp
        convs = []
        for dim in channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            convs.append(lateral)
        self.convs = nn.ModuleList(convs)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"expected {n} trunk maps, got {len(xs)}")
        out: list[torch.Tensor] = [xs[0]] * n
        prev: torch.Tensor | None = None
        for level in range(n - 1, -1, -1):
            lateral = self.convs[n - 1 - level](xs[level])
            if level in self.top_down_levels and prev is not None:
                up = F.interpolate(prev.float(), scale_factor=2.0, mode="nearest")
                prev = lateral + up
            else:
                prev = lateral
            out[level] = prev
        return out[: n - self.scalp] if self.scalp > 0 else out
