"""Linear maps followed by GELU as one call, where this PyTorch build can.

On CPU, PyTorch ships oneDNN kernels that apply the GELU to each output block while it is
still in the core's cache (``torch.ops.mkldnn._linear_pointwise``: the kernel that
torch.compile's CPU backend emits for ``linear -> gelu``). Called directly they need no
compiler at run time. Elsewhere (other devices or dtypes, autograd, a build without
oneDNN, or a PyTorch whose op no longer matches) the same function runs ``F.linear`` and
an in-place GELU. Both give the same values up to float rounding.

The op is internal to PyTorch, so it is used only after a probe on a small input has
matched the plain ops once per process.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

__all__ = ["fused_available", "gelu_", "linear_gelu"]

_probe: dict[str, bool] = {}


def _linear_gelu_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    op = torch.ops.mkldnn._linear_pointwise
    return cast(torch.Tensor, op(x, weight, bias, "gelu", [], "none"))


def fused_available() -> bool:
    """Whether the fused CPU kernel exists here and matches ``gelu(linear(x))`` (probed once)."""
    if "ok" not in _probe:
        ok = False
        try:
            if torch.backends.mkldnn.is_available():
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(37, 24, generator=gen)
                w = torch.randn(40, 24, generator=gen) * 0.3
                b = torch.randn(40, generator=gen)
                with torch.inference_mode():
                    got = _linear_gelu_op(x, w, b)
                    want = F.gelu(F.linear(x, w, b))
                ok = got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-6)
        except (RuntimeError, AttributeError, TypeError):
            ok = False
        _probe["ok"] = ok
    return _probe["ok"]


def gelu_(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU (erf form, as ``F.gelu``) in place on a tensor the caller made; out of
    place when autograd records it (the backward pass needs the input)."""
    if x.requires_grad and torch.is_grad_enabled():
        return F.gelu(x)
    return cast(torch.Tensor, torch.ops.aten.gelu_(x))


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.gelu(F.linear(x, weight, bias))`` (exact GELU, erf form).

    ``x``: ... x C_in, ``weight``: C_out x C_in, ``bias``: C_out -> ... x C_out.
    """
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias))
    plain = (
        grad
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or not fused_available()
    )
    if plain:
        return gelu_(F.linear(x, weight, bias))
    return _linear_gelu_op(x.contiguous(), weight.contiguous(), bias.contiguous())
