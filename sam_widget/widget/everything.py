"""The widget's "segment everything": automatic masks in the background, keep one as object.

- ``start(params)`` runs ``SamAutomaticMaskGenerator(predictor, **params)`` on its own thread
  once the image's embedding is ready (the generator reuses the widget's embedding cache, so
  the full-image crop is not encoded again), with ``status="segmenting"`` and ``progress``.
  Records are sorted by area, largest first; the browser gets an ``everything`` label map at
  display resolution in which smaller masks are drawn over larger ones (so every mask stays
  visible), label ``k`` = record ``k - 1``.
- Only one run at a time: asking again while one runs returns the running ``Future``.
  A run for an image that was replaced meanwhile is cancelled (its ``Future`` raises
  ``CancelledError``) and nothing is sent.
- ``choose(index)`` says how record ``index`` becomes a real object (the widget's ``keep``):
  one positive point at the record's ``point_coords`` with the multimask ``candidate`` whose
  mask agrees best (IoU) with the record's mask. Without crop layers and small-region
  post-processing that *is* the kept mask (up to the generator's resampling); otherwise it is
  the closest mask the decoder gives for that point on the full image. Either way the object
  stays editable like any other.
- Bad parameters raise in the caller (the generator is built there once the model is loaded).
- ``show_overlay(masks, on_pick)`` draws other masks (e.g. the annotator's proposals) on the
  same layer, label ``k`` = mask ``k - 1``; while they are shown, ``pick(index)`` (the
  widget's ``keep``, a click in keep mode) calls ``on_pick(index)`` instead of ``choose``.
  A new segment-everything run, ``clear()`` and a new image (``reset()``) drop the overlay
  and its picker.
- ``close()`` cancels a run (between decoder batches) and joins its thread.

The part knows the widget's :class:`~.session.Session` (for the predictor and the current
image) and talks back only through :class:`EverythingCallbacks`.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chain import Prompt
from .codec import encode_label_map
from .session import Session
from .updates import upscale

__all__ = ["Everything", "EverythingCallbacks", "label_map_display"]


class _Cancelled(Exception):
    pass


_OPEN: weakref.WeakSet[Everything] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop runs still going at interpreter exit (a thread inside torch then can abort it)."""
    for everything in list(_OPEN):
        everything.close(timeout=5.0)


def label_map_display(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(h, w) uint16 label map of full-size bool ``masks`` sampled at display size (nearest
    pixel centre); later masks are painted over earlier ones; label k = mask k - 1."""
    out = np.zeros((height, width), dtype=np.uint16)
    if not masks:
        return out
    big_h, big_w = masks[0].shape
    rows = np.minimum(((np.arange(height) + 0.5) * big_h / height).astype(np.int64), big_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * big_w / width).astype(np.int64), big_w - 1)
    for k, m in enumerate(masks[:0xFFFF], start=1):
        out[np.asarray(m, dtype=bool)[np.ix_(rows, cols)]] = k
    return out


@dataclass
class EverythingCallbacks:
    """How segment-everything talks back (``send``/``status``/``report`` may be called from
    its thread)."""

    send: Callable[[dict[str, Any], list[bytes]], None]
    status: Callable[[str, float], None]
    report: Callable[[str, BaseException], None]
    #: (mask_height, mask_width) of the current image's display frame
    display_size: Callable[[], tuple[int, int]]


class Everything:
    """Segment-everything state of one widget (see the module docstring)."""

    def __init__(self, session: Session, callbacks: EverythingCallbacks) -> None:
        self._session = session
        self.cb = callbacks
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] | None = None
        self._image_id = -1
        self._labels: np.ndarray | None = None
        self._count = 0  # masks on the layer
        self._source = "everything"  # what the layer shows: "everything" or "overlay"
        self._pick: Callable[[int], Any] | None = None  # the overlay's picker
        self._running: Future[list[dict[str, Any]]] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        _OPEN.add(self)

    @property
    def records(self) -> list[dict[str, Any]] | None:
        """Records of the last finished run on the current image (None if there is none)."""
        with self._lock:
            if self._records is None or self._image_id != self._session.image_id:
                return None
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            self._records, self._labels, self._image_id = None, None, -1
            self._count, self._source, self._pick = 0, "everything", None

    def clear(self) -> None:
        self.reset()
        self.cb.send({"type": "clear_everything"}, [])

    def resend(self) -> None:
        with self._lock:
            labels, image_id, count = self._labels, self._image_id, self._count
            source = self._source
        if labels is not None and image_id == self._session.image_id:
            self._send(image_id, count, labels, source)

    def _send(self, image_id: int, count: int, labels: np.ndarray, source: str) -> None:
        h, w = labels.shape
        content = {
            "type": "everything",
            "image_id": image_id,
            "count": count,
            "width": w,
            "height": h,
            "source": source,
        }
        self.cb.send(content, [encode_label_map(labels)])

    def show_overlay(
        self, masks: list[np.ndarray], image_id: int, on_pick: Callable[[int], Any] | None
    ) -> None:
        """Draw ``masks`` (full-size (H, W) bool each, of image ``image_id``) on the layer,
        label k = mask k - 1, and make ``on_pick(k)`` what a kept mask k does (None: nothing
        is kept). Replaces what the layer showed (a segment-everything result too); ``[]``
        clears it."""
        if not masks:
            self.clear()
            return
        mh, mw = self.cb.display_size()
        labels = label_map_display(list(masks), mh, mw)
        with self._lock:
            self._records, self._labels, self._image_id = None, labels, image_id
            self._count, self._source, self._pick = len(masks), "overlay", on_pick
        self._send(image_id, len(masks), labels, "overlay")

    def pick(self, index: Any) -> tuple[bool, Any]:
        """``(True, on_pick(index))`` while an overlay with a picker is shown on the current
        image, else ``(False, None)`` (segment-everything's ``choose`` applies). Raises
        ``ValueError`` naming ``index`` when it is not a shown mask's index."""
        with self._lock:
            pick, count, image_id = self._pick, self._count, self._image_id
        if pick is None or image_id != self._session.image_id:
            return False, None
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not (0 <= int(index) < count)
        ):
            raise ValueError(f"index must be an integer in 0..{count - 1}, got {index!r}.")
        return True, pick(int(index))

    def _generator(self, params: dict[str, Any]) -> Any:
        from ..engine.amg import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator(self._session.predictor, **params)

    def start(
        self, params: dict[str, Any], image_id: int, image: np.ndarray
    ) -> Future[list[dict[str, Any]]]:
        """Run the generator on ``image`` (the session's image ``image_id``) in the
        background; bad parameters raise here."""
        import inspect

        from ..engine.amg import SamAutomaticMaskGenerator

        if self._closed:
            raise RuntimeError("the widget is closed.")
        # Bad parameter names/values fail here, in the caller's thread: names by signature,
        # values by building the generator (which needs the model: wait for it when values
        # were given; the defaults are known to be good).
        inspect.signature(SamAutomaticMaskGenerator).bind(None, **params)
        if params.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("segment_everything needs output_mode='binary_mask' (the default).")
        if params:
            self._session.wait_loaded()
            self._generator(params)
        with self._lock:
            running = self._running
            if running is not None and not running.done():
                return running
            future: Future[list[dict[str, Any]]] = Future()
            future.set_running_or_notify_cancel()
            self._running = future
            dropped = self._source == "overlay"  # a new run replaces an overlay and its picker
            if dropped:
                self._records, self._labels, self._image_id = None, None, -1
                self._count, self._source, self._pick = 0, "everything", None
            thread = threading.Thread(
                target=self._run,
                args=(future, dict(params), image_id, image),
                daemon=True,
                name="sam-widget-everything",
            )
            self._thread = thread
        if dropped:
            self.cb.send({"type": "clear_everything"}, [])
        thread.start()
        return future

    def _stale(self, image_id: int) -> bool:
        return self._closed or self._session.closed or self._session.image_id != image_id

    def _run(
        self,
        future: Future[list[dict[str, Any]]],
        params: dict[str, Any],
        image_id: int,
        image: np.ndarray,
    ) -> None:
        session = self._session
        try:
            session.wait_ready()
            if self._stale(image_id):
                raise _Cancelled
            generator = self._generator(params)
            last = [-1.0]

            def progress(fraction: float) -> None:
                if self._stale(image_id):
                    raise _Cancelled
                if fraction - last[0] >= 0.02 or fraction >= 1.0:
                    last[0] = fraction
                    self.cb.status("segmenting", float(fraction))

            self.cb.status("segmenting", 0.0)
            records = generator.generate(image, progress_callback=progress)
            records.sort(key=lambda r: -int(r["area"]))
            if self._stale(image_id):
                raise _Cancelled
            mh, mw = self.cb.display_size()
            labels = label_map_display([r["segmentation"] for r in records], mh, mw)
            with self._lock:
                self._records, self._labels, self._image_id = records, labels, image_id
                self._count, self._source, self._pick = len(records), "everything", None
            self._send(image_id, len(records), labels, "everything")
            future.set_result(records)
        except _Cancelled:
            future.set_exception(CancelledError("the image changed during segment-everything"))
        except Exception as exc:
            if self._closed:
                future.set_exception(CancelledError("the widget was closed"))
            else:
                self.cb.report("Segment everything failed", exc)
                future.set_exception(exc)
        finally:
            if session.frame is not None and not self._closed:
                session.report_status()

    def choose(self, index: Any) -> tuple[tuple[float, float], int | None]:
        """The point (XY, original pixels) and candidate that make record ``index`` an
        object (see the module docstring); decodes on the caller's thread."""
        with self._lock:
            records, image_id = self._records, self._image_id
        if records is None or image_id != self._session.image_id:
            raise ValueError("there is no segment-everything result for the current image.")
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not (0 <= int(index) < len(records))
        ):
            raise ValueError(f"index must be an integer in 0..{len(records) - 1}, got {index!r}.")
        rec = records[int(index)]
        x, y = (float(v) for v in rec["point_coords"][0])
        update = self._session.decode_prompt(Prompt(((x, y),), (1,)))
        target = np.asarray(rec["segmentation"], dtype=bool)
        best, best_iou = None, -1.0
        for c in range(update.result.logits.shape[0]):
            logits = upscale(update.result.logits[c : c + 1], update.frame, "original")[0]
            m = (logits > update.frame.threshold).cpu().numpy()
            union = np.logical_or(m, target).sum()
            iou = float(np.logical_and(m, target).sum() / union) if union else 1.0
            if iou > best_iou:
                best, best_iou = c, iou
        return (x, y), best

    def close(self, timeout: float | None = 10.0) -> None:
        """Cancel a run (at its next decoder batch) and join its thread."""
        self._closed = True
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        _OPEN.discard(self)
