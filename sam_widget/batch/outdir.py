"""The SA-1B folder output of a batch run, and what it remembers for a rerun.

Layout of ``out``:

- ``<name>.json`` per image (``name`` from :mod:`~sam_widget.batch.inputs`), in SA-1B's
  per-image layout (``segment_anything``'s dataset card: ``{"image": {...},
  "annotations": [...]}``): the image record (``image_id``, ``file_name``, ``width``,
  ``height``, plus our ``path`` and ``sha256``) and one annotation per mask with ``id``,
  ``segmentation`` (COCO RLE, string counts), ``bbox`` (XYWH), ``area``, ``predicted_iou``,
  ``stability_score``, ``point_coords`` and ``crop_box``. A ``sam_widget`` block holds the
  result key, model, weights id and parameters.
- ``.sam-widget-batch/<hash of name>.json``: the state of that output name: the result key
  it holds (``status: done``) or the reason it failed (``status: failed``). Written after
  the output file, so a run killed between the two only redoes that image.
- ``batch-summary.json``: the last run's summary, failures with their reasons included.

Every file is written atomically (:mod:`sam_widget.data.atomic`): a reader or a rerun never
sees half a file, whenever the run is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_text
from .inputs import ImageItem

__all__ = ["OutDir", "SUMMARY_NAME"]

SUMMARY_NAME = "batch-summary.json"
_STATE_DIR = ".sam-widget-batch"
_ANNOTATION_KEYS = (
    "segmentation",
    "bbox",
    "area",
    "predicted_iou",
    "stability_score",
    "point_coords",
    "crop_box",
)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


class OutDir:
    """One SA-1B output folder (created if missing)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"out must be a folder path, got {type(folder).__name__}")
        self.folder = Path(os.fspath(folder)).expanduser()
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"out {str(self.folder)!r} exists and is not a folder")
        (self.folder / _STATE_DIR).mkdir(parents=True, exist_ok=True)

    def output_path(self, item: ImageItem) -> Path:
        """Where ``item``'s masks go: ``out/<name>.json``."""
        return self.folder / f"{item.name}.json"

    def _state_path(self, item: ImageItem) -> Path:
        digest = hashlib.sha256(item.name.encode("utf-8")).hexdigest()[:32]
        return self.folder / _STATE_DIR / f"{digest}.json"

    def _state(self, item: ImageItem) -> dict[str, Any] | None:
        try:
            state = json.loads(self._state_path(item).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def is_done(self, item: ImageItem, key: str) -> bool:
        """True when ``out/<name>.json`` holds the result with this key."""
        state = self._state(item)
        return (
            state is not None
            and state.get("status") == "done"
            and state.get("key") == key
            and state.get("name") == item.name
            and self.output_path(item).is_file()
        )

    def write_done(
        self, item: ImageItem, key: str, result: dict[str, Any], meta: dict[str, Any]
    ) -> Path:
        """Write the image's SA-1B JSON, then record it as done; returns the JSON's path.

        ``result``: a worker's ``done`` result; ``meta``: model and parameter description
        (stored under ``sam_widget``).
        """
        sha = str(result["sha256"])
        doc = {
            "image": {
                # A stable integer id from the content (SA-1B's ids are integers).
                "image_id": int(sha[:12], 16),
                "file_name": item.path.name,
                "width": int(result["width"]),
                "height": int(result["height"]),
                "path": str(item.path),
                "sha256": sha,
            },
            "annotations": [
                {"id": k + 1, **{name: rec[name] for name in _ANNOTATION_KEYS}}
                for k, rec in enumerate(result["records"])
            ],
            "sam_widget": {"key": key, "source": "automatic", **meta},
        }
        path = self.output_path(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _dumps(doc))
        state = {
            "status": "done",
            "name": item.name,
            "key": key,
            "output": path.name,
            "count": len(doc["annotations"]),
        }
        atomic_write_text(self._state_path(item), _dumps(state))
        return path

    def write_failed(self, item: ImageItem, reason: str) -> None:
        """Record that ``item`` failed (a rerun tries it again)."""
        state = {"status": "failed", "name": item.name, "path": str(item.path), "reason": reason}
        atomic_write_text(self._state_path(item), _dumps(state))

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.folder / SUMMARY_NAME
        atomic_write_text(path, json.dumps(summary, indent=1))
        return path
