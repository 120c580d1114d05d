"""Which image files an annotator works on: a folder (recursive), a glob, or a list."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_EXTENSIONS", "list_images"]

#: File name endings searched for in folders (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(images: Any) -> list[Path]:
    """The image files named by ``images``, in a stable order.

    ``images``: a folder (searched recursively for :data:`IMAGE_EXTENSIONS`, hidden files and
    folders skipped, sorted by relative path), a glob pattern (``"data/*.png"``, ``**``
    allowed; sorted), a list of paths (kept in its order), or None (no images). A path or
    pattern that names nothing raises ``ValueError``; files in a list are checked later.
    """
    if images is None:
        return []
    if isinstance(images, (str, os.PathLike)):
        text = os.fspath(images)
        p = Path(text).expanduser()
        if p.is_dir():
            found = [
                f
                for f in p.rglob("*")
                if f.is_file()
                and _is_image_name(f)
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            ]
            return sorted(found, key=lambda f: f.relative_to(p).as_posix())
        if p.is_file():
            return [p]
        if glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise ValueError(f"images: the pattern {text!r} matches no file")
            return files
        raise ValueError(f"images: {text!r} is neither a folder, a file nor a glob pattern")
    if isinstance(images, Iterable) and not isinstance(images, (bytes, dict)):
        out = []
        for k, item in enumerate(images):
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError(f"images[{k}] must be a path, got {type(item).__name__}")
            out.append(Path(os.fspath(item)).expanduser())
        return out
    raise TypeError(
        f"images must be a folder, a glob pattern or a list of paths, got {type(images).__name__}"
    )
