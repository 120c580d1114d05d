"""SamAutomaticMaskGenerator's own API: parameters, inputs, output modes, progress, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_amg import colour_wheel, shaped_tiny

from sam_widget import SamAutomaticMaskGenerator, SamPredictor
from sam_widget.data.io import decode_rle
from sam_widget.engine.amg.crops import build_all_layer_point_grids
from sam_widget.engine.embedding_cache import EmbeddingCache
from sam_widget.models.sam import Sam

FAST = {
    "points_per_side": 3,
    "pred_iou_thresh": 0.75,
    "stability_score_thresh": 0.2,
    "stability_score_offset": 0.1,
}


@pytest.fixture(scope="module")
def model() -> Sam:
    return shaped_tiny()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return colour_wheel(96, 128)


@pytest.fixture(scope="module")
def baseline(model, image) -> list[dict]:
    out = SamAutomaticMaskGenerator(model, **FAST).generate(image)
    assert len(out) >= 3, "the fixture should give several masks"
    return out


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"points_per_side": 0}, ValueError, "points_per_side"),
        ({"points_per_side": 2.5}, TypeError, "points_per_side"),
        ({"points_per_side": None}, ValueError, "exactly one"),
        ({"point_grids": [np.zeros((4, 2))]}, ValueError, "exactly one"),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 3))]}, ValueError, r"\(N, 2\)"),
        ({"points_per_side": None, "point_grids": [np.full((4, 2), 1.5)]}, ValueError, "0, 1"),
        (
            {"points_per_side": None, "point_grids": [np.zeros((4, 2))], "crop_n_layers": 1},
            ValueError,
            "one per layer",
        ),
        ({"points_per_batch": 0}, ValueError, "points_per_batch"),
        ({"pred_iou_thresh": 1.5}, ValueError, "pred_iou_thresh"),
        ({"pred_iou_thresh": "high"}, TypeError, "pred_iou_thresh"),
        ({"stability_score_thresh": -0.1}, ValueError, "stability_score_thresh"),
        ({"stability_score_offset": float("nan")}, ValueError, "stability_score_offset"),
        ({"box_nms_thresh": 2}, ValueError, "box_nms_thresh"),
        ({"crop_nms_thresh": -1}, ValueError, "crop_nms_thresh"),
        ({"crop_n_layers": -1}, ValueError, "crop_n_layers"),
        ({"crop_n_layers": True}, TypeError, "crop_n_layers"),
        ({"crop_overlap_ratio": 1.2}, ValueError, "crop_overlap_ratio"),
        ({"crop_n_points_downscale_factor": 0}, ValueError, "downscale"),
        (
            {"crop_n_layers": 2, "points_per_side": 3, "crop_n_points_downscale_factor": 2},
            ValueError,
            "points per side",
        ),
        ({"min_mask_region_area": -5}, ValueError, "min_mask_region_area"),
        ({"output_mode": "png"}, ValueError, "output_mode"),
        ({"progress": 1}, TypeError, "progress"),
    ],
)
def test_parameter_validation(model, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        SamAutomaticMaskGenerator(model, **kwargs)


def test_model_type_is_checked() -> None:
    with pytest.raises(TypeError, match="build_sam or a SamPredictor"):
        SamAutomaticMaskGenerator(object())


def test_output_modes_agree(model, image, baseline) -> None:
    for mode in ("uncompressed_rle", "coco_rle"):
        out = SamAutomaticMaskGenerator(model, **FAST, output_mode=mode).generate(image)
        assert len(out) == len(baseline)
        for rec, base in zip(out, baseline, strict=True):
            np.testing.assert_array_equal(decode_rle(rec["segmentation"]), base["segmentation"])
            expected = str if mode == "coco_rle" else list
            assert isinstance(rec["segmentation"]["counts"], expected)
            assert {k: v for k, v in rec.items() if k != "segmentation"} == {
                k: v for k, v in base.items() if k != "segmentation"
            }


def test_explicit_point_grids_equal_points_per_side(model, image, baseline) -> None:
    grids = build_all_layer_point_grids(3, 0, 1)
    params = {k: v for k, v in FAST.items() if k != "points_per_side"}
    out = SamAutomaticMaskGenerator(
        model, points_per_side=None, point_grids=grids, **params
    ).generate(image)
    assert [r["area"] for r in out] == [r["area"] for r in baseline]
    # Points are where the grid says, in image pixels.
    pts = {tuple(r["point_coords"][0]) for r in out}
    allowed = {(x * 128, y * 96) for x, y in grids[0]}
    assert pts <= allowed


def test_image_inputs_and_empty_result(model, image, baseline) -> None:
    from_pil = SamAutomaticMaskGenerator(model, **FAST).generate(Image.fromarray(image))
    assert [r["area"] for r in from_pil] == [r["area"] for r in baseline]
    one_point = {
        **FAST,
        "points_per_side": 1,
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
    }
    gray = SamAutomaticMaskGenerator(model, **one_point).generate(image[:, :, 0])
    assert 1 <= len(gray) <= 3  # the three multimask outputs of one point, at most
    assert all(r["segmentation"].shape == (96, 128) for r in gray)
    with pytest.raises(ValueError):
        SamAutomaticMaskGenerator(model, **one_point).generate(np.zeros((3, 96, 128), np.uint8))
    # logits never exceed +10 here, so the stability score is 0 for every candidate
    none_pass = {
        **FAST,
        "points_per_side": 1,
        "stability_score_thresh": 1.0,
        "stability_score_offset": 10.0,
    }
    nothing = SamAutomaticMaskGenerator(model, **none_pass)
    for mode in ("binary_mask", "coco_rle"):
        nothing.output_mode = mode
        assert nothing.generate(image) == []
    # crops and region post-processing with nothing to do
    params = {**none_pass, "crop_n_layers": 1, "min_mask_region_area": 10}
    assert SamAutomaticMaskGenerator(model, **params).generate(image) == []


def test_progress_callback_and_bar(model, image, capfd) -> None:
    seen: list[float] = []
    gen = SamAutomaticMaskGenerator(
        model,
        points_per_side=2,
        points_per_batch=3,
        crop_n_layers=1,
        crop_n_points_downscale_factor=2,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    gen.generate(image, progress_callback=seen.append)
    # 4 points in 2 batches on the image + 1 point in each of the 4 crops
    assert seen == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert "Segment everything" not in capfd.readouterr().err  # progress=False: no bar
    one = {**FAST, "points_per_side": 1}
    SamAutomaticMaskGenerator(model, **one, progress=True).generate(image)
    assert "Segment everything" in capfd.readouterr().err


def test_predictor_input_uses_its_cache_and_keeps_its_image(model, image, baseline) -> None:
    calls = []
    handle = model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        predictor = SamPredictor(model, cache=EmbeddingCache())
        other = colour_wheel(64, 64, discs=3)
        predictor.set_image(other)
        before = predictor.get_image_embedding().clone()
        calls.clear()
        gen = SamAutomaticMaskGenerator(predictor, **FAST)
        first = gen.generate(image)
        assert len(calls) == 1
        second = gen.generate(image)
        assert len(calls) == 1, "the second run should reuse the cached embedding"
        assert predictor.original_size == (64, 64)
        torch.testing.assert_close(predictor.get_image_embedding(), before)
    finally:
        handle.remove()
    for out in (first, second):
        assert [r["area"] for r in out] == [r["area"] for r in baseline]
        for rec, base in zip(out, baseline, strict=True):
            np.testing.assert_array_equal(rec["segmentation"], base["segmentation"])


def test_tiny_images(model) -> None:
    # Crops of a 1-pixel-wide image can be empty; they are skipped, the rest still works.
    for shape in ((1, 1, 3), (2, 3, 3)):
        img = np.full(shape, 100, np.uint8)
        for layers in (0, 1):
            gen = SamAutomaticMaskGenerator(
                model,
                points_per_side=1,
                pred_iou_thresh=0.0,
                stability_score_thresh=0.0,
                crop_n_layers=layers,
                output_mode="coco_rle",
            )
            out = gen.generate(img)
            assert out, "one point without filters gives masks"
            for rec in out:
                mask = decode_rle(rec["segmentation"])
                assert mask.shape == shape[:2] and rec["area"] == int(mask.sum())
                x, y, w, h = rec["crop_box"]
                assert w > 0 and h > 0


class _OtherGeometry:
    """SAM's geometry behind another class: the generator cannot use its tiled upscaler."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.target_length = inner.target_length

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


class _InterfaceOnly(torch.nn.Module):
    """A model that offers the model interface and nothing else (no decode hints, no
    encoder blocks, its own geometry class), as a new family would at first."""

    family = "interface-only"
    mask_threshold = 0.0
    pretrained = False
    checkpoint = None

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.sam = sam
        self.calls = {"decode_points": 0}

    variant = property(lambda self: self.sam.variant)
    image_size = property(lambda self: self.sam.image_size)
    low_res_size = property(lambda self: self.sam.low_res_size)
    feature_shapes = property(lambda self: self.sam.feature_shapes)
    weights_id = property(lambda self: self.sam.weights_id)
    device = property(lambda self: self.sam.device)
    geometry = property(lambda self: _OtherGeometry(self.sam.geometry))

    def encode(self, x):  # type: ignore[no-untyped-def]
        return self.sam.encode(x)

    def prepare(self, features):  # type: ignore[no-untyped-def]
        return self.sam.prepare(features)

    def decode(self, ctx, coords, labels, boxes, mask_input, multimask):  # type: ignore[no-untyped-def]
        return self.sam.decode(ctx, coords, labels, boxes, mask_input, multimask)

    def decode_points(self, ctx, coords, multimask):  # type: ignore[no-untyped-def]
        self.calls["decode_points"] += 1
        return self.sam.decode_points(ctx, coords, multimask)


def test_any_family_through_the_interface_gives_the_same_records(model, image, baseline) -> None:
    """The generic path (decode_points without hints, geometry.upscale instead of the tiled
    upscaler) gives SAM's fast-path records."""
    fast = baseline
    generic_model = _InterfaceOnly(model)
    generic = SamAutomaticMaskGenerator(generic_model, **FAST).generate(image)
    assert generic_model.calls["decode_points"] > 0
    assert len(fast) == len(generic) >= 3
    for a, b in zip(fast, generic, strict=True):
        assert a["bbox"] == b["bbox"] and a["crop_box"] == b["crop_box"]
        assert a["point_coords"] == b["point_coords"]
        np.testing.assert_allclose(a["predicted_iou"], b["predicted_iou"], rtol=1e-5)
        np.testing.assert_allclose(a["stability_score"], b["stability_score"], atol=1e-3)
        diff = np.count_nonzero(a["segmentation"] != b["segmentation"])
        assert diff <= 2, diff  # pixels within float rounding of the threshold
