"""Test helpers around the published ``sam2`` package (the SAM 2 / 2.1 oracle).

``oracle_model(variant, seed)`` builds the published ``SAM2Base`` with the published
``build_sam2`` (hydra config of that variant, ``apply_postprocessing=True`` as its image
predictor uses it) and gives every parameter random values from ``seed``: PyTorch's default
initialisation leaves many tensors at 0 or 1 (positional embeddings, ``no_mem_embed``,
LayerNorm weights), which would hide mistakes in how they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from _torchvision_shim import import_sam2

__all__ = ["oracle_config_name", "oracle_model", "rel_err", "save_official_layout"]


def oracle_config_name(variant: str) -> str:
    """ "sam2.1_hiera_t" -> "configs/sam2.1/sam2.1_hiera_t.yaml" (the published config)."""
    release = variant.split("_", 1)[0]
    return f"configs/{release}/{variant}.yaml"


def oracle_model(variant: str, seed: int = 0) -> Any:
    """The published model of ``variant`` in eval mode on the CPU with random weights
    (seeded)."""
    sam2 = import_sam2()
    torch.manual_seed(seed)
    model = sam2.build_sam.build_sam2(oracle_config_name(variant), None, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("weight") and p.dim() == 1:
                p.copy_(1.0 + 0.1 * noise)  # LayerNorm scales around 1
            elif p.dim() == 1:
                p.copy_(0.1 * noise)  # biases
            else:
                fan_in = max(1, p[0].numel())
                p.copy_(noise / fan_in**0.5)
    return model.eval()


def save_official_layout(model: Any, path: Path) -> Path:
    """Save ``model``'s state dict as the official files are laid out: ``{"model": sd}``."""
    torch.save({"model": model.state_dict()}, path)
    return path


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (0 when both are all zero)."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    if ours.shape != ref.shape:
        raise AssertionError(f"shapes differ: {tuple(ours.shape)} vs {tuple(ref.shape)}")
    scale = ref.abs().max().item()
    diff = (ours - ref).abs().max().item()
    return diff / scale if scale > 0 else diff
