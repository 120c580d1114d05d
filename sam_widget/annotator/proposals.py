"""Phase 2 of the SAM data engine: automatic proposals the annotator accepts or rejects.

:class:`Proposer` runs ``SamAutomaticMaskGenerator`` on the current image on its own thread
(one run at a time; a ``Future`` of the proposals) and keeps only the records that do not
overlap an existing object: IoU with every existing mask at most ``iou_threshold``
(SAM paper, section 4: in the semi-automatic stage annotators were shown the confident
masks and added what was missing). The proposals are sorted by predicted IoU, best first.
A run is cancelled (its ``Future`` raises ``CancelledError``) when :meth:`Proposer.cancel`
is called, e.g. because the user went to another image.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..data.store import ObjectRecord
    from .annotator import SamAnnotator

__all__ = ["ProposalSession", "Proposer", "non_overlapping"]


class _Cancelled(Exception):
    pass


def non_overlapping(
    records: list[dict[str, Any]], existing: np.ndarray, iou_threshold: float
) -> list[dict[str, Any]]:
    """The non-empty records whose mask has IoU <= ``iou_threshold`` with every (H, W) mask
    in ``existing`` (N, H, W), sorted by predicted IoU (best first)."""
    ex = np.asarray(existing, dtype=bool)
    # N x H x W -> N x HW
    flat = ex.reshape(ex.shape[0], ex.shape[1] * ex.shape[2])
    areas = flat.sum(axis=1)
    kept = []
    for rec in records:
        m = np.asarray(rec["segmentation"], dtype=bool).reshape(-1)  # H x W -> HW
        if not m.any():
            continue  # nothing to offer
        inter = flat[:, m].sum(axis=1) if flat.shape[0] else np.zeros(0)
        union = areas + m.sum() - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        if not (iou > iou_threshold).any():
            kept.append(rec)
    kept.sort(key=lambda r: -float(r.get("predicted_iou", 0.0)))
    return kept


class Proposer:
    """Background proposal runs (see the module docstring).

    ``predictor``: the ``SamPredictor`` the generator uses (its cache makes the full-image
    crop free when the image was encoded before). ``progress(fraction)`` is called from the
    run's thread.
    """

    def __init__(self, predictor: Any, progress: Callable[[float], None]) -> None:
        self._predictor = predictor
        self._progress = progress
        self._lock = threading.Lock()
        self._generation = 0
        self._running: Future[list[dict[str, Any]]] | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running is not None and not self._running.done()

    def start(
        self,
        image: np.ndarray,
        existing: np.ndarray,
        iou_threshold: float,
        params: dict[str, Any],
        on_result: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> Future[list[dict[str, Any]]]:
        """Propose masks for ``image`` ((H, W, 3) uint8) that do not overlap ``existing``;
        ``on_result(proposals)`` runs on the run's thread before the ``Future`` resolves."""
        from ..engine.amg import SamAutomaticMaskGenerator

        inspect.signature(SamAutomaticMaskGenerator).bind(None, **params)  # bad names: here
        if params.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("proposals need output_mode='binary_mask' (the default)")
        if not 0.0 <= float(iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
        generator = SamAutomaticMaskGenerator(self._predictor, **params)  # bad values: here
        self.cancel()
        future: Future[list[dict[str, Any]]] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._running = future
            self._thread = threading.Thread(
                target=self._run,
                args=(
                    future,
                    generator,
                    image,
                    existing,
                    float(iou_threshold),
                    generation,
                    on_result,
                ),  # fmt: skip
                daemon=True,
                name="sam-annotator-proposals",
            )
            self._thread.start()
        return future

    def _run(
        self,
        future: Future[list[dict[str, Any]]],
        generator: Any,
        image: np.ndarray,
        existing: np.ndarray,
        iou_threshold: float,
        generation: int,
        on_result: Callable[[list[dict[str, Any]]], None] | None,
    ) -> None:
        def progress(fraction: float) -> None:
            if self._generation != generation:
                raise _Cancelled
            self._progress(float(fraction))

        try:
            records = generator.generate(image, progress_callback=progress)
            if self._generation != generation:
                raise _Cancelled
            kept = non_overlapping(records, existing, iou_threshold)
            if on_result is not None:
                on_result(kept)
            future.set_result(kept)
        except _Cancelled:
            future.set_exception(CancelledError("the proposals were cancelled"))
        except Exception as exc:
            future.set_exception(exc)

    def cancel(self) -> None:
        """Cancel a running run (at its next progress report) and wait for its thread."""
        with self._lock:
            self._generation += 1
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def stored_fields(record: dict[str, Any]) -> dict[str, Any]:
    """``Project.add_object`` keywords for an accepted proposal (source "assisted"; its
    prompt is the generator's point, so a click refines it like any object)."""
    point = [float(v) for v in record["point_coords"][0]]
    return {
        "prompts": {"points": [point], "labels": [1], "box": None, "candidate": None},
        "source": "assisted",
        "predicted_iou": record.get("predicted_iou"),
        "stability_score": record.get("stability_score"),
        "extra": {"point_coords": record["point_coords"], "crop_box": record.get("crop_box")},
    }


class ProposalSession:
    """The open proposals of an annotator's current image (the annotator's ``propose``,
    ``proposals``, ``accept``, ``accept_all`` and ``reject`` delegate here)."""

    def __init__(self, annotator: SamAnnotator, predictor: Any) -> None:
        self.a = annotator
        self.records: list[dict[str, Any]] = []
        self.progress = 0.0
        self.proposer = Proposer(predictor, self._progress)

    def _progress(self, fraction: float) -> None:
        self.progress = fraction

    @property
    def running(self) -> bool:
        return self.proposer.running

    def propose(self, iou_threshold: float, params: dict[str, Any]) -> Future[list[dict[str, Any]]]:
        a = self.a
        a.sync.flush()
        index, existing = a.index, a.masks()

        def done(records: list[dict[str, Any]]) -> None:
            if a.index != index:
                return
            self.records = records
            self.show()
            a._refresh()

        return self.proposer.start(a.widget.image, existing, iou_threshold, params, done)

    def accept(self, which: int | list[int]) -> list[ObjectRecord]:
        a = self.a
        picks = [which] if isinstance(which, (int, np.integer)) else list(which)
        n = len(self.records)
        for k in picks:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < n:
                raise ValueError(f"proposal indices must be in 0..{n - 1}, got {k!r}")
        if not a.sync.writable:
            raise ValueError("this image changed on disk: its objects cannot be edited")
        rec = a.images[a.index]
        added = [a.project.add_object(rec, self.records[k]["segmentation"], category=a.category,
                                      **stored_fields(self.records[k]))
                 for k in picks]  # fmt: skip
        self.records = [p for k, p in enumerate(self.records) if k not in set(picks)]
        a._reload()
        self.show()  # the rest, numbered anew
        a._refresh()
        return added

    def show(self) -> None:
        """Draw the open proposals on the widget (label k = proposal k - 1); a click on one
        in keep mode accepts it (:meth:`picked`)."""
        masks = [np.asarray(r["segmentation"], dtype=bool) for r in self.records]
        self.a.widget.show_overlay(masks, on_pick=self.picked if masks else None)

    def picked(self, k: int) -> int:
        """Accept proposal ``k`` clicked in the browser; returns the new object's widget id
        (the stored objects are shown in store order, so it is the last one)."""
        self.accept(k)
        return int(self.a.widget.objects[-1]["id"])

    def accept_all(self, min_iou: float) -> list[ObjectRecord]:
        good = [k for k, p in enumerate(self.records)
                if float(p.get("predicted_iou", 0.0)) >= min_iou]  # fmt: skip
        return self.accept(good) if good else []

    def cancel(self) -> None:
        self.proposer.cancel()

    def clear(self) -> None:
        """Cancel a run and drop the proposals (and their overlay)."""
        self.proposer.cancel()
        if self.records:
            self.a.widget.clear_everything()
        self.records = []
