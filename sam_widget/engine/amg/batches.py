"""One crop's point grid, batch by batch: decode, filter by predicted IoU and stability, drop
masks at the crop's inner edges (``SamAutomaticMaskGenerator._process_crop``), and the one
helper that runs the batches (``run_batches``: the thread pool lives only here).

Decoding goes through the model interface (``model.decode_points``); when the family takes
the decode hints (``decode_points_hints``: SAM's low-rank path) prompts without a candidate
above ``pred_iou_thresh`` get no mask head, the logits buffer is reused and only the logits
the upscaler reads are computed.

Batches are independent given the crop's low-rank context, so on a CPU they run on two
worker threads with half the intra-op threads each. The decoder's per-prompt work is many
small operations (tens of microseconds each); two single-threaded streams keep both cores
busy where one two-threaded stream spends time in fork/join (benchmarks/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...models.interface import SegmentModel
from .candidates import Candidates
from .crops import is_box_near_crop_edge
from .m2m import refine_with_m2m
from .upsample import Upscaler

__all__ = ["CHUNK", "Filters", "GridBatch", "run_batches"]

# Candidates evaluated at full resolution at once (bounds the memory of mixed tiles here
# and of rendered masks in the generator: CHUNK x H x W bools).
CHUNK = 16
# Worker threads for the batches of a crop on a CPU (each gets total threads / workers).
WORKERS = 2


@dataclass(frozen=True)
class Filters:
    """The generator's per-candidate settings (see ``SamAutomaticMaskGenerator``)."""

    points_per_batch: int
    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    mask_threshold: float
    multimask: bool = True  # 3 candidates per point, else the family's single mask
    use_m2m: bool = False  # refine every candidate once (m2m.py) before filtering


class GridBatch:
    """``batch(start)`` -> the candidates of prompts start .. start + points_per_batch.

    ``model`` and ``ctx``: the model and its context of the crop (``model.prepare``);
    ``points``: (N, 2) float64 XY in crop pixels; ``model_points``: the same in the model
    input frame; ``box``: the crop, XYXY in the image; ``image_wh``: the image's size;
    ``index``: the crop's number (stored in the candidates). Safe to call from several
    threads at once: each thread reuses its own low-res logits buffer.
    """

    def __init__(
        self,
        filters: Filters,
        model: SegmentModel,
        ctx: Any,
        upscaler: Upscaler,
        points: np.ndarray,
        model_points: np.ndarray,
        box: Sequence[int],
        image_wh: tuple[int, int],
        index: int,
    ) -> None:
        self.filters, self.model, self.ctx, self.upscaler = filters, model, ctx, upscaler
        self.hints = bool(getattr(model, "decode_points_hints", False))
        self.points, self.model_points = points, model_points
        self.box, self.index = list(box), index
        self.orig_box = [0, 0, image_wh[0], image_wh[1]]
        self.local = threading.local()

    @torch.no_grad()
    def __call__(self, start: int) -> list[Candidates]:
        f, upscaler, model = self.filters, self.upscaler, self.model
        device = model.device
        stop = start + f.points_per_batch
        # B x 2: one positive point per prompt, in the model's input frame.
        coords = torch.as_tensor(self.model_points[start:stop], dtype=torch.float32, device=device)
        if self.hints and not f.use_m2m:  # m2m reads every candidate's whole logits
            buffer: torch.Tensor | None = getattr(self.local, "buffer", None)
            # Masks only for prompts with a candidate above pred_iou_thresh (the others'
            # logits are left zero and never read: their candidates are filtered out below).
            low, iou = model.decode_points(  # type: ignore[call-arg]
                self.ctx,
                coords,
                f.multimask,
                iou_thresh=f.pred_iou_thresh if f.pred_iou_thresh > 0 else None,
                out=None if buffer is None else buffer[: len(coords)],
                # only the logits the upscaler reads (not those of the padding)
                extent=upscaler.need,
            )
            if buffer is None:
                # a 50 MB tensor per batch costs page faults; the candidates below are copies
                self.local.buffer = low
        else:
            low, iou = model.decode_points(self.ctx, coords, f.multimask)
        per_point = low.shape[1]
        low = low.flatten(0, 1)  # B x M x h x w -> BM x h x w (point-major)
        iou = iou.flatten(0, 1)  # B x M -> BM
        if f.use_m2m:
            cand_coords = coords.repeat_interleave(per_point, dim=0)  # B x 2 -> BM x 2
            low, iou = refine_with_m2m(model, self.ctx, cand_coords, low, f.points_per_batch)
        batch_points = np.repeat(self.points[start:stop], per_point, axis=0)
        cand = torch.arange(len(iou), device=device)
        if f.pred_iou_thresh > 0.0:
            cand = cand[iou > f.pred_iou_thresh]
        parts: list[Candidates] = []
        for c in range(0, len(cand), CHUNK):
            idx = cand[c : c + CHUNK]
            # Pixel counts above thr +- offset and boxes of the masks (> thr) at the
            # original resolution, as if the logits had been upscaled (upsample.py).
            counts, bxs = upscaler.stats(low[idx], f.mask_threshold, f.stability_score_offset)
            stab = counts[:, 0].to(torch.float32) / counts[:, 1].to(torch.float32)
            if f.stability_score_thresh > 0.0:
                stable = stab >= f.stability_score_thresh
                idx, stab, bxs = idx[stable], stab[stable], bxs[stable]
            if len(idx) == 0:
                continue
            keep = ~is_box_near_crop_edge(bxs, self.box, self.orig_box)
            if keep.any():
                idx, stab, bxs = idx[keep], stab[keep], bxs[keep]
                crop_ids = torch.full((len(idx),), self.index, dtype=torch.int64, device=device)
                points_np = batch_points[idx.cpu().numpy()]
                parts.append(Candidates(low[idx], iou[idx], stab, bxs, points_np, crop_ids))
        return parts


def run_batches(
    batch: Callable[[int], list[Candidates]],
    starts: Sequence[int],
    tick: Callable[[], None],
    *,
    device: torch.device,
    workers: int | None = None,
) -> list[Candidates]:
    """``batch(s)`` for every s in ``starts``, concatenated in that order; ``tick()`` after
    each, in the calling thread (so a progress callback that raises stops the run: batches
    not started yet are cancelled).

    On a CPU with at least 2 intra-op threads the batches run on ``workers`` threads
    (default ``WORKERS``) with total / workers intra-op threads each; the total is restored
    afterwards (``torch.set_num_threads`` also sets what threads started later get). All
    batches go to the workers, the first one too: with 4 batches a crop (a 16 x 16 grid),
    running the first one in the caller left the workers 3 to share, one of them idle for
    a batch (the model's lazy per-prompt-batch context, SAM's low-rank image tokens, is
    small next to a batch: the first worker builds it, the other waits for it).
    """
    workers = WORKERS if workers is None else workers
    total = torch.get_num_threads()
    parts: list[Candidates] = []
    if device.type != "cpu" or workers < 2 or total < 2 or len(starts) < 2:
        for s in starts:
            parts.extend(batch(s))
            tick()
        return parts
    workers = min(workers, total, len(starts))
    per_worker = total // workers
    pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(per_worker,))
    try:
        futures = [pool.submit(batch, s) for s in starts]
        for fut in futures:
            parts.extend(fut.result())
            tick()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(total)
    return parts
