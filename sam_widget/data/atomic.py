"""One atomic writer for every file the package writes.

A file is written to a temporary file in the target's folder, flushed and fsynced, then
moved over the target with ``os.replace`` (atomic on POSIX and Windows for paths on one file
system). A write that fails part-way (full disk, a raising encoder, Ctrl+C) removes the
temporary file and leaves the previous file byte-identical; a reader never sees a half
written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "fsync_dir",
]


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (its entry on disk; POSIX only, no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit of the ``with``
    block it replaces ``path``; on an exception it is removed and ``path`` is untouched.

    ``mode``: ``"wb"`` or ``"w"`` (text; ``encoding`` defaults to UTF-8). The folder must
    exist. An existing file's permission bits are kept.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}.")
    target = Path(os.fspath(path))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} of {str(target)!r} does not exist.")
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(binary_file)`` on a temporary file, then move it over ``path`` (for
    encoders that take a file object: ``np.savez_compressed``, ``PIL.Image.save``,
    ``json.dump`` through a text wrapper)."""
    with atomic_open(path, "wb") as fh:
        write(fh)
