"""ResizeLongestSide against the published implementation (same semantics, bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _torchvision_shim import import_reference

from sam_widget.engine.transforms import ResizeLongestSide

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def ref_transform() -> type:
    import_reference()
    from segment_anything.utils.transforms import ResizeLongestSide as Ref

    return Ref


SIZES = [(300, 200), (200, 300), (301, 199), (1, 1), (7, 1023), (1024, 1024), (1500, 977)]


def test_preprocess_shape_matches_reference(ref_transform: type) -> None:
    for h in range(1, 400, 7):
        for w in range(1, 2100, 37):
            for long_side in (1024, 64):
                ours = ResizeLongestSide.get_preprocess_shape(h, w, long_side)
                assert ours == ref_transform.get_preprocess_shape(h, w, long_side)
                assert max(ours) == long_side


def test_preprocess_shape_rounds_half_up() -> None:
    # 1024 * 5 / 8 = 640 exactly; 1024 * 1 / 2048 = 0.5 -> 1 (half up, not to even).
    assert ResizeLongestSide.get_preprocess_shape(5, 8, 1024) == (640, 1024)
    assert ResizeLongestSide.get_preprocess_shape(1, 2048, 1024) == (1, 1024)


@pytest.mark.parametrize("size", SIZES[:4])
def test_apply_image_bit_exact(ref_transform: type, size: tuple[int, int]) -> None:
    image = RNG.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    ours = ResizeLongestSide(1024).apply_image(image)
    ref = ref_transform(1024).apply_image(image)
    assert ours.dtype == np.uint8 and ours.flags.writeable
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_apply_image_downscale_and_gray() -> None:
    image = RNG.integers(0, 256, size=(2000, 1300), dtype=np.uint8)
    out = ResizeLongestSide(1024).apply_image(image)
    assert out.shape == (1024, int(1300 * 1024 / 2000 + 0.5))
    out1 = ResizeLongestSide(1024).apply_image(image[:, :, None])
    np.testing.assert_array_equal(out1[:, :, 0], out)


def test_apply_image_refuses_non_uint8() -> None:
    with pytest.raises(TypeError, match="uint8"):
        ResizeLongestSide(1024).apply_image(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("size", SIZES)
def test_coords_and_boxes_match_reference(ref_transform: type, size: tuple[int, int]) -> None:
    ours, ref = ResizeLongestSide(1024), ref_transform(1024)
    coords = RNG.uniform(0, max(size), size=(5, 2))
    out = ours.apply_coords(coords, size)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, ref.apply_coords(coords, size))
    assert not np.shares_memory(out, coords)
    ints = RNG.integers(0, 100, size=(3, 4, 2))
    np.testing.assert_array_equal(ours.apply_coords(ints, size), ref.apply_coords(ints, size))
    boxes = RNG.uniform(0, max(size), size=(4, 4))
    np.testing.assert_array_equal(ours.apply_boxes(boxes, size), ref.apply_boxes(boxes, size))
    assert ours.apply_boxes(boxes[0], size).shape == (1, 4)

    ct = torch.from_numpy(coords).to(torch.float64)
    out_t = ours.apply_coords_torch(ct, size)
    assert out_t.dtype == torch.float32
    torch.testing.assert_close(out_t, ref.apply_coords_torch(ct, size), rtol=0, atol=0)
    assert ct.data_ptr() != out_t.data_ptr()
    bt = torch.from_numpy(boxes).float()
    torch.testing.assert_close(
        ours.apply_boxes_torch(bt, size), ref.apply_boxes_torch(bt, size), rtol=0, atol=0
    )


def test_coords_scale_by_axis() -> None:
    t = ResizeLongestSide(1024)
    # 300 x 200 (H x W) -> 1024 x 683: x scales by 683/200, y by 1024/300.
    out = t.apply_coords(np.array([[200.0, 300.0], [0.0, 0.0]]), (300, 200))
    np.testing.assert_allclose(out, [[683.0, 1024.0], [0.0, 0.0]])


def test_coords_torch_does_not_mutate_input() -> None:
    c = torch.tensor([[10.0, 20.0]])
    ResizeLongestSide(1024).apply_coords_torch(c, (100, 50))
    assert c.tolist() == [[10.0, 20.0]]


def test_apply_image_torch_uses_height_and_width() -> None:
    x = torch.rand(2, 3, 30, 20)
    out = ResizeLongestSide(64).apply_image_torch(x)
    assert out.shape == (2, 3, 64, 43)
    with pytest.raises(ValueError, match="B x C x H x W"):
        ResizeLongestSide(64).apply_image_torch(x[0])
