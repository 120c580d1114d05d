"""SAM 2 / 2.1 configs, checkpoint keys and the official-file table, checked against the
published ``sam2`` package (configs and module names) where it can be."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from _sam2_oracle import oracle_config_name
from _torchvision_shim import import_sam2

from sam_widget.engine.checkpoints import OFFICIAL
from sam_widget.models.sam2 import VARIANTS, Sam2, build, build_sam2, detect
from sam_widget.models.sam2.checkpoint import is_video_only, split_video_keys


def _norm(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _meta_state(variant: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return dict(Sam2(VARIANTS[variant]).state_dict())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_matches_published_yaml(variant: str) -> None:
    """Trunk and neck settings equal the published yaml, with Hiera's own defaults where
    the yaml leaves a field out."""
    sam2 = import_sam2()
    from omegaconf import OmegaConf
    from sam2.modeling.backbones.hieradet import Hiera

    path = Path(sam2.__file__).parent / oracle_config_name(variant)
    model = OmegaConf.to_container(OmegaConf.load(path))["model"]  # type: ignore[index]
    encoder = model["image_encoder"]
    defaults = {name: p.default for name, p in inspect.signature(Hiera.__init__).parameters.items()}
    trunk = {**defaults, **encoder["trunk"]}
    ours = VARIANTS[variant]
    for field in (
        "embed_dim",
        "num_heads",
        "stages",
        "global_att_blocks",
        "window_pos_embed_bkg_spatial_size",
        "window_spec",
        "q_pool",
        "q_stride",
        "dim_mul",
        "head_mul",
    ):
        assert _norm(getattr(ours.trunk, field)) == _norm(trunk[field]), field
    neck = encoder["neck"]
    assert list(ours.trunk.channel_list) == neck["backbone_channel_list"]
    assert list(ours.fpn_top_down_levels) == neck["fpn_top_down_levels"]
    assert neck["fpn_interp_model"] == "nearest"
    assert ours.scalp == encoder["scalp"]
    assert ours.d_model == neck["d_model"]
    assert ours.image_size == model["image_size"]
    assert model["directly_add_no_mem_embed"] is True
    assert model["use_high_res_features_in_sam"] is True
    assert model["iou_prediction_use_sigmoid"] is True
    assert model["pred_obj_scores"] is True and model["pred_obj_scores_mlp"] is True


@pytest.mark.parametrize("variant", ["sam2_hiera_t", "sam2.1_hiera_t"])
def test_keys_match_published_model(variant: str) -> None:
    """Our image model has exactly the published model's image keys and shapes; every
    other published key is recognised as video-only."""
    sam2 = import_sam2()
    ref = sam2.build_sam.build_sam2(oracle_config_name(variant), None, device="cpu")
    ref_state = ref.state_dict()
    image, video = split_video_keys(ref_state)
    ours = _meta_state(variant)
    assert set(image) == set(ours)
    assert all(tuple(image[k].shape) == tuple(ours[k].shape) for k in ours)
    assert video and all(is_video_only(k) for k in video)
    assert not any(is_video_only(k) for k in ours)
    # The official layout loads (strictly for the image keys) and is recognised.
    model = build(VARIANTS[variant], ref_state, "oracle")
    assert detect(ref_state) == variant
    assert torch.equal(model.no_mem_embed, ref_state["no_mem_embed"])


def _random_state(variant: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=gen) for k, v in _meta_state(variant).items()}


def test_unknown_or_missing_key_is_an_error() -> None:
    state = _random_state("sam2.1_hiera_t")
    state["memory_attention.layers.0.norm1.weight"] = torch.ones(256)  # video-only: fine
    unknown = {**state, "memory_bank.weight": torch.ones(3)}
    with pytest.raises(ValueError, match=r"(?s)unknown\.pt.*memory_bank\.weight"):
        build(VARIANTS["sam2.1_hiera_t"], unknown, "unknown.pt")
    missing = {k: v for k, v in state.items() if k != "no_mem_embed"}
    with pytest.raises(ValueError, match=r"(?s)missing\.pt.*no_mem_embed"):
        build(VARIANTS["sam2.1_hiera_t"], missing, "missing.pt")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_detect_variant(variant: str) -> None:
    """Our own state dicts are recognised too (SAM 2.1 models keep the one key that tells
    them from SAM 2)."""
    assert detect(_meta_state(variant)) == variant


def test_release_mismatch_is_an_error() -> None:
    state = _random_state("sam2.1_hiera_t")
    with pytest.raises(ValueError, match="no_obj_embed_spatial"):
        build(VARIANTS["sam2_hiera_t"], state, "sam21.pt")


def test_detect_rejects_other_families() -> None:
    assert detect({"image_encoder.pos_embed": torch.zeros(1, 64, 64, 768)}) is None


def test_build_from_official_layout_file(tmp_path: Path) -> None:
    state = _random_state("sam2_hiera_t")
    state["maskmem_tpos_enc"] = torch.zeros(7, 1, 1, 64)
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": state}, path)
    model = build_sam2("sam2_hiera_t", checkpoint=path, device="cpu")
    assert not model.training and model.pretrained and model.checkpoint == str(path)
    assert torch.equal(model.no_mem_embed, state["no_mem_embed"])
    with pytest.raises(ValueError, match="sam2_hiera_t"):
        build_sam2("sam2_hiera_s", checkpoint=path, device="cpu")


def test_random_weights_warn() -> None:
    with pytest.warns(UserWarning, match="untrained"):
        model = build_sam2("sam2.1_hiera_t", pretrained=False, device="cpu")
    assert model.pretrained is False and model.checkpoint is None
    with pytest.raises(ValueError, match="unknown SAM 2 variant"):
        build_sam2("sam2.1_hiera_xl", pretrained=False)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_official_table(variant: str) -> None:
    """Every variant has an official file: the release folder of its generation, the
    published file name, a size and a SHA-256."""
    info = OFFICIAL[variant]
    folder = "092824" if variant.startswith("sam2.1") else "072824"
    assert info.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{folder}/{info.filename}"
    assert info.filename == VARIANTS[variant].filename
    assert info.size is not None and 1e8 < info.size < 1e9
    assert info.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", info.sha256)


def test_registry_builds_sam2(tmp_path: Path) -> None:
    """``build_sam`` (the registry) builds every SAM 2 variant by name, and recognises an
    official-layout file by its keys."""
    from sam_widget.models import registry

    assert registry.list_models("sam2") == list(VARIANTS)
    assert set(VARIANTS) <= set(registry.list_models(pretrained=True))
    state = _random_state("sam2.1_hiera_t")
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {**state, "no_mem_pos_enc": torch.zeros(1, 1, 256)}}, path)
    by_name = registry.build_sam("sam2.1_hiera_t", checkpoint=path, device="cpu")
    by_path = registry.build_sam(str(path), device="cpu")
    for model in (by_name, by_path):
        assert isinstance(model, Sam2) and model.variant == "sam2.1_hiera_t"
        assert model.family == "sam2" and model.checkpoint == str(path)
    assert by_name.weights_id == by_path.weights_id
