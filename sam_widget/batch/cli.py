"""The ``sam-widget`` command: ``sam-widget auto ...`` and ``sam-widget embed ...``.

Exit status: 0 when the run finished (failed images are listed but do not count), 1 when
nothing succeeded or, with ``--strict``, when any image failed, 2 for bad arguments, 130
when interrupted (Ctrl+C; everything finished so far is stored). ``--help`` stays fast: torch
is imported only once a run starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["GENERATOR_OPTIONS", "build_parser", "main"]


def _flag(text: str) -> bool:
    """``true``/``false`` (also yes/no, 1/0, on/off) for a boolean generator option."""
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


#: (name, type, default, help) of every ``SamAutomaticMaskGenerator`` option the command
#: offers; the defaults are the generator's (a test keeps them in step).
GENERATOR_OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("points_per_side", int, 32, "grid of N x N point prompts per crop"),
    ("points_per_batch", int, 64, "prompts decoded at once (memory vs speed)"),
    (
        "pred_iou_thresh",
        float,
        None,
        "keep masks with predicted IoU above this (0 = all; default by model family: "
        "0.88 SAM, 0.8 SAM 2)",
    ),
    ("stability_score_thresh", float, 0.95, "keep masks with stability above this (0 = all)"),
    ("stability_score_offset", float, 1.0, "logit offset of the stability score"),
    ("mask_threshold", float, None, "logit threshold of the masks (default: the model's, 0)"),
    ("box_nms_thresh", float, 0.7, "box IoU above which duplicates are removed"),
    ("crop_n_layers", int, 0, "extra layers of overlapping crops"),
    ("crop_nms_thresh", float, 0.7, "box IoU for duplicates between crops"),
    ("crop_overlap_ratio", float, 512 / 1500, "overlap of neighbouring crops"),
    ("crop_n_points_downscale_factor", int, 1, "point grid shrink factor per crop layer"),
    (
        "min_mask_region_area",
        float,
        0,
        "remove holes and islands smaller than this many pixels (needs scipy)",
    ),
    ("use_m2m", _flag, False, "refine each mask once more with its own logits (SAM 2's m2m)"),
    ("multimask_output", _flag, True, "3 masks per point (false: one)"),
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGES",
        help="image files, folders (searched recursively) or glob patterns",
    )
    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        default="vit_t",
        help="variant: vit_t (MobileSAM, default), vit_b, vit_l, vit_h; tiny (tests)",
    )
    m.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="weights file (default: the official weights, downloaded once per machine)",
    )
    m.add_argument(
        "--untrained",
        action="store_true",
        help="random untrained weights (masks are meaningless; to try the pipeline offline)",
    )
    m.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    m.add_argument("--device", help="torch device, e.g. cpu or cuda (default: best available)")
    r = p.add_argument_group("execution")
    r.add_argument(
        "--scheduler",
        default="local",
        metavar="local|threads|ADDRESS",
        help="local: start a Dask cluster of worker processes here (default; in this "
        "process if Dask is not installed); threads: run in this process; ADDRESS "
        "(tcp://host:8786): use that running Dask cluster as it is",
    )
    r.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: one per CPU)",
    )
    r.add_argument(
        "--dashboard",
        default=":8787",
        metavar="ADDRESS",
        help="address of the local cluster's dashboard (default :8787; 'none' for none)",
    )
    r.add_argument(
        "--min-side",
        type=int,
        default=8,
        metavar="PX",
        help="images with a side shorter than this are recorded as failed (default 8)",
    )
    r.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="images with more pixels are recorded as failed (default 2**27)",
    )
    r.add_argument("--strict", action="store_true", help="exit with status 1 if any image failed")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam-widget",
        description="Segment Anything over whole datasets: automatic masks and embeddings.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{auto,embed}")
    auto = sub.add_parser(
        "auto",
        help="automatic masks for every image (SA-1B JSON files and/or an annotator project)",
        description="Run the automatic mask generator over every image. Resumable: images "
        "already done with the same content, weights and options are skipped.",
    )
    _add_common(auto)
    o = auto.add_argument_group("output (at least one)")
    o.add_argument("--out", metavar="DIR", help="folder for one SA-1B JSON file per image")
    o.add_argument("--project", metavar="FILE", help="annotator project file (SQLite)")
    g = auto.add_argument_group("generator options (defaults: the generator's)")
    for name, kind, default, text in GENERATOR_OPTIONS:
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            metavar="BOOL" if kind is _flag else kind.__name__.upper(),
            help=text if default is None else f"{text} (default {str(default).lower()})",
        )
    emb = sub.add_parser(
        "embed",
        help="precompute image embeddings into an embedding cache folder",
        description="Encode every image into an on-disk embedding cache that the widget and "
        "the annotator read. Images already in the cache are skipped.",
    )
    _add_common(emb)
    emb.add_argument(
        "--cache", required=True, metavar="DIR", help="embedding cache folder (created)"
    )
    return parser


def _run(args: argparse.Namespace) -> Any:
    from ..engine.images import MAX_PIXELS
    from .runner import auto_annotate, embed

    common: dict[str, Any] = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "client": args.scheduler,
        "pretrained": not args.untrained,
        "seed": args.seed,
        "device": args.device,
        "workers": args.workers,
        "dashboard_address": None if args.dashboard.lower() == "none" else args.dashboard,
        "progress": not args.no_progress,
        "min_side": args.min_side,
        "max_pixels": MAX_PIXELS if args.max_pixels is None else args.max_pixels,
    }
    if args.command == "embed":
        return embed(args.images, args.cache, **common)
    options = {
        name: getattr(args, name)
        for name, *_ in GENERATOR_OPTIONS
        if getattr(args, name) is not None
    }
    return auto_annotate(args.images, project=args.project, out=args.out, **common, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sam-widget`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "auto" and args.out is None and args.project is None:
        parser.error("auto needs --out DIR, --project FILE, or both")
    from .summary import BatchInterrupted

    try:
        summary = _run(args)
    except BatchInterrupted as stop:
        print(stop.summary.format())
        print("Interrupted: run the same command again to finish the rest.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"sam-widget {args.command}: error: {err}", file=sys.stderr)
        return 2
    print(summary.format())
    if summary.total and not summary.succeeded:
        return 1
    if args.strict and summary.failed:
        return 1
    return 0


if __name__ == "__main__":  # python -m sam_widget.batch.cli
    sys.exit(main())
