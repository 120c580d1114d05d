"""The SAM family's training hooks: what ``sam_widget.finetune`` needs from a family.

Code outside ``models/`` never reaches into a family's submodules; the fine-tuning package
looks this module up by ``model.family`` and calls only the functions below:

- ``set_trainable(model, train)``: freeze everything except the named parts, return the
  parameters to optimise.
- ``decode(model, features, ...)``: a differentiable decode of B prompts on one image from
  its cached encoder features (the published ``PromptEncoder.forward`` and
  ``MaskDecoder.forward``, so autograd sees the plain path, not the inference fast path).
- ``encoder_id(model)``: a digest of the image encoder's weights; two models with the same
  id give the same image embeddings, so cached embeddings stay valid after a swap.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from .sam import Sam

__all__ = ["TRAINABLE", "decode", "encoder_id", "set_trainable"]

# What ``finetune(train=...)`` may name -> the submodules that are trained. The image
# encoder is never trained here: embeddings are computed once and reused every step.
TRAINABLE: dict[str, tuple[str, ...]] = {
    "decoder": ("mask_decoder",),
    "decoder+prompt": ("mask_decoder", "prompt_encoder"),
}


def _check(model: Any) -> Sam:
    if not isinstance(model, Sam):
        raise TypeError(f"model must be a SAM-family model, got {type(model).__name__}")
    return model


def set_trainable(model: Any, train: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` so that only the parts named by ``train`` (a key of
    ``TRAINABLE``) learn; return their parameters in a stable order."""
    sam = _check(model)
    if train not in TRAINABLE:
        raise ValueError(f"train must be one of {sorted(TRAINABLE)}, got {train!r}")
    parts = TRAINABLE[train]
    for p in sam.parameters():
        p.requires_grad_(False)
    params: list[nn.Parameter] = []
    for name in parts:
        module = getattr(sam, name)
        for p in module.parameters():
            p.requires_grad_(True)
            params.append(p)
    return params


def decode(
    model: Any,
    features: torch.Tensor,
    coords: torch.Tensor | None,
    labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable decode of B prompts on one image.

    ``features``: 1 x C x 64 x 64 cached image embedding; ``coords`` B x N x 2 XY and
    ``labels`` B x N (1 object, 0 background, -1 ignored) or None; ``boxes`` B x 4 XYXY or
    None, all in the input frame (resized image, pixels); ``mask_input`` B x 1 x 256 x 256
    logits or None. Returns low-res logits B x C x 256 x 256 and predicted IoU B x C
    (C = 3 with ``multimask``, else 1). Gradients flow to whatever ``set_trainable`` enabled.
    """
    sam = _check(model)
    if (coords is None) != (labels is None):
        raise ValueError("coords and labels must be given together")
    points = (coords, labels) if coords is not None and labels is not None else None
    sparse, dense = sam.prompt_encoder(points, boxes, mask_input)
    return sam.mask_decoder(
        features, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=multimask
    )


def encoder_id(model: Any) -> str:
    """BLAKE2b-128 hex digest of the variant and the image encoder's state (names, dtypes,
    shapes, bytes)."""
    sam = _check(model)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"sam-widget encoder v1\0{sam.variant}\0".encode())
    state = sam.image_encoder.state_dict()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        flat = t.reshape(-1)  # any shape -> flat, for its bytes
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        digest.update(np.ascontiguousarray(flat.view(torch.uint8).numpy()).data)
    return digest.hexdigest()
