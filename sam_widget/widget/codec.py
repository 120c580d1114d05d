"""Binary encodings used between the kernel and the browser (docs/ARCHITECTURE.md, protocol).

- Masks, "bits-zlib": the H x W bool mask, row-major, packed 8 pixels per byte with the first
  pixel in the most significant bit, then zlib (RFC 1950) compressed. The decoded length is
  ``ceil(H * W / 8)`` bytes.
- Label maps ("everything"): zlib of the H x W uint16 little-endian label map, row-major.
- Images: PNG or JPEG bytes for the ``image_data`` trait; :func:`encode_image` documents the
  rule that picks one.

Nothing here knows about widgets or models; every function is pure.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

__all__ = [
    "JPEG_MIN_PIXELS",
    "JPEG_QUALITY",
    "decode_label_map",
    "decode_mask",
    "encode_image",
    "encode_label_map",
    "encode_mask",
]

#: Images with at least this many pixels (width x height) are sent as JPEG; smaller ones as PNG.
JPEG_MIN_PIXELS = 2_000_000
#: JPEG quality used for large images (visually lossless for photos, ~10x smaller than PNG).
JPEG_QUALITY = 90
# zlib level for masks: level 1 is several times faster than the default and masks (long runs
# of identical bytes) compress almost as well with it.
_MASK_ZLIB_LEVEL = 1


def _check_shape(width: int, height: int) -> None:
    if int(width) < 0 or int(height) < 0:
        raise ValueError(f"width and height must be >= 0, got {width} x {height}.")


def encode_mask(mask: np.ndarray) -> bytes:
    """Encode an ``(H, W)`` bool mask as "bits-zlib" bytes.

    Non-bool arrays are accepted only when they hold nothing but 0 and 1; other values are
    refused so that logits or label maps are never sent as a mask by mistake.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be a 2-D (H, W) array, got shape {arr.shape}.")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(
                f"mask must be bool (or hold only 0 and 1), got {arr.dtype} with other values."
            )
        arr = arr.astype(np.bool_)
    # H x W -> H*W (row-major) -> ceil(H*W/8) bytes, first pixel in the most significant bit
    packed = np.packbits(arr.ravel(), bitorder="big")
    return zlib.compress(packed.tobytes(), _MASK_ZLIB_LEVEL)


def decode_mask(data: bytes | bytearray | memoryview, width: int, height: int) -> np.ndarray:
    """Decode "bits-zlib" bytes into an ``(height, width)`` bool mask.

    Raises ``ValueError`` when the data is not zlib or has the wrong decoded length.
    """
    _check_shape(width, height)
    try:
        raw = zlib.decompress(bytes(data))
    except zlib.error as err:
        raise ValueError(f"mask data is not zlib-compressed ({err}).") from err
    n = int(width) * int(height)
    expected = (n + 7) // 8
    if len(raw) != expected:
        raise ValueError(
            f"mask data decodes to {len(raw)} bytes; a {width} x {height} mask needs {expected}."
        )
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n, bitorder="big")
    # H*W -> H x W (row-major)
    return bits.astype(np.bool_).reshape(int(height), int(width))


def encode_label_map(labels: np.ndarray) -> bytes:
    """Encode an ``(H, W)`` label map (values 0..65535) as zlib of uint16 little-endian."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) array, got shape {arr.shape}.")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"labels must be an integer array, got dtype {arr.dtype}.")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
        raise ValueError("labels must lie in 0..65535 to fit uint16.")
    little = np.ascontiguousarray(arr, dtype="<u2")
    return zlib.compress(little.tobytes(), _MASK_ZLIB_LEVEL)


def decode_label_map(data: bytes | bytearray | memoryview, width: int, height: int) -> np.ndarray:
    """Decode :func:`encode_label_map` bytes into an ``(height, width)`` uint16 array."""
    _check_shape(width, height)
    try:
        raw = zlib.decompress(bytes(data))
    except zlib.error as err:
        raise ValueError(f"label map data is not zlib-compressed ({err}).") from err
    expected = int(width) * int(height) * 2
    if len(raw) != expected:
        raise ValueError(
            f"label map data decodes to {len(raw)} bytes; {width} x {height} needs {expected}."
        )
    # H*W little-endian uint16 -> H x W native uint16
    return np.frombuffer(raw, dtype="<u2").astype(np.uint16).reshape(int(height), int(width))


def encode_image(image: np.ndarray) -> tuple[bytes, str]:
    """Encode an ``(H, W, 3)`` uint8 RGB image for the browser; returns ``(bytes, mime)``.

    Rule: images with fewer than :data:`JPEG_MIN_PIXELS` pixels are sent as lossless PNG
    (screenshots, diagrams, microscopy crops keep every pixel); larger images, which in
    practice are camera photos, are sent as JPEG at quality :data:`JPEG_QUALITY`, which is
    about ten times smaller and much faster to encode than PNG at that size. The image is
    always sent at its original resolution so that pixel coordinates agree on both sides.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got {arr.dtype} {tuple(arr.shape)}."
        )
    pil = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    if arr.shape[0] * arr.shape[1] >= JPEG_MIN_PIXELS:
        pil.save(buf, format="JPEG", quality=JPEG_QUALITY)
        return buf.getvalue(), "image/jpeg"
    # compress_level 3: close to the default's size at a fraction of its time.
    pil.save(buf, format="PNG", compress_level=3)
    return buf.getvalue(), "image/png"
