"""Reading an annotator project (SQLite) for fine-tuning, read-only, through the project
store's public API (:mod:`sam_widget.data.store`)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["read"]


def read(path: Path) -> Iterator[tuple[Any, Any, str]]:
    """Yield ``(image, masks, name)`` for every image of the project at ``path`` that has
    object masks. Never writes to the project."""
    try:
        importlib.import_module("sam_widget.data.store")
    except ImportError:
        raise ValueError(
            f"data: {path} is an SQLite file, but this version of sam-widget cannot read "
            "annotator projects (sam_widget.data.store is missing)"
        ) from None
    raise NotImplementedError("annotator projects: waiting for sam_widget.data.store")
