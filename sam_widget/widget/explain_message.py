"""One decode's explanation as the browser's ``{type: "explain"}`` message (pure functions).

The message explains the decode the widget ran for an object (same prompts, same
``mask_input``): its content says what is shown and why, its buffers are small PNGs, in the
order ``content["images"]`` names them:

- ``mask0`` .. ``mask3``: the 4 masks over the image (mask 0: the single-mask output,
  1-3: the multimask outputs), with ``ious`` (4 predicted IoUs), ``shown`` (which one the
  widget shows), ``multimask`` and ``why`` (the rule, :mod:`.chain`);
- ``attention``: the final token -> image attention of the shown mask token (head mean),
  over the embedding cells that cover the image;
- ``pe``: the first point's (or box corner's) positional encoding, C values as a heat strip;
- ``pe_similarity``: the cosine similarity of that encoding with each cell's dense encoding;
- ``pca`` (only when asked: once per image): the image embedding's 3 principal axes as RGB.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from ..explain.decode import Explanation
from .snapshot import render

__all__ = [
    "explain_message",
    "heat_rgb",
    "heat_strip",
    "image_cells",
    "pe_similarity",
    "png",
    "why_text",
]

_SHOWN, _OTHER = "#1e88e5", "#e69f00"


def png(rgb: np.ndarray, size: int) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes whose longest side is ``size`` pixels (nearest when
    enlarging, so embedding cells stay visible; bilinear when shrinking)."""
    im = Image.fromarray(np.ascontiguousarray(rgb))
    scale = size / max(im.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def heat_rgb(values: np.ndarray) -> np.ndarray:
    """(...) float -> (..., 3) uint8: min..max mapped dark blue -> red -> orange -> yellow."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    stops = np.array([[20, 20, 80], [200, 60, 80], [250, 170, 40], [255, 250, 180]], float)
    x = t * (len(stops) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    return ((1 - f) * stops[i] + f * stops[i + 1]).round().astype(np.uint8)


def heat_strip(values: np.ndarray, height: int = 8) -> np.ndarray:
    """(C,) float -> (height, C, 3) uint8: one column per value (:func:`heat_rgb`)."""
    row = heat_rgb(np.asarray(values, dtype=np.float64).reshape(1, -1))  # 1 x C x 3
    return np.repeat(row, height, axis=0)


def image_cells(ex: Explanation, grid: np.ndarray) -> np.ndarray:
    """The part of an (h, w[, 3]) embedding-grid picture that covers the image (no padding)."""
    cell = ex.canvas_size / grid.shape[0]
    rows = int(np.ceil(ex.input_size[0] / cell))
    cols = int(np.ceil(ex.input_size[1] / cell))
    return grid[:rows, :cols]


def pe_similarity(ex: Explanation) -> np.ndarray:
    """(h, w) float: cosine similarity of the first prompt token's positional encoding (a
    point or the box's top-left corner) with every embedding cell's dense encoding."""
    pe, dense = ex.token_pe[0], ex.dense_pe  # C; C x h x w
    return np.tensordot(pe, dense, axes=(0, 0)) / (
        np.linalg.norm(pe) * np.linalg.norm(dense, axis=0) + 1e-12
    )


def _small(image: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) and masks (K, H, W) sampled (nearest pixel centre) so that the longest
    side is at most ``size``: the masks are drawn small, never at full resolution."""
    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum(((np.arange(sh) + 0.5) * h / sh).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(sw) + 0.5) * w / sw).astype(np.int64), w - 1)
    return image[np.ix_(rows, cols)], masks[:, rows[:, None], cols[None, :]]


def why_text(multimask: bool, shown: int, picked: bool) -> str:
    """Why mask ``shown`` (0..3) is the one the widget shows (the rule of :mod:`.chain`)."""
    if not multimask:
        return (
            "Several prompts (or a box) are not ambiguous: the single-mask output (mask 0)"
            " is used, refined with the previous mask when refinement is on."
        )
    if picked:
        return f"One point is ambiguous: 3 candidates; you picked mask {shown}."
    return f"One point is ambiguous: 3 candidates; the highest predicted IoU wins (mask {shown})."


def explain_message(
    ex: Explanation,
    image: np.ndarray,
    *,
    image_id: int,
    object_id: int,
    seq: int,
    multimask: bool,
    index: int,
    picked: bool,
    pca: np.ndarray | None = None,
    size: int = 128,
) -> tuple[dict[str, Any], list[bytes]]:
    """The ``explain`` message (content, PNG buffers) for one decode.

    ``image`` (H, W, 3) uint8 RGB; ``multimask``/``index`` as the widget's decode chose
    (``index`` among its 3 candidates when ``multimask``); ``picked``: the user chose the
    candidate; ``pca`` (h, w, 3) uint8 embedding PCA, included when given; ``size``: the
    longest side of each PNG in pixels.
    """
    shown = 1 + int(index) if multimask else 0
    small, masks = _small(np.asarray(image), np.asarray(ex.masks, dtype=bool), size)
    names: list[str] = []
    buffers: list[bytes] = []
    for k in range(4):
        colour = _SHOWN if k == shown else _OTHER
        names.append(f"mask{k}")
        buffers.append(png(render(small, [masks[k]], [colour]), size))
    names.append("attention")
    buffers.append(png(heat_rgb(image_cells(ex, ex.final_attention(shown))), size))
    pe = ex.token_pe[0]  # C: the first prompt token (a point or the box's top-left corner)
    names.append("pe")
    buffers.append(png(heat_strip(pe), 2 * size))
    names.append("pe_similarity")
    buffers.append(png(heat_rgb(image_cells(ex, pe_similarity(ex))), size))
    if pca is not None:
        names.append("pca")
        buffers.append(png(image_cells(ex, pca), size))
    content = {
        "type": "explain",
        "image_id": int(image_id),
        "object_id": int(object_id),
        "seq": int(seq),
        "ious": [float(v) for v in ex.iou_predictions],
        "shown": shown,
        "multimask": bool(multimask),
        "why": why_text(multimask, shown, picked),
        "refined": bool(ex.has_mask_input),
        "token": ex.token_kinds[0],
        "token_xy": [float(v) for v in ex.token_xy[0]],
        "images": names,
    }
    return content, buffers
