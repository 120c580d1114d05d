"""Run-length encoding of binary masks in the COCO convention (numpy only, no torch).

Facts about the format (from pycocotools' ``maskApi.c``, which we follow but do not copy):

- A mask of shape (H, W) is flattened in column-major (Fortran) order: pixel (row r, col c)
  has index ``c * H + r``.
- ``counts`` alternate between runs of 0s and runs of 1s and always start with a run of 0s,
  which is 0 long when the first pixel is set. The counts sum to ``H * W``; an image with no
  pixels has ``counts == [0]``.
- The compressed form writes each count as a little-endian sequence of 5-bit groups, each
  stored in one ASCII character ``chr(48 + group)``, bit 0x20 meaning "another group
  follows" and bit 0x10 of the last group being the sign. From the fourth count on
  (index > 2), the difference to the count two places earlier is written instead of the
  count itself.

An uncompressed RLE is ``{"size": [H, W], "counts": [int, ...]}``; a compressed one is
``{"size": [H, W], "counts": str}`` (pycocotools itself hands out ``bytes``; we accept both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_mask",
    "counts_from_string",
    "counts_to_string",
    "mask_to_rle",
    "rle_area",
    "rle_to_mask",
    "rle_to_uncompressed",
]


def check_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """``mask`` as an (H, W) bool array; ValueError for other shapes or values."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "biu" or (arr.size and (arr.min() < 0 or arr.max() > 1)):
            raise ValueError(f"{name} must be boolean or contain only 0 and 1, got {arr.dtype}")
        arr = arr.astype(bool)
    return arr


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode one (H, W) binary mask as an uncompressed COCO RLE ``{"size", "counts"}``.

    ``counts`` is a list of Python ints in column-major order, starting with a run of 0s.
    """
    arr = check_mask(mask)
    h, w = arr.shape
    # H x W -> W x H -> (W*H,): column-major pixel order.
    flat = arr.T.ravel()
    n = flat.size
    if n == 0:
        return {"size": [h, w], "counts": [0]}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    runs = np.diff(bounds).tolist()
    counts = [0, *runs] if flat[0] else runs
    return {"size": [h, w], "counts": counts}


def _size_of(rle: Any) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("rle must be a dict with keys 'size' and 'counts'")
    size = rle["size"]
    if len(size) != 2:
        raise ValueError(f"rle['size'] must be [height, width], got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 0 or w < 0:
        raise ValueError(f"rle['size'] must be non-negative, got {size!r}")
    return h, w


def _counts_of(rle: dict[str, Any]) -> list[int]:
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return counts_from_string(counts)
    return [int(c) for c in counts]


def rle_to_uncompressed(rle: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"size": [H, W], "counts": [int, ...]}`` for a compressed or uncompressed RLE."""
    h, w = _size_of(rle)
    return {"size": [h, w], "counts": _counts_of(rle)}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an RLE (compressed or not) to an (H, W) bool array (C-contiguous)."""
    h, w = _size_of(rle)
    counts = np.asarray(_counts_of(rle), dtype=np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError("rle['counts'] must not contain negative runs")
    total = int(counts.sum())
    if total != h * w:
        raise ValueError(f"rle['counts'] sum to {total}, but size {h}x{w} has {h * w} pixels")
    values = (np.arange(counts.size) % 2).astype(bool)
    # Runs alternate 0, 1, 0, ... in column-major order: (W*H,) -> W x H -> H x W.
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def rle_area(rle: dict[str, Any]) -> int:
    """Number of set pixels of an RLE (the sum of its odd-indexed runs)."""
    return int(sum(_counts_of(rle)[1::2]))


def counts_to_string(counts: Sequence[int]) -> str:
    """Compress a list of run lengths to pycocotools' ASCII string form."""
    out: list[str] = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:
            x -= int(counts[i - 2])
        while True:
            group = x & 0x1F
            x >>= 5  # arithmetic shift: negative values stay negative
            # The last group is the one after which only sign bits remain.
            more = x != -1 if group & 0x10 else x != 0
            if more:
                group |= 0x20
            out.append(chr(group + 48))
            if not more:
                break
    return "".join(out)


def counts_from_string(text: str | bytes) -> list[int]:
    """Decode pycocotools' ASCII run-length string back to a list of run lengths."""
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    pos = 0
    n = len(data)
    while pos < n:
        x = 0
        shift = 0
        while True:
            if pos >= n:
                raise ValueError("compressed RLE string ends in the middle of a count")
            c = data[pos] - 48
            if c < 0 or c > 63:
                raise ValueError(f"invalid character {chr(data[pos])!r} in compressed RLE")
            pos += 1
            x |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    x -= 1 << shift  # sign-extend
                break
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
