"""Reading an annotator project (SQLite) for fine-tuning: read-only, through the project
store's public API (:class:`sam_widget.data.store.Project` opened with ``readonly=True``).

Only masks a person made or confirmed are used (sources ``"manual"`` and ``"assisted"``);
unreviewed automatic results are the model's own output and teach it nothing. An image
whose file is missing or changed since it was annotated (its masks would not fit the pixels)
is skipped with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data.store import Project

__all__ = ["TRAIN_SOURCES", "read_project"]

TRAIN_SOURCES = ("manual", "assisted")


def read_project(path: Path) -> Iterator[tuple[Any, np.ndarray, str]]:
    """Yield ``(image file, masks (N, H, W) bool, name)`` for every image of the project at
    ``path`` that has masks from ``TRAIN_SOURCES``, in project order. Never writes."""
    with Project.open(path, readonly=True) as project:
        skipped: list[str] = []
        for rec in project.images():
            objs = [o for o in project.objects(rec) if o.source in TRAIN_SOURCES]
            if not objs:
                continue
            state = project.check_image(rec)
            if state != "ok":
                skipped.append(f"{rec.path} ({state})")
                continue
            masks = np.stack([o.mask for o in objs])
            yield project.resolve(rec), masks, f"{path.name}: image {rec.id} ({rec.path})"
        if skipped:
            warnings.warn(
                f"{path}: {len(skipped)} annotated image(s) skipped because the file is "
                f"missing or changed since it was annotated: {', '.join(skipped[:5])}",
                UserWarning,
                stacklevel=2,
            )
