"""SamAnnotator with the "tiny" model on small generated images: navigation, saving as you
go, reopening, categories, summary, changed files, the navigator view."""

from __future__ import annotations

import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sam_widget.annotator import SamAnnotator
from sam_widget.data.store import Project

TIMEOUT = 60


def make_folder(folder: Path, n: int = 3) -> list[Path]:
    """n small images with a block each (one in a subfolder), plus an unreadable file."""
    rng = np.random.default_rng(len(str(folder)))
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        img = np.zeros((48 + 8 * k, 64, 3), np.uint8)
        img[:] = rng.integers(0, 256, 3)
        img[8:30, 10:40] = rng.integers(0, 256, 3)
        p = folder / ("sub" if k == n - 1 else "") / f"im{k}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return paths


def open_annotator(folder: Path, project: Path, **kw: Any) -> SamAnnotator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SamAnnotator(folder, project=project, model="tiny", **{"prefetch": False, **kw})
    a.widget.wait(TIMEOUT)
    return a


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    folder = tmp_path / "data"
    paths = make_folder(folder)
    return folder, tmp_path / "labels.sqlite", paths


def test_folder_is_listed_recursively_and_bad_files_are_reported(
    setup: tuple[Path, Path, list[Path]],
) -> None:
    folder, project, paths = setup
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 unreadable.*broken\.jpg"):
        a = SamAnnotator(folder, project=project, model="tiny")
    try:
        assert [Path(p) for p, _ in a.failed] == [folder / "broken.jpg"]
        assert [r.path for r in a.images] == ["im0.png", "im1.png", "sub/im2.png"]
        assert len(a) == 3 and a.index == 0 and a.current == paths[0]
    finally:
        a.close()


def test_navigation_and_position_survive_reopening(setup: tuple[Path, Path, list[Path]]) -> None:
    folder, project, paths = setup
    a = open_annotator(folder, project)
    try:
        assert a.prev() is False and a.index == 0
        assert a.next() is True and a.current == paths[1]
        a.goto(-1)
        assert a.index == 2 and a.next() is False
        assert a.widget.image.shape == (64, 64, 3)
        with pytest.raises(ValueError, match="i must be in 0..2"):
            a.goto(3)
        with pytest.raises(TypeError, match="i must be an int"):
            a.goto("1")  # type: ignore[arg-type]
        a.goto(1)
        statuses = [r["status"] for r in a.summary()["images"]]
        assert statuses == ["in_progress", "in_progress", "in_progress"]
    finally:
        a.close()
    # Reopen with the folder plus a copy of an image and a new one: only the new one is added.
    (folder / "copy.png").write_bytes(paths[0].read_bytes())
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(folder / "zz_new.png")
    b = open_annotator(folder, project)
    try:
        assert b.index == 1
        assert [r.path for r in b.images] == ["im0.png", "im1.png", "sub/im2.png", "zz_new.png"]
        assert b.images[3].status == "todo"
    finally:
        b.close()


def test_every_change_is_saved_and_reopening_restores_it_exactly(
    setup: tuple[Path, Path, list[Path]],
) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project, categories=["cell", "dot"])
    w = a.widget
    a.set_category("cell")
    first = w.add_point(20, 15)
    w.wait(TIMEOUT)
    w.add_point(30, 20, object_id=first)
    w.new_object()
    a.set_category("dot")  # the new, active object
    w.set_box([5, 5, 40, 30])
    third = w.new_object()
    w.add_point(50, 40, object_id=third)
    w.wait(TIMEOUT)
    w.delete_object(third)
    w.wait(TIMEOUT)
    widget_masks = np.stack(w.masks)
    stored = a.objects(0)
    assert [(o.category, o.source) for o in stored] == [("cell", "manual"), ("dot", "manual")]
    assert stored[0].prompts["points"] == [[20.0, 15.0], [30.0, 20.0]]
    assert stored[1].prompts["box"] == [5.0, 5.0, 40.0, 30.0]
    assert stored[0].weights_id == str(w.predictor.model.weights_id)
    np.testing.assert_array_equal(a.masks(0), widget_masks)
    a.next()
    a.close()

    # The stored RLE is the truth: change one stored mask behind the annotator's back.
    with Project.open(project) as p:
        img = p.images()[0]
        truth = np.zeros((img.height, img.width), bool)
        truth[1:4, 2:9] = True
        o = p.objects(img)[1]
        p.update_object(o.id, mask=truth, revision=o.revision)
    b = open_annotator(folder, project)
    try:
        assert b.index == 1
        b.goto(0)
        b.widget.wait(TIMEOUT)
        assert [o["name"] for o in b.widget.objects] == ["cell", "dot"]
        assert b.widget.objects[0]["points"] == [[20.0, 15.0], [30.0, 20.0]]
        np.testing.assert_array_equal(b.widget.masks[0], widget_masks[0])  # as stored
        np.testing.assert_array_equal(b.widget.masks[1], truth)  # the stored RLE is the truth
        b.sync.flush()
        np.testing.assert_array_equal(b.masks(0), np.stack([widget_masks[0], truth]))
        # Editing a restored object replaces its stored mask with the new SAM mask.
        b.widget.add_point(10, 10, object_id=b.widget.objects[1]["id"])
        b.widget.wait(TIMEOUT)
        np.testing.assert_array_equal(b.masks(0)[1], b.widget.masks[1])
        assert not np.array_equal(b.masks(0)[1], truth)
    finally:
        b.close()


def test_automatic_objects_keep_their_stored_masks(setup: tuple[Path, Path, list[Path]]) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project)
    img = a.images[0]
    auto = np.zeros((img.height, img.width), bool)
    auto[10:20, 10:30] = True
    a.project.put_automatic(img.sha256, "w", "k", [{"segmentation": auto, "predicted_iou": 0.9}])
    a.goto(0)  # reload: the object has no prompts, its mask comes from the store only
    a.widget.wait(TIMEOUT)
    assert len(a.widget.objects) == 1 and a.widget.objects[0]["points"] == []
    a.sync.flush()
    np.testing.assert_array_equal(a.masks(0), auto[None])
    a.widget.add_point(15, 15, object_id=a.widget.objects[0]["id"])  # edited -> "assisted"
    a.widget.wait(TIMEOUT)
    assert a.objects(0)[0].source == "assisted"
    a.close()


def test_categories(setup: tuple[Path, Path, list[Path]]) -> None:
    folder, project, _ = setup
    a = open_annotator(folder, project, categories={"cell": "#112233", "dot": "#445566"})
    try:
        assert a.categories() == ["cell", "dot"]
        with pytest.raises(ValueError, match="unknown category 'cat'.*cell"):
            a.set_category("cat")
        w = a.widget
        oid = w.add_point(20, 15)  # no category yet
        a.set_category("dot")  # sets the active object and the default for new ones
        obj = next(o for o in w.objects if o["id"] == oid)
        assert (obj["name"], obj["color"]) == ("dot", "#445566")
        w.new_object()
        w.add_point(40, 30)
        w.wait(TIMEOUT)
        assert [o.category for o in a.objects()] == ["dot", "dot"]
        a.set_category(None)
        w.new_object()
        assert a.objects()[-1].category is None
        a.add_category("big")
        assert a.categories() == ["cell", "dot", "big"]
    finally:
        a.close()


def test_summary_counts_active_time_per_object(
    setup: tuple[Path, Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sam_widget.annotator.annotator as annmod

    now = [1000.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(annmod, "time", Clock)
    folder, project, _ = setup
    a = open_annotator(folder, project, idle_seconds=60)
    try:
        w = a.widget
        now[0] += 5
        w.add_point(20, 15)  # 5 s
        now[0] += 1000
        w.new_object()  # a long pause counts as 60 s
        now[0] += 7
        a.mark_done()
        a.next()  # 7 s more on image 0
        now[0] += 3
        s = a.summary()  # 3 s on image 1
        first, second = s["images"][0], s["images"][1]
        assert (first["status"], first["objects"], first["seconds"]) == ("done", 2, 72.0)
        assert first["seconds_per_object"] == 36.0
        # The point made the first object (a click); an empty new object is no click.
        assert (first["clicks"], first["strokes"], first["edits"]) == (1, 0, 1)
        assert (second["status"], second["objects"], second["seconds"]) == ("in_progress", 0, 3.0)
        assert (s["done"], s["total"], s["objects"], s["seconds"]) == (1, 3, 2, 75.0)
        assert s["seconds_per_object"] == 37.5
    finally:
        a.close()


def test_a_changed_image_is_flagged_and_its_masks_not_laid_over(
    setup: tuple[Path, Path, list[Path]],
) -> None:
    folder, project, paths = setup
    a = open_annotator(folder, project)
    a.widget.add_point(20, 15)
    a.widget.wait(TIMEOUT)
    a.close()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(paths[0])  # new pixels, same size
    b = open_annotator(folder, project)
    try:
        assert b.index == 0 and b.flags == {0: "changed"}
        assert b.widget.objects == [] and any("changed on disk" in m for m in b.messages)
        b.widget.add_point(5, 5)  # not saved over the stored object of the old pixels
        b.widget.wait(TIMEOUT)
        assert len(b.objects(0)) == 1 and b.objects(0)[0].prompts["points"] == [[20.0, 15.0]]
        b.next()  # the next image is fine: its edits are saved again
        b.widget.add_point(5, 5)
        b.widget.wait(TIMEOUT)
        assert len(b.objects(1)) == 1 and b.flags == {0: "changed"}
    finally:
        b.close()


def test_close_stops_the_background_threads(setup: tuple[Path, Path, list[Path]]) -> None:
    folder, project, _ = setup
    before = set(threading.enumerate())
    a = open_annotator(folder, project)
    a.close()
    a.close()  # harmless
    left = [t for t in set(threading.enumerate()) - before if t.name.startswith("sam-annotator")]
    assert left == []
    with pytest.raises(sqlite3.ProgrammingError):
        a.project.images()  # the project is closed too


def test_sigkill_of_an_annotating_kernel_keeps_every_returned_edit(
    setup: tuple[Path, Path, list[Path]],
) -> None:
    """A subprocess annotates (clicks from Python, next image now and then) and prints after
    each call returned and its mask was saved; SIGKILL at a random moment; then every
    printed click is in the reopened project, with a saved mask, and the file is sound."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import textwrap

    folder, project, _ = setup
    code = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")
        from sam_widget.annotator import SamAnnotator
        a = SamAnnotator(sys.argv[1], project=sys.argv[2], model="tiny", prefetch=False)
        a.widget.wait(120)
        print("ready", flush=True)
        k = 0
        while True:
            x, y = 5 + (7 * k) % 50, 5 + (5 * k) % 40
            oid = a.widget.add_point(x, y) if k % 2 else a.widget.new_object(points=[[x, y]])
            a.widget.wait(120)
            a.sync.flush()  # the mask is written too
            print(a.index, x, y, flush=True)
            k += 1
            if k % 3 == 0:
                a.next() or a.goto(0)
                a.widget.wait(120)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), str(project)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        done: list[tuple[int, float, float]] = []
        for _ in range(random.Random().randint(2, 5)):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            i, x, y = line.split()
            done.append((int(i), float(x), float(y)))
        time.sleep(random.Random().random() * 0.2)  # somewhere in the next edit
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.stdout.close()
        proc.stderr.close()
    with Project.open(project) as p:
        assert p.integrity_check() == "ok"
        images = p.images()
        for i, x, y in done:
            objs = p.objects(images[i])
            hits = [o for o in objs if [x, y] in o.prompts["points"]]
            assert hits, f"the click ({x}, {y}) on image {i} returned before the kill but is lost"
            # Its mask was saved (flushed before the print), so the model's id is set.
            assert any(o.weights_id is not None for o in hits)


def test_use_model_keeps_the_stored_masks(setup: tuple[Path, Path, list[Path]]) -> None:
    from sam_widget.models.build import build_sam

    folder, project, _ = setup
    a = open_annotator(folder, project)
    try:
        view = a.view
        a.widget.add_point(20, 15)
        a.widget.wait(TIMEOUT)
        stored, first_weights = a.masks(0), a.objects(0)[0].weights_id
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = build_sam("tiny")  # other random weights
        a.use_model(other)
        a.widget.wait(TIMEOUT)
        assert a.widget.predictor.model is other and view.body.children[0] is a.widget
        assert len(a.widget.objects) == 1 and a.index == 0
        np.testing.assert_array_equal(a.masks(0), stored)  # not replaced by the new model's
        a.widget.add_point(40, 30, object_id=a.widget.objects[0]["id"])
        a.widget.wait(TIMEOUT)
        assert a.objects(0)[0].weights_id == str(other.weights_id) != first_weights
        np.testing.assert_array_equal(a.masks(0)[0], a.widget.masks[0])
    finally:
        a.close()


def test_opens_a_project_written_by_a_batch_run(setup: tuple[Path, Path, list[Path]]) -> None:
    """sam_widget.batch writes automatic records into a project; the annotator opens it and
    shows the image's records as objects, their stored masks untouched."""
    from sam_widget.batch import auto_annotate

    folder, project, paths = setup
    auto_annotate(paths[:1], project=project, model="tiny", pretrained=False, client="threads",
                  progress=False, points_per_side=1, pred_iou_thresh=0.0,
                  stability_score_thresh=0.0)  # fmt: skip
    with Project.open(project, readonly=True) as p:
        before = [p.masks(img) for img in p.images()]
    assert sum(len(m) for m in before) > 0
    a = open_annotator(folder, project)  # the folder adds the other images
    try:
        assert len(a) == 3
        assert a.index == 0
        objs = a.objects(0)
        assert {o.source for o in objs} == {"automatic"}
        assert len(a.widget.objects) == len(objs)
        a.widget.wait(TIMEOUT)
        np.testing.assert_array_equal(a.masks(0), before[0])
    finally:
        a.close()
