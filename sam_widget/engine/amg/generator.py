"""``SamAutomaticMaskGenerator``: "segment everything" with a grid of point prompts.

Same parameters, records and results as the published generator
(``segment_anything/automatic_mask_generator.py``), and read the same way, top to bottom:
``generate`` -> ``_process_crop`` (one per crop) -> ``GridBatch`` (one per batch of points,
``batches.py``) -> ``_finish`` (cross-crop NMS, masks, records). Candidates travel in a
:class:`~sam_widget.engine.amg.candidates.Candidates` record container (the published
``MaskData``). It works for any model family through the model interface only
(``compute_embedding``, ``prepare``, ``decode_points``, ``geometry``).

Full-resolution work is only done where it can change the output:

1. each crop is encoded once and its point prompts are decoded in batches with
   ``model.decode_points`` (SAM: the exact low-rank path, ``models/sam/lowrank.py``);
2. candidates are filtered by predicted IoU first (the prediction does not depend on the
   mask head), so, with a family that takes the decode hints, prompts without a candidate
   get no mask head and the others' candidates are never upscaled;
3. for the survivors, the pixel counts of the stability score and the mask's box at the
   original resolution come from the crop's upscaler: for SAM's geometry the
   :class:`~sam_widget.engine.amg.upsample.TiledUpscaler` (the same numbers as upscaling
   the logits, up to float rounding, but only tiles that a mask boundary crosses are
   evaluated pixel by pixel), for other geometries ``geometry.upscale`` itself. What is
   kept of a candidate is its low-res logits, never a full-size mask. On a CPU the
   batches of a crop run on two worker threads (``batches.run_batches``);
4. after box NMS (within a crop, then across crops) only the final masks are rendered at
   full resolution and encoded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ...models.interface import SegmentModel
from ..images import to_rgb_uint8
from ..predictor import SamPredictor
from .batches import CHUNK, Filters, GridBatch, run_batches
from .candidates import Candidates, crop_runs
from .crops import build_all_layer_point_grids, generate_crop_boxes
from .nms import box_area, nms
from .postprocess import (
    check_float,
    check_positive_int,
    masks_to_boxes,
    remove_small_regions,
    require_scipy,
)
from .rle import counts_to_string, mask_to_rle
from .upsample import Upscaler, make_upscaler

__all__ = ["SamAutomaticMaskGenerator"]

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]
_OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
# The published generators' pred_iou_thresh per model family (the only default that differs).
_DEFAULT_PRED_IOU_THRESH = {"sam": 0.88, "sam2": 0.8}


@dataclass
class _Crop:
    box: list[int]  # XYXY in the image
    upscaler: Upscaler  # low-res logits -> this crop at original resolution


class SamAutomaticMaskGenerator:
    """Generate masks for everything in an image from a grid of point prompts.

    ``model`` is a model of any registered family (``build_sam``) or a ``SamPredictor``
    (whose model, and embedding cache if any, are used; its own current image is left
    untouched). Parameters as in the published
    generator:

    - ``points_per_side`` (or explicit ``point_grids``, one (N, 2) array in [0, 1] per crop
      layer; exactly one of the two), ``points_per_batch`` prompts per decoder call;
    - ``pred_iou_thresh``, ``stability_score_thresh`` (with ``stability_score_offset``):
      quality filters (a threshold of 0 disables the filter). ``pred_iou_thresh`` not given:
      the published default of the model's family, 0.88 for SAM
      (``segment_anything/automatic_mask_generator.py``), 0.8 for SAM 2
      (``sam2/automatic_mask_generator.py``); it is the only default the two differ in;
    - ``mask_threshold``: logit cut-off of masks and of the stability score (not given: the
      model's ``mask_threshold``, 0.0, as both published generators);
    - ``use_m2m`` (SAM 2's keyword, any family here): decode every candidate once more with
      its point and its own logits as mask input, single-mask, then filter (``m2m.py``);
    - ``multimask_output``: False decodes one mask per point (the family's single-mask
      rule) instead of three;
    - ``box_nms_thresh`` / ``crop_nms_thresh``: box-IoU cut-offs of duplicate removal within
      a crop / between crops;
    - ``crop_n_layers``, ``crop_overlap_ratio``, ``crop_n_points_downscale_factor``: extra
      layers of 2**i x 2**i overlapping crops and their point density;
    - ``min_mask_region_area``: > 0 fills holes and removes islands smaller than that many
      pixels (needs scipy: ``pip install sam-widget[amg]``), then de-duplicates again;
    - ``output_mode``: ``"binary_mask"`` (H x W bool arrays), ``"uncompressed_rle"`` or
      ``"coco_rle"`` (pycocotools' compressed string, as ``str``; no pycocotools needed);
    - ``progress``: show a tqdm bar over decoder batches (all crops).
    """

    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float | None = None,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float | None = None,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Sequence[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: OutputMode = "binary_mask",
        progress: bool = False,
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        if isinstance(model, SamPredictor):
            # Only its pure compute_embedding (and thereby its cache) is used.
            self.predictor = model
        else:
            try:
                self.predictor = SamPredictor(model)
            except TypeError:
                raise TypeError(
                    "model must be a model built by build_sam or a SamPredictor, got "
                    f"{type(model).__name__}"
                ) from None
        self.model: SegmentModel = self.predictor.model
        self.crop_n_layers = check_positive_int("crop_n_layers", crop_n_layers, minimum=0)
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        self.crop_n_points_downscale_factor = check_positive_int(
            "crop_n_points_downscale_factor", crop_n_points_downscale_factor
        )
        if points_per_side is not None:
            check_positive_int("points_per_side", points_per_side)
            self.point_grids = build_all_layer_point_grids(
                int(points_per_side), self.crop_n_layers, self.crop_n_points_downscale_factor
            )
        else:
            assert point_grids is not None
            self.point_grids = self._check_grids(point_grids)
        self.points_per_batch = check_positive_int("points_per_batch", points_per_batch)
        if pred_iou_thresh is None:
            pred_iou_thresh = _DEFAULT_PRED_IOU_THRESH.get(self.model.family, 0.88)
        self.pred_iou_thresh = check_float("pred_iou_thresh", pred_iou_thresh, 0.0, 1.0)
        if mask_threshold is None:
            mask_threshold = float(self.model.mask_threshold)
        self.mask_threshold = check_float("mask_threshold", mask_threshold, -math.inf, math.inf)
        for name, flag in (("use_m2m", use_m2m), ("multimask_output", multimask_output)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.use_m2m = bool(use_m2m)
        self.multimask_output = bool(multimask_output)
        self.stability_score_thresh = check_float(
            "stability_score_thresh", stability_score_thresh, 0.0, 1.0
        )
        self.stability_score_offset = check_float(
            "stability_score_offset", stability_score_offset, 0.0, math.inf
        )
        self.box_nms_thresh = check_float("box_nms_thresh", box_nms_thresh, 0.0, 1.0)
        self.crop_nms_thresh = check_float("crop_nms_thresh", crop_nms_thresh, 0.0, 1.0)
        self.crop_overlap_ratio = check_float("crop_overlap_ratio", crop_overlap_ratio, 0.0, 1.0)
        if isinstance(min_mask_region_area, bool) or not isinstance(
            min_mask_region_area, (int, float, np.integer, np.floating)
        ):
            raise TypeError("min_mask_region_area must be a number of pixels")
        self.min_mask_region_area = check_float(
            "min_mask_region_area", min_mask_region_area, 0.0, math.inf
        )
        if self.min_mask_region_area > 0:
            require_scipy()
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {_OUTPUT_MODES}, got {output_mode!r}")
        self.output_mode = output_mode
        if not isinstance(progress, bool):
            raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
        self.progress = progress

    def _check_grids(self, grids: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for i, g in enumerate(grids):
            arr = np.asarray(g, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
                raise ValueError(
                    f"point_grids[{i}] must have shape (N, 2), N >= 1, got {arr.shape}"
                )
            if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
                raise ValueError(f"point_grids[{i}] must hold XY points in [0, 1]")
            out.append(arr)
        if len(out) < self.crop_n_layers + 1:
            raise ValueError(
                f"point_grids has {len(out)} grids, but crop_n_layers={self.crop_n_layers} "
                f"needs one per layer ({self.crop_n_layers + 1})"
            )
        return out

    # ----------------------------------------------------------------------------- public

    @torch.no_grad()
    def generate(
        self, image: Any, *, progress_callback: Callable[[float], None] | None = None
    ) -> list[dict[str, Any]]:
        """Masks for everything in ``image`` (any input ``sam_widget.images`` accepts).

        Returns one record per mask: ``segmentation`` (per ``output_mode``), ``area``
        (pixels), ``bbox`` (XYWH, width = x_max - x_min as the published code), ``predicted_iou``,
        ``point_coords`` ([[x, y]] of the prompt), ``stability_score``, ``crop_box`` (XYWH).
        ``progress_callback(fraction)`` is called after every decoder batch.
        """
        img = to_rgb_uint8(image)
        orig_h, orig_w = img.shape[:2]
        boxes, layers = generate_crop_boxes(
            (orig_h, orig_w), self.crop_n_layers, self.crop_overlap_ratio
        )
        # Images only a few pixels wide can get empty crops (x0 == x1): nothing to segment.
        crop_list = [
            (b, la) for b, la in zip(boxes, layers, strict=True) if b[2] > b[0] and b[3] > b[1]
        ]
        boxes, layers = [b for b, _ in crop_list], [la for _, la in crop_list]
        per_batch = self.points_per_batch
        total = sum(math.ceil(len(self.point_grids[la]) / per_batch) for la in layers)
        done = 0
        bar = tqdm(total=total, disable=not self.progress, desc="Segment everything", unit="batch")

        def tick() -> None:
            nonlocal done
            done += 1
            bar.update(1)
            if progress_callback is not None:
                progress_callback(done / total)

        crops: list[_Crop] = []
        parts: list[Candidates] = []
        try:
            for i, (box, layer) in enumerate(zip(boxes, layers, strict=True)):
                crop, part = self._process_crop(img, i, box, layer, tick)
                crops.append(crop)
                parts.append(part)
        finally:
            bar.close()
        kept = Candidates.cat(parts, parts[0].low_res.shape[1:], self.model.device)
        return self._finish(kept, crops, (orig_h, orig_w))

    # ---------------------------------------------------------------------------- helpers

    def _process_crop(
        self, img: np.ndarray, index: int, box: list[int], layer: int, tick: Callable[[], None]
    ) -> tuple[_Crop, Candidates]:
        """Encode one crop, decode its grid in batches, filter, and de-duplicate (box NMS)."""
        model = self.model
        device = model.device
        x0, y0, x1, y1 = box
        crop_img = img[y0:y1, x0:x1]
        crop_hw = (y1 - y0, x1 - x0)
        emb = self.predictor.compute_embedding(crop_img)
        input_size = (int(emb.input_size[0]), int(emb.input_size[1]))
        with torch.no_grad():
            ctx = model.prepare({n: t.to(device) for n, t in emb.named_features.items()})
        # Grid in [0, 1] -> crop pixels (XY) -> model input frame.
        points = self.point_grids[layer] * np.array([[crop_hw[1], crop_hw[0]]], dtype=np.float64)
        model_points = model.geometry.apply_coords(points, crop_hw)
        low_hw = (int(model.low_res_size[0]), int(model.low_res_size[1]))
        upscaler = make_upscaler(model.geometry, low_hw, input_size, crop_hw, device)
        filters = Filters(
            self.points_per_batch,
            self.pred_iou_thresh,
            self.stability_score_thresh,
            self.stability_score_offset,
            self.mask_threshold,
            multimask=self.multimask_output,
            use_m2m=self.use_m2m,
        )
        image_wh = (img.shape[1], img.shape[0])
        batch = GridBatch(filters, model, ctx, upscaler, points, model_points, box, image_wh, index)
        starts = range(0, len(points), self.points_per_batch)
        parts = run_batches(batch, starts, tick, device=device)
        data = Candidates.cat(parts, low_hw, device)
        if len(data):
            data = data.take(nms(data.boxes.float(), data.iou, self.box_nms_thresh))
        # Crop frame -> image frame.
        data.boxes = data.boxes + torch.tensor([x0, y0, x0, y0], device=data.boxes.device)
        data.points = data.points + np.array([[x0, y0]], dtype=np.float64)
        return _Crop(box, upscaler), data

    def _render(
        self, kept: Candidates, crops: list[_Crop], size: tuple[int, int]
    ) -> Iterator[np.ndarray]:
        """Full-image (H, W) bool masks of the candidates, in order."""
        thr = self.mask_threshold
        for start, stop, crop_index in crop_runs(kept.crop, CHUNK):
            crop = crops[crop_index]
            x0, y0, x1, y1 = crop.box
            masks = crop.upscaler.masks(kept.low_res[start:stop], thr).cpu().numpy()
            for m in masks:
                if (x0, y0, x1, y1) == (0, 0, size[1], size[0]):
                    yield m
                else:
                    full = np.zeros(size, dtype=bool)
                    full[y0:y1, x0:x1] = m
                    yield full

    def _finish(
        self, kept: Candidates, crops: list[_Crop], size: tuple[int, int]
    ) -> list[dict[str, Any]]:
        """Cross-crop NMS, full-resolution masks, small-region removal, records."""
        if len(crops) > 1 and len(kept):
            # Prefer masks from smaller crops (score 1 / crop area).
            crop_xyxy = torch.tensor([c.box for c in crops], dtype=torch.int64)
            scores = (1 / box_area(crop_xyxy))[kept.crop.cpu()]
            kept = kept.take(nms(kept.boxes.float(), scores, self.crop_nms_thresh))
        masks: Iterable[np.ndarray] = self._render(kept, crops, size)
        boxes = kept.boxes.cpu()
        order = torch.arange(len(kept))
        if self.min_mask_region_area > 0 and len(kept):
            masks, boxes, order = self._remove_small_regions(masks, boxes)
        iou, stability = kept.iou.tolist(), kept.stability.tolist()
        crop_of = kept.crop.tolist()
        records = []
        for k, mask in zip(order.tolist(), masks, strict=True):
            x0, y0, x1, y1 = (int(v) for v in boxes[k])
            cx0, cy0, cx1, cy1 = crops[crop_of[k]].box
            records.append(
                {
                    "segmentation": self._encode(mask),
                    "area": int(np.count_nonzero(mask)),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "predicted_iou": float(iou[k]),
                    "point_coords": [[float(v) for v in kept.points[k]]],
                    "stability_score": float(stability[k]),
                    "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
                }
            )
        return records

    def _remove_small_regions(
        self, masks: Iterable[np.ndarray], boxes: torch.Tensor
    ) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
        """Fill small holes, drop small islands, then NMS preferring unchanged masks."""
        area = self.min_mask_region_area
        fixed: list[np.ndarray] = []
        unchanged: list[float] = []
        for m in masks:
            m, holes = remove_small_regions(m, area, "holes")
            m, islands = remove_small_regions(m, area, "islands")
            fixed.append(m)
            unchanged.append(float(not (holes or islands)))
        new_boxes = boxes.clone()
        for k, m in enumerate(fixed):
            if not unchanged[k]:
                new_boxes[k] = masks_to_boxes(torch.from_numpy(m)[None])[0]
        keep = nms(
            new_boxes.float(),
            torch.tensor(unchanged),
            max(self.box_nms_thresh, self.crop_nms_thresh),
        )
        return [fixed[k] for k in keep.tolist()], new_boxes, keep

    def _encode(self, mask: np.ndarray) -> Any:
        if self.output_mode == "binary_mask":
            return mask
        rle = mask_to_rle(mask)
        if self.output_mode == "coco_rle":
            rle["counts"] = counts_to_string(rle["counts"])
        return rle
