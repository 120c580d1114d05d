"""The variant registry and the model interface, over every registered variant of every
family (a family registered later is included automatically).

Large variants are checked on the meta device (no memory, no arithmetic): construction, key
layout recognised as their own, interface attributes and the shapes ``encode`` gives. Small
ones (by parameter count) are built for real: strict reload of their own state dict, encode
and decode shapes, stable ``weights_id``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from sam_widget.models import registry
from sam_widget.models.interface import ImageGeometry, SegmentModel

# Variants with at most this many parameters are built and run for real in these tests.
_CHEAP = 12_000_000


def _members(proto: type) -> set[str]:
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n in vars(proto) if not n.startswith("_")}
    return names


def _meta_model(name: str) -> torch.nn.Module:
    entry = registry.get_entry(name)
    with torch.device("meta"):
        return registry.get_family(entry.family).build(entry.config, None, "")


def _random(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return registry.build_sam(name, device="cpu", pretrained=False)


def test_registry_lists_the_sam_family() -> None:
    names = registry.list_models()
    assert {"vit_b", "vit_l", "vit_h", "vit_t", "tiny"} <= set(names)
    assert registry.list_models("sam") == ["vit_b", "vit_l", "vit_h", "vit_t", "tiny"]
    assert "tiny" not in registry.list_models(pretrained=True)
    assert registry.list_models(pretrained=False) == [
        n for n in names if not registry.get_entry(n).has_official_weights
    ]
    with pytest.raises(ValueError, match="vit_x"):
        registry.get_entry("vit_x")


def test_register_refuses_a_second_meaning_for_a_name() -> None:
    entry = registry.get_entry("tiny")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("tiny", family=entry.family, config=object())
    with pytest.raises(ValueError, match="register family"):
        registry.register_model("new-one", family="no-such-family", config=object())


@pytest.mark.parametrize("name", registry.list_models())
def test_every_variant_builds_with_its_own_key_layout(name: str) -> None:
    entry = registry.get_entry(name)
    model = _meta_model(name)
    # Every interface member is there (isinstance would evaluate weights_id on meta).
    for member in _members(SegmentModel):
        assert hasattr(type(model), member) or member in vars(model), member
    assert model.family == entry.family
    assert isinstance(model.geometry, ImageGeometry)
    assert model.image_size == model.geometry.target_length
    assert len(model.low_res_size) == 2 and min(model.low_res_size) > 0
    # The state dict's keys and shapes identify the variant (how build_sam checks files).
    state = model.state_dict()
    found = registry.detect(state)
    assert found is not None and found.name == name
    # encode on the meta device: shapes only.
    h, w = model.geometry.input_size((480, 640))
    assert max(h, w) == model.image_size
    with torch.no_grad():
        features = model.encode(torch.empty(1, 3, h, w, device="meta"))
    embed = features["image_embed"]
    assert embed.shape[0] == 1 and embed.dim() == 4
    assert (4 * embed.shape[-2], 4 * embed.shape[-1]) == tuple(model.low_res_size)
    assert all(f.shape[0] == 1 for f in features.values())
    assert {k: tuple(v.shape) for k, v in features.items()} == dict(model.feature_shapes)


_SMALL = [
    n
    for n in registry.list_models()
    if sum(p.numel() for p in _meta_model(n).parameters()) <= _CHEAP
]


@pytest.mark.parametrize("name", _SMALL)
def test_small_variants_load_strictly_encode_and_decode(name: str) -> None:
    entry = registry.get_entry(name)
    model = _random(name, seed=0)
    assert model.pretrained is False and model.variant == name
    # Its own state dict loads strictly into a new model (the checkpoint path).
    state = {k: v.clone() for k, v in model.state_dict().items()}
    family = registry.get_family(entry.family)
    again = family.build(entry.config, state, "state").eval()
    assert again.state_dict().keys() == state.keys()
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items())
    # weights_id: equal for equal weights, different after a change.
    assert again.weights_id == model.weights_id == _random(name, seed=0).weights_id
    with torch.no_grad():
        next(again.parameters()).add_(1.0)
    assert again.weights_id != model.weights_id

    h, w = model.geometry.input_size((96, 128))
    x = torch.rand(1, 3, h, w) * 255
    with torch.no_grad():
        features = model.encode(x)
        ctx = model.prepare(features)
        coords = torch.tensor([[[10.0, 20.0], [200.0, 100.0]], [[5.0, 5.0], [0.0, 0.0]]])
        labels = torch.tensor([[1, 0], [1, -1]])
        boxes = torch.tensor([[0.0, 0.0, 300.0, 200.0], [10.0, 10.0, 50.0, 60.0]])
        low, iou = model.decode(ctx, coords, labels, boxes, None, True)
        assert low.shape == (2, 3, *model.low_res_size) and iou.shape == (2, 3)
        one, one_iou = model.decode(ctx, coords[:1], labels[:1], None, low[:1, :1], False)
        assert one.shape == (1, 1, *model.low_res_size) and one_iou.shape == (1, 1)
        # decode_points equals decode of the same single points (up to float rounding).
        pts = torch.tensor([[30.0, 40.0], [250.0, 90.0], [1.0, 2.0]])
        many, many_iou = model.decode_points(ctx, pts, True)
        ref, ref_iou = model.decode(
            ctx, pts[:, None, :], torch.ones(3, 1, dtype=torch.int64), None, None, True
        )
    torch.testing.assert_close(many_iou, ref_iou, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(many, ref, rtol=1e-3, atol=1e-3)
    up = model.geometry.upscale(low, (h, w), (96, 128))
    assert up.shape == (2, 3, 96, 128)


def test_build_from_a_checkpoint_path_detects_the_variant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _random("tiny", seed=3)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    again = registry.build_sam(str(path), device="cpu")
    assert again.variant == "tiny" and again.checkpoint == str(path)
    assert again.weights_id == model.weights_id
    with pytest.raises(ValueError, match="once"):
        registry.build_sam(path, checkpoint=path, device="cpu")
