"""Input image conversion: the one rule documented in sam_widget/images.py."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam_widget.engine import images
from sam_widget.engine.images import MAX_PIXELS, MAX_SIDE, to_rgb_uint8

RNG = np.random.default_rng(1234)


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _check_out(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert out.dtype == np.uint8
    assert out.shape == (*shape, 3)
    assert out.flags.c_contiguous


# -- arrays -------------------------------------------------------------------------------


def test_uint8_rgb_unchanged() -> None:
    a = _rgb()
    out = to_rgb_uint8(a)
    _check_out(out, (5, 7))
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_gray_replicated(shape: tuple[int, ...]) -> None:
    g = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    out = to_rgb_uint8(g)
    _check_out(out, (5, 7))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], g.reshape(5, 7))


def test_rgba_alpha_dropped_colours_kept() -> None:
    a = RNG.integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    a[0, 0, 3] = 0  # fully transparent pixel keeps its stored colour
    out = to_rgb_uint8(a)
    _check_out(out, (4, 6))
    np.testing.assert_array_equal(out, a[:, :, :3])


def test_bgr_and_bgra_reversed() -> None:
    a = _rgb()
    np.testing.assert_array_equal(to_rgb_uint8(a, "BGR"), a[:, :, ::-1])
    b = RNG.integers(0, 256, size=(3, 3, 4), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(b, image_format="BGR"), b[:, :, 2::-1])


def test_uint16_scaled_by_257_rounding() -> None:
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = to_rgb_uint8(v)[:, :, 0].astype(np.int64)
    expected = np.floor(np.arange(65536) / 257 + 0.5).astype(np.int64).reshape(256, 256)
    np.testing.assert_array_equal(out, expected)
    assert out.max() == 255 and out[0, 0] == 0
    assert to_rgb_uint8(np.full((2, 2), 257 * 17, np.uint16))[0, 0, 0] == 17


def test_big_endian_uint16() -> None:
    v = np.array([[0, 257, 65535]], dtype=">u2")
    np.testing.assert_array_equal(to_rgb_uint8(v)[0, :, 0], [0, 1, 255])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_unit_range_rounded(dtype: type) -> None:
    v = np.array([[0.0, 0.25, 0.5, 1.0, 1 / 255, 0.4 / 255, 0.6 / 255]], dtype=dtype)
    out = to_rgb_uint8(v)[0, :, 0]
    expected = np.floor(v[0].astype(np.float64) * 255 + 0.5)
    np.testing.assert_array_equal(out, expected)
    assert out[2] == 128 and out[3] == 255


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_nonfinite_refused(bad: float) -> None:
    v = np.zeros((3, 3, 3), np.float32)
    v[1, 1, 1] = bad
    with pytest.raises(ValueError, match="image.*NaN or infinite"):
        to_rgb_uint8(v)


def test_float_out_of_range_refused_with_hint() -> None:
    with pytest.raises(ValueError, match=r"image.*\[0, 1\].*divide by 255"):
        to_rgb_uint8(np.full((2, 2, 3), 200.0))
    with pytest.raises(ValueError, match=r"image.*\[0, 1\]"):
        to_rgb_uint8(np.full((2, 2, 3), -0.1))


def test_bool_maps_to_black_and_white() -> None:
    m = np.array([[True, False], [False, True]])
    out = to_rgb_uint8(m)
    np.testing.assert_array_equal(out[:, :, 2], [[255, 0], [0, 255]])


def test_other_integers_must_hold_8bit_values() -> None:
    a = _rgb().astype(np.int64)
    np.testing.assert_array_equal(to_rgb_uint8(a), a)
    with pytest.raises(ValueError, match="image.*int32.*0..255"):
        to_rgb_uint8(np.full((2, 2), 300, np.int32))
    with pytest.raises(ValueError, match="image.*int8"):
        to_rgb_uint8(np.full((2, 2, 3), -1, np.int8))


def test_non_contiguous_inputs() -> None:
    a = _rgb(6, 8)
    flipped = a[:, ::-1]
    out = to_rgb_uint8(flipped)
    _check_out(out, (6, 8))
    np.testing.assert_array_equal(out, flipped)
    t = np.transpose(a, (1, 0, 2))
    np.testing.assert_array_equal(to_rgb_uint8(t), t)
    f = (a[::2, ::2].astype(np.float64) / 255.0)[:, :, ::-1]
    np.testing.assert_array_equal(to_rgb_uint8(f, "BGR"), a[::2, ::2])


def test_result_does_not_alias_converted_input() -> None:
    g = np.zeros((3, 3), np.uint8)
    out = to_rgb_uint8(g)
    g[0, 0] = 9
    assert out[0, 0, 0] == 0


def test_torch_tensors_in_both_layouts() -> None:
    a = _rgb()  # H x W x 3 uint8
    hwc = torch.from_numpy(a.copy())
    chw = hwc.permute(2, 0, 1)  # H x W x C -> C x H x W, as torchvision gives images
    np.testing.assert_array_equal(to_rgb_uint8(hwc), a)
    np.testing.assert_array_equal(to_rgb_uint8(chw), a)
    # float in [0, 1], channels first, with a grad history: the float rule of arrays applies
    f = (chw.float() / 255).requires_grad_(True)
    np.testing.assert_array_equal(to_rgb_uint8(f), a)
    np.testing.assert_array_equal(to_rgb_uint8(chw.to(torch.bfloat16) / 255), _bf16_ref(a))
    gray = torch.from_numpy(a[:, :, 0].copy())
    np.testing.assert_array_equal(to_rgb_uint8(gray), np.repeat(a[:, :, :1], 3, axis=2))


def _bf16_ref(a: np.ndarray) -> np.ndarray:
    # What the float rule gives for the bfloat16-rounded values.
    v = (torch.from_numpy(a).to(torch.bfloat16) / 255).float().numpy()
    return np.floor(v * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize(
    "bad, exc, pattern",
    [
        (np.zeros((3, 5, 7), np.uint8), ValueError, "channels-first"),
        (np.zeros((2, 5, 7, 3), np.uint8), ValueError, r"image must have shape"),
        (np.zeros((5, 7, 2), np.uint8), ValueError, r"image must have shape"),
        (np.zeros((5, 7, 3), np.complex64), TypeError, "image has unsupported dtype"),
        (np.array([["a"]]), TypeError, "image has unsupported dtype"),
        ([[0, 1], [2, 3]], TypeError, "image must be a numpy array"),
        (torch.zeros(4, 4, 3, device="meta"), TypeError, r"image\.cpu\(\)"),
        (torch.zeros(2, 4, 4, 3, dtype=torch.uint8), ValueError, r"image must have shape"),
        (torch.full((4, 4, 3), 2.0), ValueError, "float images must lie in"),
        (np.zeros((0, 7, 3), np.uint8), ValueError, "image is empty"),
    ],
)
def test_refused_inputs(bad: object, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        to_rgb_uint8(bad)


def test_bad_image_format() -> None:
    with pytest.raises(ValueError, match="image_format"):
        to_rgb_uint8(_rgb(), "HSV")


def test_size_limits_checked_before_conversion() -> None:
    # broadcast_to allocates nothing: the refusal must come before any conversion copies.
    side = int(np.sqrt(MAX_PIXELS)) + 2
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.float64), (side, side, 3))
    with pytest.raises(ValueError, match="image is too large.*pixels"):
        to_rgb_uint8(huge)
    long = np.broadcast_to(np.zeros((1, 1), np.uint8), (MAX_SIDE + 1, 64))
    with pytest.raises(ValueError, match="image is too large.*longest side"):
        to_rgb_uint8(long)
    with pytest.raises(ValueError, match="image is too elongated"):
        to_rgb_uint8(np.zeros((1, 3000), np.uint8))
    # The most elongated accepted shape still works (short side rounds to 1 pixel).
    assert to_rgb_uint8(np.zeros((1, 2000), np.uint8)).shape == (1, 2000, 3)


# -- PIL images and files -----------------------------------------------------------------


def test_pil_modes() -> None:
    a = _rgb(4, 5)
    np.testing.assert_array_equal(to_rgb_uint8(Image.fromarray(a)), a)
    g = a[:, :, 0].copy()
    np.testing.assert_array_equal(to_rgb_uint8(Image.fromarray(g, "L"))[:, :, 1], g)
    rgba = np.dstack([a, np.full((4, 5), 7, np.uint8)])
    np.testing.assert_array_equal(to_rgb_uint8(Image.fromarray(rgba, "RGBA")), a)
    la = Image.fromarray(g, "L").convert("LA")
    np.testing.assert_array_equal(to_rgb_uint8(la)[:, :, 2], g)
    p = Image.fromarray(a).quantize(colors=8)
    palette = np.asarray(p.convert("RGB"))
    np.testing.assert_array_equal(to_rgb_uint8(p), palette)
    bw = Image.fromarray(g > 128).convert("1")
    np.testing.assert_array_equal(to_rgb_uint8(bw)[:, :, 0], np.where(g > 128, 255, 0))
    u16 = (g.astype(np.uint16) * 257).astype(np.uint16)
    im16 = Image.fromarray(u16)
    assert im16.mode.startswith("I;16")
    np.testing.assert_array_equal(to_rgb_uint8(im16)[:, :, 0], g)
    f = Image.fromarray(g.astype(np.float32) / 255.0, "F")
    np.testing.assert_array_equal(to_rgb_uint8(f)[:, :, 0], g)
    cmyk = Image.fromarray(a).convert("CMYK")
    np.testing.assert_array_equal(to_rgb_uint8(cmyk), np.asarray(cmyk.convert("RGB")))


def test_pil_refuses_bgr() -> None:
    with pytest.raises(ValueError, match="image_format"):
        to_rgb_uint8(Image.fromarray(_rgb()), "BGR")


def _asymmetric() -> np.ndarray:
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = (255, 0, 0)  # top-left red
    a[1, 2] = (0, 0, 255)  # bottom-right blue
    a[0, 2] = (0, 255, 0)  # top-right green
    return a


def _with_orientation(a: np.ndarray, orientation: int) -> Image.Image:
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    im.getexif()[0x0112] = orientation
    return im


def test_exif_orientation_pil_and_file(tmp_path: Path) -> None:
    a = _asymmetric()
    # Orientation 6: the stored picture must be turned 90 degrees clockwise to be upright.
    upright = np.rot90(a, k=-1)
    im = _with_orientation(a, 6)
    np.testing.assert_array_equal(to_rgb_uint8(im), upright)
    path = tmp_path / "rot.png"
    im.save(path, exif=im.getexif())
    assert Image.open(path).getexif().get(0x0112) == 6
    out = to_rgb_uint8(path)
    assert out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out, upright)
    np.testing.assert_array_equal(to_rgb_uint8(str(path)), upright)
    # Orientation 3: upside down.
    im3 = _with_orientation(a, 3)
    np.testing.assert_array_equal(to_rgb_uint8(im3), a[::-1, ::-1])


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image"):
        to_rgb_uint8(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="image: cannot read"):
        to_rgb_uint8(junk)
    good = tmp_path / "good.png"
    Image.fromarray(_rgb(64, 64)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ValueError, match="image: cannot read"):
        to_rgb_uint8(truncated)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    # Claims 30000 x 30000 pixels in a few bytes: must be refused from the header alone.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(ValueError, match="image.*too large"):
        to_rgb_uint8(bomb)
    # Within PIL's limits but above ours.
    big = tmp_path / "big.png"
    big.write_bytes(_png_header_only(12000, 12000))
    with pytest.raises(ValueError, match="image is too large"):
        images.load_image(big)
