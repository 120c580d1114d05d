"""Schema of the annotation project store and the migrations that build and upgrade it.

A project file carries its schema version in the one-row table ``schema_version``. Opening a
file runs every migration whose version is above the stored one, in order, each in its own
transaction that also bumps the version, so a crash mid-upgrade leaves the file at the last
complete version. A file whose version is above :data:`SCHEMA_VERSION` was written by a newer
sam-widget and is refused (:class:`ProjectVersionError`), never downgraded or touched.

To change the schema: append a function to :data:`MIGRATIONS` (its index + 1 is its version)
that alters the tables with plain SQL; never edit an old migration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ProjectError",
    "ProjectVersionError",
    "migrate",
    "schema_version",
]

#: Stored in the SQLite header (``PRAGMA application_id``) to mark the file as ours: "SAMW".
APPLICATION_ID = 0x53414D57


class ProjectError(ValueError):
    """The file is not a sam-widget project, is corrupt, or cannot be used as asked."""


class ProjectVersionError(ProjectError):
    """The project was written by a newer sam-widget (a higher schema version)."""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # One statement at a time: executescript would commit the surrounding transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE state (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL                -- JSON
        );
        CREATE TABLE images (
            id       INTEGER PRIMARY KEY,
            path     TEXT NOT NULL,            -- POSIX, relative to the project root if inside it
            sha256   TEXT NOT NULL UNIQUE,     -- hex digest of the file's bytes
            width    INTEGER NOT NULL CHECK (width > 0),
            height   INTEGER NOT NULL CHECK (height > 0),
            status   TEXT NOT NULL DEFAULT 'todo'
                     CHECK (status IN ('todo', 'in_progress', 'done', 'skipped')),
            seconds  REAL NOT NULL DEFAULT 0,  -- active annotation time
            position INTEGER NOT NULL UNIQUE,  -- order in the project, 0-based
            added    REAL NOT NULL             -- Unix time
        );
        CREATE TABLE categories (
            id       INTEGER PRIMARY KEY,
            name     TEXT NOT NULL UNIQUE,
            color    TEXT NOT NULL,            -- '#rrggbb'
            position INTEGER NOT NULL          -- class index order (exports)
        );
        CREATE TABLE objects (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids never reused
            image_id        INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            category_id     INTEGER REFERENCES categories(id) ON DELETE SET NULL,
            prompts         TEXT NOT NULL DEFAULT '{}',   -- JSON
            strokes         TEXT NOT NULL DEFAULT '[]',   -- JSON
            rle             TEXT NOT NULL,                -- JSON COCO RLE, counts as str
            area            INTEGER NOT NULL,
            bbox            TEXT NOT NULL,                -- JSON [x, y, w, h]
            source          TEXT NOT NULL
                            CHECK (source IN ('manual', 'assisted', 'automatic')),
            predicted_iou   REAL,
            stability_score REAL,
            weights_id      TEXT,
            params_key      TEXT,
            extra           TEXT NOT NULL DEFAULT '{}',   -- JSON (point_coords, crop_box, ...)
            revision        INTEGER NOT NULL DEFAULT 1,
            created         REAL NOT NULL,
            updated         REAL NOT NULL
        );
        CREATE INDEX objects_by_image ON objects(image_id, id);
        CREATE TABLE automatic_runs (
            image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            weights_id TEXT NOT NULL,
            params_key TEXT NOT NULL,
            count      INTEGER NOT NULL,
            created    REAL NOT NULL,
            PRIMARY KEY (image_id, weights_id, params_key)
        );
        """,
    )


#: Migration k (0-based) upgrades a file from schema version k to k + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
#: The schema version this sam-widget writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The stored schema version; 0 for a file with no ``schema_version`` table."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    got = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(got) != 1 or not isinstance(got[0][0], int):
        raise ProjectError("the schema_version table must hold exactly one integer")
    return int(got[0][0])


def migrate(
    conn: sqlite3.Connection,
    name: str,
    migrations: Sequence[Callable[[sqlite3.Connection], None]] | None = None,
) -> int:
    """Bring the file on ``conn`` (autocommit mode) to the latest version; returns it.

    ``name`` is the file's name, for messages. Raises :class:`ProjectVersionError` for a
    newer file. Each step runs in ``BEGIN IMMEDIATE`` and re-reads the version inside the
    transaction, so two processes opening an old file at once upgrade it once.
    """
    steps = list(MIGRATIONS if migrations is None else migrations)
    latest = len(steps)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > latest:
                raise ProjectVersionError(
                    f"{name} was written by a newer sam-widget (schema version {current}; this "
                    f"version reads up to {latest}). Upgrade sam-widget to open it."
                )
            if current == latest:
                conn.execute("COMMIT")
                return current
            if current == 0:
                # A PRAGMA takes no SQL parameters; the value is our own integer constant.
                conn.execute(f"PRAGMA application_id = {int(APPLICATION_ID)}")
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            steps[current](conn)
            conn.execute("UPDATE schema_version SET version = ?", (current + 1,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
