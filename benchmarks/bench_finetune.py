"""Fine-tuning benchmark: seconds per epoch for 200 masks on vit_t's decoder, cached embeddings.

``finetune`` with its defaults (mask decoder only, 3 interactive rounds per step, up to 8
masks per step) on ``--images`` synthetic images (shapes on textured backgrounds, as in the
tests) with ``--masks`` objects each (default 25 x 8 = 200 training masks, so one epoch
uses every mask once), plus 3 held-out images, with ``build_sam(variant,
pretrained=False)`` (same compute as the real weights). Reported separately: encoding every
image once (the frozen encoder; done before training), each epoch's training steps, and each
validation pass (1 click, 3 clicks and a box per held-out mask).

    python benchmarks/bench_finetune.py --threads 2 --epochs 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam_widget.finetune import finetune  # noqa: E402
from sam_widget.models.build import build_sam  # noqa: E402


def shapes(n: int, masks: int, seed: int, size: tuple[int, int] = (192, 256)) -> list[Any]:
    """``n`` (image, (masks, H, W) bool) pairs: ellipses and boxes on a textured ground."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for _ in range(n):
        img = rng.uniform(40, 110, 3) + rng.normal(0, 18, (h, w, 3))
        stack = np.zeros((masks, h, w), dtype=bool)
        k = 0
        while k < masks:
            cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
            ry, rx = rng.uniform(0.05, 0.15) * h, rng.uniform(0.05, 0.15) * w
            if k % 2:
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                m = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            m &= ~stack[:k].any(axis=0)  # later shapes lie under earlier ones
            if m.sum() < 0.5 * (np.pi * ry * rx):  # mostly hidden: draw another
                continue
            stack[k] = m
            img[m] = rng.uniform(150, 250, 3)
            k += 1
        out.append((np.clip(img, 0, 255).astype(np.uint8), stack))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="vit_t")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=25)
    ap.add_argument("--masks", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_sam(args.variant, pretrained=False, device="cpu")
    train = shapes(args.images, args.masks, seed=1)
    val = shapes(3, args.masks, seed=2)

    marks: list[tuple[str, int, float]] = []

    def callback(info: dict[str, Any]) -> None:
        marks.append((info["stage"], info["epoch"], time.perf_counter()))

    start = time.perf_counter()
    load0 = os.getloadavg()[0]
    tuned = finetune(
        train, model, epochs=args.epochs, val_data=val, progress=False, callback=callback
    )
    n_train = int(tuned.finetune_metadata["num_train_masks"])
    load1 = os.getloadavg()[0]

    def span(stage: str, epoch: int | None = None) -> float:
        """Seconds from the tick before the first ``stage`` tick to its last tick."""
        idx = [i for i, m in enumerate(marks) if m[0] == stage and epoch in (None, m[1])]
        before = marks[idx[0] - 1][2] if idx[0] > 0 else start
        return marks[idx[-1]][2] - before

    print(f"# bench_finetune {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {args.threads} threads, load average {load0:.1f} -> {load1:.1f}"
    )
    print(
        f"# {args.variant} random weights; {args.images} train images x {args.masks} masks = "
        f"{n_train} masks; 3 held-out images ({3 * args.masks} masks)"
    )
    print("| stage | seconds |")
    print("| --- | --- |")
    print(f"| encode {args.images + 3} images once | {span('embed'):.1f} |")
    print(f"| validation before training ({3 * args.masks} masks) | {span('validate', 0):.1f} |")
    for e in range(1, args.epochs + 1):
        print(f"| epoch {e}: training, {n_train} masks | {span('train', e):.1f} |")
        print(f"| epoch {e}: validation | {span('validate', e):.1f} |")
    print(f"| total | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
