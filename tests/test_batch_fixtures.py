"""Shared data for the batch tests (no tests here): a small generated dataset, the reference
records of the generator run one image at a time in this process, and output readers.

Everything runs single-threaded (the test process while computing the reference, Dask
workers by default, subprocess drivers through OMP_NUM_THREADS=1), so the batch run and
the reference execute the same float operations and their records must be equal exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sam_widget.engine.amg import SamAutomaticMaskGenerator
from sam_widget.models.build import build_sam

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 8
#: Generator options for the tests: a 2 x 2 grid (fast) with the quality filters off and
#: box NMS that keeps everything, so the random-weight model gives many masks per image.
PARAMS: dict[str, Any] = {
    "points_per_side": 2,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 1.0,
}
CLI_PARAMS = [
    "--points-per-side=2",
    "--pred-iou-thresh=0",
    "--stability-score-thresh=0",
    "--box-nms-thresh=1",
]


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_image(path: Path, h: int, w: int, seed: int) -> None:
    """A few coloured discs on a background: an H x W RGB PNG."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(6, 24)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def make_dataset(folder: Path, n: int = N_IMAGES) -> list[Path]:
    """``n`` PNGs of 64..128 px in ``folder`` (two in a sub-folder)."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(64, 129, 2))
        path = folder / ("sub" if i >= n - 2 else "") / f"img{i}.png"
        make_image(path, h, w, seed=100 + i)
        paths.append(path)
    return paths


def untrained_tiny(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return build_sam("tiny", pretrained=False)


def reference_records(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """{file name: records} of the generator called one image at a time, in this process."""
    with single_threaded():
        gen = SamAutomaticMaskGenerator(untrained_tiny(), output_mode="coco_rle", **PARAMS)
        out = {}
        for p in paths:
            rgb = np.asarray(Image.open(p).convert("RGB"))
            out[p.name] = gen.generate(rgb)
    return out


# The fixtures below are imported by several test modules, and pytest makes one fixture per
# importing module: the values are computed once per session here instead.
_SESSION: dict[str, Any] = {}


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if "dataset" not in _SESSION:
        _SESSION["dataset"] = make_dataset(tmp_path_factory.mktemp("batch-data"))
    return list(_SESSION["dataset"])


@pytest.fixture(scope="session")
def reference(dataset: list[Path]) -> dict[str, list[dict[str, Any]]]:
    if "reference" not in _SESSION:
        refs = reference_records(dataset)
        counts = [len(r) for r in refs.values()]
        assert min(counts) >= 4, f"the test options should give many masks per image: {counts}"
        _SESSION["reference"] = refs
    return _SESSION["reference"]


@pytest.fixture(scope="session")
def tiny_weights_id() -> str:
    if "weights_id" not in _SESSION:
        _SESSION["weights_id"] = str(untrained_tiny().weights_id)
    return _SESSION["weights_id"]


def read_out(folder: Path) -> dict[str, dict[str, Any]]:
    """{image file name: SA-1B document} of every output JSON (summary excluded)."""
    docs = {}
    for p in sorted(folder.rglob("*.json")):
        if p.name == "batch-summary.json" or ".sam-widget-batch" in p.parts:
            continue
        doc = json.loads(p.read_text())
        name = doc["image"]["file_name"]
        assert name not in docs, f"two outputs for {name}"
        docs[name] = doc
    return docs


def assert_records_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Same masks in the same order with the same fields (floats exactly equal: same ops)."""
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g["id"] == k + 1
        for field in (
            "segmentation",
            "bbox",
            "area",
            "predicted_iou",
            "stability_score",
            "point_coords",
            "crop_box",
        ):
            assert g[field] == w[field], (k, field)


def assert_out_matches(folder: Path, reference: dict[str, list[dict[str, Any]]]) -> None:
    docs = read_out(folder)
    assert sorted(docs) == sorted(reference), "every image exactly once"
    for name, doc in docs.items():
        assert doc["sam_widget"]["source"] == "automatic"
        assert_records_equal(doc["annotations"], reference[name])


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a ``python -m sam_widget.batch`` subprocess using this worktree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "sam_widget.batch"]
