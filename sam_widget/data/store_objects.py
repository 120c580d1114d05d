"""Objects of the annotation project store: add, read, update (with revisions), delete, and
the idempotent automatic results of batch runs. Mixed into :class:`~sam_widget.data.store.Project`
(see :mod:`sam_widget.data.store` for the API)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ..engine.amg.rle import check_mask, rle_area, rle_to_mask
from .io import _coco_bbox, compress_rle, encode_coco_rle
from .store_records import (
    OBJECT_COLUMNS,
    OBJECT_FROM,
    SOURCES,
    UNSET,
    ConflictError,
    ImageRecord,
    ObjectRecord,
    object_from_row,
)

__all__ = ["ObjectStore"]


class ObjectStore:
    """The object methods of a project; needs ``_write``, ``_read``, ``image``, ``path``."""

    path: Any

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def image(self, image: int | str | ImageRecord) -> ImageRecord:
        raise NotImplementedError

    def _category_id(self, c: sqlite3.Connection, name: str | None) -> int | None:
        if name is None:
            return None
        row = c.execute("SELECT id FROM categories WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"category {name!r} is not in the project: add_category it first")
        return int(row[0])

    def _mask_fields(self, mask: Any, image: ImageRecord) -> tuple[str, int, str]:
        """Mask (array or RLE) -> (RLE JSON, area, bbox JSON), checked against the image."""
        if isinstance(mask, Mapping):
            rle = compress_rle(dict(mask))
            size = [int(v) for v in rle["size"]]
            area = rle_area(rle)
            arr = rle_to_mask(rle)
        else:
            arr = check_mask(mask, "mask")
            size = list(arr.shape)
            rle = encode_coco_rle(arr)
            area = int(arr.sum())
        if size != [image.height, image.width]:
            raise ValueError(
                f"mask has size {size} (H, W), but image {image.id} is "
                f"[{image.height}, {image.width}]"
            )
        return json.dumps(rle), area, json.dumps(_coco_bbox(arr))

    def add_object(
        self,
        image: int | str | ImageRecord,
        mask: Any,
        *,
        category: str | None = None,
        prompts: Mapping[str, Any] | None = None,
        strokes: list[Any] | None = None,
        source: str = "manual",
        predicted_iou: float | None = None,
        stability_score: float | None = None,
        weights_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ObjectRecord:
        """Add one object to an image; ``mask``: (H, W) bool array or COCO RLE dict."""
        rec = self.image(image)
        with self._write() as c:
            oid = self._insert(c, rec, mask, category, prompts, strokes, source,
                               predicted_iou, stability_score, weights_id, None, extra)  # fmt: skip
        return self.object(oid)

    def _insert(
        self, c: sqlite3.Connection, rec: ImageRecord, mask: Any, category: str | None,
        prompts: Mapping[str, Any] | None, strokes: list[Any] | None, source: str,
        predicted_iou: float | None, stability_score: float | None, weights_id: str | None,
        params_key: str | None, extra: Mapping[str, Any] | None,
    ) -> int:  # fmt: skip
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        rle, area, bbox = self._mask_fields(mask, rec)
        now = time.time()
        cur = c.execute(
            "INSERT INTO objects (image_id, category_id, prompts, strokes, rle, area, bbox, "
            "source, predicted_iou, stability_score, weights_id, params_key, extra, created, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.id, self._category_id(c, category), json.dumps(dict(prompts or {})),
             json.dumps(list(strokes or [])), rle, area, bbox, source,
             None if predicted_iou is None else float(predicted_iou),
             None if stability_score is None else float(stability_score),
             weights_id, params_key, json.dumps(dict(extra or {})), now, now),
        )  # fmt: skip
        return int(cur.lastrowid or 0)

    def object(self, object_id: int) -> ObjectRecord:
        """One object by id; ``KeyError`` if there is none."""
        rows = self._read(f"SELECT {OBJECT_COLUMNS} FROM {OBJECT_FROM} WHERE o.id = ?",
                          (int(object_id),))  # fmt: skip
        if not rows:
            raise KeyError(f"no object {object_id} in project {str(self.path)!r}")
        return object_from_row(rows[0])

    def objects(self, image: int | str | ImageRecord) -> list[ObjectRecord]:
        """The objects of one image, in creation order."""
        image_id = self.image(image).id
        rows = self._read(
            f"SELECT {OBJECT_COLUMNS} FROM {OBJECT_FROM} WHERE o.image_id = ? ORDER BY o.id",
            (image_id,),
        )
        return [object_from_row(r) for r in rows]

    def masks(self, image: int | str | ImageRecord) -> np.ndarray:
        """(N, H, W) bool masks of one image's objects, in :meth:`objects` order."""
        rec = self.image(image)
        objs = self.objects(rec)
        if not objs:
            return np.zeros((0, rec.height, rec.width), dtype=bool)
        return np.stack([o.mask for o in objs])

    def update_object(
        self,
        object_id: int,
        *,
        mask: Any = UNSET,
        category: str | None = UNSET,
        prompts: Mapping[str, Any] = UNSET,
        strokes: list[Any] = UNSET,
        source: str = UNSET,
        predicted_iou: float | None = UNSET,
        extra: Mapping[str, Any] = UNSET,
        weights_id: str | None = UNSET,
        revision: int | None = None,
    ) -> ObjectRecord:
        """Change the given fields of an object; bumps its revision and ``updated``.

        ``revision``: the revision the caller read; when given and stale, raises
        :class:`ConflictError` and changes nothing.
        """
        old = self.object(object_id)
        sets: list[str] = []
        params: list[Any] = []
        if mask is not UNSET:
            rle, area, bbox = self._mask_fields(mask, self.image(old.image_id))
            sets += ["rle = ?", "area = ?", "bbox = ?"]
            params += [rle, area, bbox]
        if prompts is not UNSET:
            sets.append("prompts = ?")
            params.append(json.dumps(dict(prompts)))
        if strokes is not UNSET:
            sets.append("strokes = ?")
            params.append(json.dumps(list(strokes)))
        if source is not UNSET:
            if source not in SOURCES:
                raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
            sets.append("source = ?")
            params.append(source)
        if predicted_iou is not UNSET:
            sets.append("predicted_iou = ?")
            params.append(None if predicted_iou is None else float(predicted_iou))
        if extra is not UNSET:
            sets.append("extra = ?")
            params.append(json.dumps(dict(extra)))
        if weights_id is not UNSET:
            sets.append("weights_id = ?")
            params.append(weights_id)
        with self._write() as c:
            if category is not UNSET:
                sets.append("category_id = ?")
                params.append(self._category_id(c, category))
            sql = "UPDATE objects SET " + ", ".join([*sets, "revision = revision + 1",
                                                     "updated = ?"]) + " WHERE id = ?"  # fmt: skip
            params += [time.time(), old.id]
            if revision is not None:
                sql += " AND revision = ?"
                params.append(int(revision))
            if c.execute(sql, params).rowcount != 1:
                raise ConflictError(
                    f"object {old.id} was changed or deleted by someone else since revision "
                    f"{revision}: re-read it"
                )
        return self.object(old.id)

    def delete_object(self, object_id: int, revision: int | None = None) -> None:
        """Delete an object (``ConflictError`` when ``revision`` is given and stale)."""
        sql, params = "DELETE FROM objects WHERE id = ?", [int(object_id)]
        if revision is not None:
            sql += " AND revision = ?"
            params.append(int(revision))
        with self._write() as c:
            if c.execute(sql, params).rowcount != 1:
                if revision is None:
                    raise KeyError(f"no object {object_id} in project {str(self.path)!r}")
                raise ConflictError(f"object {object_id} changed since revision {revision}")

    # ------------------------------------------------------------------ automatic results

    def has_automatic(
        self, image: int | str | ImageRecord, weights_id: str, params_key: str
    ) -> bool:
        """Whether :meth:`put_automatic` already stored results for this key."""
        rows = self._read(
            "SELECT 1 FROM automatic_runs WHERE image_id = ? AND weights_id = ? AND params_key = ?",
            (self.image(image).id, weights_id, params_key),
        )
        return bool(rows)

    def put_automatic(
        self,
        image: int | str | ImageRecord,
        weights_id: str,
        params_key: str,
        records: Iterable[Mapping[str, Any]],
        category: str | None = None,
    ) -> list[int]:
        """Store automatic-mask-generator records (source ``"automatic"``) for one image.

        ``records``: dicts with ``segmentation`` (bool array or COCO RLE) and optionally
        ``predicted_iou``, ``stability_score``, ``point_coords``, ``crop_box``. Replaces, in
        one transaction, the automatic objects of the same (image, weights_id, params_key),
        so repeating a call leaves one copy. Returns the new object ids in record order.
        """
        if not isinstance(weights_id, str) or not isinstance(params_key, str):
            raise TypeError("weights_id and params_key must be str")
        rec = self.image(image)
        items = list(records)
        for k, r in enumerate(items):
            if not isinstance(r, Mapping) or "segmentation" not in r:
                raise ValueError(f"records[{k}] must be a dict with a 'segmentation'")
        ids = []
        with self._write() as c:
            c.execute(
                "DELETE FROM objects WHERE image_id = ? AND source = 'automatic' AND "
                "weights_id = ? AND params_key = ?",
                (rec.id, weights_id, params_key),
            )
            for r in items:
                extra = {k: r[k] for k in ("point_coords", "crop_box") if k in r}
                ids.append(self._insert(c, rec, r["segmentation"], category, None, None,
                                        "automatic", r.get("predicted_iou"),
                                        r.get("stability_score"), weights_id, params_key,
                                        json.loads(json.dumps(extra))))  # fmt: skip
            c.execute(
                "INSERT INTO automatic_runs (image_id, weights_id, params_key, count, created) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(image_id, weights_id, params_key) DO UPDATE "
                "SET count = excluded.count, created = excluded.created",
                (rec.id, weights_id, params_key, len(items), time.time()),
            )
        return ids
