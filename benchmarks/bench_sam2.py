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
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the torchvision stand-in the published code needs

import _timing  # noqa: E402  (the harness shared with bench_engine.py)
from _sam2_oracle import oracle_model  # noqa: E402
from _torchvision_shim import import_sam2  # noqa: E402

from sam_widget.engine.predictor import SamPredictor  # noqa: E402
from sam_widget.models.sam2 import VARIANTS, build  # noqa: E402


def bench_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    sam2 = import_sam2()
    ref_model = oracle_model(variant, seed=0)
    ours_model = build(VARIANTS[variant], ref_model.state_dict(), "oracle").eval()
    ref = sam2.sam2_image_predictor.SAM2ImagePredictor(ref_model)
    ours = SamPredictor(ours_model)
    row: dict[str, Any] = {"variant": variant}

    if not args.skip_encoder:
        row["enc_ours"], row["enc_ref"] = _timing.time_encoder(ours, ref, args.repeats)
    row.update(_timing.time_click(ours, ref, args))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    _timing.add_model_arguments(parser, variants="sam2.1_hiera_t")
    _timing.add_timing_arguments(parser)
    args = _timing.parse_args(parser, argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit.script
    _timing.run_and_report("SAM 2 benchmark", bench_variant, args)


if __name__ == "__main__":
    main()
