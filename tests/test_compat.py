"""Code written for the published ``segment_anything`` runs after changing only the import.

The calls are those of the published example notebooks (``notebooks/predictor_example.ipynb``
and ``automatic_mask_generator_example.ipynb`` of facebookresearch/segment-anything, and
MobileSAM's README for ``"vit_t"``). Checkpoints are random weights written by the tests.
Outputs are compared with the published package where a full run is cheap (the "tiny" test
variant, built by the same builder code the registry uses); the real variants are checked by
their state-dict keys and shapes only (no encoder run).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_close_rel, build_reference, perturb_
from test_predictor import smooth_image

import sam_widget
from sam_widget import compat
from sam_widget.models.build import assemble_sam

PUBLISHED_NAMES = {"default": "vit_h", "vit_h": "vit_h", "vit_l": "vit_l", "vit_b": "vit_b"}


def test_registry_is_exported_with_the_published_names() -> None:
    assert sam_widget.sam_model_registry is compat.sam_model_registry
    assert set(compat.sam_model_registry) == set(PUBLISHED_NAMES) | {"vit_t"}
    assert "sam_model_registry" in sam_widget.__all__
    # The other names a ported script imports come from the same place.
    assert compat.SamPredictor is sam_widget.SamPredictor
    assert compat.SamAutomaticMaskGenerator is sam_widget.SamAutomaticMaskGenerator


@pytest.mark.parametrize("name", sorted(PUBLISHED_NAMES))
def test_registry_builds_the_published_architecture(
    name: str, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shapes only, on the meta device: the published builder with checkpoint=None and ours
    # (build_sam replaced by a meta-device assembly of the variant it was asked for).
    asked: list[tuple[str, object]] = []

    def fake_build(variant: str, checkpoint: object = None, device: object = None) -> object:
        asked.append((variant, checkpoint))
        with torch.device("meta"):
            return assemble_sam(variant)

    monkeypatch.setattr(compat, "build_sam", fake_build)
    ours = compat.sam_model_registry[name](checkpoint="weights.pth")
    assert asked == [(PUBLISHED_NAMES[name], "weights.pth")]
    with torch.device("meta"):
        ref = reference.sam_model_registry[name]()
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours_shapes == ref_shapes


def test_vit_t_checkpoint_through_the_registry(tmp_path: Path) -> None:
    # MobileSAM's README: sam_model_registry["vit_t"](checkpoint=...); .to(device); .eval()
    torch.manual_seed(3)
    state = assemble_sam("vit_t").state_dict()
    path = tmp_path / "mobile_sam.pt"
    torch.save(state, path)
    sam = compat.sam_model_registry["vit_t"](checkpoint=str(path))
    sam.to(device="cpu")
    sam.eval()
    assert sam.variant == "vit_t" and not sam.training
    loaded = sam.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    predictor = compat.SamPredictor(sam)
    assert predictor.device == torch.device("cpu")
    assert predictor.transform.target_length == sam.image_encoder.img_size == 1024


def test_registry_refuses_a_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        compat.sam_model_registry["vit_b"](checkpoint=str(tmp_path / "nope.pth"))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, reference) -> tuple:  # type: ignore[no-untyped-def]
    """(ours from a checkpoint file via the registry's builder, the published, same weights)."""
    torch.manual_seed(11)
    ref = build_reference("tiny")
    perturb_(ref, 12)
    ref.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(ref.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user-given checkpoint builds without a warning
        ours = compat._builder("tiny")(checkpoint=str(path))
    ours.to(device="cpu")
    return ours, ref


def test_predictor_notebook_calls_match_the_published(tiny_models, reference) -> None:  # type: ignore[no-untyped-def]
    ours_model, ref_model = tiny_models
    image = smooth_image(120, 160, seed=5)
    results = []
    for module, model in ((compat, ours_model), (reference, ref_model)):
        predictor = module.SamPredictor(model)
        predictor.set_image(image)
        out: dict[str, object] = {}
        input_point, input_label = np.array([[100, 60]]), np.array([1])
        masks, scores, logits = predictor.predict(
            point_coords=input_point, point_labels=input_label, multimask_output=True
        )
        out["multi"] = (masks, scores, logits)
        # Feed the best low-res logits back with a second point.
        mask_input = logits[np.argmax(scores), :, :]
        out["refine"] = predictor.predict(
            point_coords=np.array([[100, 60], [40, 30]]),
            point_labels=np.array([1, 1]),
            mask_input=mask_input[None, :, :],
            multimask_output=False,
        )
        input_box = np.array([20, 15, 130, 100])
        out["box"] = predictor.predict(
            point_coords=None, point_labels=None, box=input_box[None, :], multimask_output=False
        )
        out["box_point"] = predictor.predict(
            point_coords=np.array([[60, 50]]),
            point_labels=np.array([0]),
            box=input_box,
            multimask_output=False,
        )
        # Batched boxes in the model's input frame.
        input_boxes = torch.tensor(
            [[10, 10, 80, 70], [50, 20, 150, 110], [0, 0, 159, 119]], device=predictor.device
        )
        transformed = predictor.transform.apply_boxes_torch(input_boxes, image.shape[:2])
        masks_b, iou_b, low_b = predictor.predict_torch(
            point_coords=None, point_labels=None, boxes=transformed, multimask_output=False
        )
        out["batched"] = (masks_b.numpy(), iou_b.numpy(), low_b.numpy())
        coords = predictor.transform.apply_coords(np.array([[100.0, 60.0]]), image.shape[:2])
        out["coords"] = coords
        out["embedding"] = predictor.get_image_embedding().numpy()
        results.append(out)
    ours, ref = results
    assert ours["batched"][0].shape == (3, 1, 120, 160)
    np.testing.assert_allclose(ours["coords"], ref["coords"])
    assert_close_rel(torch.from_numpy(ours["embedding"]), torch.from_numpy(ref["embedding"]))
    for key in ("multi", "refine", "box", "box_point", "batched"):
        o_masks, o_scores, o_low = ours[key]
        r_masks, r_scores, r_low = ref[key]
        assert o_masks.shape == r_masks.shape and o_masks.dtype == r_masks.dtype, key
        assert_close_rel(torch.from_numpy(o_low), torch.from_numpy(r_low))
        assert_close_rel(torch.from_numpy(o_scores), torch.from_numpy(r_scores))
        # Masks agree except at pixels whose logit is within rounding of the threshold.
        assert (o_masks != r_masks).mean() < 1e-3, key


def test_end_to_end_batched_forward_matches_the_published(tiny_models, reference) -> None:  # type: ignore[no-untyped-def]
    ours_model, ref_model = tiny_models
    images = [smooth_image(90, 120, seed=1), smooth_image(100, 70, seed=2)]
    boxes = [torch.tensor([[10.0, 10.0, 60.0, 50.0]]), torch.tensor([[5.0, 20.0, 60.0, 90.0]])]
    outputs = []
    for resize_cls, model in (
        (compat.ResizeLongestSide, ours_model),
        (reference.utils.transforms.ResizeLongestSide, ref_model),
    ):
        resize = resize_cls(model.image_encoder.img_size)
        batched_input = [
            {
                "image": torch.as_tensor(resize.apply_image(im)).permute(2, 0, 1).contiguous(),
                # H x W x C -> C x H x W
                "boxes": resize.apply_boxes_torch(b, im.shape[:2]),
                "original_size": im.shape[:2],
            }
            for im, b in zip(images, boxes, strict=True)
        ]
        with torch.no_grad():
            outputs.append(model(batched_input, multimask_output=False))
    for o, r, im in zip(*outputs, images, strict=True):
        assert set(o) == set(r) == {"masks", "iou_predictions", "low_res_logits"}
        assert o["masks"].shape == r["masks"].shape == (1, 1, *im.shape[:2])
        assert_close_rel(o["low_res_logits"], r["low_res_logits"])
        assert_close_rel(o["iou_predictions"], r["iou_predictions"])


def test_generator_accepts_every_published_keyword(tiny_models, reference) -> None:  # type: ignore[no-untyped-def]
    published = inspect.signature(reference.SamAutomaticMaskGenerator.__init__).parameters
    ours = inspect.signature(compat.SamAutomaticMaskGenerator.__init__).parameters
    missing = [n for n in published if n not in ours]
    assert not missing, f"published keywords we lack: {missing}"
    # Defaults as a SAM model resolves them (pred_iou_thresh's default depends on the family:
    # None in the signature, SAM's 0.88 for a SAM model).
    ours_model, _ = tiny_models
    resolved = compat.SamAutomaticMaskGenerator(ours_model)
    default = {n: p.default for n, p in ours.items()}
    default["pred_iou_thresh"] = resolved.pred_iou_thresh
    differing = {
        n: (p.default, default[n])
        for n, p in published.items()
        if n not in ("self", "model") and p.default != default[n]
    }
    assert not differing, f"defaults differ (published, ours): {differing}"
    # The notebook's second generator, every keyword by name (a sparser grid to stay fast).
    generator = compat.SamAutomaticMaskGenerator(
        model=ours_model,
        points_per_side=4,
        points_per_batch=16,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        stability_score_offset=1.0,
        box_nms_thresh=0.7,
        crop_n_layers=1,
        crop_nms_thresh=0.7,
        crop_overlap_ratio=512 / 1500,
        crop_n_points_downscale_factor=2,
        point_grids=None,
        min_mask_region_area=10,
        output_mode="binary_mask",
    )
    records = generator.generate(smooth_image(64, 80, seed=9))
    assert records, "thresholds of 0 keep every candidate that survives NMS"
    for rec in records:
        assert set(rec) >= {
            "segmentation",
            "area",
            "bbox",
            "predicted_iou",
            "point_coords",
            "stability_score",
            "crop_box",
        }
        assert rec["segmentation"].shape == (64, 80)
        assert rec["area"] == int(rec["segmentation"].sum())
