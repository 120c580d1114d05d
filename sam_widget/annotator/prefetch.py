"""Background encoding of the neighbouring images into the embedding cache.

One daemon thread per annotator. :meth:`Prefetcher.want` names the images to encode (the
annotator passes i+1 and i-1); the thread encodes them one at a time with the annotator's
predictor (:meth:`SamPredictor.compute_embedding` is pure and thread-safe, and stores the
result in the shared cache: memory and the project's cache folder), then drops the pixels.

A click on the current image never waits for it:

- it only starts while the annotator says it is quiet (``busy()`` false: the current image
  is encoded and nothing is being decoded) and no user activity came in the last ``quiet``
  seconds;
- any activity (:meth:`Prefetcher.poke`) or a new target list cancels a running encode from
  its progress callback (between encoder blocks) and it restarts later from scratch;
- it encodes with one intra-op thread (``torch.set_num_threads(1)`` for the duration of the
  call, restored afterwards), leaving the other cores to the interactive path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Prefetcher"]

logger = logging.getLogger("sam_widget")


class _Cancelled(Exception):
    pass


class Prefetcher:
    """Encode wanted images in the background (see the module docstring).

    Args:
        predictor: a ``SamPredictor`` whose ``cache`` receives the embeddings.
        load: ``load(key) -> (H, W, 3) uint8`` pixels of an image (raises on failure).
        busy: returns True while the interactive widget is working.
        quiet: seconds without activity before a prefetch starts.
        threads: intra-op threads while encoding.
    """

    def __init__(
        self,
        predictor: Any,
        load: Callable[[Any], np.ndarray],
        busy: Callable[[], bool],
        *,
        quiet: float = 0.3,
        threads: int = 1,
    ) -> None:
        self._predictor = predictor
        self._load = load
        self._busy = busy
        self.quiet = float(quiet)
        self.threads = int(threads)
        self._cond = threading.Condition()
        self._targets: list[Any] = []
        self._done: set[Any] = set()
        self._failed: dict[Any, str] = {}
        self._generation = 0
        self._last_activity = 0.0
        self._running: Any = None
        self._closed = False
        self.encoded = 0  # encodes that finished (cache hits included)
        self._thread = threading.Thread(
            target=self._run, daemon=True, name="sam-annotator-prefetch"
        )
        self._thread.start()

    # ----------------------------------------------------------------------- control

    def want(self, keys: list[Any]) -> None:
        """Encode these images (in this order); others still pending are dropped."""
        with self._cond:
            new = [k for k in keys if k not in self._done and k not in self._failed]
            if new != self._targets:
                if self._running is not None and self._running not in new:
                    self._generation += 1  # cancel the running one
                self._targets = new
            self._cond.notify_all()

    def poke(self) -> None:
        """User activity: cancel a running encode; wait ``quiet`` seconds before the next."""
        with self._cond:
            self._last_activity = time.monotonic()
            if self._running is not None:
                self._generation += 1
            self._cond.notify_all()

    def is_done(self, key: Any) -> bool:
        """Whether ``key``'s embedding was computed (so it sits in the cache)."""
        with self._cond:
            return key in self._done

    def forget(self, key: Any) -> None:
        """Let ``key`` be prefetched again (e.g. its embedding was evicted or used)."""
        with self._cond:
            self._done.discard(key)
            self._failed.pop(key, None)

    @property
    def failed(self) -> dict[Any, str]:
        with self._cond:
            return dict(self._failed)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no wanted image is left; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or not self._targets, timeout)

    def close(self) -> None:
        """Stop (cancelling a running encode) and join the thread."""
        with self._cond:
            self._closed = True
            self._generation += 1
            self._cond.notify_all()
        self._thread.join()

    # ------------------------------------------------------------------------ thread

    def _next(self) -> tuple[Any, int] | None:
        """Wait until there is a target and the annotator is quiet; None when closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._targets:
                    wait = self._last_activity + self.quiet - time.monotonic()
                    if wait <= 0 and not self._busy():
                        key = self._targets[0]
                        self._running = key
                        return key, self._generation
                    self._cond.wait(max(wait, 0.05))
                else:
                    self._cond.wait()

    def _run(self) -> None:
        import torch

        while True:
            job = self._next()
            if job is None:
                return
            key, generation = job

            def progress(_fraction: float, generation: int = generation) -> None:
                if self._generation != generation:
                    raise _Cancelled

            outcome: str | None = None
            try:
                rgb = self._load(key)
                previous = torch.get_num_threads()
                torch.set_num_threads(self.threads)
                try:
                    self._predictor.compute_embedding(rgb, progress=progress)
                finally:
                    torch.set_num_threads(previous)
                del rgb
                outcome = "done"
            except _Cancelled:
                outcome = None
            except Exception as exc:  # an unreadable neighbour must not stop the annotator
                logger.warning("sam_widget: prefetching %r failed: %s", key, exc)
                outcome = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._running = None
                if outcome == "done":
                    self._done.add(key)
                    self.encoded += 1
                elif outcome is not None:
                    self._failed[key] = outcome
                if outcome is not None and key in self._targets:
                    self._targets.remove(key)
                self._cond.notify_all()
