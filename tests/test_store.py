"""The annotation project store: schema, migrations, images, categories, objects, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_widget.data import migrations
from sam_widget.data.store import (
    ConflictError,
    Project,
    ProjectError,
    ProjectVersionError,
    ReadOnlyError,
)


def _images(folder: Path, n: int, size: tuple[int, int] = (24, 32)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        p = folder / f"im{k}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _mask(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project.open(tmp_path / "labels.sqlite")
    yield p
    p.close()


def test_new_file_has_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    Project.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [
        (migrations.SCHEMA_VERSION,)
    ]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == migrations.APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "categories", "objects", "state", "schema_version"} <= tables
    conn.close()
    with Project.open(path) as p:
        assert p._read("PRAGMA foreign_keys")[0][0] == 1
        assert p._read("PRAGMA busy_timeout")[0][0] > 0


def test_migrations_run_in_order_once_and_upgrade_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "labels.sqlite"
    with Project.open(path) as p:  # a version-1 file with data
        p.set_state("position", 3)

    def v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE images ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, v2])
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.migrate(conn, "x") == 2
    assert migrations.migrate(conn, "x") == 2  # nothing left to run: no duplicate column
    cols = [r[1] for r in conn.execute("PRAGMA table_info(images)")]
    assert "note" in cols
    assert conn.execute("SELECT value FROM state WHERE key='position'").fetchone() == ("3",)
    conn.close()


def test_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "labels.sqlite"
    Project.open(path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(RuntimeError):
        migrations.migrate(conn, "x")
    assert migrations.schema_version(conn) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='half_done'").fetchone() is None
    conn.close()


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    Project.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    before = path.read_bytes()
    for ro in (False, True):
        with pytest.raises(ProjectVersionError, match=r"newer sam-widget.*99") as err:
            Project.open(path, readonly=ro)
        assert "labels.sqlite" in str(err.value)
    assert path.read_bytes() == before


def test_non_project_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 20)
    with pytest.raises(ProjectError, match="notes.txt.*not a sam-widget project"):
        Project.open(text)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="other.db.*not a sam-widget project"):
        Project.open(other)
    # A real project with its pages overwritten in the middle.
    good = tmp_path / "broken.sqlite"
    with Project.open(good) as p:
        for k in range(200):
            p.set_state(f"k{k}", "x" * 200)
    conn = sqlite3.connect(good)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(good.read_bytes())
    data[4096 + 100 : 4096 * 4] = b"\xff" * (4096 * 3 - 100)
    good.write_bytes(bytes(data))
    with pytest.raises(ProjectError, match="broken.sqlite.*corrupt"):
        Project.open(good)
    with pytest.raises(FileNotFoundError, match="missing.sqlite"):
        Project.open(tmp_path / "missing.sqlite", readonly=True)


def test_images_are_deduplicated_by_content_and_failures_listed(
    tmp_path: Path, project: Project
) -> None:
    a, b = _images(tmp_path, 2)
    copy = tmp_path / "sub" / "copy_of_a.png"
    copy.parent.mkdir()
    copy.write_bytes(a.read_bytes())
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    res = project.add_images([a, b, copy, bad, tmp_path / "gone.png"])
    assert [r.path for r in res.added] == ["im0.png", "im1.png"]  # relative to the root
    assert [r.id for r in res.existing] == [res.added[0].id]
    assert [f[0] for f in res.failed] == [str(bad), str(tmp_path / "gone.png")]
    assert "bad.jpg" in res.failed[0][1]
    imgs = project.images()
    assert [(i.position, i.width, i.height, i.status) for i in imgs] == [
        (0, 32, 24, "todo"),
        (1, 32, 24, "todo"),
    ]
    assert project.resolve(imgs[1]) == b
    assert project.image(imgs[1].sha256) == imgs[1]
    with pytest.raises(KeyError):
        project.image(99)


def test_objects_round_trip_masks_exactly(tmp_path: Path, project: Project) -> None:
    (a,) = _images(tmp_path, 1)
    img = project.add_images([a]).added[0]
    project.add_category("cell")
    m1 = _mask(24, 32, 2, 3, 10, 12)
    m2 = np.random.default_rng(1).random((24, 32)) > 0.5
    o1 = project.add_object(img.id, m1, category="cell", prompts={"points": [[4, 5]]})
    o2 = project.add_object(img, m2, strokes=[{"points": [[1, 1]], "radius": 2, "erase": False}])
    assert (o1.area, o1.bbox, o1.category, o1.source) == (
        int(m1.sum()),
        [3, 2, 9, 8],
        "cell",
        "manual",
    )
    assert o2.strokes[0]["radius"] == 2 and o2.category is None
    np.testing.assert_array_equal(project.masks(img.id), np.stack([m1, m2]))
    with pytest.raises(ValueError, match="mask has size"):
        project.add_object(img.id, np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="category 'dog'"):
        project.add_object(img.id, m1, category="dog")
    with pytest.raises(ValueError, match="source"):
        project.add_object(img.id, m1, source="magic")
    # A stored RLE given back in goes in unchanged.
    o3 = project.add_object(img.id, o2.rle)
    assert o3.rle == o2.rle


def test_update_and_delete_with_revisions(tmp_path: Path, project: Project) -> None:
    (a,) = _images(tmp_path, 1)
    img = project.add_images([a]).added[0]
    project.add_category("cell")
    o = project.add_object(img.id, _mask(24, 32, 0, 0, 4, 4))
    new = _mask(24, 32, 5, 5, 9, 20)
    o2 = project.update_object(o.id, mask=new, category="cell", revision=o.revision)
    assert o2.revision == o.revision + 1 and o2.category == "cell" and o2.area == 60
    np.testing.assert_array_equal(o2.mask, new)
    with pytest.raises(ConflictError):  # stale revision: nothing changes
        project.update_object(o.id, mask=_mask(24, 32, 0, 0, 1, 1), revision=o.revision)
    np.testing.assert_array_equal(project.object(o.id).mask, new)
    with pytest.raises(ConflictError):
        project.delete_object(o.id, revision=o.revision)
    project.delete_object(o.id, revision=o2.revision)
    assert project.objects(img.id) == []
    with pytest.raises(KeyError):
        project.object(o.id)
    # Ids are never reused.
    assert project.add_object(img.id, new).id > o.id


def test_categories_status_time_state_and_summary(tmp_path: Path, project: Project) -> None:
    a, b = _images(tmp_path, 2)
    ia, ib = project.add_images([a, b]).added
    cat = project.add_category("cell", "#00ff00")
    assert project.add_category("cell") == cat  # idempotent
    project.add_category("nucleus")
    assert [(c.name, c.index) for c in project.categories()] == [("cell", 0), ("nucleus", 1)]
    with pytest.raises(ValueError, match="color"):
        project.add_category("x", "red")
    o = project.add_object(ia.id, _mask(24, 32, 0, 0, 3, 3), category="nucleus")
    project.add_object(ia.id, _mask(24, 32, 5, 5, 8, 8))
    project.delete_category("nucleus")
    assert project.object(o.id).category is None
    project.set_status(ia.id, "done")
    with pytest.raises(ValueError, match="status"):
        project.set_status(ib.id, "finished")
    project.add_time(ia.id, 10.0)
    project.add_time(ia.id, 5.0)
    with pytest.raises(ValueError, match="seconds"):
        project.add_time(ia.id, -1)
    project.set_state("position", 1)
    assert project.get_state("position") == 1 and project.get_state("nope", "d") == "d"
    s = project.summary()
    assert (s["total"], s["done"], s["objects"], s["seconds"]) == (2, 1, 2, 15.0)
    assert s["images"][0]["seconds_per_object"] == 7.5 and s["images"][1]["objects"] == 0
    assert s["seconds_per_object"] == 7.5


def test_deleting_an_image_cascades(tmp_path: Path, project: Project) -> None:
    (a,) = _images(tmp_path, 1)
    img = project.add_images([a]).added[0]
    project.add_object(img.id, _mask(24, 32, 0, 0, 2, 2))
    with project._write() as c:
        c.execute("DELETE FROM images WHERE id = ?", (img.id,))
    assert project._read("SELECT count(*) FROM objects")[0][0] == 0


def test_changed_and_missing_image_files_are_flagged(tmp_path: Path, project: Project) -> None:
    a, b = _images(tmp_path, 2)
    ia, ib = project.add_images([a, b]).added
    assert project.check_image(ia.id) == "ok"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(a)  # same size, new pixels
    b.unlink()
    assert project.check_image(ia.id) == "changed"
    assert project.check_image(ib.id) == "missing"


def test_put_automatic_is_idempotent_per_key(tmp_path: Path, project: Project) -> None:
    (a,) = _images(tmp_path, 1)
    img = project.add_images([a]).added[0]
    manual = project.add_object(img.id, _mask(24, 32, 0, 0, 2, 2))
    recs = [
        {"segmentation": _mask(24, 32, 3, 3, 9, 9), "predicted_iou": 0.9, "stability_score": 0.95,
         "point_coords": [[5.0, 6.0]], "crop_box": [0, 0, 32, 24]},
        {"segmentation": project.object(manual.id).rle, "predicted_iou": 0.8},
    ]  # fmt: skip
    assert not project.has_automatic(img.sha256, "w1", "p1")
    project.put_automatic(img.sha256, "w1", "p1", recs)
    ids = project.put_automatic(img.sha256, "w1", "p1", recs)  # a re-run: no duplicates
    project.put_automatic(img.sha256, "w2", "p1", recs[:1])  # another model: kept apart
    assert project.has_automatic(img.sha256, "w1", "p1")
    objs = project.objects(img.id)
    assert [o.source for o in objs] == ["manual", "automatic", "automatic", "automatic"]
    assert [o.id for o in objs[1:3]] == ids
    auto = project.object(ids[0])
    assert (auto.predicted_iou, auto.stability_score, auto.weights_id, auto.params_key) == (
        0.9, 0.95, "w1", "p1")  # fmt: skip
    assert auto.extra == {"point_coords": [[5.0, 6.0]], "crop_box": [0, 0, 32, 24]}
    with pytest.raises(ValueError, match=r"records\[0\]"):
        project.put_automatic(img.sha256, "w1", "p1", [{"mask": 1}])
    assert len(project.objects(img.id)) == 4  # the failed call changed nothing


def test_readonly_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    (a,) = _images(tmp_path, 1)
    with Project.open(path) as p:
        img = p.add_images([a]).added[0]
        p.add_object(img.id, _mask(24, 32, 0, 0, 2, 2))
    with Project.open(path, readonly=True) as ro:
        assert len(ro.objects(img.id)) == 1
        with pytest.raises(ReadOnlyError, match="read-only"):
            ro.add_object(img.id, _mask(24, 32, 0, 0, 2, 2))
        with pytest.raises(ReadOnlyError):
            ro.set_state("position", 0)


def test_root_is_saved_and_paths_outside_it_stay_absolute(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (a,) = _images(data, 1)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (b,) = _images(other, 1, size=(20, 20))
    path = tmp_path / "proj" / "labels.sqlite"
    path.parent.mkdir()
    with Project.open(path, root=data) as p:
        p.add_images([a, b])
    with Project.open(path) as p:
        assert p.root == data
        assert [i.path for i in p.images()] == ["im0.png", b.as_posix()]
        assert [p.resolve(i) for i in p.images()] == [a, b]
