"""The widget's Explain panel, kernel side: explain the active object's decodes.

``submit(update, obj)`` is called on the session's worker thread right after a mask
message went out (so a click's mask never waits for an explanation). The explanation runs on
this part's own thread: only the newest job is kept; a job is dropped when its object's
``seq`` or the image changed meanwhile (checked before and after the work), or when the
panel was switched off. The trace reuses the predictor's image embedding
(:func:`sam_widget.explain.explain` with the decode's own prompts and ``mask_input``), so
the explained masks are the widget's masks. The session's predictor is held only to take a
:class:`_ImageView` of its current image (embedding, sizes); the trace runs on that view
without the session's lock (the tracer adds no hooks to the model), so the next click's
decode does not wait for it. The embedding PCA is sent once per image (again
after ``resend``).

``submit_everything`` explains segment-everything stage by stage
(:func:`sam_widget.explain.explain_amg`, the same thread, after any pending decode job) and
sends :func:`.explain_everything.everything_message` unless the image changed meanwhile.

Talks back only through ``send`` and ``report``; knows the :class:`~.session.Session` for
the predictor and the current ``seq`` of each object.
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

from ..explain.amg import AmgExplanation, explain_amg
from ..explain.decode import explain
from ..explain.pca import embedding_pca
from .chain import Prompt
from .explain_everything import everything_message
from .explain_message import explain_message
from .session import Session
from .updates import Frame, MaskUpdate, upscale

__all__ = ["Explainer"]

_OPEN: weakref.WeakSet[Explainer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for part in list(_OPEN):
        part.close(timeout=5.0)


class _ImageView:
    """What :func:`explain` reads of a predictor, fixed at one image: the model, the
    embedding and the sizes, and ``upscale`` through the image's :class:`.updates.Frame`."""

    is_image_set = True

    def __init__(self, predictor: Any, frame: Frame) -> None:
        self.model = predictor.model
        self.device = predictor.device
        self.original_size = frame.original_size
        self.input_size = frame.input_size
        self._features = predictor.get_image_embedding()  # 1 x C x h x w
        self._frame = frame

    def get_image_embedding(self) -> Any:
        return self._features

    def upscale(self, low_res_logits: Any, size: str = "original") -> Any:
        return upscale(low_res_logits, self._frame, size)


@dataclass(frozen=True)
class _Job:
    update: MaskUpdate
    prompt: Prompt


@dataclass(frozen=True)
class _AmgJob:
    params: dict[str, Any]
    image_id: int
    image: np.ndarray
    display: tuple[int, int]  # (h, w) of the browser's masks
    future: Future[AmgExplanation]


class Explainer:
    """Explanations of decodes on a thread of their own (see the module docstring).

    Args:
        session: the widget's session (predictor, current image and seqs).
        image: returns the current (H, W, 3) uint8 image and its id.
        enabled: whether the panel is on (read before and after each explanation).
        send: ``send(content, buffers)`` to the browser.
        report: ``report(what, exc)`` for a failure (the widget's error line).
    """

    def __init__(
        self,
        session: Session,
        *,
        image: Callable[[], tuple[np.ndarray | None, int]],
        enabled: Callable[[], bool],
        send: Callable[[dict[str, Any], list[bytes]], None],
        report: Callable[[str, BaseException], None],
    ) -> None:
        self._session = session
        self._image = image
        self._enabled = enabled
        self._send = send
        self._report = report
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._amg: _AmgJob | None = None
        self._busy = False
        self._closed = False
        self._pca_sent = -1  # image id whose PCA the browser has
        self.computed = 0  # explanations computed (tests: "off" computes nothing)
        self._thread = threading.Thread(target=self._run, name="sam-widget-explain", daemon=True)
        _OPEN.add(self)
        self._thread.start()

    def submit(self, update: MaskUpdate, obj: dict[str, Any]) -> None:
        """Explain ``update`` (a decode of ``obj`` at its current ``seq``) if the panel is on."""
        if not self._enabled() or update.result.empty or int(obj["seq"]) != update.seq:
            return
        with self._cond:
            self._job = _Job(update, Prompt.from_object(obj))
            self._cond.notify_all()

    def submit_everything(
        self, params: dict[str, Any], image_id: int, image: np.ndarray, display: tuple[int, int]
    ) -> Future[AmgExplanation]:
        """Explain segment-everything with ``params`` (generator keywords) on ``image``
        (the session's image ``image_id``); ``display``: (h, w) of the browser's masks.
        A request still waiting is replaced (its future is cancelled)."""
        future: Future[AmgExplanation] = Future()
        future.set_running_or_notify_cancel()
        with self._cond:
            if self._closed:
                raise RuntimeError("the widget is closed.")
            old, self._amg = self._amg, _AmgJob(dict(params), image_id, image, display, future)
            self._cond.notify_all()
        if old is not None:
            old.future.set_exception(CancelledError("a newer request replaced it"))
        return future

    def resend(self) -> None:
        """A new view: send the PCA again with the next explanation."""
        with self._cond:
            self._pca_sent = -1

    def idle(self) -> bool:
        with self._cond:
            return self._job is None and self._amg is None and not self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._job is None and self._amg is None and not self._busy, timeout
            )

    def close(self, timeout: float | None = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._job = None
            amg, self._amg = self._amg, None
            self._cond.notify_all()
        if amg is not None:
            amg.future.set_exception(CancelledError("the widget was closed"))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _current(self, update: MaskUpdate) -> bool:
        return self._enabled() and self._session.is_current(
            update.image_id, update.object_id, update.seq
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or self._job is not None or self._amg is not None
                )
                if self._closed:
                    return
                job, self._job = self._job, None
                amg = None if job is not None else self._amg
                if amg is not None:
                    self._amg = None
                self._busy = True
            try:
                if job is not None and self._current(job.update):
                    self._explain(job)
                if amg is not None:
                    self._explain_everything(amg)
            except Exception as exc:
                if amg is not None:
                    amg.future.set_exception(exc)
                    self._report("Explaining segment-everything failed", exc)
                else:
                    self._report("Explaining the mask failed", exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _explain(self, job: _Job) -> None:
        update, prompt = job.update, job.prompt
        result = update.result
        mask_input = result.mask_input
        points = np.asarray(prompt.points, dtype=np.float64) if prompt.points else None
        labels = np.asarray(prompt.labels, dtype=np.int64) if prompt.points else None
        box = np.asarray(prompt.box, dtype=np.float64) if prompt.box is not None else None

        view = self._session.on_image(update.image_id, lambda p: _ImageView(p, update.frame))
        image, image_id = self._image()
        if view is None or image is None or image_id != update.image_id:
            return  # another image meanwhile
        ex = explain(
            view,
            point_coords=points,
            point_labels=labels,
            box=box,
            mask_input=None if mask_input is None else mask_input.detach().cpu().numpy(),
        )
        embedding = view.get_image_embedding()
        self.computed += 1
        pca = embedding_pca(embedding) if self._pca_sent != update.image_id else None
        content, buffers = explain_message(
            ex,
            image,
            image_id=update.image_id,
            object_id=update.object_id,
            seq=update.seq,
            multimask=result.multimask,
            index=result.index,
            picked=result.multimask and prompt.candidate is not None,
            pca=pca,
        )
        if not self._current(update):
            return  # a newer click, another image, or the panel switched off
        self._send(content, buffers)
        if pca is not None:
            self._pca_sent = update.image_id

    def _explain_everything(self, job: _AmgJob) -> None:
        from ..engine.amg import SamAutomaticMaskGenerator

        session = self._session
        session.wait_ready()
        if session.image_id != job.image_id:
            job.future.set_exception(CancelledError("the image changed"))
            return
        generator = SamAutomaticMaskGenerator(session.predictor, **job.params)
        amg = explain_amg(generator, job.image)
        if session.image_id != job.image_id:
            job.future.set_exception(CancelledError("the image changed"))
            return
        h, w = job.display
        content, buffers = everything_message(amg, image_id=job.image_id, height=h, width=w)
        self._send(content, buffers)
        job.future.set_result(amg)
