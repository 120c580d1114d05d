"""Building SAM and MobileSAM models: modules from a :class:`SamConfig`, weights from a state
dict (loaded strictly, without a second copy of the tensors) or random, and recognising a
SAM state dict's variant. Registered as the ``"sam"`` family (``__init__.py``); users call
``sam_widget.build_sam``.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain

import torch
from torch import nn

from .config import VARIANTS, SamConfig, TinyViTConfig, ViTConfig, get_config
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .transformer import TwoWayTransformer

__all__ = ["assemble_sam", "build", "detect_variant"]


def detect_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The variant a SAM state dict belongs to, or ``None`` if it matches none.

    TinyViT (``vit_t``) has staged ``image_encoder.layers.*``; the ViTs are told apart by
    the width of ``image_encoder.pos_embed`` and the number of ``image_encoder.blocks``.
    """
    if "image_encoder.pos_embed" not in state_dict:
        if any(k.startswith("image_encoder.layers.") for k in state_dict):
            return "vit_t"
        return None
    width = state_dict["image_encoder.pos_embed"].shape[-1]
    block_ids = {k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")}
    for cfg in VARIANTS.values():
        enc = cfg.encoder
        if isinstance(enc, ViTConfig) and enc.embed_dim == width and enc.depth == len(block_ids):
            return cfg.variant
    return None


def _image_encoder(config: SamConfig) -> nn.Module:
    enc = config.encoder
    if isinstance(enc, ViTConfig):
        return ImageEncoderViT(
            img_size=config.image_size,
            patch_size=enc.patch_size,
            embed_dim=enc.embed_dim,
            depth=enc.depth,
            num_heads=enc.num_heads,
            mlp_ratio=enc.mlp_ratio,
            out_chans=config.prompt_embed_dim,
            window_size=enc.window_size,
            global_attn_indexes=enc.global_attn_indexes,
        )
    assert isinstance(enc, TinyViTConfig)
    # Imported here: TinyViT is only needed for vit_t (and lives in its own module).
    from .tiny_vit import TinyViT

    return TinyViT(
        img_size=config.image_size,
        in_chans=3,
        num_classes=enc.num_classes,
        embed_dims=enc.embed_dims,
        depths=enc.depths,
        num_heads=enc.num_heads,
        window_sizes=enc.window_sizes,
        mlp_ratio=enc.mlp_ratio,
        drop_rate=0.0,
        drop_path_rate=0.0,
        mbconv_expand_ratio=enc.mbconv_expand_ratio,
        local_conv_size=enc.local_conv_size,
    )


def _prompt_encoder(config: SamConfig) -> PromptEncoder:
    grid = config.image_embedding_size
    return PromptEncoder(
        embed_dim=config.prompt_embed_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=config.mask_in_chans,
    )


def _mask_decoder(config: SamConfig) -> MaskDecoder:
    return MaskDecoder(
        transformer_dim=config.prompt_embed_dim,
        transformer=TwoWayTransformer(
            depth=config.decoder_depth,
            embedding_dim=config.prompt_embed_dim,
            num_heads=config.decoder_num_heads,
            mlp_dim=config.decoder_mlp_dim,
            attention_downsample_rate=config.attention_downsample_rate,
        ),
        num_multimask_outputs=config.num_multimask_outputs,
        iou_head_depth=config.iou_head_depth,
        iou_head_hidden_dim=config.iou_head_hidden_dim,
    )


def _assemble(
    config: SamConfig, encoder: nn.Module, prompt: PromptEncoder, decoder: MaskDecoder
) -> Sam:
    return Sam(
        encoder,
        prompt,
        decoder,
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
        config=config,
    )


def assemble_sam(variant: str | SamConfig) -> Sam:
    """Construct a variant's modules with PyTorch's default random initialisation on the
    current default device (e.g. inside ``with torch.device("meta"):`` to inspect shapes
    without allocating), in training mode, ``pretrained=False``. ``build_sam`` is the
    user-facing entry point."""
    config = variant if isinstance(variant, SamConfig) else get_config(variant)
    return _assemble(config, _image_encoder(config), _prompt_encoder(config), _mask_decoder(config))


def _model_from_state(config: SamConfig, state: Mapping[str, torch.Tensor], source: str) -> Sam:
    # Our own modules are built on the meta device (no memory, no random init) and take the
    # checkpoint tensors directly (assign=True): no second copy of gigabytes of weights.
    # TinyViT is built normally: it may compute non-persistent buffers in its constructor.
    with torch.device("meta"):
        prompt, decoder = _prompt_encoder(config), _mask_decoder(config)
        encoder = _image_encoder(config) if isinstance(config.encoder, ViTConfig) else None
    if encoder is None:
        with torch.device("cpu"):
            encoder = _image_encoder(config)
    model = _assemble(config, encoder, prompt, decoder)
    # The model is float32 throughout; half-precision files are widened.
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {source} does not fit variant {config.variant!r}: {exc}"
        ) from None
    left = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"internal error: tensors not materialised after loading: {left}")
    return model


def build(config: SamConfig, state: Mapping[str, torch.Tensor] | None, source: str) -> Sam:
    """The family builder (``registry.Builder``): random weights (PyTorch's default
    initialisation, on the current default device) when ``state`` is None, else ``state``
    loaded strictly; ``ValueError`` naming ``source`` when it does not fit."""
    if state is None:
        return assemble_sam(config)
    return _model_from_state(config, state, source)
