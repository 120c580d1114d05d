"""SAM 2 benchmark: image encoder and one click, ours vs the published ``sam2`` (1.1.0).

Both run in the same process with the same random weights (the published model is built by
its own ``build_sam2`` from the variant's yaml, given random weights, and ours loads its
state dict), on the CPU with ``--threads`` intra-op threads. Timings are medians over
``--repeats`` runs, ours and the published code interleaved so that machine contention hits
both alike.

- encoder: ``set_image`` of a 1024 x 768 image: the published ``SAM2ImagePredictor.set_image``
  vs our ``SamPredictor.set_image`` (``geometry.apply_image`` + ``encode`` + ``prepare``).
- click: one positive point, ``multimask_output=True``, masks at the original image size
  (``--image-size``, default 1800 x 1200 px): the published ``predict`` vs our
  ``SamPredictor.predict`` (prompt transform, ``decode`` with the per-image context,
  ``upscale``, threshold, numpy). Also shown: our ``SamPredictor.decode`` alone (low-res
  logits, no upsampling).

    python benchmarks/bench_sam2.py --threads 2 --variants sam2.1_hiera_t --repeats 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the torchvision stand-in the published code needs

from _sam2_oracle import oracle_model  # noqa: E402
from _torchvision_shim import import_sam2  # noqa: E402

from sam_widget.engine.predictor import SamPredictor  # noqa: E402
from sam_widget.models.sam2 import VARIANTS, build  # noqa: E402


def timed(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, tuple[float, float]]:
    """(median, min) seconds per call of each function, calls interleaved."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 8, 8)).astype(np.float32))
    big = torch.nn.functional.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)
    return big[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def bench_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    sam2 = import_sam2()
    ref_model = oracle_model(variant, seed=0)
    ours_model = build(VARIANTS[variant], ref_model.state_dict(), "oracle").eval()
    ref = sam2.sam2_image_predictor.SAM2ImagePredictor(ref_model)
    ours = SamPredictor(ours_model)
    row: dict[str, Any] = {"variant": variant}

    if not args.skip_encoder:
        enc_image = smooth_image(768, 1024, seed=1)
        t = timed(
            {"ours": lambda: ours.set_image(enc_image), "ref": lambda: ref.set_image(enc_image)},
            args.repeats,
            warmup=1,
        )
        row["enc_ours"], row["enc_ref"] = t["ours"], t["ref"]

    h, w = args.image_size
    image = smooth_image(h, w, seed=2)
    ours.set_image(image)
    ref.set_image(image)
    point, label = np.array([[0.45 * w, 0.55 * h]]), np.array([1])
    t = timed(
        {
            "ours": lambda: ours.predict(point, label),
            "ref": lambda: ref.predict(point, label),
            "decode": lambda: ours.decode(point, label),
        },
        args.click_repeats,
        warmup=3,
    )
    row["click_ours"], row["click_ref"], row["decode"] = t["ours"], t["ref"], t["decode"]

    # Sanity: the two implementations agree on this click.
    m, _, low = ours.predict(point, label)
    rlogits, _, rlow = ref.predict(point, label, return_logits=True)
    row["rel_diff"] = float(np.abs(low - rlow).max() / np.abs(rlow).max())
    differ = m != (rlogits > 0)
    row["mask_px_diff"] = int(differ.sum())
    row["diff_logit"] = (
        float(np.abs(rlogits[differ]).max() / np.abs(rlogits).max()) if differ.any() else 0.0
    )
    return row


def fmt_ms(t: tuple[float, float] | None) -> str:
    return "n/a" if t is None else f"{t[0] * 1000:.1f} ({t[1] * 1000:.1f})"


def ratio(ours: tuple[float, float] | None, ref: tuple[float, float] | None) -> str:
    if ours is None or ref is None:
        return "n/a"
    return f"{ours[0] / ref[0]:.2f} ({ours[1] / ref[1]:.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--variants", default="sam2.1_hiera_t", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="encoder runs per model")
    parser.add_argument("--click-repeats", type=int, default=20, help="click runs per model")
    parser.add_argument("--skip-encoder", action="store_true", help="time clicks only")
    parser.add_argument(
        "--image-size",
        default="1200x1800",
        help="HxW of the image clicked on (masks are computed at this size)",
    )
    args = parser.parse_args(argv)
    args.image_size = tuple(int(v) for v in args.image_size.lower().split("x"))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit.script

    load_before = os.getloadavg()
    rows = [bench_variant(v, args) for v in variants]
    load_after = os.getloadavg()

    h, w = args.image_size
    print(f"# SAM 2 benchmark, {dt.date.today().isoformat()}")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads (of {os.cpu_count()} CPUs), CPU, RANDOM weights (untrained; "
        "timings only)"
    )
    print(
        f"times in ms, median (min); encoder: {args.repeats} runs; click: 1 point, 3 masks at "
        f"{w} x {h} px, {args.click_repeats} runs; load average before/after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f}"
    )
    print()
    print(
        "| variant | encoder ours | encoder published | ratio | click ours "
        "| click published | ratio | decode only, ours | low-res logits rel. diff "
        "| mask px differing (max rel. abs. logit there) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['variant']} | {fmt_ms(r.get('enc_ours'))} | {fmt_ms(r.get('enc_ref'))} "
            f"| {ratio(r.get('enc_ours'), r.get('enc_ref'))} | {fmt_ms(r['click_ours'])} "
            f"| {fmt_ms(r['click_ref'])} | {ratio(r['click_ours'], r['click_ref'])} "
            f"| {fmt_ms(r['decode'])} | {r['rel_diff']:.1e} "
            f"| {r['mask_px_diff']} ({r['diff_logit']:.1e}) |"
        )


if __name__ == "__main__":
    main()
