"""Records, errors and small helpers of the annotation project store (see
:mod:`sam_widget.data.store` for the API)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.amg.rle import rle_to_mask
from .migrations import ProjectError

__all__ = [
    "SOURCES",
    "STATUSES",
    "AddResult",
    "Category",
    "ConflictError",
    "ImageRecord",
    "ObjectRecord",
    "ReadOnlyError",
    "hash_file",
]

STATUSES = ("todo", "in_progress", "done", "skipped")
SOURCES = ("manual", "assisted", "automatic")
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
            "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324")  # fmt: skip
UNSET: Any = object()


class ReadOnlyError(ProjectError):
    """A write was attempted on a project opened read-only."""


class ConflictError(ProjectError):
    """The object changed (or was deleted) since the caller read its revision."""


def hash_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageRecord:
    """One image of the project. ``path`` is as stored (POSIX, relative to the root when the
    file is inside it); :meth:`Project.resolve` gives the file. ``seconds``: active time."""

    id: int
    path: str
    sha256: str
    width: int
    height: int
    status: str
    seconds: float
    position: int
    added: float


@dataclass(frozen=True)
class Category:
    """A class label; ``index`` is its 0-based order (the class index of exports)."""

    id: int
    name: str
    color: str
    index: int


@dataclass(frozen=True)
class ObjectRecord:
    """One annotated object. ``rle``: compressed COCO RLE of the final mask (the truth);
    ``bbox``: [x, y, w, h] pixels; ``prompts``/``strokes``: JSON data as given; ``extra``:
    further JSON fields (``point_coords``, ``crop_box`` of automatic records)."""

    id: int
    image_id: int
    category: str | None
    prompts: dict[str, Any]
    strokes: list[Any]
    rle: dict[str, Any]
    area: int
    bbox: list[int]
    source: str
    predicted_iou: float | None
    stability_score: float | None
    weights_id: str | None
    params_key: str | None
    extra: dict[str, Any]
    revision: int
    created: float
    updated: float

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool mask decoded from :attr:`rle`."""
        return rle_to_mask(self.rle)


@dataclass
class AddResult:
    """What :meth:`Project.add_images` did: new images, ones already in the project (same
    content), and ``failed`` as (path, reason) pairs."""

    added: list[ImageRecord] = field(default_factory=list)
    existing: list[ImageRecord] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


OBJECT_COLUMNS = (
    "o.id, o.image_id, c.name, o.prompts, o.strokes, o.rle, o.area, o.bbox, o.source, "
    "o.predicted_iou, o.stability_score, o.weights_id, o.params_key, o.extra, o.revision, "
    "o.created, o.updated"
)
OBJECT_FROM = "objects o LEFT JOIN categories c ON c.id = o.category_id"
IMAGE_COLUMNS = "id, path, sha256, width, height, status, seconds, position, added"


def object_from_row(row: tuple[Any, ...]) -> ObjectRecord:
    return ObjectRecord(
        row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]), json.loads(row[5]),
        row[6], json.loads(row[7]), row[8], row[9], row[10], row[11], row[12],
        json.loads(row[13]), row[14], row[15], row[16],
    )  # fmt: skip
