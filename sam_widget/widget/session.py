"""The widget's kernel-side worker: model loading, background encoding, decoding, stale-drop.

One daemon thread per widget does the model work, in this order of priority: load the model,
encode the current image, decode objects whose prompts changed, decode the hover preview.

- **Coalescing** (latest wins): pending decodes are kept per object id, a newer prompt state
  of the same object replaces the older one; only the newest hover request is kept. So the
  queue never holds more than one job per object plus one hover job.
- **Prompts during encoding** stay queued and run once the image's embedding is set.
- **Stale-drop and cancellation**: every job carries ``image_id`` and the object's ``seq``
  (hover: its own ``seq``). A job is checked before each decoder run: work for a newer
  prompt state, a deleted object or a replaced image is abandoned, and a result is sent only
  if, when it is ready, the image and the ``seq`` are still current. An encoding for a
  replaced image is cancelled from its progress callback. Each prompt change costs one
  decoder run (:mod:`.chain`); replaying a loaded history (:meth:`Session.replay`) is the
  one job of many runs, and it is checked between them.
- **Strokes** (brush/eraser) travel with the job and are applied to the decoded mask
  (:class:`MaskUpdate`); a change of strokes alone finds its prompt's result in the object's
  memo, so it costs no decoder run.
- **Memory**: per object the session keeps its :class:`~.chain.ObjectMemo` (a few low-res
  results) and its last :class:`MaskUpdate`; both go when the object is deleted or its
  prompts are cleared, everything goes with a new image.
- **Status**: ``"decoding"`` while object decodes are queued or running, ``"ready"`` once
  none are (set before ``wait_idle`` returns), so ``status`` never says "ready" while work
  is pending.
- **Shutdown**: :meth:`Session.close` stops and joins the thread; an ``atexit`` hook closes
  every session still open at interpreter exit (a daemon thread inside torch at exit can
  abort the process).
- **Thread safety**: ``_cond`` guards the queue and the bookkeeping (held only for short
  sections); ``_plock`` guards every use of the predictor (``set_embedding``/``decode``), so
  the synchronous paths (``w.masks``) and the worker never interleave on it. Lock order:
  ``_plock`` may be held while taking ``_cond``, never the reverse.
- **Errors** never kill the worker: they are logged on ``logging.getLogger("sam_widget")``
  and reported through the ``error`` callback; model-load and encoding failures also set
  status ``"error"``.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .cancel import Cancelled as _Cancelled
from .cancel import cancellable as _cancellable
from .cancel import install_cancel_points as _install_cancel_points
from .chain import ChainResult, ObjectMemo, Prompt, run_chain
from .codec import encode_mask
from .decode_queue import DecodeJob, DecodeQueue
from .objects import copy_strokes
from .updates import Frame, MaskUpdate, describe_error

__all__ = ["Callbacks", "Frame", "MaskUpdate", "Session", "describe_error"]

logger = logging.getLogger("sam_widget")


@dataclass
class Callbacks:
    """How the session talks back to its widget (called from the worker thread)."""

    send: Callable[[dict[str, Any], list[bytes]], None]
    status: Callable[[str, float], None]
    error: Callable[[str], None]
    loaded: Callable[[Any], None] = field(default=lambda predictor: None)
    mask: Callable[[MaskUpdate], None] = field(default=lambda update: None)
    ready: Callable[[int], None] = field(default=lambda image_id: None)


@dataclass(frozen=True)
class _Hover:
    image_id: int
    seq: int
    prompt: Prompt
    object_id: int  # whose stage cache to use (-1: none active)


def _strokes_of(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """The object's strokes, copied (a job must not see later edits of the dict)."""
    return tuple(copy_strokes(obj.get("strokes") or ()))


_OPEN: weakref.WeakSet[Session] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop every worker before the interpreter tears down (see the module docstring)."""
    for session in list(_OPEN):
        session.close(timeout=5.0)


class Session:
    """Background worker of one widget (see the module docstring)."""

    def __init__(self, callbacks: Callbacks, *, refine: bool = True) -> None:
        self.cb = callbacks
        self.refine = bool(refine)
        self._cond = threading.Condition()
        self._plock = threading.RLock()
        self.predictor: Any = None
        self._load: Callable[[], Any] | None = None
        self._load_error: str | None = None
        self._image_id = -1
        self._encode: tuple[int, np.ndarray] | None = None
        self._encode_error: str | None = None
        self._frame: Frame | None = None  # of the embedding set in the predictor
        # object decodes, latest state per object wins, with the refinement backlog
        self._queue = DecodeQueue(self._refines)
        self._hover: _Hover | None = None
        self._hover_seq = -1
        self._results: dict[int, MaskUpdate] = {}
        # (image_id, object_id) -> what that object remembers of its decodes on that image
        self._memos: dict[tuple[int, int], ObjectMemo] = {}
        self._replay: tuple[int, list[list[dict[str, Any]]]] | None = None
        self._replaying = False
        self._busy = False
        self._decoding = False  # the running job is an object decode
        self._running: DecodeJob | None = None  # that decode
        self._status = ""  # the last status this session reported
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sam-widget-worker", daemon=True)
        _OPEN.add(self)
        self._thread.start()

    # ---------------------------------------------------------------- requests (any thread)

    def load(self, factory: Callable[[], Any]) -> None:
        """Make the predictor with ``factory()`` on the worker (status ``"loading"``)."""
        with self._cond:
            self._load = factory
            self._load_error = None
            self._cond.notify_all()

    def set_image(self, image_id: int, image: np.ndarray) -> None:
        """Switch to a new image: forget every object, pending job and cached stage."""
        with self._cond:
            self._image_id = int(image_id)
            self._encode = (int(image_id), image)
            self._encode_error = None
            self._queue.clear()
            self._hover = None
            self._results.clear()
            self._memos = {}  # swapped, not cleared: a decode in flight may still read the old
            self._replay = None
            self._cond.notify_all()

    def submit(self, obj: Mapping[str, Any]) -> None:
        """Queue a decode of ``obj`` (an object dict) for the current image (latest wins)."""
        oid, seq, prompt = int(obj["id"]), int(obj["seq"]), Prompt.from_object(obj)
        with self._cond:
            self._queue.submit(
                DecodeJob(self._image_id, oid, seq, prompt, strokes=_strokes_of(obj))
            )
            if self._hover is not None and self._hover.object_id == oid:
                # A click pre-empts hover: that preview was built on the object's old
                # prompts, so it is dropped before any work is done on it.
                self._hover = None
            if prompt.empty:  # cleared: free what the object remembered
                self._memos.pop((self._image_id, oid), None)
            self._cond.notify_all()
        self._report_status()

    def show_mask(self, obj: Mapping[str, Any], mask: np.ndarray, score: float | None) -> None:
        """Show ``mask`` ((H, W) bool) as the mask of ``obj`` at its current seq instead of
        decoding its prompts (a stored mask is the truth: a reopened annotator project,
        automatic masks without prompts). The next prompt change decodes as usual."""
        oid, seq, prompt = int(obj["id"]), int(obj["seq"]), Prompt.from_object(obj)
        with self._cond:
            self._queue.show(DecodeJob(self._image_id, oid, seq, prompt, (mask, score)))
            self._cond.notify_all()
        self._report_status()

    def use_predictor(
        self, predictor: Any, image: np.ndarray | None, object_ids: list[int]
    ) -> None:
        """Go on with ``predictor`` (another model on the same image). ``image``: the
        current image to encode again with it, or None when ``predictor`` already holds the
        current image's embedding (same encoder). What the objects ``object_ids``
        remember of the old model's decodes is dropped, so their next decode comes from
        the new model; pending jobs and the hover preview are dropped (resubmit them)."""
        _install_cancel_points(getattr(predictor, "model", None))
        with self._plock, self._cond:
            self.predictor = predictor
            self._memos = {}  # swapped, not cleared (as set_image)
            self._queue.drop_jobs()
            self._hover = None
            self._replay = None
            for oid in object_ids:
                self._results.pop(int(oid), None)
            if image is not None:
                self._frame = None
                self._encode = (self._image_id, image)
                self._encode_error = None
            self._cond.notify_all()

    def replay(self, states: list[list[dict[str, Any]]]) -> None:
        """Decode the objects of ``states`` (history states, oldest first) in order, as they
        were first decoded, so that refined masks come out as they were (``load_dict``).
        Queued before any object decode; cancelled by a new image, a new replay or close."""
        with self._cond:
            self._replay = (self._image_id, [list(s) for s in states])
            self._cond.notify_all()

    def forget(self, object_id: int) -> None:
        """The object was deleted: drop its pending job, result and stages."""
        with self._cond:
            self._queue.forget(object_id)
            self._results.pop(object_id, None)
            self._memos.pop((self._image_id, object_id), None)

    def hover(self, seq: int, prompt: Prompt | None, object_id: int = -1) -> None:
        """Request a hover preview for ``prompt`` (None clears: an empty preview is sent)."""
        with self._cond:
            self._hover_seq = int(seq)
            image_id = self._image_id
            self._hover = None if prompt is None else _Hover(image_id, int(seq), prompt, object_id)
            self._cond.notify_all()
        if prompt is None:
            self.cb.send(self._hover_message(image_id, int(seq)), [])

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker (an encoding is cancelled at its next progress step, a decode
        finishes) and join its thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        _OPEN.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- state queries

    @property
    def image_id(self) -> int:
        return self._image_id

    @property
    def frame(self) -> Frame | None:
        """Geometry of the current image once its embedding is set, else None."""
        frame = self._frame
        return frame if frame is not None and frame.image_id == self._image_id else None

    def is_current(self, image_id: int, object_id: int, seq: int) -> bool:
        with self._cond:
            return image_id == self._image_id and self._queue.seq(object_id) == seq

    def idle(self) -> bool:
        """Nothing queued or running (tests and ``wait`` use it)."""
        with self._cond:
            return not (
                self._busy or self._load or self._encode or self._queue or self._hover
            ) and not (self._replay or self._replaying)

    def held_bytes(self) -> int:
        """Bytes of low-res logits the session keeps for the current image's objects."""
        with self._cond:
            memos = list(self._memos.values())
            results = list(self._results.values())
        return sum(m.nbytes() for m in memos) + sum(
            u.result.logits.element_size() * u.result.logits.nelement() for u in results
        )

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    self._closed
                    or not (
                        self._busy
                        or self._load
                        or self._encode_pending()
                        or self._queue
                        or self._replay
                        or (self._hover and self._can_decode())
                    )
                ),
                timeout,
            )

    def wait(self, timeout: float | None = None) -> None:
        """Block until the image is encoded and nothing is queued or running; raises
        ``TimeoutError`` when ``timeout`` passes first (``RuntimeError`` as
        :meth:`wait_ready`)."""
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        self.wait_ready(timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.wait_idle(left):
            raise TimeoutError(
                f"the widget is still busy after {timeout} s (decodes pending); "
                "call wait() again or use a larger timeout"
            )
        if self._closed:
            raise RuntimeError("the widget is closed.")

    def wait_loaded(self, timeout: float | None = None) -> Any:
        """Block until the model is loaded; returns the predictor (raises as
        :meth:`wait_ready`)."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._closed or self.predictor is not None or self._load_error is not None,
                timeout,
            )
            if self._load_error is not None:
                raise RuntimeError(self._load_error)  # already says what failed and what to do
            if self._closed:
                raise RuntimeError("the widget is closed.")
            if not ok:
                raise TimeoutError("the model is not loaded yet")
            return self.predictor

    def report_status(self) -> None:
        """Report the status as it is now (after another part used the status line)."""
        self._status = ""
        self._report_status()

    def _report_status(self) -> None:
        # "decoding" while object decodes are queued or running, else "ready" (only once the
        # image is encoded: loading/encoding/error are reported by their jobs).
        with self._cond:
            if not self._can_decode() or self._closed:
                return
            pending = bool(self._queue or self._replay or self._replaying or self._decoding)
            status = "decoding" if pending else "ready"
            if status == self._status:
                return
            self._status = status
        self.cb.status(status, 1.0)

    def _encode_pending(self) -> bool:
        return self._encode is not None and self._load_error is None

    def _can_decode(self) -> bool:
        frame = self._frame
        return frame is not None and frame.image_id == self._image_id

    def wait_ready(self, timeout: float | None = None) -> Frame:
        """Block until the current image's embedding is set; raise if that failed."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (
                    self._closed
                    or self._can_decode()
                    or self._load_error is not None
                    or self._encode_error is not None
                ),
                timeout,
            )
            if self._load_error is not None:
                raise RuntimeError(self._load_error)
            if self._encode_error is not None:
                raise RuntimeError(f"the image could not be encoded: {self._encode_error}")
            if self._closed:
                raise RuntimeError("the widget is closed.")
            if not ok or self._frame is None:
                raise TimeoutError("the image embedding is not ready yet")
            return self._frame

    def result(self, obj: Mapping[str, Any], timeout: float | None = None) -> MaskUpdate:
        """The mask of ``obj`` for the current image, decoding now if no current result exists.

        Blocks until the image is encoded. Runs on the caller's thread.
        """
        oid, seq = int(obj["id"]), int(obj["seq"])
        self.wait_ready(timeout)
        with self._cond:
            # a loaded history is being replayed: its masks come from that order
            if not self._cond.wait_for(
                lambda: self._closed or not (self._replay or self._replaying), timeout
            ):
                raise TimeoutError("the loaded history is still being replayed")
            image_id = self._image_id

            def settled() -> bool:
                # The worker's job for this very state (queued or running) gives the mask:
                # its refinement backlog or a given mask, which a decode here would bypass.
                queued, running = self._queue.queued(oid), self._running
                return self._closed or not (
                    (queued is not None and queued.seq == seq)
                    or (running is not None and (running.object_id, running.seq) == (oid, seq))
                )

            if not self._cond.wait_for(settled, timeout):
                raise TimeoutError(f"the mask of object {oid} is still being computed")
            have = self._results.get(oid)
        if have is not None and have.image_id == image_id and have.seq == seq:
            return have
        with self._plock:
            frame = self.frame
            if frame is None or frame.image_id != image_id:
                raise RuntimeError("the image changed while its masks were being computed")
            result = self._chain(Prompt.from_object(obj), oid, frame.image_id)
            update = MaskUpdate(oid, seq, frame, result, _strokes_of(obj))
        with self._cond:
            if self._queue.seq(oid) == seq and image_id == self._image_id:
                self._results[oid] = update
        return update

    def last_result(self, object_id: int) -> MaskUpdate | None:
        """The last mask sent for ``object_id`` on the current image (None: none yet)."""
        with self._cond:
            have = self._results.get(int(object_id))
            return have if have is not None and have.image_id == self._image_id else None

    def on_image(self, image_id: int, fn: Callable[[Any], Any]) -> Any:
        """``fn(predictor)`` while ``image_id``'s embedding is the one set in the predictor
        (between decoder runs); None, without calling ``fn``, if it is not."""
        with self._plock:
            frame = self.frame
            if self.predictor is None or frame is None or frame.image_id != image_id:
                return None
            return fn(self.predictor)

    def decode_prompt(self, prompt: Prompt, timeout: float | None = None) -> MaskUpdate:
        """Decode a prompt that belongs to no object (e.g. to compare with a kept mask)."""
        self.wait_ready(timeout)
        with self._plock:
            frame = self.frame
            if frame is None:
                raise RuntimeError("the image changed while decoding")
            return MaskUpdate(-1, -1, frame, self._chain(prompt, None, frame.image_id))

    # ---------------------------------------------------------------- model work

    def _decode_fn(
        self,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, iou = self.predictor.decode(
            points, labels, box=box, mask_input=mask_input, multimask_output=multimask
        )
        return logits, iou

    def _chain(
        self, prompt: Prompt, object_id: int | None, image_id: int, *, hover: bool = False
    ) -> ChainResult:
        # Caller holds _plock and has checked that image_id's embedding is the one set.
        memo = None
        if object_id is not None:
            memos = self._memos
            memo = memos.get((image_id, object_id))
            if memo is None:
                memo = ObjectMemo()
                if image_id == self._image_id and not prompt.empty:
                    memos[(image_id, object_id)] = memo
        with torch.no_grad():
            return run_chain(
                self._decode_fn, prompt, refine=self.refine, memo=memo, store_final=not hover
            )

    # ---------------------------------------------------------------- worker loop

    def _next(self) -> Callable[[], None] | None:
        # Caller holds _cond.
        while not self._closed:
            if self._load is not None:
                factory, self._load = self._load, None
                return lambda: self._do_load(factory)
            if self.predictor is not None and self._encode is not None:
                job, self._encode = self._encode, None
                return lambda: self._do_encode(*job)
            if self.predictor is not None and self._can_decode():
                if self._replay is not None:
                    rep, self._replay = self._replay, None
                    self._replaying = True
                    return lambda: self._do_replay(*rep)
                if self._queue:
                    dec = self._queue.take()
                    return lambda: self._do_decode(dec)
                if self._hover is not None:
                    hov, self._hover = self._hover, None
                    return lambda: self._do_hover(hov)
            self._cond.wait()
        return None

    def _run(self) -> None:
        while True:
            self._report_status()  # before going idle: wait() returns to a true status
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                job = self._next()
                if job is None:
                    return
                self._busy = True
            try:
                job()
            except Exception as exc:  # every job handles its own errors; shown, never silent
                self._fail("Unexpected error in the widget's worker", exc, status=False)
            finally:
                with self._cond:
                    self._replaying = False
                    self._decoding = False
                    self._running = None
                    self._cond.notify_all()

    def _fail(self, what: str, exc: BaseException, *, status: bool) -> str:
        message = f"{what}: {describe_error(exc)}"
        logger.error("%s", message, exc_info=exc)
        self.cb.error(message)
        if status:
            self.cb.status("error", 0.0)
        return message

    def _do_load(self, factory: Callable[[], Any]) -> None:
        self.cb.status("loading", 0.0)
        try:
            predictor = factory()
        except Exception as exc:
            message = self._fail("The model could not be loaded", exc, status=True)
            with self._cond:
                self._load_error = message
                self._cond.notify_all()
            return
        _install_cancel_points(getattr(predictor, "model", None))
        with self._cond:
            self.predictor = predictor
            self._cond.notify_all()
        self.cb.loaded(predictor)
        if self._encode is None:
            self.report_status()

    def _do_encode(self, image_id: int, image: np.ndarray) -> None:
        last = [-1.0]

        def progress(fraction: float) -> None:
            if self._closed or self._image_id != image_id:
                raise _Cancelled
            f = min(max(float(fraction), 0.0), 1.0)
            if f - last[0] >= 0.02 or (f >= 1.0 > last[0]):
                last[0] = f
                self.cb.status("encoding", f)

        self.cb.status("encoding", 0.0)
        try:
            emb = self.predictor.compute_embedding(image, progress=progress)
            model = self.predictor.model
            frame = Frame(
                image_id,
                model.geometry,
                (int(emb.input_size[0]), int(emb.input_size[1])),
                (int(emb.original_size[0]), int(emb.original_size[1])),
                float(model.mask_threshold),
            )
            with self._plock:
                if self._image_id != image_id:
                    return
                self.predictor.set_embedding(emb)
                with self._cond:
                    self._frame = frame
                    self._cond.notify_all()
        except _Cancelled:
            return
        except Exception as exc:
            # Any failure, also after the encoder ran, ends in the error state (wait() raises
            # it): never a widget left "encoding" forever.
            if self._image_id != image_id:
                return
            message = self._fail("Encoding the image failed", exc, status=True)
            with self._cond:
                self._encode_error = message
                self._cond.notify_all()
            return
        self.report_status()
        self.cb.ready(image_id)

    def _do_decode(self, job: DecodeJob) -> None:
        with self._cond:
            if not (job.image_id == self._image_id and self._queue.seq(job.object_id) == job.seq):
                return  # superseded (newer prompts, deleted object, new image): cancelled
            self._decoding = True
            self._running = job
            have = self._results.get(job.object_id)
            backlog = self._queue.take_backlog(job.object_id)
        try:
            if have is not None and (have.image_id, have.seq) == (job.image_id, job.seq):
                update = have  # e.g. a {type: "sync"} resend
            elif job.given is not None:
                frame = self.frame
                if frame is None or frame.image_id != job.image_id:
                    return
                update = MaskUpdate.from_mask(job.object_id, job.seq, frame, *job.given)
            else:
                with self._plock:
                    frame = self.frame
                    if frame is None or frame.image_id != job.image_id:
                        return
                    # Earlier states this job refines from (each one the base of the next):
                    # cancelled by a new image, the object's deletion, or a newer state of
                    # the object that starts over (see _object_alive).
                    with _cancellable(lambda: not self._object_alive(job)):
                        for earlier in backlog:
                            self._chain(earlier, job.object_id, job.image_id)
                        result = self._chain(job.prompt, job.object_id, job.image_id)
                update = MaskUpdate(job.object_id, job.seq, frame, result, job.strokes)
            buffer = encode_mask(update.display)
        except _Cancelled:
            return  # superseded while decoding
        except Exception as exc:
            self._fail(f"Decoding object {job.object_id} failed", exc, status=False)
            return
        with self._cond:
            if not (job.image_id == self._image_id and self._queue.seq(job.object_id) == job.seq):
                return  # stale: the prompts or the image changed meanwhile
            self._results[job.object_id] = update
        self.cb.send(self.mask_message(update), [buffer])
        self.cb.error("")
        self.cb.mask(update)

    def _refines(self, prompt: Prompt) -> bool:
        # Whether decoding ``prompt`` reads the previous state's logits (chain.run_chain):
        # refinement on, prompts present and unambiguous.
        return self.refine and not prompt.empty and not prompt.ambiguous

    def _object_alive(self, job: DecodeJob) -> bool:
        # Whether ``job``'s state still matters: same image, object not deleted, and either
        # still the newest state or the base the next state refines from. A newer state that
        # does not refine (a clear, a single ambiguous point, refinement off) cancels it.
        if self._closed or job.image_id != self._image_id:
            return False
        return self._queue.alive(job)

    def _do_replay(self, image_id: int, states: list[list[dict[str, Any]]]) -> None:
        self._report_status()
        seen: dict[int, tuple[Any, ...]] = {}
        for objects in states:
            for obj in objects:
                prompt = Prompt.from_object(obj)
                oid = int(obj["id"])
                key = (prompt.points, prompt.labels, prompt.box, prompt.candidate)
                if seen.get(oid) == key:
                    continue  # unchanged in this state: nothing was decoded for it
                seen[oid] = key
                with self._cond:
                    # checked between decoder runs: a new image, replay or close cancels
                    if self._closed or self._image_id != image_id or self._replay is not None:
                        return
                    if prompt.empty:
                        self._memos.pop((image_id, oid), None)
                        continue
                stale = lambda: (  # noqa: E731
                    self._closed or self._image_id != image_id or self._replay is not None
                )
                try:
                    with self._plock, _cancellable(stale):
                        frame = self.frame
                        if frame is None or frame.image_id != image_id:
                            return
                        self._chain(prompt, oid, image_id)
                except _Cancelled:
                    return
                except Exception as exc:
                    self._fail(f"Replaying object {oid} failed", exc, status=False)
                    return

    @staticmethod
    def mask_message(update: MaskUpdate) -> dict[str, Any]:
        h, w = update.frame.display
        return {
            "type": "mask",
            "image_id": update.image_id,
            "object_id": update.object_id,
            "seq": update.seq,
            "width": w,
            "height": h,
            "scores": update.scores,
            "candidate": update.candidate,
        }

    def _hover_message(self, image_id: int, seq: int) -> dict[str, Any]:
        frame = self.frame
        h, w = frame.display if frame is not None else (0, 0)
        return {"type": "hover_mask", "image_id": image_id, "seq": seq, "width": w, "height": h}

    def _do_hover(self, job: _Hover) -> None:
        stale = lambda: (  # noqa: E731
            self._closed or self._hover_seq != job.seq or self._image_id != job.image_id
        )
        try:
            with self._plock, _cancellable(stale):
                frame = self.frame
                if frame is None or frame.image_id != job.image_id or self._hover_seq != job.seq:
                    return
                oid = job.object_id if job.object_id >= 0 else None
                result = self._chain(job.prompt, oid, job.image_id, hover=True)
            buffer = encode_mask(MaskUpdate(-1, job.seq, frame, result).display)
        except _Cancelled:
            return
        except Exception as exc:
            self._fail("Hover preview failed", exc, status=False)
            return
        with self._cond:
            if self._hover_seq != job.seq or self._image_id != job.image_id:
                return
        self.cb.send(self._hover_message(job.image_id, job.seq), [buffer])
