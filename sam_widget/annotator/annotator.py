"""``SamAnnotator``: annotate a dataset image by image, saved as you go in a project file.

Composition, not inheritance: the annotator owns one :class:`~sam_widget.SamWidget` (the
canvas of the current image, ``a.widget``), one :class:`~sam_widget.data.store.Project` (the
SQLite file, the truth), a :class:`~.sync.StoreSync` that writes every widget change to the
project as it happens, a :class:`~.prefetch.Prefetcher` that encodes the neighbours in the
background, and, when displayed, a :class:`~.view.NavigatorView` around the widget.

Only the current image's pixels are held; embeddings live in a byte-budgeted cache (memory)
and in the project's cache folder (``<project file>.cache/embeddings``) on disk.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data import exports
from ..data.store import ImageRecord, ObjectRecord, Project
from .options import categories_of, predictors_for
from .prefetch import Prefetcher
from .proposals import ProposalSession
from .sources import list_images
from .sync import StoreSync

__all__ = ["SamAnnotator"]


class SamAnnotator:
    """Work through a folder of images with SAM; every change is saved in ``project``.

    Args:
        images: a folder (recursive, common image extensions), a glob pattern, a list of
            paths, or None to open an existing project as it is. New images are appended to
            the project in order, deduplicated by content (SHA-256); unreadable files are
            listed in :attr:`failed` with the reason (and warned about) and skipped.
        project: the project file (created if missing); see :mod:`sam_widget.data.store`.
        model: a variant name (``"vit_t"``, ..., ``"tiny"`` for tests), a ``Sam`` or a
            ``SamPredictor`` (its model is used).
        categories: class names (a list, or a ``{name: "#rrggbb"}`` dict), added to the
            project if missing.
        checkpoint, device: for a named variant.
        root: folder the project stores image paths relative to (default: the folder given
            as ``images`` for a new project, else the project's saved root).
        cache_bytes: memory budget of the embedding cache.
        prefetch: encode image i+1 and i-1 in the background.
        idle_seconds: longest gap between two edits counted as active time.

    Navigation: :attr:`index`, :meth:`goto`, :meth:`next`, :meth:`prev`, :attr:`current`.
    Editing: :attr:`widget` (the ``SamWidget`` of the current image), :meth:`set_category`,
    :meth:`mark_done`. Reading: :meth:`objects`, :meth:`masks`, :meth:`summary`. Exports:
    :meth:`export_coco`, :meth:`export_sa1b`, :meth:`export_yolo`, :meth:`export_masks`,
    :meth:`import_coco`. :meth:`close` stops the background threads.
    """

    def __init__(
        self,
        images: Any = None,
        project: str | os.PathLike[str] = "labels.sqlite",
        model: Any = "vit_t",
        categories: Any = None,
        *,
        checkpoint: Any = None,
        device: Any = None,
        root: str | os.PathLike[str] | None = None,
        cache_bytes: int = 256 * 2**20,
        prefetch: bool = True,
        idle_seconds: float = 60.0,
    ) -> None:
        from ..engine.embedding_cache import EmbeddingCache

        files = list_images(images)
        cats = categories_of(categories)
        if root is None and isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
            if not Path(os.fspath(project)).exists():
                root = images
        self.project = Project.open(project, root=root)
        try:
            self.failed: list[tuple[str, str]] = self.project.add_images(files).failed
            if self.failed:
                lines = "\n".join(f"  {p}: {why}" for p, why in self.failed)
                warnings.warn(f"skipped {len(self.failed)} unreadable image(s):\n{lines}",
                              stacklevel=2)  # fmt: skip
            for name, color in cats:
                self.project.add_category(name, color)
            self._images = self.project.images()
            if not self._images:
                raise ValueError(f"the project {str(self.project.path)!r} has no images")
            self.idle_seconds = float(idle_seconds)
            self._closed = False
            cache_dir = self.project.path.with_name(self.project.path.name + ".cache")
            self.cache = EmbeddingCache(cache_bytes, directory=cache_dir / "embeddings")
            predictor, prefetch_predictor = predictors_for(model, checkpoint, device, self.cache)
            self.messages: list[str] = []
            self.flags: dict[int, str] = {}  # index -> "changed" | "missing"
            self._view: Any = None
            self._last_touch = time.monotonic()
            start = int(self.project.get_state("position", 0) or 0)
            self._index = min(max(start, 0), len(self._images) - 1)
            first = self._pixels(self._index)
            self._prefetch_enabled = bool(prefetch)
            self._attach(predictor, prefetch_predictor,
                         first if first is not None else np.zeros((8, 8, 3), np.uint8))  # fmt: skip
            self._show(self._index, first)
        except BaseException:
            self.project.close()
            raise

    def _attach(self, predictor: Any, prefetch_predictor: Any, rgb: np.ndarray) -> None:
        """Make the widget (on ``predictor``), its store sync and the background helpers."""
        from ..widget.widget import SamWidget

        self._prefetch_predictor = prefetch_predictor
        self.widget = SamWidget(rgb, model=predictor)
        self.sync = StoreSync(self.project, self.widget, on_change=self._refresh,
                              report=self._report,
                              weights_id=str(predictor.model.weights_id))  # fmt: skip
        self.widget.observe(self._edited, names="objects")
        self._props = ProposalSession(self, prefetch_predictor)
        self._prefetch: Prefetcher | None = None
        if self._prefetch_enabled:
            self._prefetch = Prefetcher(prefetch_predictor, self._prefetch_load, self._busy)

    def _detach(self) -> None:
        self._props.cancel()
        if self._prefetch is not None:
            self._prefetch.close()
        self.sync.close()
        self.widget.close()

    def use_model(self, model: Any) -> None:
        """Go on with another model: a fine-tuned checkpoint's path (loaded with
        :func:`sam_widget.finetune.load_finetuned`, which checks it fits the model in use), a
        ``Sam`` or a ``SamPredictor``. The widget and the prefetcher both switch to it.

        When its image encoder is unchanged (a fine-tuned checkpoint), the embeddings of the
        current image and its neighbours are kept (re-labelled in the cache), not computed
        again. The stored masks stay as they are (the swap writes nothing to the project);
        new and edited objects get the new model's masks and weights id. The widget's
        notice says so when the new model is untrained (e.g. tuned from random weights)."""
        from ..widget.swap import carry_to_cache, resolve_model, same_encoder

        old = self.widget.wait().predictor
        model, _ = resolve_model(model, old.model)
        predictor, prefetch_predictor = predictors_for(model, None, None, self.cache)
        self.sync.flush()
        rgb = np.array(self.widget.image)
        if same_encoder(old.model, model):
            self._carry_embeddings(old, rgb, model, carry_to_cache)
        self._detach()
        self._attach(predictor, prefetch_predictor, rgb)
        if self._view is not None:
            self._view.set_widget(self.widget)
        self._show(self._index, rgb if self._index not in self.flags else None)

    def _carry_embeddings(self, old: Any, rgb: np.ndarray, model: Any, carry: Any) -> None:
        """Put the embeddings ``old`` computed for the current image and the (cached)
        neighbours in the cache under ``model``'s key (same encoder, so still valid)."""
        from ..engine.embedding_cache import embedding_key

        if old.embedding is not None and self._index not in self.flags:
            carry(self.cache, rgb, old.embedding, model)
        weights_id = str(old.model.weights_id)
        for j in (self._index + 1, self._index - 1):
            if not 0 <= j < len(self._images):
                continue
            try:
                pixels = self._pixels(j)
            except (OSError, ValueError):
                continue
            if pixels is None:
                continue
            emb = self.cache.get(embedding_key(pixels, weights_id), weights_id=weights_id)
            if emb is not None:
                carry(self.cache, pixels, emb, model)

    # ----------------------------------------------------------------------- images

    @property
    def images(self) -> list[ImageRecord]:
        """The project's images, in order (re-read)."""
        self._images = self.project.images()
        return list(self._images)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def index(self) -> int:
        """Position of the current image (0-based)."""
        return self._index

    @property
    def current(self) -> Path:
        """Path of the current image file."""
        return self.project.resolve(self._images[self._index])

    def _pixels(self, i: int) -> np.ndarray | None:
        """The image's pixels, or None (and a flag) when its file is missing or changed."""
        from ..engine.images import to_rgb_uint8

        rec = self._images[i]
        state = self.project.check_image(rec)
        if state != "ok":
            self.flags[i] = state
            return None
        self.flags.pop(i, None)
        return to_rgb_uint8(self.project.resolve(rec), name=str(rec.path))

    def _show(self, i: int, rgb: np.ndarray | None) -> None:
        rec = self._images[i]
        if rgb is None:  # missing or changed: never lay old masks over other pixels
            from ..engine.images import to_rgb_uint8

            state = self.flags.get(i, "missing")
            path = self.project.resolve(rec)
            if state == "changed":
                rgb = to_rgb_uint8(path, name=str(rec.path))
                self._report(f"{rec.path} changed on disk since it was added: its "
                             f"{len(self.project.objects(rec))} stored object(s) are not shown "
                             "and edits are not saved.")  # fmt: skip
            else:
                rgb = np.zeros((rec.height, rec.width, 3), np.uint8)
                self._report(f"{rec.path}: the image file is missing ({path}).")
        self._add_time()
        self._props.clear()
        self._index = i
        self.sync.suspend()
        self.widget.set_image(rgb)
        del rgb  # the widget holds the only copy of the current pixels
        writable = i not in self.flags
        self.sync.load(rec, self.project.objects(rec) if writable else [], writable)
        if writable and rec.status == "todo":
            self.project.set_status(rec, "in_progress")
            self._images[i] = self.project.image(rec)
        self.project.set_state("position", i)
        if self._prefetch is not None:
            n = len(self._images)
            self._prefetch.want([self._images[j].id for j in (i + 1, i - 1) if 0 <= j < n])
        self._refresh()

    def goto(self, i: int) -> None:
        """Show image ``i`` (0-based; negative counts from the end)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"i must be an int, got {type(i).__name__}")
        n = len(self._images)
        if not -n <= int(i) < n:
            raise ValueError(f"i must be in 0..{n - 1} (or -{n}..-1), got {i}")
        j = int(i) % n
        self._show(j, self._pixels(j))

    def next(self) -> bool:
        """Go to the next image; False (and no change) at the last one."""
        if self._index + 1 >= len(self._images):
            return False
        self.goto(self._index + 1)
        return True

    def prev(self) -> bool:
        """Go to the previous image; False (and no change) at the first one."""
        if self._index == 0:
            return False
        self.goto(self._index - 1)
        return True

    # ------------------------------------------------------------------------- editing

    def _edited(self, _change: Any) -> None:
        if self._prefetch is not None:
            self._prefetch.poke()
        self._add_time()

    def _add_time(self) -> None:
        now = time.monotonic()
        dt, self._last_touch = min(now - self._last_touch, self.idle_seconds), now
        if dt > 0 and hasattr(self, "sync") and self.sync.writable:
            self.project.add_time(self._images[self._index], dt)

    def categories(self) -> list[str]:
        """The project's category names, in class-index order."""
        return [c.name for c in self.project.categories()]

    def add_category(self, name: str, color: str | None = None) -> None:
        """Add a category to the project."""
        self.project.add_category(name, color)
        self._refresh(full=True)

    @property
    def category(self) -> str | None:
        """The category given to new objects (and set by :meth:`set_category`)."""
        return self.sync.category

    def set_category(self, name: str | None) -> None:
        """Make ``name`` the category of new objects and of the active object (if any)."""
        cats = {c.name: c for c in self.project.categories()}
        if name is not None and name not in cats:
            raise ValueError(f"unknown category {name!r}; the categories are {list(cats)}")
        self.sync.category = name
        active = int(self.widget.active)
        if active != -1:
            self.sync.set_category(active, name)
            objs = copy.deepcopy(self.widget.objects)
            for o in objs:
                if o["id"] == active and name is not None:
                    o["name"], o["color"] = name, cats[name].color
            self.widget.objects = objs
        self._refresh()

    def set_status(self, status: str, i: int | None = None) -> None:
        """Set the status of image ``i`` (default: the current one)."""
        k = self._index if i is None else int(i)
        self.project.set_status(self._images[k], status)
        self._images[k] = self.project.image(self._images[k])
        self._refresh(full=True)

    def mark_done(self, i: int | None = None) -> None:
        """Mark image ``i`` (default: the current one) done."""
        self.set_status("done", i)

    # ------------------------------------------------------------------------- reading

    def objects(self, i: int | None = None) -> list[ObjectRecord]:
        """The stored object records of image ``i`` (default: the current one)."""
        self.sync.flush()
        return self.project.objects(self._images[self._index if i is None else int(i)])

    def masks(self, i: int | None = None) -> np.ndarray:
        """(N, H, W) bool: the stored masks of image ``i`` (default: the current one)."""
        self.sync.flush()
        return self.project.masks(self._images[self._index if i is None else int(i)])

    def summary(self) -> dict[str, Any]:
        """Per image: status, object count, seconds of active time, seconds per object, and
        the clicks (prompt changes) and brush/eraser strokes made on its objects; and the
        totals, with the mean clicks and strokes per object (see :meth:`Project.summary`)."""
        self.sync.flush()
        self._add_time()
        return self.project.summary()

    # ---------------------------------------------------------------------- prefetch

    def _busy(self) -> bool:
        return str(self.widget.status) != "ready" or self._props.running

    def _prefetch_load(self, image_id: int) -> np.ndarray:
        from ..engine.images import to_rgb_uint8

        return to_rgb_uint8(self.project.resolve(image_id))

    def prefetched(self, i: int) -> bool:
        """Whether image ``i``'s embedding was computed in the background."""
        return self._prefetch is not None and self._prefetch.is_done(self._images[i].id)

    def wait_prefetch(self, timeout: float | None = None) -> bool:
        """Block until the background encoding of the neighbours is finished."""
        return self._prefetch is None or self._prefetch.wait_idle(timeout)

    # ----------------------------------------------------------------------- proposals

    def propose(self, iou_threshold: float = 0.5, **params: Any) -> Any:
        """Run the automatic mask generator (``params``: its options) on the current image in
        the background and offer the masks that overlap no existing object (IoU at most
        ``iou_threshold``); returns a ``Future`` of them, also in :attr:`proposals`."""
        return self._props.propose(iou_threshold, params)

    @property
    def proposals(self) -> list[dict[str, Any]]:
        """The current image's open proposals (generator records, best first)."""
        return list(self._props.records)

    def accept(self, which: int | list[int]) -> list[ObjectRecord]:
        """Make proposals (indices into :attr:`proposals`) objects with source "assisted"
        and the proposal's mask; the rest stay proposed. Returns the new records."""
        return self._props.accept(which)

    def accept_all(self, min_iou: float = 0.0) -> list[ObjectRecord]:
        """Accept every proposal whose predicted IoU is at least ``min_iou``."""
        return self._props.accept_all(min_iou)

    def reject(self) -> None:
        """Drop the open proposals (and a run in progress)."""
        self._props.clear()
        self._refresh()

    def _reload(self) -> None:
        """Show the current image's stored objects again (after the store changed)."""
        rec = self._images[self._index]
        self.sync.suspend()
        self.sync.load(rec, self.project.objects(rec), True)

    # -------------------------------------------------------------------------- output

    def export_coco(self, path: Any, segmentation: str = "rle") -> dict[str, int]:
        """The whole project as COCO instances JSON (see :mod:`sam_widget.data.exports`)."""
        self.sync.flush()
        return exports.export_coco(self.project, path, segmentation)  # type: ignore[arg-type]

    def export_sa1b(self, folder: Any) -> dict[str, int]:
        self.sync.flush()
        return exports.export_sa1b(self.project, folder)

    def export_yolo(self, folder: Any) -> dict[str, Any]:
        self.sync.flush()
        return exports.export_yolo(self.project, folder)

    def export_masks(self, folder: Any) -> dict[str, int]:
        self.sync.flush()
        return exports.export_masks(self.project, folder)

    def import_coco(self, path: Any, root: Any = None) -> dict[str, Any]:
        """Add a COCO file's images and annotations (see :func:`exports.import_coco`)."""
        result = exports.import_coco(self.project, path, root)
        self._images = self.project.images()
        self._refresh(full=True)
        return result

    # ---------------------------------------------------------------------------- view

    def _report(self, message: str) -> None:
        self.messages.append(message)
        if self._view is not None:
            self._view.show_message(message)

    def _refresh(self, full: bool = False) -> None:
        if self._view is not None:
            self._view.refresh(full)

    @property
    def view(self) -> Any:
        """The navigator around the widget (an ipywidgets box, built on first use)."""
        if self._view is None:
            from .view import NavigatorView

            self._view = NavigatorView(self)
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view.box._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Save the time spent, stop the background threads and close the project (a second
        call does nothing)."""
        if self._closed:
            return
        self._closed = True
        self._add_time()
        self._detach()
        if self._view is not None:
            self._view.close()
        self.project.close()

    def __enter__(self) -> SamAnnotator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
