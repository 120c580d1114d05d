"""SAM 2.1 hiera_b+ against the published ``sam2`` package with identical random weights:
one encoding (image features) and one prompt (points + box), within 1e-4 relative.
hiera_b+ uses Hiera's default trunk settings (24 blocks, 14 x 14 background positional
embedding, windows 8 / 4 / 14 / 7), which hiera_t does not exercise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _sam2_oracle import oracle_model, rel_err, save_official_layout
from _torchvision_shim import import_sam2

from sam_widget.models.sam2 import build_sam2

TOL = 1e-4


@pytest.mark.slow
def test_hiera_b_plus_matches_published(tmp_path: Path) -> None:
    sam2 = import_sam2()
    ref_model = oracle_model("sam2.1_hiera_b+", seed=2)
    path = save_official_layout(ref_model, tmp_path / "bplus.pt")
    ours = build_sam2("sam2.1_hiera_b+", checkpoint=path, device="cpu")
    image = np.random.default_rng(2).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    predictor = sam2.sam2_image_predictor.SAM2ImagePredictor(ref_model)
    predictor.set_image(image)
    with torch.no_grad():
        x = torch.from_numpy(ours.geometry.apply_image(image)).permute(2, 0, 1)[None]  # HWC -> 1CHW
        features = ours.encode(x)
        ctx = ours.prepare(features)
    ref = predictor._features
    assert rel_err(features["image_embed"], ref["image_embed"]) < TOL
    assert rel_err(features["high_res_s0"], ref["high_res_feats"][0]) < TOL
    assert rel_err(features["high_res_s1"], ref["high_res_feats"][1]) < TOL

    points, labels = np.array([[30.0, 40.0], [60.0, 100.0]]), np.array([1, 0])
    box = np.array([10.0, 20.0, 80.0, 110.0])
    masks, iou, low = predictor.predict(points, labels, box, return_logits=True)
    geo = ours.geometry
    with torch.no_grad():
        coords = torch.as_tensor(geo.apply_coords(points, (120, 90)), dtype=torch.float32)[None]
        boxes = torch.as_tensor(geo.apply_boxes(box, (120, 90)), dtype=torch.float32)
        got_low, got_iou = ours.decode(
            ctx, coords, torch.as_tensor(labels)[None], boxes, None, True
        )
        got_masks = geo.upscale(got_low, (1024, 1024), (120, 90))
    assert rel_err(got_low[0].clamp(-32, 32), torch.from_numpy(low)) < TOL
    assert rel_err(got_iou[0], torch.from_numpy(iou)) < TOL
    assert rel_err(got_masks[0], torch.from_numpy(masks)) < TOL
