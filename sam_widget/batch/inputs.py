"""Which files a batch run covers, and the name each one's output gets.

``images`` is a folder (searched recursively for :data:`IMAGE_EXTENSIONS`), a glob pattern,
a file path, or a list of any of these. Files are taken in sorted order within a folder or
pattern and in the given order otherwise; the same file named twice is taken once.

Output names mirror the input layout: ``<folder>/sub/a.png`` given as ``<folder>`` is named
``sub/a``; a file given directly (or through a pattern) is named by its file name ``a``. Two
images that would share a name keep their extension (``a.png``, ``a.jpg``); if that still
collides (the same relative path under two folders), a short hash of the absolute path is
appended. The names depend only on the set of inputs.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["IMAGE_EXTENSIONS", "ImageItem", "collect_images"]

#: Extensions (lower case) picked up when searching a folder.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm"}
)
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ImageItem:
    """One input image: ``path`` (absolute) and ``name`` (POSIX, no extension unless needed
    to tell two inputs apart; the output file is ``<name>.json``)."""

    path: Path
    name: str


def _folder_files(folder: Path) -> list[Path]:
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(found)


def _expand(entry: Any) -> list[tuple[Path, Path]]:
    """(file, root) pairs for one entry; the name is the file's path relative to root."""
    if not isinstance(entry, (str, os.PathLike)):
        raise TypeError(
            "images must be a folder, a glob pattern, a file path or a list of them, got an "
            f"entry of type {type(entry).__name__}"
        )
    text = os.fspath(entry)
    path = Path(text).expanduser()
    if path.is_dir():
        root = path.resolve()
        files = _folder_files(root)
        if not files:
            raise ValueError(f"images: folder {text!r} holds no image files")
        return [(f, root) for f in files]
    if not path.exists() and _GLOB_CHARS & set(text):
        matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        files = [Path(m).resolve() for m in matches if Path(m).is_file()]
        if not files:
            raise ValueError(f"images: pattern {text!r} matches no file")
        return [(f, f.parent) for f in files]
    # A plain path, existing or not: a missing or unreadable file is recorded as failed by
    # the run (with its reason) rather than stopping it.
    absolute = path.resolve()
    return [(absolute, absolute.parent)]


def _short_hash(path: Path) -> str:
    return hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]


def collect_images(images: Any) -> list[ImageItem]:
    """Expand ``images`` into the run's list of :class:`ImageItem` (see module docstring).

    Raises ``TypeError`` for entries that are not paths, ``ValueError`` for an empty list, a
    folder without images or a pattern that matches nothing.
    """
    entries = [images] if isinstance(images, (str, os.PathLike)) else images
    try:
        entries = list(entries)
    except TypeError:
        raise TypeError(
            "images must be a folder, a glob pattern, a file path or a list of them, got "
            f"{type(images).__name__}"
        ) from None
    if not entries:
        raise ValueError("images is empty: give at least one image, folder or pattern")
    pairs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for entry in entries:
        for file, root in _expand(entry):
            if file not in seen:
                seen.add(file)
                pairs.append((file, root))
    rel = [PurePosixPath(file.relative_to(root).as_posix()) for file, root in pairs]
    stems = [str(r.with_suffix("")) for r in rel]
    stem_counts = Counter(stems)
    names = [s if stem_counts[s] == 1 else str(r) for s, r in zip(stems, rel, strict=True)]
    name_counts = Counter(names)
    items = []
    for (file, _), name in zip(pairs, names, strict=True):
        if name_counts[name] > 1:
            name = f"{name}-{_short_hash(file)}"
        items.append(ImageItem(file, name))
    return items
