"""``sam_widget.models.sam.fused``: the one-call linear + GELU and its plain fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam_widget.models.sam import fused


@pytest.fixture
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the probe again in this test (and restore the cached answer afterwards)."""
    monkeypatch.setattr(fused, "_probe", {})


def _inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 64, generator=gen, dtype=dtype)
    w = torch.randn(96, 64, generator=gen, dtype=dtype) * 0.2
    b = torch.randn(96, generator=gen, dtype=dtype)
    return x, w, b


def test_fused_kernel_is_used_where_onednn_is() -> None:
    # On the CPU builds we install (x86-64 Linux) the fused kernel must be found and match;
    # if a PyTorch upgrade changed the op, this fails instead of silently going slow.
    assert fused.fused_available() == torch.backends.mkldnn.is_available()


def test_linear_gelu_matches_plain_ops() -> None:
    x, w, b = _inputs()
    with torch.inference_mode():
        got = fused.linear_gelu(x, w, b)
    want = F.gelu(F.linear(x, w, b))
    assert got.shape == (300, 96)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # a non-contiguous input (a transposed view) gives the same
    with torch.inference_mode():
        again = fused.linear_gelu(x.T.contiguous().T, w, b)
    torch.testing.assert_close(again, want, rtol=1e-5, atol=1e-6)


def test_linear_gelu_backpropagates() -> None:
    x, w, b = _inputs()
    w.requires_grad_(True)
    fused.linear_gelu(x, w, b).sum().backward()
    w2 = w.detach().clone().requires_grad_(True)
    F.gelu(F.linear(x, w2, b)).sum().backward()
    assert w.grad is not None and w2.grad is not None
    torch.testing.assert_close(w.grad, w2.grad)


def test_linear_gelu_other_dtype_uses_plain_ops() -> None:
    x, w, b = _inputs(torch.float64)
    with torch.inference_mode():
        got = fused.linear_gelu(x, w, b)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, F.gelu(F.linear(x, w, b)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("failure", ["raises", "wrong values"])
def test_probe_failure_falls_back(
    fresh_probe: None, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    def broken(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if failure == "raises":
            raise RuntimeError("no such op")
        return F.linear(x, w, b)  # no GELU: a kernel that does not do what we expect

    monkeypatch.setattr(fused, "_linear_gelu_op", broken)
    assert not fused.fused_available()
    x, w, b = _inputs()
    with torch.inference_mode():
        got = fused.linear_gelu(x, w, b)
    torch.testing.assert_close(got, F.gelu(F.linear(x, w, b)), rtol=1e-6, atol=1e-6)
