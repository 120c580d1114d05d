"""Segment-everything explained in the widget: the ``{type: "explain_everything"}`` message.

Built from :func:`sam_widget.explain.explain_amg` (the generator's filter stages): the
content has the point grid (every crop's point prompts, XY image pixels), the number of
masks decoded, and per stage its name, description, surviving ``count`` and ``removed``;
the buffers hold one label map per stage, in stage order, encoded like the ``everything``
message's (zlib of uint16 little-endian, display size, label k = the stage's k-th mask by
decreasing area, smaller masks painted over larger ones). The browser draws the selected
stage's map on its everything layer and the grid over the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.amg.rle import rle_to_mask
from ..explain.amg import AmgExplanation
from .codec import encode_label_map
from .everything import label_map_display

__all__ = ["everything_message"]


def _stage_labels(records: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """(height, width) uint16 label map of ``records`` (largest first, so small ones show)."""
    ordered = sorted(records, key=lambda r: -int(r["area"]))
    masks = [rle_to_mask(r["segmentation"]) for r in ordered]
    return label_map_display(masks, height, width)


def everything_message(
    amg: AmgExplanation, *, image_id: int, height: int, width: int
) -> tuple[dict[str, Any], list[bytes]]:
    """The ``explain_everything`` message (content, one label map buffer per stage) for
    ``amg``; ``height`` x ``width``: the browser's mask (display) size."""
    # crops' (N, 2) grids -> one (sum N, 2) list, rounded to 0.01 px
    grid = np.concatenate(amg.grid_points, axis=0) if amg.grid_points else np.zeros((0, 2))
    content = {
        "type": "explain_everything",
        "image_id": int(image_id),
        "width": int(width),
        "height": int(height),
        "grid": np.round(grid, 2).tolist(),
        "decoded": int(amg.decoded),
        "stages": [
            {
                "name": s.name,
                "description": s.description,
                "count": s.count,
                "removed": int(s.removed),
            }
            for s in amg.stages
        ],
    }
    buffers = [encode_label_map(_stage_labels(s.records, height, width)) for s in amg.stages]
    return content, buffers
