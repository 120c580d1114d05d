"""build_sam: variants, weights (random / checkpoint), variant detection, device, eval mode."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from sam_widget.models.build import assemble_sam, build_sam, detect_variant, resolve_device
from sam_widget.models.sam import Sam
from sam_widget.models.sam.config import VARIANTS, SamConfig, get_config


def _all_eval(model: torch.nn.Module) -> bool:
    return not any(m.training for m in model.modules())


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A saved random "tiny" state dict (not our session models': independent weights)."""
    torch.manual_seed(31)
    state = assemble_sam("tiny").state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(state, path)
    return path, state


def test_registry_lists_the_documented_variants() -> None:
    assert set(VARIANTS) == {"vit_b", "vit_l", "vit_h", "vit_t", "tiny"}
    for name, cfg in VARIANTS.items():
        assert isinstance(cfg, SamConfig) and cfg.variant == name
        assert cfg.image_size == 1024 and cfg.image_embedding_size == 64
        assert cfg.prompt_embed_dim == 256
    assert not VARIANTS["tiny"].has_official_weights
    with pytest.raises(AttributeError):
        VARIANTS["vit_b"].image_size = 512  # type: ignore[misc]  # frozen


def test_tiny_builds_random_untrained_in_eval_mode_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sam = build_sam("tiny", device="cpu")
    assert isinstance(sam, Sam)
    assert sam.variant == "tiny" and sam.config is get_config("tiny")
    assert sam.pretrained is False
    assert _all_eval(sam)
    assert sam.device == torch.device("cpu")
    assert sam.image_encoder.img_size == 1024
    assert sam.mask_threshold == 0.0 and sam.image_format == "RGB"


def test_random_weights_follow_the_seed() -> None:
    torch.manual_seed(5)
    a = build_sam("tiny", device="cpu", pretrained=False)
    torch.manual_seed(5)
    b = build_sam("tiny", device="cpu", pretrained=False)
    torch.manual_seed(6)
    c = build_sam("tiny", device="cpu", pretrained=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(
        sa["image_encoder.patch_embed.proj.weight"], sc["image_encoder.patch_embed.proj.weight"]
    )


def test_pretrained_false_warns_and_flags_untrained() -> None:
    with pytest.warns(UserWarning, match="untrained"):
        sam = build_sam("vit_b", device="cpu", pretrained=False)
    assert sam.pretrained is False
    assert sam.variant == "vit_b"
    assert _all_eval(sam)


def test_unknown_variant_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="vit_x") as info:
        build_sam("vit_x", device="cpu")
    for name in VARIANTS:
        assert repr(name) in str(info.value)
    with pytest.raises(TypeError):
        build_sam(3, device="cpu")  # type: ignore[arg-type]


def test_checkpoint_loads_strictly(tiny_checkpoint: tuple[Path, dict]) -> None:
    path, state = tiny_checkpoint
    sam = build_sam("tiny", checkpoint=path, device="cpu")
    loaded = sam.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert _all_eval(sam)
    assert sam.pretrained is False  # "tiny" never has trained weights
    # The non-checkpoint buffers are real, not left on the meta device.
    assert torch.equal(sam.pixel_mean.flatten(), torch.tensor(get_config("tiny").pixel_mean))
    # And the loaded model runs.
    with torch.no_grad():
        ctx = sam.prepare_image(torch.zeros(1, 256, 64, 64))
        masks, iou = sam.predict_with_context(ctx, torch.tensor([[[10.0, 10.0]]]), torch.ones(1, 1))
    assert masks.shape == (1, 3, 256, 256) and torch.isfinite(masks).all()


@pytest.mark.parametrize("requested", ["vit_b", "vit_h", "vit_t"])
def test_checkpoint_of_another_variant_names_both(
    tiny_checkpoint: tuple[Path, dict], requested: str
) -> None:
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError) as info:
        build_sam(requested, checkpoint=path, device="cpu")
    message = str(info.value)
    assert "'tiny'" in message and repr(requested) in message


def test_checkpoint_that_does_not_fit_is_a_value_error(
    tiny_checkpoint: tuple[Path, dict], tmp_path: Path
) -> None:
    _, state = tiny_checkpoint
    broken = dict(state)
    del broken["mask_decoder.iou_token.weight"]
    broken["mask_decoder.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError, match="iou_token") as info:
        build_sam("tiny", checkpoint=path, device="cpu")
    assert "mask_decoder.extra" in str(info.value)


def test_checkpoint_with_pretrained_false_is_rejected(tiny_checkpoint: tuple[Path, dict]) -> None:
    with pytest.raises(ValueError, match="pretrained=False"):
        build_sam("tiny", checkpoint=tiny_checkpoint[0], device="cpu", pretrained=False)


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_sam("tiny", checkpoint=tmp_path / "nope.pth", device="cpu")


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h", "vit_t", "tiny"])
def test_detect_variant_from_state_dict_layout(variant: str) -> None:
    with torch.device("meta"):
        state = assemble_sam(variant).state_dict()
    assert detect_variant(state) == variant


def test_detect_variant_unknown_layout() -> None:
    assert detect_variant({"something.else": torch.zeros(1)}) is None
    with torch.device("meta"):
        state = assemble_sam("vit_b").state_dict()
    # Another depth at vit_b's width: no known variant.
    state = {k: v for k, v in state.items() if not k.startswith("image_encoder.blocks.11.")}
    assert detect_variant(state) is None


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("toaster")
    with pytest.raises(TypeError):
        resolve_device(0)  # type: ignore[arg-type]

    mps = torch.backends.mps
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mps, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("mps")
    monkeypatch.setattr(mps, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu")


def test_build_accepts_device_objects() -> None:
    sam = build_sam("tiny", device=torch.device("cpu"))
    assert sam.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in sam.parameters())


def test_vit_t_checkpoint_builds_in_eval_mode(tmp_path: Path) -> None:
    # TinyViT has BatchNorm: a model left in training mode would change its masks with
    # every batch. (Random weights saved as a checkpoint; no official file needed.)
    torch.manual_seed(41)
    state = assemble_sam("vit_t").state_dict()
    path = tmp_path / "vit_t.pth"
    torch.save(state, path)
    sam = build_sam("vit_t", checkpoint=path, device="cpu")
    assert sam.variant == "vit_t" and sam.pretrained is True
    assert _all_eval(sam)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in sam.modules())
    loaded = sam.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
