"""SAM 2's square geometry against the published ``SAM2Transforms`` (sam2 1.1.0), and the
model's input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _torchvision_shim import import_sam2

from sam_widget.models.interface import ImageGeometry
from sam_widget.models.sam2.geometry import ResizeSquare

ORIGINAL = (90, 130)


def _published() -> object:
    sam2 = import_sam2()
    from sam2.utils.transforms import SAM2Transforms

    del sam2
    return SAM2Transforms(resolution=1024, mask_threshold=0.0)


def test_is_an_image_geometry() -> None:
    geo = ResizeSquare(1024)
    assert isinstance(geo, ImageGeometry)
    assert geo.input_size((90, 130)) == (1024, 1024)


def test_image_matches_published_transform() -> None:
    """Our resized float image, normalised, equals the published tensor (ToTensor, antialiased
    bilinear resize of the [0, 1] tensor, Normalize) up to float rounding."""
    image = np.random.default_rng(0).integers(0, 256, (*ORIGINAL, 3), dtype=np.uint8)
    ref = _published()(image)  # type: ignore[operator]
    ours = ResizeSquare(1024).apply_image(image)
    assert ours.dtype == np.float32 and ours.shape == (1024, 1024, 3)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
    # H x W x 3 -> 3 x H x W
    normalised = torch.from_numpy((ours - mean) / std).permute(2, 0, 1)
    assert torch.allclose(normalised, ref, atol=1e-5)


def test_prompts_match_published_transform() -> None:
    ref = _published()
    coords = torch.tensor([[[0.0, 0.0], [129.5, 89.0], [17.25, 33.0]]])
    boxes = torch.tensor([[3.0, 4.0, 100.0, 80.0], [0.0, 0.0, 130.0, 90.0]])
    geo = ResizeSquare(1024)
    want_c = ref.transform_coords(coords, normalize=True, orig_hw=ORIGINAL)  # type: ignore[attr-defined]
    want_b = ref.transform_boxes(boxes, normalize=True, orig_hw=ORIGINAL)  # type: ignore[attr-defined]
    assert torch.equal(geo.apply_coords_torch(coords, ORIGINAL), want_c)
    assert torch.equal(geo.apply_boxes_torch(boxes, ORIGINAL), want_b.reshape(-1, 4))
    np.testing.assert_allclose(
        geo.apply_coords(coords.numpy(), ORIGINAL), want_c.numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        geo.apply_boxes(boxes.numpy(), ORIGINAL), want_b.reshape(-1, 4).numpy(), rtol=1e-6
    )


def test_upscale_matches_published_postprocess() -> None:
    low = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 10
    want = _published().postprocess_masks(low, ORIGINAL)  # type: ignore[attr-defined]
    geo = ResizeSquare(1024)
    assert torch.equal(geo.upscale(low, (1024, 1024), ORIGINAL), want)
    assert torch.equal(geo.upscale(low[0], (1024, 1024), ORIGINAL), want[0])
    assert geo.upscale(low, (1024, 1024), None).shape == (2, 3, 1024, 1024)


def test_bad_input() -> None:
    geo = ResizeSquare(1024)
    with pytest.raises(TypeError, match="uint8"):
        geo.apply_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        geo.apply_image(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="original_size"):
        geo.apply_coords(np.zeros((1, 2)), (0, 5))
    with pytest.raises(ValueError, match="target_length"):
        ResizeSquare(0)


def test_model_input_checks() -> None:
    from sam_widget.models.sam2 import VARIANTS, Sam2

    with torch.device("meta"):
        model = Sam2(VARIANTS["sam2.1_hiera_t"])
    with pytest.raises(ValueError, match=r"x must be B x 3 x 1024 x 1024"):
        model.encode(torch.zeros(1, 3, 768, 1024))
    with pytest.raises(ValueError, match=r"coords must be B x 2"):
        model.decode_points(None, torch.zeros(4, 1, 2), True)
