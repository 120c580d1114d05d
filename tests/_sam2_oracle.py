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

import numpy as np
import torch
from _torchvision_shim import import_sam2

__all__ = [
    "oracle_config_name",
    "oracle_model",
    "oracle_pair",
    "published_records",
    "rel_err",
    "save_official_layout",
]


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


def oracle_pair(variant: str, seed: int, folder: Path, size: tuple[int, int]) -> dict[str, Any]:
    """The published predictor and ours on one image, each having encoded it once.

    Same random weights (:func:`oracle_model` from ``seed``; ours loaded by ``build_sam``
    from them saved in the official layout under ``folder``); the image is ``size`` (H, W)
    uint8 RGB noise from ``seed``. Keys: ``sam2`` (the published package), ``ref`` (its
    ``SAM2ImagePredictor``, image set), ``ours`` (our ``SamPredictor`` with an
    ``EmbeddingCache`` holding the image's embedding, so that generators on it reuse it;
    image not set), ``embedding`` (that ``ImageEmbedding``), ``image``.
    """
    from sam_widget.engine.embedding_cache import EmbeddingCache
    from sam_widget.engine.predictor import SamPredictor
    from sam_widget.models.build import build_sam

    sam2 = import_sam2()
    ref_model = oracle_model(variant, seed=seed)
    path = save_official_layout(ref_model, folder / "t.pt")
    model = build_sam(variant, checkpoint=path, device="cpu")
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    ref = sam2.sam2_image_predictor.SAM2ImagePredictor(ref_model)
    ref.set_image(image)
    ours = SamPredictor(model, cache=EmbeddingCache())
    embedding = ours.compute_embedding(image)
    return {"sam2": sam2, "ref": ref, "ours": ours, "embedding": embedding, "image": image}


def published_records(pair: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """The published ``SAM2AutomaticMaskGenerator``'s records on ``pair["image"]``
    (:func:`oracle_pair`) with ``params``, reusing ``pair["ref"]``'s encoding. Without crops
    the generator's only ``set_image`` is of the whole image, so it is skipped."""
    gen = pair["sam2"].automatic_mask_generator.SAM2AutomaticMaskGenerator(
        pair["ref"].model, **params
    )
    shared = gen.predictor
    shared._features, shared._orig_hw = pair["ref"]._features, pair["ref"]._orig_hw
    shared._is_image_set = True
    shared.set_image = lambda image: None
    return gen.generate(pair["image"])
