"""Build SAM 2 / 2.1 image models: random weights, or a state dict loaded strictly after
setting aside the video-only keys (``checkpoint.py``).

``build(config, state, source)`` and ``detect(state)`` are the family's hooks for the
variant registry; ``build_sam2`` is the stand-alone entry point.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from itertools import chain

import torch

from .checkpoint import split_video_keys
from .config import VARIANTS, Sam2Config, get_config
from .model import Sam2

__all__ = ["build", "build_sam2", "detect"]


def build(config: Sam2Config, state: Mapping[str, torch.Tensor] | None, source: str) -> Sam2:
    """A :class:`Sam2` in training mode: PyTorch's default random initialisation on the
    current default device when ``state`` is None (the registry builds it on the CPU, or on
    the meta device to inspect shapes), else ``state`` loaded strictly on the CPU (video-only
    keys set aside by name). ``ValueError`` naming ``source`` when the state does not fit."""
    if state is None:
        return Sam2(config)
    # Built on the meta device (no memory, no random initialisation) and given the
    # checkpoint's tensors directly (assign=True).
    with torch.device("meta"):
        model = Sam2(config)
    image_state, _video = split_video_keys(state)
    # The model is float32 throughout; half-precision files are widened.
    image_state = {k: (v.float() if v.is_floating_point() else v) for k, v in image_state.items()}
    try:
        model.load_state_dict(image_state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {source or '(state dict)'} does not fit SAM 2 variant "
            f"{config.variant!r}: {exc}"
        ) from None
    model.set_pixel_stats("cpu")
    left = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"internal error: tensors not materialised after loading: {left}")
    return model


def detect(state: Mapping[str, torch.Tensor]) -> str | None:
    """The SAM 2 / 2.1 variant of a state dict, or None.

    The size comes from the trunk's width (``patch_embed``) and block count; SAM 2.1 state
    dicts (official files and our models') carry ``no_obj_embed_spatial``, SAM 2 ones do not.
    """
    patch = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None or "sam_mask_decoder.obj_score_token.weight" not in state:
        return None
    width = int(patch.shape[0])
    blocks = {k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")}
    release = "sam2.1" if "no_obj_embed_spatial" in state else "sam2"
    for name, cfg in VARIANTS.items():
        trunk = cfg.trunk
        if (
            name.startswith(release + "_")
            and trunk.embed_dim == width
            and sum(trunk.stages) == len(blocks)
        ):
            return name
    return None


def build_sam2(
    variant: str = "sam2.1_hiera_t",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    *,
    pretrained: bool = True,
) -> Sam2:
    """Build a SAM 2 / 2.1 image model in eval mode.

    ``variant``: "sam2.1_hiera_t" / "_s" / "_b+" / "_l" or the same for "sam2_hiera_*".
    ``checkpoint``: a state-dict file (the official ``{"model": state_dict}`` layout or a
    plain state dict); None with ``pretrained=True``: the official weights (downloaded once,
    verified, cached). ``pretrained=False``: random weights (``model.pretrained`` False and
    a ``UserWarning``). ``device``: None picks CUDA, then MPS, then CPU.
    """
    from ..registry import resolve_device

    config = get_config(variant)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {type(pretrained).__name__}")
    if checkpoint is not None and not pretrained:
        raise ValueError(
            "checkpoint was given together with pretrained=False; pass one or the other"
        )
    target = resolve_device(device)
    if pretrained:
        from ...engine import checkpoints

        path = checkpoints.resolve_checkpoint(variant, checkpoint)
        state = checkpoints.load_state_dict(path)
        found = detect(state)
        if found is not None and found != variant:
            raise ValueError(
                f"checkpoint {path} holds weights of variant {found!r}, but variant "
                f"{variant!r} was requested"
            )
        model = build(config, state, str(path))
        model.pretrained = config.has_official_weights
        model.checkpoint = str(path)
    else:
        warnings.warn(
            f"SAM 2 variant {variant!r} was built with random, untrained weights "
            "(pretrained=False): its masks are meaningless",
            UserWarning,
            stacklevel=2,
        )
        # On the CPU so that torch.manual_seed gives the same weights on every machine.
        with torch.device("cpu"):
            model = build(config, None, "")
    return model.to(target).eval()
