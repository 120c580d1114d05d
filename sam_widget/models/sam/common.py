"""Small layers shared by the encoder and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "LayerNorm2d", "MLPBlock", "tensor_state_key"]


def tensor_state_key(t: torch.Tensor) -> tuple[object, ...]:
    """A cheap key that changes when ``t`` is replaced, moved, cast or modified in place.

    In-place writes bump a tensor's version counter; a new tensor has a new storage
    pointer. Inference-mode tensors have no version counter, so in-place edits of those
    (only possible inside ``torch.inference_mode``) are not seen. Writes through
    ``.data`` bypass the counter too.
    """
    version = None if t.is_inference() else t._version
    return (t.data_ptr(), version, t.dtype, t.device, tuple(t.shape))


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them (the transformer feed-forward)."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a B x C x H x W tensor (ConvNeXt / detectron2 style).

    Parameter names ``weight`` and ``bias`` match the published checkpoints.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B x C x H x W -> B x H x W x C, normalise the last axis, and back.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (no activation after the last).

    Used for the mask decoder's hypernetworks and IoU head (MaskFormer style).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        widths = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x
