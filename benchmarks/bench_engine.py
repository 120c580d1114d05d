"""Engine benchmark: image encoder and one click, ours vs the published ``segment_anything``.

Both run in the same process with the same random weights (ours are built with
``build_sam(variant, pretrained=False)`` and copied into the published model), on the CPU
with ``--threads`` intra-op threads. Timings are medians over ``--repeats`` runs, ours and
the published code interleaved so that machine contention hits both alike.

- encoder: ``set_image`` of a 1024-long-side image (resize + normalise + encoder).
- click: one positive point, ``multimask_output=True``, masks at the original image size
  (``--image-size``, default 1800 x 1200 px): ours ``SamPredictor.predict`` (prompt encoder
  + decoder with the per-image context + cropped upsampling + threshold) vs the published
  ``SamPredictor.predict``. Also shown: our ``decode`` alone (low-res logits, no upsampling).

The published package has no TinyViT, so ``vit_t``'s encoder has no reference time; its click
compares the published prompt encoder and mask decoder (identical for all variants).

    python benchmarks/bench_engine.py --threads 2 --variants vit_t,vit_b --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the torchvision stand-in the published code needs

import _timing  # noqa: E402  (the harness shared with bench_sam2.py)
from _torchvision_shim import import_reference  # noqa: E402

from sam_widget.engine.predictor import SamPredictor  # noqa: E402
from sam_widget.models.build import build_sam  # noqa: E402
from sam_widget.models.sam.config import ViTConfig, get_config  # noqa: E402


def reference_model(ours: torch.nn.Module, variant: str) -> torch.nn.Module:
    """The published model with ``ours``' weights (for vit_t: our TinyViT as its encoder)."""
    ref_pkg = import_reference()
    from segment_anything.build_sam import _build_sam

    cfg = get_config(variant)
    if isinstance(cfg.encoder, ViTConfig):
        ref = _build_sam(
            encoder_embed_dim=cfg.encoder.embed_dim,
            encoder_depth=cfg.encoder.depth,
            encoder_num_heads=cfg.encoder.num_heads,
            encoder_global_attn_indexes=list(cfg.encoder.global_attn_indexes),
        )
    else:
        modeling = ref_pkg.modeling
        grid = cfg.image_embedding_size
        ref = modeling.Sam(
            image_encoder=build_sam(variant, pretrained=False, device="cpu").image_encoder,
            prompt_encoder=modeling.PromptEncoder(
                embed_dim=cfg.prompt_embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(cfg.image_size, cfg.image_size),
                mask_in_chans=cfg.mask_in_chans,
            ),
            mask_decoder=modeling.MaskDecoder(
                num_multimask_outputs=3,
                transformer=modeling.TwoWayTransformer(
                    depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8
                ),
                transformer_dim=256,
                iou_head_depth=3,
                iou_head_hidden_dim=256,
            ),
        )
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref.eval()


def bench_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    ref_pkg = import_reference()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "random, untrained weights"
        ours_model = build_sam(variant, pretrained=False, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref_model = reference_model(ours_model, variant)
    ours, ref = SamPredictor(ours_model), ref_pkg.SamPredictor(ref_model)
    row: dict[str, Any] = {"variant": variant}

    if not args.skip_encoder:
        # The published package has no TinyViT: no reference encoder time for vit_t.
        enc_ref = ref if isinstance(get_config(variant).encoder, ViTConfig) else None
        row["enc_ours"], row["enc_ref"] = _timing.time_encoder(ours, enc_ref, args.repeats)
    row.update(_timing.time_click(ours, ref, args))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _timing.add_model_arguments(parser, variants="vit_t,vit_b")
    parser.add_argument("--large", action="store_true", help="also vit_l and vit_h (slow)")
    _timing.add_timing_arguments(parser)
    args = _timing.parse_args(parser, argv)
    if args.large:
        args.variants += [v for v in ("vit_l", "vit_h") if v not in args.variants]
    _timing.run_and_report("Engine benchmark", bench_variant, args)


if __name__ == "__main__":
    main()
