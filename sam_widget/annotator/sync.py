"""Keep the project store equal to the widget's objects, for the image on screen.

The widget owns the interaction; this module observes it (composition: it only uses the
widget's public API: the ``objects`` trait, ``on_mask``, ``load_dict``, ``image_id``):

- ``objects`` changes (main thread) are written at once: a new object is inserted with its
  prompts, strokes and the active category (and an empty mask until its first mask
  arrives), changed prompts or strokes are written, a deleted object is deleted.
- Each object counts the user's work on it in its ``extra`` (the SAM paper's measure of
  annotation effort, section 4): ``clicks``, the prompt changes (a point, a box, a candidate,
  an undo of one; making the object with a prompt is the first), and ``strokes``, the brush
  and eraser strokes added (making it with a stroke is the first). The rest of ``extra``
  (e.g. an accepted proposal's ``point_coords``) is kept.
- Masks (``on_mask``, the widget's worker thread) are queued to a writer thread, which
  computes the full-resolution mask and writes it with the predicted IoU. So the worker
  never waits for the disk; :meth:`StoreSync.flush` waits for the queue.
- :meth:`StoreSync.load` puts an image's stored objects into the widget. The masks the
  widget then decodes from the restored prompts are *not* written back: the stored RLE stays
  the truth (also for objects with no prompts, e.g. automatic ones) until the user changes
  that object's prompts.
- Every write passes the revision last seen, so a change made meanwhile by another process
  raises instead of being overwritten; it is reported through ``report``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.store import ConflictError, ImageRecord, ObjectRecord, Project
from ..widget.objects import PALETTE, copy_strokes, normalize_objects

__all__ = ["StoreSync", "prompts_dict", "work"]

logger = logging.getLogger("sam_widget")


def prompts_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """The stored prompts of a widget object: points, labels, box, candidate."""
    return {
        "points": [list(map(float, p)) for p in obj.get("points", [])],
        "labels": [int(v) for v in obj.get("labels", [])],
        "box": None if obj.get("box") is None else [float(v) for v in obj["box"]],
        "candidate": obj.get("candidate"),
    }


def _strokes(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored strokes of a widget object (a copy)."""
    return copy_strokes(obj.get("strokes") or [])


@dataclass
class _Entry:
    """One widget object of the current image and its store object."""

    store_id: int
    revision: int
    prompts: dict[str, Any]
    strokes: list[dict[str, Any]]
    restored_seq: int | None  # masks of this seq come from the store: never written back
    extra: dict[str, Any]  # the stored extra, with the counts below
    written_seq: int = -1
    deleted: bool = False

    def count(self, prompts: dict[str, Any], strokes: list[dict[str, Any]]) -> None:
        """Count the change from the stored prompts and strokes to these ones."""
        clicks, added = work(self.prompts, self.strokes, prompts, strokes)
        self.extra.pop("edits", None)  # older projects' count of prompt changes: now clicks
        self.extra["clicks"] = int(self.extra.get("clicks", 0)) + clicks
        self.extra["strokes"] = int(self.extra.get("strokes", 0)) + added


def work(
    old_prompts: dict[str, Any] | None,
    old_strokes: list[dict[str, Any]],
    prompts: dict[str, Any],
    strokes: list[dict[str, Any]],
) -> tuple[int, int]:
    """``(clicks, strokes)`` of one change: one click when the prompts changed (None: a new
    object, a click when it has prompts), and the number of strokes added after the part of
    the stroke list that stayed (an undone stroke adds none)."""
    if old_prompts is None:
        clicks = int(bool(prompts["points"] or prompts["box"] is not None))
    else:
        clicks = int(prompts != old_prompts)
    kept = 0
    while kept < min(len(old_strokes), len(strokes)) and old_strokes[kept] == strokes[kept]:
        kept += 1
    return clicks, len(strokes) - kept


def _counted(extra: dict[str, Any]) -> dict[str, Any]:
    """A stored ``extra`` with the work counts (an older project's ``edits`` are clicks)."""
    out = dict(extra)
    edits = out.pop("edits", 0)
    out.setdefault("clicks", int(edits))
    out.setdefault("strokes", 0)
    return out


class StoreSync:
    """Widget <-> store synchronisation for one annotator (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        widget: Any,
        *,
        on_change: Callable[[], None],
        report: Callable[[str], None],
        weights_id: str | None = None,
    ) -> None:
        self._project = project
        self._w = widget
        self._on_change = on_change
        self._report = report
        self.weights_id = weights_id
        self._lock = threading.RLock()
        self._image: ImageRecord | None = None
        self._widget_image_id = -1
        self._entries: dict[int, _Entry] = {}
        self._pending: dict[int, Any] = {}  # masks that arrived before their insert
        self._restoring = False
        self.writable = True
        self.category: str | None = None
        self._queue: queue.Queue[tuple[_Entry, Any] | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_loop, daemon=True, name="sam-annotator-writer"
        )
        self._writer.start()
        widget.observe(self._objects_changed, names="objects")
        self._unsubscribe = widget.on_mask(self._mask_arrived)

    # ------------------------------------------------------------------------ loading

    def widget_objects(self, records: list[ObjectRecord]) -> list[dict[str, Any]]:
        """Widget object dicts for stored records (invalid stored prompts are dropped)."""
        colors = {c.name: c.color for c in self._project.categories()}
        out = []
        w, h = int(self._w.image_width), int(self._w.image_height)
        for k, rec in enumerate(records):
            obj = {
                "id": k + 1,
                "name": rec.category or f"object {k + 1}",
                "color": colors.get(rec.category or "", PALETTE[k % len(PALETTE)]),
                "points": rec.prompts.get("points") or [],
                "labels": rec.prompts.get("labels") or [],
                "box": rec.prompts.get("box"),
                "candidate": rec.prompts.get("candidate"),
                "strokes": rec.strokes or [],
            }
            try:
                normalize_objects([obj], w, h, k + 1)
            except (TypeError, ValueError):
                obj.update(points=[], labels=[], box=None, candidate=None, strokes=[])
            out.append(obj)
        return out

    def suspend(self) -> None:
        """Before ``widget.set_image``: stop syncing until :meth:`load` (the widget clears
        its objects for the new image; that must not delete the stored ones)."""
        self.flush()
        with self._lock:
            self._restoring = True
            self._image = None

    def load(self, image: ImageRecord, records: list[ObjectRecord], writable: bool) -> None:
        """After ``widget.set_image``: show ``records`` (the image's stored objects)."""
        self.flush()
        with self._lock:
            self._restoring = True
        objs = self.widget_objects(records) if writable else []
        with self._lock:
            self._image = image
            self._widget_image_id = int(self._w.image_id)
            self._entries = {}
            self._pending = {}
            self.writable = writable
        try:
            self._w.load_dict({"version": 1, "objects": objs, "active": -1,
                               "next_id": len(objs) + 1})  # fmt: skip
        finally:
            with self._lock:
                self._restoring = False
        with self._lock:
            seqs = {o["id"]: o["seq"] for o in self._w.objects}
            for obj, rec in zip(objs, records, strict=False):
                self._entries[obj["id"]] = _Entry(
                    rec.id, rec.revision, prompts_dict(obj), _strokes(obj), seqs.get(obj["id"]),
                    _counted(rec.extra),
                )  # fmt: skip
        # The stored RLE is the truth: the widget shows each stored mask as it is (also for
        # automatic objects, which have no prompts) until the user edits that object.
        for obj, rec in zip(objs, records, strict=False):
            mask = rec.mask
            if mask.shape == (int(self._w.image_height), int(self._w.image_width)):
                self._w.show_mask(obj["id"], mask, rec.predicted_iou)

    def store_id(self, widget_object_id: int) -> int | None:
        """The store id of a widget object of the current image."""
        with self._lock:
            e = self._entries.get(widget_object_id)
            return None if e is None else e.store_id

    # ------------------------------------------------------------------ widget changes

    def _objects_changed(self, change: Any) -> None:
        if self._restoring:
            return
        with self._lock:
            if self._image is None or int(self._w.image_id) != self._widget_image_id:
                return
            if not self.writable:
                self._report("This image changed on disk: edits are not saved.")
                return
            try:
                self._apply(change["new"])
            except Exception as exc:  # never let a store problem break the widget
                logger.exception("sam_widget: saving objects failed")
                self._report(f"Saving to the project failed: {type(exc).__name__}: {exc}")
        self._on_change()

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        assert self._image is not None
        new = {int(o["id"]): o for o in objects}
        for wid in [w for w in self._entries if w not in new]:
            gone = self._entries.pop(wid)
            gone.deleted = True
            try:
                self._project.delete_object(gone.store_id, revision=gone.revision)
            except (KeyError, ConflictError) as exc:
                self._report(f"Object {wid} was changed elsewhere; not deleted ({exc}).")
        for wid, obj in new.items():
            prompts, strokes = prompts_dict(obj), _strokes(obj)
            e = self._entries.get(wid)
            if e is None:
                empty = {"size": [self._image.height, self._image.width],
                         "counts": [self._image.height * self._image.width]}  # fmt: skip
                clicks, added = work(None, [], prompts, strokes)
                extra = {"clicks": clicks, "strokes": added}
                rec = self._project.add_object(
                    self._image.id, empty, category=self.category, prompts=prompts,
                    strokes=strokes, extra=extra,
                )  # fmt: skip
                e = _Entry(rec.id, rec.revision, prompts, strokes, None, extra)
                self._entries[wid] = e
                pending = self._pending.pop(wid, None)
                if pending is not None and pending.seq == obj.get("seq"):
                    self._queue.put((e, pending))
            elif prompts != e.prompts or strokes != e.strokes:
                e.count(prompts, strokes)
                rec = self._project.update_object(
                    e.store_id, prompts=prompts, strokes=strokes, extra=e.extra,
                    revision=e.revision,
                )  # fmt: skip
                e.prompts, e.strokes, e.revision = prompts, strokes, rec.revision
                if rec.source == "automatic":
                    rec = self._project.update_object(e.store_id, source="assisted",
                                                      revision=e.revision)  # fmt: skip
                    e.revision = rec.revision

    def set_category(self, widget_object_id: int, category: str | None) -> None:
        """Store the category of one object of the current image."""
        with self._lock:
            e = self._entries.get(widget_object_id)
            if e is None or not self.writable:
                return
            rec = self._project.update_object(e.store_id, category=category, revision=e.revision)
            e.revision = rec.revision

    # --------------------------------------------------------------------------- masks

    def _mask_arrived(self, object_id: int, update: Any) -> None:
        with self._lock:
            if int(update.image_id) != self._widget_image_id or self._restoring:
                return
            e = self._entries.get(int(object_id))
            if e is None:
                self._pending[int(object_id)] = update
                return
            if update.seq == e.restored_seq or update.seq <= e.written_seq:
                return
        self._queue.put((e, update))

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                e, update = item
                mask = update.mask  # full resolution, computed here, off the worker thread
                with self._lock:
                    if e.deleted or update.seq <= e.written_seq:
                        continue
                    try:
                        rec = self._project.update_object(
                            e.store_id, mask=mask, predicted_iou=update.score,
                            weights_id=self.weights_id, revision=e.revision,
                        )  # fmt: skip
                        e.revision, e.written_seq = rec.revision, int(update.seq)
                    except (KeyError, ConflictError) as exc:
                        self._report(f"A mask was not saved: {exc}")
            except Exception as exc:
                logger.exception("sam_widget: writing a mask failed")
                self._report(f"Saving a mask failed: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued mask is written."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, stop the writer thread and stop observing the widget."""
        self._unsubscribe()
        self._w.unobserve(self._objects_changed, names="objects")
        self.flush()
        self._queue.put(None)
        self._writer.join()
