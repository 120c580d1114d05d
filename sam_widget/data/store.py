"""The annotation project store: one SQLite file holding images, categories and objects.

A project is one file the user names (``labels.sqlite``). It is opened in WAL mode with
foreign keys on, ``synchronous=FULL`` and a 30 s busy timeout; every method that changes it
commits before it returns, so a killed kernel (SIGKILL) loses nothing that a call already
returned for, and the file stays intact. Several processes may open one project for writing
at once: each change is one transaction, counters are incremented in SQL, and
:meth:`Project.update_object` / :meth:`Project.delete_object` take the ``revision`` the caller
read and raise :class:`ConflictError` when someone else changed the object since (no silent
overwrite). ``readonly=True`` opens the file without ever writing to it.

Quick tour::

    from sam_widget.data.store import Project

    with Project.open("labels.sqlite", root="images/") as p:
        res = p.add_images(["images/a.png", "images/b.jpg"])  # dedup by SHA-256, failures listed
        p.add_category("cell", "#ff0000")
        img = p.images()[0]                                    # ImageRecord, in project order
        obj = p.add_object(img.id, mask, category="cell", prompts={"points": [[5, 7]]})
        obj = p.update_object(obj.id, mask=new_mask, revision=obj.revision)
        p.objects(img.id)                  # [ObjectRecord], in creation order
        p.masks(img.id)                    # (N, H, W) bool, same order
        p.set_status(img.id, "done"); p.add_time(img.id, 12.5)
        p.summary()                        # per image: status, object count, seconds
        p.check_image(img.id)              # "ok" | "changed" | "missing"

Images are named by their id (int), their :class:`ImageRecord`, or their SHA-256 hex digest.
Masks go in as an (H, W) bool array or a COCO RLE dict and are stored as compressed COCO RLE
(``{"size": [H, W], "counts": str}``): the stored RLE is the truth. ``bbox`` is COCO XYWH.

Automatic results (batch runs) are keyed by image SHA-256 + weights id + parameters key:
:meth:`Project.put_automatic` replaces the objects of that key in one transaction, so running
it twice leaves one copy, and :meth:`Project.has_automatic` says whether a key is done.

Errors: :class:`ProjectError` (a ``ValueError``) for a file that is not a project or is
corrupt, naming the file; :class:`ProjectVersionError` for a file from a newer sam-widget;
:class:`ReadOnlyError` for a write on a read-only project; :class:`ConflictError` for a stale
revision; ``KeyError`` for an unknown image or object.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .migrations import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ProjectError,
    ProjectVersionError,
    migrate,
    schema_version,
)
from .store_objects import ObjectStore
from .store_records import (
    IMAGE_COLUMNS,
    PALETTE,
    SOURCES,
    STATUSES,
    AddResult,
    Category,
    ConflictError,
    ImageRecord,
    ObjectRecord,
    ReadOnlyError,
    hash_file,
)

__all__ = [
    "STATUSES",
    "SOURCES",
    "AddResult",
    "Category",
    "ConflictError",
    "ImageRecord",
    "ObjectRecord",
    "Project",
    "ProjectError",
    "ProjectVersionError",
    "ReadOnlyError",
    "hash_file",
]


def _sqlite_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(16)


class Project(ObjectStore):
    """An open project file; see the module docstring. Use :meth:`open` to make one."""

    def __init__(self, conn: sqlite3.Connection, path: Path, root: Path, readonly: bool):
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self.root = root
        self.readonly = readonly

    # ------------------------------------------------------------------ opening, closing

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        readonly: bool = False,
    ) -> Project:
        """Open (or, unless ``readonly``, create) the project file ``path``.

        ``root``: the folder image paths are stored relative to; by default the root saved in
        the project, else the project file's folder. Raises :class:`ProjectError` naming the
        file when it is not a project or is corrupt, :class:`ProjectVersionError` when it is
        from a newer sam-widget, ``FileNotFoundError`` for a missing file opened read-only.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path, got {type(path).__name__}")
        file = Path(os.fspath(path)).absolute()
        name = repr(str(file))
        if file.exists():
            if not file.is_file():
                raise ProjectError(f"{name} is not a file, so not a sam-widget project")
            if file.stat().st_size and _sqlite_header(file) != b"SQLite format 3\x00":
                raise ProjectError(f"{name} is not a sam-widget project (not an SQLite file)")
        elif readonly:
            raise FileNotFoundError(f"project file {name} does not exist")
        elif not file.parent.is_dir():
            raise FileNotFoundError(f"folder of the project file {name} does not exist")
        if readonly:
            uri = "file:" + urllib.parse.quote(str(file)) + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(file), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise ProjectError(f"{name} is corrupt (SQLite quick_check: {check})")
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app != APPLICATION_ID and (tables or readonly):
                raise ProjectError(
                    f"{name} is an SQLite database but not a sam-widget project"
                    if tables
                    else f"{name} is an empty file, not a sam-widget project"
                )
            if readonly:
                version = schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise ProjectVersionError(
                        f"{name} was written by a newer sam-widget (schema version {version}; "
                        f"this version reads up to {SCHEMA_VERSION}). Upgrade sam-widget."
                    )
                if version < SCHEMA_VERSION:
                    raise ProjectError(
                        f"{name} has the older schema version {version}: open it once without "
                        "readonly to upgrade it"
                    )
            else:
                migrate(conn, name)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise ProjectError(f"{name} is corrupt or not a sam-widget project ({err})") from err
        except BaseException:
            conn.close()
            raise
        project = cls(conn, file, file.parent, readonly)
        stored_root = project.get_state("root")
        if root is not None:
            project.root = Path(os.fspath(root)).absolute()
            if not readonly and stored_root != str(project.root):
                project.set_state("root", str(project.root))
        elif isinstance(stored_root, str):
            project.root = Path(stored_root)
        return project

    def close(self) -> None:
        """Close the file (every change is already committed)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", readonly" if self.readonly else ""
        return f"Project({str(self.path)!r}{mode})"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller returns."""
        if self.readonly:
            raise ReadOnlyError(f"project {str(self.path)!r} was opened read-only")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    # ---------------------------------------------------------------------- project state

    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value of the key/value project state (``default`` when unset)."""
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        """Set one JSON value of the project state (e.g. ``"position"``)."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        text = json.dumps(value)
        with self._write() as c:
            c.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    # ---------------------------------------------------------------------------- images

    def _stored_path(self, file: Path) -> str:
        try:
            return file.relative_to(self.root).as_posix()
        except ValueError:
            return file.as_posix()

    def resolve(self, image: int | str | ImageRecord) -> Path:
        """The file of an image (its stored path, under the root when relative)."""
        rec = self.image(image)
        p = Path(rec.path)
        return p if p.is_absolute() else self.root / p

    def add_images(self, paths: Iterable[str | os.PathLike[str]]) -> AddResult:
        """Add image files in order, skipping contents already in the project (same SHA-256)
        and listing unreadable files with the reason. Each new image is committed at once."""
        from ..engine.images import load_image

        result = AddResult()
        for item in paths:
            file = Path(os.fspath(item)).absolute()
            try:
                sha = hash_file(file)
                found = self._image_rows("sha256 = ?", (sha,))
                if found:
                    result.existing.append(found[0])
                    continue
                with load_image(file, name=file.name) as im:
                    width, height = im.size
            except (OSError, ValueError) as err:
                result.failed.append((str(item), str(err)))
                continue
            with self._write() as c:
                c.execute(
                    "INSERT INTO images (path, sha256, width, height, position, added) VALUES "
                    "(?, ?, ?, ?, (SELECT coalesce(max(position) + 1, 0) FROM images), ?) "
                    "ON CONFLICT(sha256) DO NOTHING",
                    (self._stored_path(file), sha, width, height, time.time()),
                )
            result.added.append(self.image(sha))
        return result

    def _image_rows(self, where: str, params: tuple[Any, ...]) -> list[ImageRecord]:
        rows = self._read(f"SELECT {IMAGE_COLUMNS} FROM images WHERE {where}", params)
        return [ImageRecord(*r) for r in rows]

    def images(self) -> list[ImageRecord]:
        """Every image, in project order."""
        rows = self._read(f"SELECT {IMAGE_COLUMNS} FROM images ORDER BY position")
        return [ImageRecord(*r) for r in rows]

    def image(self, image: int | str | ImageRecord) -> ImageRecord:
        """One image by id, SHA-256 hex digest or record (re-read); ``KeyError`` if unknown."""
        if isinstance(image, ImageRecord):
            image = image.id
        if isinstance(image, (bool, np.bool_)) or not isinstance(image, (int, np.integer, str)):
            raise TypeError(f"image must be an id, a SHA-256 or an ImageRecord, got {image!r}")
        col = "sha256" if isinstance(image, str) else "id"
        found = self._image_rows(f"{col} = ?", (image if col == "sha256" else int(image),))
        if not found:
            raise KeyError(f"no image {image!r} in project {str(self.path)!r}")
        return found[0]

    def check_image(self, image: int | str | ImageRecord) -> str:
        """``"ok"``, ``"changed"`` (the file's SHA-256 differs from the stored one: its masks
        must not be laid over the new pixels) or ``"missing"``."""
        rec = self.image(image)
        file = self.resolve(rec)
        if not file.is_file():
            return "missing"
        return "ok" if hash_file(file) == rec.sha256 else "changed"

    def set_status(self, image: int | str | ImageRecord, status: str) -> None:
        """Set an image's status: one of ``STATUSES``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        image_id = self.image(image).id
        with self._write() as c:
            c.execute("UPDATE images SET status = ? WHERE id = ?", (status, image_id))

    def add_time(self, image: int | str | ImageRecord, seconds: float) -> None:
        """Add active annotation time to an image (an increment in SQL: no lost update)."""
        seconds = float(seconds)
        if not np.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        image_id = self.image(image).id
        with self._write() as c:
            c.execute("UPDATE images SET seconds = seconds + ? WHERE id = ?", (seconds, image_id))

    # ------------------------------------------------------------------------ categories

    def categories(self) -> list[Category]:
        """Every category, by class index."""
        rows = self._read("SELECT id, name, color, position FROM categories ORDER BY position")
        return [Category(r[0], r[1], r[2], i) for i, r in enumerate(rows)]

    def add_category(self, name: str, color: str | None = None) -> Category:
        """Add a category (or return the one of that name; ``color`` then updates it)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        if color is not None and not (
            isinstance(color, str) and len(color) == 7 and color[0] == "#"
            and all(ch in "0123456789abcdefABCDEF" for ch in color[1:])
        ):  # fmt: skip
            raise ValueError(f"color must be '#rrggbb', got {color!r}")
        with self._write() as c:
            row = c.execute("SELECT id FROM categories WHERE name = ?", (name,)).fetchone()
            if row is None:
                n = c.execute("SELECT count(*), coalesce(max(position) + 1, 0) FROM categories")
                count, pos = n.fetchone()
                c.execute(
                    "INSERT INTO categories (name, color, position) VALUES (?, ?, ?)",
                    (name, color or PALETTE[count % len(PALETTE)], pos),
                )
            elif color is not None:
                c.execute("UPDATE categories SET color = ? WHERE id = ?", (color, row[0]))
        return next(cat for cat in self.categories() if cat.name == name)

    def delete_category(self, name: str) -> None:
        """Remove a category; its objects keep their masks and lose the label."""
        with self._write() as c:
            c.execute("DELETE FROM categories WHERE name = ?", (name,))

    # --------------------------------------------------------------------------- summary

    def summary(self) -> dict[str, Any]:
        """``images``: per image (project order) its index, id, path, status, objects,
        seconds (active time), seconds_per_object, clicks and strokes (the work the annotator
        counted in the objects' ``extra["clicks"]`` (prompt changes) and ``extra["strokes"]``
        (brush and eraser strokes); an older project's ``extra["edits"]`` count as clicks) and
        edits (clicks + strokes); and the totals ``total`` (images), ``done``, ``objects``,
        ``seconds``, ``seconds_per_object``, ``clicks``, ``strokes``, ``clicks_per_object``,
        ``strokes_per_object`` (means over all objects; None without objects)."""
        rows = self._read(
            "SELECT i.id, i.path, i.status, i.seconds, count(o.id), "
            "coalesce(sum(coalesce(json_extract(o.extra, '$.clicks'), "
            "json_extract(o.extra, '$.edits'), 0)), 0), "
            "coalesce(sum(coalesce(json_extract(o.extra, '$.strokes'), 0)), 0) FROM images i "
            "LEFT JOIN objects o ON o.image_id = i.id GROUP BY i.id ORDER BY i.position"
        )
        per = [
            {"index": k, "id": r[0], "path": r[1], "status": r[2], "objects": r[4],
             "seconds": r[3], "seconds_per_object": r[3] / r[4] if r[4] else None,
             "clicks": int(r[5]), "strokes": int(r[6]), "edits": int(r[5]) + int(r[6])}
            for k, r in enumerate(rows)
        ]  # fmt: skip
        n_obj = sum(p["objects"] for p in per)
        secs = float(sum(p["seconds"] for p in per))
        clicks = sum(p["clicks"] for p in per)
        strokes = sum(p["strokes"] for p in per)
        return {
            "images": per,
            "total": len(per),
            "done": sum(p["status"] == "done" for p in per),
            "objects": n_obj,
            "seconds": secs,
            "seconds_per_object": secs / n_obj if n_obj else None,
            "clicks": clicks,
            "strokes": strokes,
            "clicks_per_object": clicks / n_obj if n_obj else None,
            "strokes_per_object": strokes / n_obj if n_obj else None,
        }
