"""The timing harness shared by ``bench_engine.py`` and ``bench_sam2.py``.

Both compare our ``SamPredictor`` with a published predictor (``set_image`` and one click)
in one process, calls interleaved so that machine contention hits both alike, and print the
same Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

Timing = tuple[float, float]  # (median, min) seconds per call


def timed(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
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
    """(h, w, 3) uint8 RGB: random 8 x 8 colours bilinearly upsampled (smooth regions)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 8, 8)).astype(np.float32))
    big = torch.nn.functional.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)
    # 1 x 3 x H x W -> H x W x 3
    return big[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def time_encoder(ours: Any, ref: Any | None, repeats: int) -> tuple[Timing, Timing | None]:
    """(ours, published or None) ``set_image`` times on a 1024 x 768 image."""
    enc_image = smooth_image(768, 1024, seed=1)
    fns: dict[str, Callable[[], Any]] = {"ours": lambda: ours.set_image(enc_image)}
    if ref is not None:
        fns["ref"] = lambda: ref.set_image(enc_image)
    t = timed(fns, repeats, warmup=1)
    return t["ours"], t.get("ref")


def time_click(ours: Any, ref: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One positive click on an ``args.image_size`` image: times and agreement.

    Keys: ``click_ours``, ``click_ref``, ``decode`` (ours, low-res logits only) as
    (median, min) seconds; ``rel_diff`` (max abs. difference of the low-res logits over the
    published max abs.), ``mask_px_diff`` (mask pixels differing) and ``diff_logit`` (the
    largest published |logit| where they differ, over its max abs.: how close to the
    threshold those pixels are).
    """
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
    row: dict[str, Any] = {"click_ours": t["ours"], "click_ref": t["ref"], "decode": t["decode"]}

    # Sanity: the two implementations agree on this click.
    m, _, low = ours.predict(point, label)
    rlogits, _, rlow = ref.predict(point, label, return_logits=True)
    row["rel_diff"] = float(np.abs(low - rlow).max() / np.abs(rlow).max())
    differ = m != (rlogits > 0)
    row["mask_px_diff"] = int(differ.sum())
    # How close to the threshold the published logits are where the masks differ.
    row["diff_logit"] = (
        float(np.abs(rlogits[differ]).max() / np.abs(rlogits).max()) if differ.any() else 0.0
    )
    return row


def add_model_arguments(parser: argparse.ArgumentParser, variants: str) -> None:
    """``--threads`` and ``--variants`` (default ``variants``)."""
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--variants", default=variants, help="comma-separated")


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--repeats``, ``--click-repeats``, ``--skip-encoder``, ``--image-size``."""
    parser.add_argument("--repeats", type=int, default=3, help="encoder runs per model")
    parser.add_argument("--click-repeats", type=int, default=20, help="click runs per model")
    parser.add_argument("--skip-encoder", action="store_true", help="time clicks only")
    parser.add_argument(
        "--image-size",
        default="1200x1800",
        help="HxW of the image clicked on (masks are computed at this size)",
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments: ``image_size`` as (H, W) ints, ``variants`` as a list of names."""
    args = parser.parse_args(argv)
    args.image_size = tuple(int(v) for v in args.image_size.lower().split("x"))
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    return args


def fmt_ms(t: Timing | None) -> str:
    return "n/a" if t is None else f"{t[0] * 1000:.1f} ({t[1] * 1000:.1f})"


def ratio(ours: Timing | None, ref: Timing | None) -> str:
    if ours is None or ref is None:
        return "n/a"
    return f"{ours[0] / ref[0]:.2f} ({ours[1] / ref[1]:.2f})"


def run_and_report(
    title: str,
    bench_variant: Callable[[str, argparse.Namespace], dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    """Runs ``bench_variant`` per variant of ``args.variants`` on ``args.threads`` intra-op
    threads and prints the Markdown table headed ``# title``."""
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [bench_variant(v, args) for v in args.variants]
    load_after = os.getloadavg()

    h, w = args.image_size
    print(f"# {title}, {dt.date.today().isoformat()}")
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
