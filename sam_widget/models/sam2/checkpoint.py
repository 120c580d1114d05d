"""Which keys of an official SAM 2 / 2.1 checkpoint the image model uses, and which it sets
aside.

The official files hold ``{"model": state_dict}`` of the whole video model
(``SAM2Base``). The image path (``SAM2ImagePredictor``) uses the image encoder, the prompt
encoder, the mask decoder and ``no_mem_embed``. The keys below belong to the video
memory and object-pointer modules (``sam2/modeling/sam2_base.py``: ``memory_attention``,
``memory_encoder``, ``maskmem_tpos_enc``, ``no_mem_pos_enc``, ``mask_downsample``,
``obj_ptr_proj``, ``obj_ptr_tpos_proj`` (2.1), ``no_obj_ptr``). They are recognised by
name and set aside; any other key the image model lacks is an error, and so is any
image-model key the file lacks.

``no_obj_embed_spatial`` (1 x 64, SAM 2.1 only) is video-only too, but the SAM 2.1 image
models keep it (unused): SAM 2 and 2.1 have the same image modules, and this key is what
tells their state dicts apart (``build.detect``), also for a state dict saved from our
model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["VIDEO_ONLY_MODULES", "VIDEO_ONLY_TENSORS", "is_video_only", "split_video_keys"]

# Modules (key prefixes "<name>.") used only by video tracking.
VIDEO_ONLY_MODULES = (
    "memory_attention",
    "memory_encoder",
    "mask_downsample",
    "obj_ptr_proj",
    "obj_ptr_tpos_proj",
)
# Single parameters used only by video tracking.
VIDEO_ONLY_TENSORS = (
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
)


def is_video_only(key: str) -> bool:
    """Whether ``key`` belongs to one of the video-only modules or tensors above."""
    return key in VIDEO_ONLY_TENSORS or ("." in key and key.split(".", 1)[0] in VIDEO_ONLY_MODULES)


def split_video_keys(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``state`` -> (keys for the image model, video-only keys set aside)."""
    image: dict[str, torch.Tensor] = {}
    video: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        (video if is_video_only(key) else image)[key] = value
    return image, video
