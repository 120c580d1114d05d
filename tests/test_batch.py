"""Batch runs in this process (scheduler "threads"): records, resume, bad files, keys, embed.

The Dask cluster, the killed worker and the interrupted driver are in test_batch_dask.py;
the command line in test_batch_cli.py.
"""

# Fixtures are imported from test_batch_fixtures and used as test arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_batch_fixtures import (
    PARAMS,
    assert_out_matches,
    dataset,
    make_image,
    read_out,
    reference,
    single_threaded,
    tiny_weights_id,
    untrained_tiny,
)

from sam_widget.annotator import SamAnnotator
from sam_widget.batch import auto_annotate, embed
from sam_widget.batch.inputs import collect_images
from sam_widget.batch.keys import generator_params, params_key, result_key
from sam_widget.data.store import Project
from sam_widget.engine.amg.rle import rle_to_mask
from sam_widget.engine.embedding_cache import EmbeddingCache, embedding_key
from sam_widget.engine.predictor import SamPredictor


def _in_process(**kwargs):
    """The keywords of every run here: the tiny variant with random weights, in this
    process, no progress bar, no log; ``kwargs`` added or overriding."""
    quiet = {"model": "tiny", "pretrained": False, "client": "threads", "progress": False}
    return {**quiet, "log": lambda _: None, **kwargs}


def run(images, out, **kwargs):
    """``auto_annotate`` with the small test parameters (``PARAMS``), single-threaded."""
    with single_threaded():
        return auto_annotate(images, out=out, **_in_process(**{**PARAMS, **kwargs}))


def run_embed(images, cache_dir, **kwargs):
    """``embed``, single-threaded."""
    with single_threaded():
        return embed(images, cache_dir, **_in_process(**kwargs))


def test_records_equal_the_generator_and_rerun_skips(dataset, reference, tiny_weights_id, tmp_path):
    out = tmp_path / "out"
    s1 = run(dataset[0].parent, out)
    assert (s1.done, s1.skipped, s1.failed) == (len(dataset), 0, [])
    assert s1.weights_id == tiny_weights_id and not s1.pretrained
    assert s1.masks == sum(len(r) for r in reference.values())
    assert_out_matches(out, reference)
    # The folder's layout is mirrored.
    assert (out / "sub" / f"{dataset[-1].stem}.json").is_file()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "summary" not in p.name}

    s2 = run(dataset[0].parent, out)
    assert (s2.done, s2.skipped, s2.failed) == (0, len(dataset), [])
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "summary" not in p.name}
    assert after == before, "a rerun must not rewrite finished images"
    summary = json.loads((out / "batch-summary.json").read_text())
    assert summary["skipped"] == len(dataset) and summary["pretrained"] is False


def test_changed_image_or_parameters_are_redone(dataset, tmp_path):
    data = _copies(dataset[:3], tmp_path / "data")
    out = tmp_path / "out"
    run(data, out)
    make_image(data / "img0.png", 70, 90, seed=999)  # new content, same name
    s = run(data, out)
    assert (s.done, s.skipped) == (1, 2)
    assert read_out(out)["img0.png"]["image"]["width"] == 90
    s = run(data, out, points_per_side=1)
    assert (s.done, s.skipped) == (3, 0)
    assert {d["sam_widget"]["params"]["points_per_side"] for d in read_out(out).values()} == {1}


def test_bad_images_are_recorded_as_failed_and_the_run_goes_on(dataset, reference, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = data / dataset[0].name
    shutil.copy(dataset[0], good)
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    truncated = dataset[1].read_bytes()
    (data / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    Image.new("RGB", (1, 1)).save(data / "one.png")
    Image.new("L", (2**15 + 1, 1)).save(data / "wide.png")  # longer than the engine accepts
    Image.new("RGB", (300, 200)).save(data / "big.png")  # larger than max_pixels below
    missing = data / "missing.png"
    s = run([data, missing], tmp_path / "out", max_pixels=50_000)
    reasons = {Path(f.path).name: f.reason for f in s.failed}
    assert s.done == 1 and s.succeeded == 1
    assert sorted(reasons) == sorted(
        ["corrupt.png", "truncated.png", "one.png", "wide.png", "big.png", "missing.png"]
    )
    assert "not a readable image" in reasons["corrupt.png"]
    assert "corrupt" in reasons["truncated.png"] or "readable" in reasons["truncated.png"]
    assert "too small" in reasons["one.png"]
    assert "too large" in reasons["wide.png"] and "too large" in reasons["big.png"]
    assert "no such file" in reasons["missing.png"]
    assert sorted(read_out(tmp_path / "out")) == [good.name]
    summary = json.loads((tmp_path / "out" / "batch-summary.json").read_text())
    assert {Path(f["path"]).name: f["reason"] for f in summary["failed"]} == reasons
    text = s.format()
    assert all(f"FAILED {f.path}: {f.reason}" in text for f in s.failed)


def test_generator_params_are_canonical_and_checked() -> None:
    defaults = generator_params({})
    assert "output_mode" not in defaults and "model" not in defaults
    explicit = generator_params({"points_per_side": defaults["points_per_side"]})
    assert params_key(explicit) == params_key(defaults)
    assert params_key(generator_params({"points_per_side": 8})) != params_key(defaults)
    grids = generator_params({"point_grids": [np.array([[0.5, 0.5]])], "points_per_side": None})
    assert grids["point_grids"] == [[[0.5, 0.5]]]
    with pytest.raises(TypeError, match="points_per_sid"):
        generator_params({"points_per_sid": 8})
    with pytest.raises(TypeError, match="output_mode"):
        generator_params({"output_mode": "binary_mask"})
    keys = {result_key(a, b, c) for a in "xy" for b in "xy" for c in "xy"}
    assert len(keys) == 8


def test_bad_arguments_are_refused(tmp_path, dataset) -> None:
    with pytest.raises(ValueError, match="out="):
        auto_annotate(dataset)
    with pytest.raises(TypeError, match="model"):
        auto_annotate(dataset, out=tmp_path, model=untrained_tiny())
    with pytest.raises(ValueError, match="min_side"):
        auto_annotate(dataset, out=tmp_path, min_side=0)
    with pytest.raises(TypeError, match="client"):
        auto_annotate(dataset, out=tmp_path, model="tiny", client=3, log=lambda _: None)
    with pytest.raises(TypeError, match="unknown generator parameter"):
        auto_annotate(dataset, out=tmp_path, points_per_sid=4)


def test_collect_images_names_and_errors(tmp_path) -> None:
    for rel in ["a.png", "a.jpg", "sub/b.png", "sub/.hidden.png", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    names = [i.name for i in collect_images(tmp_path)]
    assert names == ["a.jpg", "a.png", "sub/b"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.png").write_bytes(b"x")
    items = collect_images([str(tmp_path / "sub" / "*.png"), other / "b.png", tmp_path / "a.png"])
    assert [i.path.name for i in items] == ["b.png", "b.png", "a.png"]
    assert len({i.name for i in items}) == 3, "colliding names are told apart"
    with pytest.raises(ValueError, match="matches no file"):
        collect_images(str(tmp_path / "*.tif"))
    with pytest.raises(ValueError, match="no image files"):
        collect_images(_empty(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        collect_images([])


def _copies(images: list[Path], folder: Path) -> Path:
    """A new ``folder`` holding a copy of each of ``images`` (same names)."""
    folder.mkdir()
    for p in images:
        shutil.copy(p, folder / p.name)
    return folder


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_embed_fills_the_cache_a_predictor_reads(dataset, tmp_path) -> None:
    cache_dir = tmp_path / "cache"
    images = dataset[:3]
    s = run_embed(images, cache_dir)
    assert (s.done, s.skipped, s.failed) == (3, 0, [])
    model = untrained_tiny()
    cache = EmbeddingCache(directory=cache_dir)
    for p in images:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        key = embedding_key(rgb, model.weights_id)
        assert (cache_dir / f"{key}.npz").is_file()
        expected = SamPredictor(model).compute_embedding(rgb)
        got = cache.get(key, weights_id=model.weights_id)
        assert got is not None
        assert got.features.shape == expected.features.shape
        assert float((got.features - expected.features).abs().max()) < 1e-4
    # A predictor on that cache does not encode again.
    predictor = SamPredictor(model, cache=EmbeddingCache(directory=cache_dir))
    predictor.set_image(np.asarray(Image.open(images[0]).convert("RGB")))
    assert predictor.cache.hits == 1 and predictor.cache.misses == 0
    s2 = run_embed([*images, tmp_path / "nope.png"], cache_dir)
    assert (s2.done, s2.skipped, len(s2.failed)) == (0, 3, 1)


def test_project_gets_automatic_records_once(dataset, reference, tiny_weights_id, tmp_path):
    images = dataset[:3]
    project_file = tmp_path / "labels.sqlite"
    out = tmp_path / "out"
    s = run(images, out, project=project_file)
    assert (s.done, s.failed) == (3, [])
    assert s.outputs == {"out": str(out), "project": str(project_file)}

    def check() -> int:
        with Project.open(project_file, readonly=True) as p:
            assert p.integrity_check() == "ok"
            recs = p.images()
            assert sorted(Path(p.resolve(r)).name for r in recs) == sorted(x.name for x in images)
            total = 0
            for rec in recs:
                want = reference[Path(p.resolve(rec)).name]
                got = p.objects(rec.id)
                assert [o.source for o in got] == ["automatic"] * len(want)
                assert {o.weights_id for o in got} == {tiny_weights_id}
                for o, w in zip(got, want, strict=True):
                    assert np.array_equal(o.mask, rle_to_mask(w["segmentation"]))
                    assert o.predicted_iou == w["predicted_iou"]
                    assert o.stability_score == w["stability_score"]
                    assert o.extra["point_coords"] == w["point_coords"]
                total += len(got)
            assert p.get_state("batch_summary")["total"] == 3
            return total

    count = check()
    # Both outputs done: nothing to do. The folder lost: redone, the project keeps one copy.
    again = run(images, out, project=project_file)
    assert (again.done, again.skipped) == (0, 3)
    shutil.rmtree(out)
    redo = run(images, out, project=project_file)
    assert (redo.done, redo.skipped) == (3, 0)
    assert check() == count
    # The project alone is enough to resume a project-only run.
    only = run(images, None, project=project_file)
    assert (only.done, only.skipped) == (0, 3)

    # The annotator opens the project and lists each image's automatic objects with their
    # stored masks. (Its widget draws a mask from an object's prompts; automatic records have
    # none, so their stored masks are not drawn yet: an annotator matter, not checked here.)
    annotator = SamAnnotator(None, project=project_file, model="tiny", prefetch=False)
    try:
        for i in range(3):
            annotator.goto(i)
            want = reference[annotator.current.name]
            stored = annotator.objects()
            assert [o.source for o in stored] == ["automatic"] * len(want)
            assert len(annotator.widget.objects) == len(want)
            masks = annotator.masks()
            assert len(masks) == len(want)
            for mask, w in zip(masks, want, strict=True):
                assert np.array_equal(mask, rle_to_mask(w["segmentation"]))
    finally:
        annotator.close()


def test_embed_prefills_the_annotators_cache(dataset, tmp_path):
    data = _copies(dataset[:2], tmp_path / "data")
    project_file = tmp_path / "labels.sqlite"
    cache_dir = tmp_path / "labels.sqlite.cache" / "embeddings"
    s = run_embed(data, cache_dir)
    assert s.done == 2
    annotator = SamAnnotator(data, project=project_file, model=untrained_tiny(), prefetch=False)
    try:
        annotator.widget.wait()
        annotator.next()
        annotator.widget.wait()
        assert annotator.cache.misses == 0 and annotator.cache.hits >= 2
    finally:
        annotator.close()
