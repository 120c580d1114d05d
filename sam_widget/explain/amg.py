"""``explain_amg``: what survives each filter stage of automatic mask generation.

The published pipeline (``segment_anything/automatic_mask_generator.py``; Kirillov et al.
2023, appendix A "Automatic mask generation"): a grid of single-point prompts per crop, 3
masks per point, then the predicted-IoU threshold, the stability threshold, box NMS within a
crop, box NMS across crops (preferring smaller crops), and small-region removal.

No hook into the generator is needed. The generator is run once with every filter
switched off (a threshold of 0 disables a quality filter; an NMS threshold of 1.0 removes
nothing, since a box IoU is never greater than 1): that gives all candidates with their
predicted IoU, stability score, box and crop. The quality filters and both NMS passes are
then applied to those records as the generator applies them (same order, same scores, the
generator's own ``nms``), and, only when ``min_mask_region_area > 0``, the generator is run
again with its own settings for the last stage. The last stage is ``generate(image)``'s
output (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..engine.amg.crops import generate_crop_boxes
from ..engine.amg.nms import nms
from ..engine.amg.rle import rle_to_mask
from ..engine.embedding_cache import EmbeddingCache
from ..engine.images import to_rgb_uint8
from ..engine.predictor import SamPredictor

__all__ = ["AmgExplanation", "AmgStage", "STAGES", "explain_amg"]

# (stage name, what it removes).
STAGES: tuple[tuple[str, str], ...] = (
    ("candidates", "3 masks per grid point (minus masks at a crop's inner edge)"),
    ("predicted_iou", "masks with predicted IoU <= pred_iou_thresh"),
    ("stability", "masks with stability score < stability_score_thresh"),
    ("box_nms", "duplicates within a crop (box IoU > box_nms_thresh)"),
    ("crop_nms", "duplicates across crops (box IoU > crop_nms_thresh)"),
    ("small_regions", "small holes/islands fixed, then duplicates removed (final output)"),
)


@dataclass
class AmgStage:
    """The records that survive one stage (same keys as ``generate``'s records, with
    ``segmentation`` as an uncompressed RLE; :meth:`masks` decodes them).

    ``removed``: how many the stage removed from the previous stage's records.
    """

    name: str
    description: str
    records: list[dict[str, Any]]
    removed: int

    @property
    def count(self) -> int:
        return len(self.records)

    def masks(self) -> np.ndarray:
        """(count, H, W) bool masks of the records."""
        if not self.records:
            return np.zeros((0, 0, 0), dtype=bool)
        return np.stack([rle_to_mask(r["segmentation"]) for r in self.records])


@dataclass
class AmgExplanation:
    """Automatic mask generation, stage by stage.

    - ``crop_boxes``: XYXY image pixels of each crop (the whole image first);
      ``crop_layers``: each crop's layer (0 = the whole image).
    - ``grid_points``: per crop, (N, 2) float64 XY image pixels of its point prompts.
    - ``decoded``: masks decoded in all (3 per grid point).
    - ``stages``: :class:`AmgStage` in pipeline order (``STAGES``); the last is the output.
    """

    image_size: tuple[int, int]
    crop_boxes: list[list[int]]
    crop_layers: list[int]
    grid_points: list[np.ndarray]
    decoded: int
    stages: list[AmgStage] = field(default_factory=list)

    def stage(self, name: str) -> AmgStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def counts(self) -> dict[str, int]:
        """Stage name -> surviving records (with ``"decoded"`` first)."""
        return {"decoded": self.decoded, **{s.name: s.count for s in self.stages}}


def _settings(gen: Any) -> dict[str, Any]:
    """The generator's parameters (published names), with its point grids made explicit."""
    return {
        "points_per_side": None,
        "point_grids": [np.asarray(g) for g in gen.point_grids],
        "points_per_batch": gen.points_per_batch,
        "pred_iou_thresh": gen.pred_iou_thresh,
        "stability_score_thresh": gen.stability_score_thresh,
        "stability_score_offset": gen.stability_score_offset,
        "box_nms_thresh": gen.box_nms_thresh,
        "crop_n_layers": gen.crop_n_layers,
        "crop_nms_thresh": gen.crop_nms_thresh,
        "crop_overlap_ratio": gen.crop_overlap_ratio,
        "crop_n_points_downscale_factor": gen.crop_n_points_downscale_factor,
        "min_mask_region_area": gen.min_mask_region_area,
        "output_mode": "uncompressed_rle",
    }


def _xyxy(records: list[dict[str, Any]]) -> torch.Tensor:
    """(N, 4) XYXY boxes of records (their ``bbox`` is XYWH with w = x1 - x0)."""
    boxes = torch.tensor([r["bbox"] for r in records], dtype=torch.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _box_nms(records: list[dict[str, Any]], thresh: float) -> list[dict[str, Any]]:
    """NMS within each crop by predicted IoU; crops in order, each in score order."""
    out: list[dict[str, Any]] = []
    crops: list[list[int]] = []
    for r in records:
        if r["crop_box"] not in crops:
            crops.append(r["crop_box"])
    for crop in crops:
        part = [r for r in records if r["crop_box"] == crop]
        scores = torch.tensor([r["predicted_iou"] for r in part], dtype=torch.float32)
        out.extend(part[i] for i in nms(_xyxy(part), scores, thresh).tolist())
    return out


def _crop_nms(records: list[dict[str, Any]], thresh: float, n_crops: int) -> list[dict[str, Any]]:
    """NMS across crops preferring smaller crops (score 1 / crop area), as the generator."""
    if n_crops < 2 or not records:
        return list(records)
    # crop_box is XYWH
    area = torch.tensor([r["crop_box"][2] * r["crop_box"][3] for r in records], dtype=torch.int64)
    return [records[i] for i in nms(_xyxy(records), 1 / area, thresh).tolist()]


def explain_amg(generator: Any, image: Any) -> AmgExplanation:
    """Run ``generator`` (a ``SamAutomaticMaskGenerator``) on ``image`` stage by stage.

    Returns an :class:`AmgExplanation`: the crops, the grid points, and the records that
    survive each stage. The last stage's records are those of ``generator.generate(image)``
    (as uncompressed RLE). Cost: one or two runs of the generator (the encoder runs once per crop).
    """
    for attr in ("point_grids", "predictor", "generate"):
        if not hasattr(generator, attr):
            raise TypeError(
                f"generator must be a SamAutomaticMaskGenerator, got {type(generator).__name__}"
            )
    img = to_rgb_uint8(image)
    h, w = int(img.shape[0]), int(img.shape[1])
    boxes, layers = generate_crop_boxes(
        (h, w), generator.crop_n_layers, generator.crop_overlap_ratio
    )
    crops = [(b, la) for b, la in zip(boxes, layers, strict=True) if b[2] > b[0] and b[3] > b[1]]
    grid_points = []
    for (x0, y0, x1, y1), layer in crops:
        grid = np.asarray(generator.point_grids[layer], dtype=np.float64)
        # [0, 1] -> crop pixels -> image pixels (XY)
        grid_points.append(grid * np.array([[x1 - x0, y1 - y0]]) + np.array([[x0, y0]]))

    source = generator.predictor
    cache = getattr(source, "cache", None)
    if cache is None:
        cache = EmbeddingCache(max_bytes=64 * 2**20)
    predictor = SamPredictor(source.model, cache=cache)
    full = _settings(generator)
    result = AmgExplanation(
        image_size=(h, w),
        crop_boxes=[list(map(int, b)) for b, _ in crops],
        crop_layers=[int(la) for _, la in crops],
        grid_points=grid_points,
        decoded=3 * sum(len(g) for g in grid_points),
    )
    off = {
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
        "crop_nms_thresh": 1.0,
        "min_mask_region_area": 0,
    }
    make = type(generator)
    candidates = make(predictor, **{**full, **off}).generate(img)
    iou_t, stab_t = float(generator.pred_iou_thresh), float(generator.stability_score_thresh)
    by_iou = [r for r in candidates if iou_t <= 0 or r["predicted_iou"] > iou_t]
    stable = [r for r in by_iou if stab_t <= 0 or r["stability_score"] >= stab_t]
    box_kept = _box_nms(stable, float(generator.box_nms_thresh))
    crop_kept = _crop_nms(box_kept, float(generator.crop_nms_thresh), len(crops))
    final = crop_kept
    if generator.min_mask_region_area > 0 and crop_kept:
        final = make(predictor, **full).generate(img)
    prev_count = result.decoded
    for (name, description), records in zip(
        STAGES, (candidates, by_iou, stable, box_kept, crop_kept, final), strict=True
    ):
        result.stages.append(AmgStage(name, description, records, prev_count - len(records)))
        prev_count = len(records)
    return result
