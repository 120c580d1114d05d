"""SAM 2 / SAM 2.1 image-model configs, one frozen dataclass per variant.

Facts from the published configs (facebookresearch/sam2, ``sam2/configs/sam2/*.yaml`` and
``sam2/configs/sam2.1/*.yaml``, release 1.1.0) and the defaults of ``Hiera.__init__``
(``sam2/modeling/backbones/hieradet.py``) where a yaml file leaves a field out (base+ uses
them all). SAM 2 and SAM 2.1 have the same image path; they differ in trained weights and
in video-only modules (2.1 adds ``no_obj_embed_spatial`` and ``obj_ptr_tpos_proj``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HieraConfig", "Sam2Config", "VARIANTS", "get_config"]


@dataclass(frozen=True)
class HieraConfig:
    """The Hiera trunk (Ryali et al. 2023, arXiv:2306.00989) as SAM 2 configures it.

    ``stages``: blocks per stage (4 stages; each later stage halves the grid with Q-pooling
    in its first block and doubles channels and heads); ``global_att_blocks``: indices of
    blocks with global attention (all others attend within windows); ``window_spec``:
    window side per stage; ``window_pos_embed_bkg_spatial_size``: the background positional
    embedding's grid, interpolated to the patch grid (Bolya et al. 2023, arXiv:2311.05613).
    """

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Output channels of each stage, lowest resolution first (the neck's order)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class Sam2Config:
    """One SAM 2 / 2.1 variant's image path.

    ``d_model``: neck and decoder width; ``scalp``: how many of the lowest-resolution neck
    levels are dropped (1: the stride-32 level only feeds the top-down path);
    ``fpn_top_down_levels``: neck levels that receive the upsampled coarser level (0 and 1
    are lateral only); ``dynamic_multimask_*``: the single-mask fallback that the published
    ``build_sam2(apply_postprocessing=True)`` switches on for image prediction.
    """

    variant: str
    trunk: HieraConfig
    filename: str = ""
    has_official_weights: bool = True
    image_size: int = 1024
    backbone_stride: int = 16
    d_model: int = 256
    scalp: int = 1
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    mem_dim: int = 64
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def image_embedding_size(self) -> int:
        return self.image_size // self.backbone_stride

    @property
    def release(self) -> str:
        """ "sam2" or "sam2.1"."""
        return self.variant.split("_", 1)[0]


_TINY = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 7, 2),
    global_att_blocks=(5, 7, 9),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
_SMALL = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 11, 2),
    global_att_blocks=(7, 10, 13),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
# base+ sets only embed_dim and num_heads; the rest are Hiera's defaults.
_BASE_PLUS = HieraConfig(embed_dim=112, num_heads=2)
_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_pos_embed_bkg_spatial_size=(7, 7),
    window_spec=(8, 4, 16, 8),
)

_SIZES = {"t": ("tiny", _TINY), "s": ("small", _SMALL), "b+": ("base_plus", _BASE_PLUS)}
_SIZES["l"] = ("large", _LARGE)

VARIANTS: dict[str, Sam2Config] = {}
for _release in ("sam2", "sam2.1"):
    for _short, (_long, _trunk) in _SIZES.items():
        _name = f"{_release}_hiera_{_short}"
        # Official file names: sam2_hiera_tiny.pt, sam2.1_hiera_base_plus.pt, ...
        VARIANTS[_name] = Sam2Config(_name, _trunk, filename=f"{_release}_hiera_{_long}.pt")


def get_config(variant: str) -> Sam2Config:
    """The config of a SAM 2 / 2.1 variant; ``ValueError`` listing the names otherwise."""
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a str, got {type(variant).__name__}")
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(
            f"unknown SAM 2 variant {variant!r}; expected one of {sorted(VARIANTS)}"
        ) from None
