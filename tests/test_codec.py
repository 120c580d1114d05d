"""Binary codec between kernel and browser (docs/ARCHITECTURE.md, "bits-zlib" etc.)."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from sam_widget.widget import codec


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 9), (16, 16), (37, 101)])
def test_mask_round_trip(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) > 0.5
    data = codec.encode_mask(mask)
    h, w = shape
    out = codec.decode_mask(data, w, h)
    assert out.dtype == np.bool_ and out.shape == shape
    np.testing.assert_array_equal(out, mask)


def test_mask_layout_is_row_major_msb_first_zlib() -> None:
    # 3 x 5 mask: pixel (0, 0) and pixel (1, 2) (flat index 7) set.
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 0] = True
    mask[1, 2] = True
    data = codec.encode_mask(mask)
    raw = zlib.decompress(data)  # RFC 1950 stream (zlib header), not raw deflate
    assert data[0] == 0x78
    assert len(raw) == (3 * 5 + 7) // 8 == 2
    # first pixel -> most significant bit of byte 0; flat index 7 -> least significant bit
    assert raw[0] == 0b1000_0001
    assert raw[1] == 0


def test_decode_mask_refuses_wrong_length_and_garbage() -> None:
    data = codec.encode_mask(np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="needs"):
        codec.decode_mask(data, 5, 5)
    with pytest.raises(ValueError, match="zlib"):
        codec.decode_mask(b"not zlib", 4, 4)


def test_encode_mask_refuses_non_binary() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        codec.encode_mask(np.array([[0.0, 0.5]]))
    with pytest.raises(ValueError, match="2-D"):
        codec.encode_mask(np.zeros((2, 2, 2), dtype=bool))
    out = codec.decode_mask(codec.encode_mask(np.array([[0, 1], [1, 0]], dtype=np.uint8)), 2, 2)
    np.testing.assert_array_equal(out, [[False, True], [True, False]])


def test_label_map_is_uint16_little_endian() -> None:
    labels = np.array([[0, 1, 258], [65535, 2, 0]], dtype=np.int64)
    data = codec.encode_label_map(labels)
    raw = zlib.decompress(data)
    assert raw[:6] == bytes([0, 0, 1, 0, 2, 1])  # 0, 1, 258 = 0x0102 little-endian
    out = codec.decode_label_map(data, 3, 2)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)
    with pytest.raises(ValueError, match="65535"):
        codec.encode_label_map(np.array([[70000]]))


def test_small_image_is_lossless_png() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    data, mime = codec.encode_image(img)
    assert mime == "image/png"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), img)


def test_large_image_is_jpeg_at_full_size() -> None:
    h, w = 1000, codec.JPEG_MIN_PIXELS // 1000
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, : w // 2] = (200, 30, 30)
    data, mime = codec.encode_image(img)
    assert mime == "image/jpeg"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (w, h)
        arr = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(arr[10, 10] - [200, 30, 30]).max() < 8
    # one pixel fewer than the threshold stays PNG
    _, mime_small = codec.encode_image(np.zeros((1, codec.JPEG_MIN_PIXELS - 1, 3), np.uint8))
    assert mime_small == "image/png"


def test_encode_image_refuses_non_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        codec.encode_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        codec.encode_image(np.zeros((4, 4), dtype=np.uint8))
