"""Results, callbacks, segment-everything and persistence (mixed into ``SamWidget``).

Masks come from the session's stored low-res logits of each object's current prompts
(decoding synchronously only when no current result exists), so ``w.masks`` never waits for
the browser and never re-decodes what the worker already did. All methods block until the
image is encoded (``TimeoutError``/``RuntimeError`` as :meth:`SamWidget.wait`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .everything import Everything
    from .session import MaskUpdate, Session

__all__ = ["ResultsMixin"]


class ResultsMixin:
    """Results API of ``SamWidget`` (see the module docstring)."""

    # Provided by SamWidget (traits and state).
    objects: Any
    active: Any
    image_width: Any
    image_height: Any
    _session: Session
    _everything: Everything
    _callbacks: list[Callable[[int, MaskUpdate], None]]

    if TYPE_CHECKING:  # only for the type checker: a real stub would shadow the methods

        @property
        def object_ids(self) -> list[int]: ...

        def _object(self, object_id: int) -> dict[str, Any] | None: ...

    # ------------------------------------------------------------------ callbacks

    def on_mask(self, callback: Callable[[int, MaskUpdate], None]) -> Callable[[], None]:
        """Call ``callback(object_id, update)`` whenever an object's mask is sent to the
        browser (runs on the widget's worker thread; keep it quick). ``update.mask`` is the
        full-resolution bool mask (computed on first access), ``update.display`` the
        display-resolution one, ``update.scores``/``update.score``/``update.seq`` the rest.
        Returns a function that unsubscribes."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ results

    def mask_update(self, object_id: int, timeout: float | None = None) -> MaskUpdate:
        """The current :class:`MaskUpdate` of one object (decodes now if needed)."""
        obj = self._object(object_id)
        if obj is None:
            raise ValueError(f"no object with id {object_id!r}; ids: {self.object_ids}.")
        return self._session.result(obj, timeout)

    @property
    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per object, in ``objects`` order, at the original size.
        Blocks until the image is encoded."""
        return [self._session.result(o).mask.copy() for o in self.objects]

    @property
    def mask(self) -> np.ndarray | None:
        """The active object's (H, W) bool mask, or None when no object is active."""
        return None if self.active == -1 else self.mask_update(self.active).mask.copy()

    @property
    def scores(self) -> list[float | None]:
        """Predicted IoU of each object's chosen mask (None for an object without prompts)."""
        return [self._session.result(o).score for o in self.objects]

    def label_map(self) -> np.ndarray:
        """(H, W) int32: 0 background, k for the k-th object (1-based, ``objects`` order).
        Where masks overlap, the later object wins (it is drawn over the earlier ones)."""
        out = np.zeros((self.image_height, self.image_width), dtype=np.int32)
        for k, m in enumerate(self.masks, start=1):
            out[m] = k
        return out

    # ------------------------------------------------------------------ everything

    def segment_everything(self, **params: Any) -> Future[list[dict[str, Any]]]:
        """Run ``SamAutomaticMaskGenerator(model, **params)`` in the background and show its
        masks; returns a ``Future`` of its records (sorted by area, largest first)."""
        return self._everything.start(params)

    def keep(self, index: Any) -> int:
        """Turn everything-mask ``index`` into a new object; returns its id."""
        return self._everything.keep(index)

    def clear_everything(self) -> None:
        """Hide the segment-everything overlay."""
        self._everything.clear()

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """All prompts and the history as JSON-serialisable data (``version`` 1)."""
        from .persist import to_dict

        return to_dict(self)

    def load_dict(self, data: Mapping[str, Any]) -> None:
        """Replace objects, active object and history with ``data`` from :meth:`to_dict`.
        Everything is validated first; on error nothing changes."""
        from .persist import load_dict

        load_dict(self, data)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], image: Any, model: Any = "vit_t", **kwargs: Any
    ) -> Any:
        """A new widget on ``image`` with the prompts and history of ``data``."""
        if "refine" not in kwargs and isinstance(data, Mapping) and "refine" in data:
            kwargs["refine"] = bool(data["refine"])
        make: Any = cls  # SamWidget (this mixin's only user)
        widget = make(image, model, **kwargs)
        widget.load_dict(data)
        return widget

    def save_masks(self, path: Any) -> Path:
        """Save the masks: ``.npz`` (``masks`` N x H x W bool, ``names``, ``ids``, ``colors``)
        or ``.png`` (label map as :meth:`label_map`)."""
        from .persist import save_masks

        return save_masks(self, path)

    def export_coco(self, path: Any) -> Path:
        """Write the masks as a COCO JSON file (RLE segmentations, one category per name)."""
        from .persist import export_coco

        return export_coco(self, path)
