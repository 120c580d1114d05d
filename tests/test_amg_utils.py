"""The automatic mask generator's building blocks, against the published utilities."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from _torchvision_shim import _batched_nms, import_reference

from sam_widget.engine.amg.crops import (
    build_all_layer_point_grids,
    build_point_grid,
    generate_crop_boxes,
    is_box_near_crop_edge,
)
from sam_widget.engine.amg.nms import box_area, nms
from sam_widget.engine.amg.postprocess import masks_to_boxes, remove_small_regions
from sam_widget.engine.amg.rle import mask_to_rle, rle_area, rle_to_mask
from sam_widget.engine.amg.upsample import TiledUpscaler
from sam_widget.engine.transforms import ResizeLongestSide, upscale_logits


@pytest.fixture(scope="module")
def ref_amg():
    import_reference()
    from segment_anything.utils import amg

    return amg


def _random_boxes(rng: np.random.Generator, n: int, size: int = 50) -> torch.Tensor:
    xy0 = rng.integers(0, size, (n, 2))
    wh = rng.integers(0, size // 2, (n, 2))  # zero widths/heights included
    return torch.as_tensor(np.concatenate([xy0, xy0 + wh], axis=1), dtype=torch.int64)


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_greedy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    boxes = _random_boxes(rng, n)
    boxes[5] = boxes[7]  # exact duplicates
    boxes[10] = torch.tensor([3, 3, 3, 3])
    boxes[11] = torch.tensor([3, 3, 3, 3])  # two zero-area boxes: IoU NaN, both stay
    # Few distinct scores: ties must keep input order.
    scores = torch.as_tensor(rng.integers(0, 5, n), dtype=torch.float32)
    for thr in (0.0, 0.3, 0.7, 1.0):
        want = _batched_nms(boxes.float(), scores, torch.zeros(n), thr)
        got = nms(boxes.float(), scores, thr)
        assert got.tolist() == want.tolist()
    kept = nms(boxes.float(), scores, 0.7).tolist()
    assert 10 in kept and 11 in kept
    assert not (5 in kept and 7 in kept)


def test_nms_edge_cases() -> None:
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        nms(torch.zeros((3, 3)), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros((3, 4)), torch.zeros(2), 0.5)
    assert box_area(torch.tensor([[1, 2, 4, 7]])).tolist() == [15]


@pytest.mark.parametrize(
    ("size", "layers", "overlap"),
    [
        ((160, 240), 1, 512 / 1500),
        ((1200, 1800), 2, 512 / 1500),
        ((97, 31), 3, 0.2),
        ((1, 1), 1, 0.5),
        ((500, 500), 2, 0.0),
    ],
)
def test_crop_boxes_match_reference(ref_amg, size, layers, overlap) -> None:
    assert generate_crop_boxes(size, layers, overlap) == ref_amg.generate_crop_boxes(
        size, layers, overlap
    )


def test_point_grids_match_reference(ref_amg) -> None:
    for n, layers, scale in ((1, 0, 1), (6, 1, 2), (32, 2, 2), (7, 1, 3)):
        ours = build_all_layer_point_grids(n, layers, scale)
        want = ref_amg.build_all_layer_point_grids(n, layers, scale)
        assert len(ours) == len(want)
        for a, b in zip(ours, want, strict=True):
            np.testing.assert_array_equal(a, b)
    grid = build_point_grid(2)
    np.testing.assert_array_equal(grid, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    with pytest.raises(ValueError, match="points per side"):
        build_all_layer_point_grids(3, 2, 2)


def test_box_near_crop_edge_matches_reference(ref_amg) -> None:
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, 200, size=120)
    for crop in ([0, 0, 240, 160], [0, 53, 147, 160], [93, 0, 240, 107], [40, 30, 140, 130]):
        want = ref_amg.is_box_near_crop_edge(boxes, crop, [0, 0, 240, 160])
        got = is_box_near_crop_edge(boxes, crop, [0, 0, 240, 160])
        assert got.tolist() == want.tolist()
        if crop != [0, 0, 240, 160]:
            assert 0 < int(got.sum()) < len(boxes)


def test_boxes_match_reference(ref_amg) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.nn.functional.interpolate(
        torch.randn(9, 1, 6, 9, generator=gen) * 3, (37, 53), mode="bilinear"
    )[:, 0]
    masks = logits > 0
    masks[1] = False
    masks[2] = False
    masks[2, 36, 52] = True  # one pixel in the corner
    masks[3] = True
    assert masks_to_boxes(masks).tolist() == ref_amg.batched_mask_to_box(masks).tolist()
    assert masks_to_boxes(masks)[2].tolist() == [52, 36, 52, 36]
    assert masks_to_boxes(masks[:0]).shape == (0, 4)


def _low_res_blobs(n: int, seed: int) -> torch.Tensor:
    """n smooth 256 x 256 logit maps: blobs and ridges of varied size, sign and scale."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 1, 5, 5, generator=gen) * 4 + torch.randn(n, 1, 1, 1, generator=gen)
    low = torch.nn.functional.interpolate(coarse, (256, 256), mode="bicubic")[:, 0]
    low[0] = -3.0  # empty at every threshold
    low[1] = 3.0  # full
    low[2] = -3.0
    low[2, 100:104, 7:9] = 2.5  # a small island
    return low


@pytest.mark.parametrize(
    "original", [(1200, 1800), (160, 240), (107, 147), (53, 1800), (1800, 31), (1, 1), (5, 3)]
)
def test_tiled_upscaler_matches_published_postprocessing(ref_amg, original) -> None:
    from segment_anything.modeling import Sam as RefSam

    fake_sam = types.SimpleNamespace(image_encoder=types.SimpleNamespace(img_size=1024))
    low = _low_res_blobs(12, seed=sum(original))
    input_size = ResizeLongestSide.get_preprocess_shape(*original, 1024)
    logits = RefSam.postprocess_masks(fake_sam, low[:, None], input_size, original)[:, 0]
    up = TiledUpscaler((256, 256), 1024, input_size, original, tile=16)
    counts = up.counts(low, [1.0, -1.0, 0.25])
    boxes = up.boxes(low, 0.0)
    # The generator's one-pass form gives exactly the same numbers.
    both = up.stats(low, 0.25, 0.75)
    assert both[0].tolist() == up.counts(low, [1.0, -0.5]).tolist()
    assert both[1].tolist() == up.boxes(low, 0.25).tolist()
    want = torch.stack([(logits > t).flatten(1).sum(1) for t in (1.0, -1.0, 0.25)], dim=1)
    # Composed weights round differently from two resizes: only pixels within float noise
    # of a threshold may differ.
    near = [(logits - t).abs().flatten(1).lt(1e-4).sum(1) for t in (1.0, -1.0, 0.25)]
    assert ((counts - want).abs() <= torch.stack(near, dim=1)).all()
    stab = counts[:, 0].float() / counts[:, 1].float()
    torch.testing.assert_close(
        stab,
        ref_amg.calculate_stability_score(logits, 0.0, 1.0),
        equal_nan=True,
        atol=1e-4,
        rtol=0,
    )
    masks = up.masks(low, 0.0)
    assert masks.shape == (12, *original) and masks.dtype == torch.bool
    differ = masks != (logits > 0)
    assert (logits.abs()[differ] < 1e-4).all()
    assert (boxes - ref_amg.batched_mask_to_box(logits > 0)).abs().max() <= int(differ.any())
    assert boxes.tolist() == masks_to_boxes(masks).tolist()  # consistent with its own masks
    assert not masks[0].any() and masks[1].all()


def test_rle_matches_reference(ref_amg) -> None:
    rng = np.random.default_rng(1)
    masks = torch.as_tensor(rng.random((5, 13, 17)) < 0.5)
    masks[0] = True
    masks[1] = False
    for m, want in zip(masks, ref_amg.mask_to_rle_pytorch(masks), strict=True):
        got = mask_to_rle(m.numpy())
        assert got == want
        np.testing.assert_array_equal(rle_to_mask(got), ref_amg.rle_to_mask(want))
        assert rle_area(got) == ref_amg.area_from_rle(want)


def test_upscale_matches_reference_postprocessing(ref_amg) -> None:
    # The generator uses sam_widget.engine.transforms.upscale_logits; check it bit for bit against
    # the published Sam.postprocess_masks on sizes the generator meets (crops included).
    from segment_anything.modeling import Sam as RefSam

    fake_sam = types.SimpleNamespace(image_encoder=types.SimpleNamespace(img_size=1024))
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(4, 1, 256, 256, generator=gen)
    for original in ((160, 240), (107, 147), (53, 1800), (1, 1)):
        input_size = ResizeLongestSide.get_preprocess_shape(*original, 1024)
        want = RefSam.postprocess_masks(fake_sam, low, input_size, original)
        got = upscale_logits(low[:, 0], input_size, original)
        torch.testing.assert_close(got, want[:, 0], rtol=0, atol=0)


def test_remove_small_regions() -> None:
    mask = np.zeros((12, 12), bool)
    mask[1:9, 1:9] = True
    mask[3:5, 3:5] = False  # hole of 4 pixels
    mask[6, 6] = False  # hole of 1 pixel
    mask[10, 10] = True  # island of 1 pixel
    mask[10:12, 0:2] = True  # island of 4 pixels
    filled, changed = remove_small_regions(mask, 3, "holes")
    assert changed and filled[6, 6] and not filled[3:5, 3:5].any()
    assert (filled ^ mask).sum() == 1
    filled, changed = remove_small_regions(mask, 5, "holes")
    assert changed and filled[1:9, 1:9].all()
    cleaned, changed = remove_small_regions(mask, 3, "islands")
    assert changed and not cleaned[10, 10] and cleaned[10:12, 0:2].all()
    assert (cleaned ^ mask).sum() == 1
    same, changed = remove_small_regions(mask, 1, "islands")
    assert not changed and same is mask
    # 8-connectivity: a diagonal neighbour belongs to the same island.
    diag = np.zeros((5, 5), bool)
    diag[1, 1] = diag[2, 2] = True
    assert not remove_small_regions(diag, 2, "islands")[1]
    # Every island small: the largest one stays.
    two = np.zeros((6, 6), bool)
    two[0, 0] = True
    two[3:5, 3:5] = True
    kept, changed = remove_small_regions(two, 100, "islands")
    assert changed and kept.sum() == 4 and kept[3:5, 3:5].all()
    # The outer background counts as a hole too when it is small.
    ring = np.ones((4, 4), bool)
    ring[0, 0] = False
    assert remove_small_regions(ring, 2, "holes")[0].all()
    with pytest.raises(ValueError, match="mode"):
        remove_small_regions(mask, 3, "both")  # type: ignore[arg-type]


def test_missing_scipy_gives_clear_import_error(monkeypatch) -> None:
    from sam_widget.engine.amg import postprocess

    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    with pytest.raises(ImportError, match=r"sam-widget\[amg\]"):
        postprocess.require_scipy()
    with pytest.raises(ImportError, match="min_mask_region_area"):
        remove_small_regions(np.zeros((3, 3), bool), 2, "holes")


@pytest.mark.parametrize("shape", [(0, 16, 16), (7, 16, 16), (5, 8, 8), (4, 5, 5), (3, 24, 24)])
def test_tile_flag_reductions_match_plain_ops(shape) -> None:
    # The int64-word forms (tiles of 8k x 8k) and their plain fallbacks (other sizes, none).
    from sam_widget.engine.amg.upsample import _any_rows_cols, _count_true

    gen = torch.Generator().manual_seed(sum(shape))
    flags = torch.rand(shape, generator=gen) < 0.3
    if shape[0]:
        flags[0] = True  # every count at its largest
    if shape[0] > 1:
        flags[1] = False
        flags[1, -1, 0] = True  # one flag, in a corner
    assert _count_true(flags).tolist() == flags.flatten(1).sum(1).tolist()
    rows, cols = _any_rows_cols(flags)
    assert rows.tolist() == flags.any(dim=2).tolist()
    assert cols.tolist() == flags.any(dim=1).tolist()
