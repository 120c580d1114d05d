"""Automatic mask generation: ours vs the published generator, same weights, same image.

    python benchmarks/bench_amg.py                 # vit_t-size random weights, 2 threads
    python benchmarks/bench_amg.py --grids 16 --crop-layers 0 --threads 2

For every (points_per_side, crop_n_layers) it runs ``sam_widget.SamAutomaticMaskGenerator``
and the published ``segment_anything`` generator (imported through the test-only torchvision
shim) on the same model weights and image, and prints total and post-encoder seconds of each,
their ratio, and a check that the outputs match (mask count, and the smallest IoU between a
published mask and its matched mask of ours). The image encoder is the same module in both,
timed by forward hooks; "post" = total - encoder.

Weights are random (no download), with the same deterministic edits as ``tests/test_amg.py``
so that the output has many distinct masks; with random weights the predicted IoUs do not
mean anything, so ``--pred-iou-thresh auto`` (default) uses the median predicted IoU of the
full-image grid: about half of the candidates pass the IoU filter, the kind of share a
trained model keeps at the default threshold. The published model for ``vit_t`` is the
published ``Sam``/``PromptEncoder``/``MaskDecoder`` around our TinyViT encoder (that is what
MobileSAM is).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _torchvision_shim import import_reference  # noqa: E402
from test_amg import shape_weights_  # noqa: E402  (the same weight edits as the tests)

from sam_widget import SamAutomaticMaskGenerator  # noqa: E402
from sam_widget.data.io import decode_rle  # noqa: E402
from sam_widget.models.build import build_sam  # noqa: E402
from sam_widget.models.sam.config import get_config  # noqa: E402


def structured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A colour wheel (colour encodes position) with 40 flat-coloured discs on it."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    angle = np.arctan2(yy - h / 2, xx - w / 2)
    radius = np.hypot(yy - h / 2, xx - w / 2) / (0.5 * np.hypot(h, w))
    img = np.stack([127 + 120 * np.cos(angle + p) * radius for p in (0.0, -2.1, 2.1)], -1)
    img = img.astype(np.uint8)
    rng = np.random.default_rng(seed)
    s = min(h, w)
    for _ in range(40):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(s // 60 + 1, s // 12 + 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img


def build_models(variant: str, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ours, published) sharing one image encoder module and identical decoder weights."""
    sa = import_reference()
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = build_sam(variant, device="cpu", pretrained=False)
    shape_weights_(ours)
    cfg = get_config(variant)
    grid = cfg.image_embedding_size
    m = sa.modeling
    ref = m.Sam(
        image_encoder=ours.image_encoder,
        prompt_encoder=m.PromptEncoder(
            embed_dim=cfg.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(cfg.image_size, cfg.image_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=cfg.num_multimask_outputs,
            transformer=m.TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_embed_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_num_heads,
            ),
            transformer_dim=cfg.prompt_embed_dim,
            iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        ),
        pixel_mean=list(cfg.pixel_mean),
        pixel_std=list(cfg.pixel_std),
    )
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref.eval()


class EncoderClock:
    """Sums the wall time spent inside ``encoder.forward``."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._t0 = 0.0
        encoder.register_forward_pre_hook(self._start)
        encoder.register_forward_hook(self._stop)

    def _start(self, *args: Any) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, *args: Any) -> None:
        self.seconds += time.perf_counter() - self._t0


def timed(fn: Any, clock: EncoderClock) -> tuple[Any, float, float]:
    clock.seconds = 0.0
    t0 = time.perf_counter()
    out = fn()
    total = time.perf_counter() - t0
    return out, total, total - clock.seconds


def auto_thresholds(
    ours: torch.nn.Module, image: np.ndarray, grid: int, offset: float
) -> tuple[float, float]:
    """Median predicted IoU of the full-image grid's candidates, and median stability score
    of those above it (or, when that is 0, the smallest positive one): about half of the
    candidates, or fewer, pass each filter."""
    from sam_widget import SamPredictor
    from sam_widget.engine.amg.crops import build_point_grid
    from sam_widget.engine.amg.upsample import TiledUpscaler

    pred = SamPredictor(ours)
    pred.set_image(image)
    ctx = ours.prepare_image(pred.get_image_embedding())
    h, w = image.shape[:2]
    pts = build_point_grid(grid) * np.array([[w, h]])
    lows, ious = [], []
    for start in range(0, len(pts), 64):
        coords = torch.as_tensor(pred.transform.apply_coords(pts[start : start + 64], (h, w)))
        coords = coords.to(torch.float32)[:, None, :]
        labels = torch.ones(coords.shape[:2], dtype=torch.int64)
        with torch.no_grad():
            low, iou = ours.predict_with_context(ctx, coords, labels)
        lows.append(low.flatten(0, 1))
        ious.append(iou.flatten())
    iou_all = torch.cat(ious)
    # Half-way between the median and the next larger value: no candidate sits exactly on
    # the threshold, where float rounding differences between two exact decoders would
    # decide (the filter is iou > thr, so the same candidates pass as with the median).
    med = iou_all.median()
    larger = iou_all[iou_all > med]
    iou_thr = float(np.clip(((med + larger.min()) / 2 if len(larger) else med).item(), 0.0, 1.0))
    passed = torch.cat(lows)[iou_all > iou_thr]
    up = TiledUpscaler(passed.shape[-2:], ours.img_size, pred.input_size, (h, w))
    counts = torch.cat(
        [up.counts(passed[i : i + 32], [offset, -offset]) for i in range(0, len(passed), 32)]
    )
    stab = (counts[:, 0].float() / counts[:, 1].float()).nan_to_num(0.0)
    # Half-way down to the next smaller value (the filter is stab >= thr), as above.
    smed = stab.median()
    smaller = stab[stab < smed]
    stab_thr = float(((smed + smaller.max()) / 2 if len(smaller) else smed).item())
    if stab_thr <= 0.0 and bool((stab > 0).any()):
        # Most candidates have no pixel above +offset: keep only those that have some.
        stab_thr = float(stab[stab > 0].min().item())
    return iou_thr, float(np.clip(stab_thr, 0.0, 1.0))


def compare(ours: list[dict], ref: list[dict]) -> tuple[str, float]:
    """("n_ours/n_ref", min over published masks of the best IoU with an unused mask of ours)."""

    def mask(rec: dict) -> np.ndarray:
        seg = rec["segmentation"]
        return seg if isinstance(seg, np.ndarray) else decode_rle(seg)

    om = [mask(r) for r in ours]
    areas = [int(m.sum()) for m in om]
    used: set[int] = set()
    worst = 1.0 if len(ours) == len(ref) else 0.0
    for i, r in enumerate(ref):
        rm = mask(r)
        ra = int(rm.sum())
        # Outputs come in the same order when they match; try that pairing first.
        order = [i] + [j for j in range(len(om)) if j != i] if i < len(om) else range(len(om))
        best, best_j = -1.0, -1
        for j in order:
            if j in used:
                continue
            inter = int(np.count_nonzero(om[j] & rm))
            union = areas[j] + ra - inter
            iou = inter / union if union else 1.0
            if iou > best:
                best, best_j = iou, j
            if best >= 0.99:
                break
        if best_j >= 0:
            used.add(best_j)
        worst = min(worst, max(best, 0.0))
    return f"{len(ours)}/{len(ref)}", worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", default="vit_t", help="model size (random weights)")
    ap.add_argument("--grids", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--crop-layers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--size", type=int, nargs=2, default=[1200, 1800], metavar=("H", "W"))
    ap.add_argument("--pred-iou-thresh", default="auto")
    ap.add_argument("--stability-score-thresh", default="auto")
    ap.add_argument("--stability-score-offset", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--skip-published", action="store_true", help="time ours only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ours, ref = build_models(args.variant, args.seed)
    image = structured_image(*args.size)
    clock = EncoderClock(ours.image_encoder)  # the same module inside ref
    ref_gen_cls = import_reference().SamAutomaticMaskGenerator

    print(
        f"# bench_amg  {datetime.date.today()}  torch {torch.__version__}  "
        f"threads {torch.get_num_threads()}  {platform.processor() or platform.machine()}"
    )
    print(
        f"# model {args.variant} (random weights, shaped as tests/test_amg.py), image "
        f"{args.size[0]}x{args.size[1]}"
    )
    header = (
        f"{'grid':>4} {'crops':>5} {'iou_thr':>7} {'st_thr':>6} | {'ours s':>8} {'post s':>7} "
        f"{'warm s':>7} | {'pub s':>8} {'post s':>7} | {'ratio':>6} {'post ratio':>10} "
        f"{'warm ratio':>10} | {'masks':>9} {'min IoU':>7}"
    )
    print(header)
    print("-" * len(header))
    for grid in args.grids:
        auto_iou, auto_stab = auto_thresholds(ours, image, grid, args.stability_score_offset)
        thr = auto_iou if args.pred_iou_thresh == "auto" else float(args.pred_iou_thresh)
        stab_thr = (
            auto_stab
            if args.stability_score_thresh == "auto"
            else float(args.stability_score_thresh)
        )
        for layers in args.crop_layers:
            params = {
                "points_per_side": grid,
                "pred_iou_thresh": thr,
                "stability_score_thresh": stab_thr,
                "stability_score_offset": args.stability_score_offset,
                "crop_n_layers": layers,
            }
            gen = SamAutomaticMaskGenerator(ours, **params)
            # First call (what one image costs), then a second one: the steady state of a
            # session that segments many images (allocator and oneDNN caches warm).
            o, o_total, o_post = timed(lambda g=gen: g.generate(image), clock)
            _, o_warm, _ = timed(lambda g=gen: g.generate(image), clock)
            if args.skip_published:
                print(
                    f"{grid:>4} {layers:>5} {thr:>7.3f} {stab_thr:>6.3f} | "
                    f"{o_total:>8.1f} {o_post:>7.1f} {o_warm:>7.1f} | "
                    f"{'-':>8} {'-':>7} | {'-':>6} {'-':>10} {'-':>10} | {len(o):>9} {'-':>7}",
                    flush=True,
                )
                continue
            rgen = ref_gen_cls(ref, **params)
            with torch.no_grad():
                r, r_total, r_post = timed(lambda g=rgen: g.generate(image), clock)
            count, worst = compare(o, r)
            print(
                f"{grid:>4} {layers:>5} {thr:>7.3f} {stab_thr:>6.3f} | "
                f"{o_total:>8.1f} {o_post:>7.1f} {o_warm:>7.1f} | "
                f"{r_total:>8.1f} {r_post:>7.1f} | {o_total / r_total:>6.3f} "
                f"{o_post / r_post:>10.3f} {o_warm / r_total:>10.3f} | {count:>9} {worst:>7.4f}",
                flush=True,
            )
            del o, r


if __name__ == "__main__":
    main()
