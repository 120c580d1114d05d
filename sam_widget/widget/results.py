"""Results of the widget as plain helpers: ``on_mask`` subscribers and the label map.

Masks come from the session's stored low-res logits of each object's current prompts
(decoding synchronously only when no current result exists), so ``w.masks`` never waits for
the browser and never re-decodes what the worker already did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from .updates import MaskUpdate, describe_error

__all__ = ["MaskListeners", "label_map"]

logger = logging.getLogger("sam_widget")

Listener = Callable[[int, MaskUpdate], None]


class MaskListeners:
    """The ``on_mask`` subscribers of one widget; :meth:`fire` runs on the worker thread.

    Args:
        error: called with a message when a subscriber raises (the widget's error line).
    """

    def __init__(self, error: Callable[[str], None]) -> None:
        self._error = error
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add(self, callback: Listener) -> Callable[[], None]:
        """Subscribe ``callback(object_id, update)``; returns a function that unsubscribes."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def fire(self, update: MaskUpdate) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(update.object_id, update)
            except Exception as exc:
                logger.exception("sam_widget: on_mask callback %r failed", cb)
                self._error(f"on_mask callback failed: {describe_error(exc)}")


def label_map(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """(H, W) int32: 0 background, k for the k-th mask (1-based). Where masks overlap, the
    later one wins (it is drawn over the earlier ones)."""
    out = np.zeros((int(height), int(width)), dtype=np.int32)
    for k, m in enumerate(masks, start=1):
        out[m] = k
    return out
