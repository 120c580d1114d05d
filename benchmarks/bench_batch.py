"""Batch automatic annotation: images per minute in one process and on a local Dask cluster.

    python benchmarks/bench_batch.py                      # 20 images, vit_t, 4 x 4 grid
    python benchmarks/bench_batch.py --images 20 --points-per-side 8 --workers 2

The same generated images (``--size`` pixels on the long side, discs on a colour wheel) go
through :func:`sam_widget.batch.auto_annotate` twice, each into a fresh output folder:

1. ``--scheduler threads``: this process, one image at a time, torch with one thread (what
   each Dask worker gets);
2. a local Dask cluster of ``--workers`` processes with one thread each;
3. this process again with torch's default number of threads.

Weights are random (``vit_t`` built with ``pretrained=False``: the compute of MobileSAM, no
download). Reported per run: images per minute of the processing (after the model is
loaded; from the run's summary), wall time including start-up (cluster start, model
loading), masks written, and the peak resident memory of each process that ran tasks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam_widget.batch import auto_annotate  # noqa: E402


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` RGB PNGs, long side ``size``, 3:4 or 4:3, a colour wheel with flat discs."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        h, w = (size, size * 3 // 4) if i % 2 else (size * 3 // 4, size)
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        angle = np.arctan2(yy - h / 2, xx - w / 2)
        img = np.stack([127 + 100 * np.cos(angle + p) for p in (0.0, -2.1, 2.1)], -1)
        img = img.astype(np.uint8)
        for _ in range(12):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(size // 30, size // 8)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
        path = folder / f"img{i:03d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def run(images: list[Path], out: Path, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    summary = auto_annotate(
        images,
        out=out,
        model=args.model,
        pretrained=False,
        client=client,
        workers=args.workers,
        dashboard_address=None,
        progress=False,
        log=lambda msg: print(f"  {msg}", file=sys.stderr),
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
    )
    wall = time.perf_counter() - started
    assert summary.done == len(images) and not summary.failed, summary.format()
    return {
        "executor": summary.executor,
        "images_per_minute": summary.images_per_minute,
        "processing_s": summary.seconds,
        "wall_s": wall,
        "masks": summary.masks,
        "peak_rss_mb": sorted(summary.peak_rss_mb.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="long side of each image (px)")
    parser.add_argument("--model", default="vit_t")
    parser.add_argument("--points-per-side", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    # Random weights: with the default 0.88 / 0.95 filters hardly any mask would pass and the
    # post-processing (full-size masks, RLE) would not be measured at all.
    parser.add_argument("--pred-iou-thresh", type=float, default=0.0)
    parser.add_argument("--stability-score-thresh", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {args.images} images of {args.size} px, "
        f"{args.model} (random weights), points_per_side={args.points_per_side}, "
        f"pred_iou_thresh={args.pred_iou_thresh}, "
        f"stability_score_thresh={args.stability_score_thresh}"
    )
    header = (
        "| run | images/min | processing (s) | wall incl. start-up (s) | masks "
        "| peak RSS per process (MiB) |\n| --- | --- | --- | --- | --- | --- |"
    )
    print(header, flush=True)
    default_threads = torch.get_num_threads()
    plan: list[tuple[str, Any, int]] = [("one process, torch 1 thread", "threads", 1)]
    plan.append((f"local cluster, {args.workers} workers x 1 thread", None, default_threads))
    if default_threads > 1:
        plan.append((f"one process, torch {default_threads} threads", "threads", default_threads))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        images = make_images(folder / "images", args.images, args.size)
        for k, (name, client, threads) in enumerate(plan):
            print(f"{name} ...", file=sys.stderr)
            torch.set_num_threads(threads)
            try:
                r = results[name] = run(images, folder / f"out{k}", client, args)
            finally:
                torch.set_num_threads(default_threads)
            peaks = ", ".join(f"{p:.0f}" for p in r["peak_rss_mb"])
            print(
                f"| {name} | {r['images_per_minute']:.1f} | {r['processing_s']:.1f} | "
                f"{r['wall_s']:.1f} | {r['masks']} | {peaks} |",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
