"""The widget's segment-everything parameters (``SamWidget(everything={...})``,
``w.everything_params``, the browser's settings popover): checked here, by name and value,
before any run, so a bad value fails where it is set and says which parameter is wrong.

The names and meanings are those of :class:`sam_widget.SamAutomaticMaskGenerator` (the
published generator's keywords). ``point_grids`` (arrays) and ``output_mode``/``progress``
(the widget's own business) are not settable here: pass ``point_grids`` to
``w.segment_everything(point_grids=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..engine.amg.postprocess import check_float, check_positive_int

__all__ = ["PARAMS", "check_everything_params"]


#: Settable parameters: (kind, lowest, highest), the generator's own ranges.
PARAMS: dict[str, tuple[str, float, float]] = {
    "points_per_side": ("int", 1, math.inf),
    "points_per_batch": ("int", 1, math.inf),
    "pred_iou_thresh": ("float", 0.0, 1.0),
    "stability_score_thresh": ("float", 0.0, 1.0),
    "stability_score_offset": ("float", 0.0, math.inf),
    "box_nms_thresh": ("float", 0.0, 1.0),
    "crop_n_layers": ("int", 0, math.inf),
    "crop_nms_thresh": ("float", 0.0, 1.0),
    "crop_overlap_ratio": ("float", 0.0, 1.0),
    "crop_n_points_downscale_factor": ("int", 1, math.inf),
    "min_mask_region_area": ("int", 0, math.inf),
}


def _check(key: str, v: Any) -> Any:
    kind, low, high = PARAMS[key]
    if kind == "float":
        return check_float(key, v, low, high)
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # JSON from the browser may give 16.0 for 16
    return check_positive_int(key, v, minimum=int(low))


def check_everything_params(value: Any, *, name: str = "everything") -> dict[str, Any]:
    """A checked copy of ``value`` (a dict of generator keywords); ``TypeError`` or
    ``ValueError`` naming ``name`` and the parameter otherwise. Whole-number floats (as JSON
    from the browser may give) are accepted for integer parameters."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict of SamAutomaticMaskGenerator keywords, "
            f"got {type(value).__name__}."
        )
    out: dict[str, Any] = {}
    for key, v in value.items():
        if not isinstance(key, str) or key not in PARAMS:
            extra = (
                " (pass it to w.segment_everything(point_grids=...))"
                if key == "point_grids"
                else ""
            )
            raise ValueError(
                f"{name}: unknown or unsupported parameter {key!r}{extra}; settable: "
                f"{', '.join(PARAMS)}."
            )
        try:
            out[key] = _check(key, v)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    return out
