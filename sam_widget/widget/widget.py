"""``SamWidget``: Segment Anything live in Jupyter (traits, handlers and the Python API).

The browser side is ``js/`` (bundled into ``sam_widget/static/widget.js``); the protocol
between the two is fixed in docs/ARCHITECTURE.md ("Widget protocol"). Model work runs in
:class:`~.session.Session` (one background thread per widget).

The widget is composed of parts, none of which knows the widget (as lonboard's ``Map``):

- :class:`~.prompts.PromptBook`: history, ids and seqs as plain data; the edit rules are the
  pure :func:`~.prompts.reduce`, shared with the frontend (``js/src/state.ts``);
- :class:`~.session.Session`: the worker thread (load, encode, decode), with callbacks;
- :class:`~.everything.Everything`: segment-everything, with callbacks;
- :mod:`.persist`: ``to_dict``/``load_dict`` and exports as functions over plain data;
- :mod:`.messages`: the browser's messages, dispatched through a table.

Every Python-side change of ``objects``/``active`` (a method call, a browser update, a new
image) runs under one lock, so concurrent calls from several threads lose nothing and a
point validated against one image is never applied to another.

Decisions where the protocol leaves room (documented for users in the class docstring):

- Prompts set from Python go through the ``objects`` trait, exactly like clicks: validation,
  ``seq`` bump, one history entry, background decode, ``mask`` message.
- History: every committed change of ``objects``/``active`` is one entry (several traits set
  in one browser update, or one Python call, make one entry). ``set_image`` starts a fresh
  history with no objects.
- ``on_mask`` callbacks run on the worker thread, once per mask sent to the browser, with
  ``(object_id, update)``; ``update.mask`` is the full-resolution mask, computed lazily.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..engine.images import to_rgb_uint8
from ..explain.amg import AmgExplanation
from . import persist
from .chain import Prompt
from .codec import encode_image
from .everything import Everything, EverythingCallbacks
from .everything_params import check_everything_params
from .explainer import Explainer
from .loading import model_factory, model_record, untrained_notice
from .messages import HANDLERS, hover_prompt
from .prompts import PromptBook, next_active, reduce
from .results import MaskListeners, label_map
from .session import Callbacks, MaskUpdate, Session, describe_error
from .traits import (
    BROWSER_WRITABLE,
    ObjectsError,
    ObjectsTrait,
    initial_traits,
    validate_active,
    validate_everything_params,
    validate_objects,
)
from .updates import display_size

__all__ = ["ObjectsError", "SamWidget"]

logger = logging.getLogger("sam_widget")

_STATIC = Path(__file__).parent.parent / "static"
_FALLBACK_ESM = """
function render({ el }) {
  const div = document.createElement("div");
  div.className = "sam-widget";
  div.textContent =
    "sam_widget: frontend not built — run the README's set-up (npm run build in js/).";
  el.appendChild(div);
}
export default { render };
"""


def _esm() -> Path | str:
    bundle = _STATIC / "widget.js"
    return bundle if bundle.is_file() else _FALLBACK_ESM


class SamWidget(anywidget.AnyWidget):
    """Click on an image, see SAM's mask live, get numpy arrays back.

    Args:
        image: numpy array, PIL image or path (converted by :func:`sam_widget.images.to_rgb_uint8`).
        model: a variant name (``"vit_t"`` default, ``"vit_b"``, ``"vit_l"``, ``"vit_h"``,
            ``"tiny"`` for tests), a built ``Sam`` or a ``SamPredictor`` (the widget then makes
            its own predictor on that predictor's model and embedding cache; the given
            predictor's state is never touched). Named variants are built once per kernel and
            shared between widgets (with one embedding cache per model), in the background:
            ``status`` is ``"loading"`` meanwhile.
        checkpoint: weights file for a named variant (None: official weights).
        device: torch device for a named variant (None: CUDA, then MPS, then CPU).
        refine: feed back the object's previous low-res logits as ``mask_input`` when its
            prompts change (published SAM practice, see :mod:`sam_widget.widget.chain`; one
            decoder run per change); False decodes all prompts at once, without them.
        opacity, hover, layout: initial overlay opacity (0..1), hover preview on/off,
            ipywidgets ``Layout``.
        everything: segment-everything parameters (``SamAutomaticMaskGenerator`` keywords,
            e.g. ``{"points_per_side": 16, "pred_iou_thresh": 0.8}``), checked now; also
            ``w.everything_params`` and the toolbar's settings popover.
        explain: show the Explain panel below the candidates (also the toolbar's "Explain"
            toggle and ``w.explain``): after each decode of the active object, the 4 masks
            with their IoUs, the final attention, the point's positional encoding and the
            embedding PCA of that very decode (:mod:`sam_widget.widget.explainer`).
        width, height: the largest size of the image on screen, in CSS pixels (0: automatic,
            the image at most at its own size and a share of the window's height; a given
            size may enlarge a small image). Any other keyword is a ``TypeError``.

    Prompts (each call is one history entry and takes the same path as a click: ``objects``
    trait -> validation -> background decode -> ``mask`` message): ``new_object``,
    ``add_point``, ``remove_point``, ``set_box``, ``pick_candidate``, ``select``,
    ``delete_object``, ``clear`` (the active object's prompts, like the toolbar button),
    ``clear_all``, ``rename``, ``undo``/``redo``, or assigning ``objects``/``active``
    directly. The edit rules are those of the toolbar (:mod:`sam_widget.widget.prompts`).
    Bad prompts raise ``ValueError``/``TypeError`` and change nothing. Limits: 256 objects,
    1000 points per object, names of at most 200 characters.

    Results: ``masks``, ``mask``, ``label_map()`` (later objects over earlier ones),
    ``scores``, ``mask_update(id)``, ``on_mask(callback)``, ``segment_everything``/``keep``,
    ``show_overlay`` (masks to pick by a click), ``explain_everything`` (the Explain panel's
    filter stages),
    ``save_masks``, ``export_coco``, ``to_dict``/``from_dict``/``load_dict``, ``history``.
    They block until the image is encoded (``wait()`` does too). ``close()`` stops the
    widget's threads (also done at interpreter exit); a closed widget refuses every call.

    ``set_image`` replaces the image and starts over: objects and history are cleared (save
    them with ``to_dict`` first); an image seen before is not encoded again (cache).
    """

    _esm = _esm()

    # Written by the widget only (read_only: ``w.image_width = 5`` raises).
    image_data = traitlets.Bytes(b"", read_only=True).tag(sync=True)
    image_mime = traitlets.Unicode("image/png", read_only=True).tag(sync=True)
    image_width = traitlets.Int(0, read_only=True).tag(sync=True)
    image_height = traitlets.Int(0, read_only=True).tag(sync=True)
    image_id = traitlets.Int(0, read_only=True).tag(sync=True)
    mask_width = traitlets.Int(0, read_only=True).tag(sync=True)
    mask_height = traitlets.Int(0, read_only=True).tag(sync=True)
    status = traitlets.Unicode("loading", read_only=True).tag(sync=True)
    progress = traitlets.Float(0.0, read_only=True).tag(sync=True)
    error = traitlets.Unicode("", read_only=True).tag(sync=True)
    notice = traitlets.Unicode("", read_only=True).tag(sync=True)
    can_undo = traitlets.Bool(False, read_only=True).tag(sync=True)
    can_redo = traitlets.Bool(False, read_only=True).tag(sync=True)
    # Written by the user (Python or browser).
    objects = ObjectsTrait().tag(sync=True)
    active = traitlets.Int(-1).tag(sync=True)
    opacity = traitlets.Float(0.5, min=0.0, max=1.0).tag(sync=True)
    hover = traitlets.Bool(True).tag(sync=True)
    explain = traitlets.Bool(False).tag(sync=True)
    everything_params = traitlets.Dict().tag(sync=True)
    width = traitlets.Int(0, min=0).tag(sync=True)
    height = traitlets.Int(0, min=0).tag(sync=True)

    def __init__(
        self,
        image: Any,
        model: Any = "vit_t",
        checkpoint: Any = None,
        *,
        device: Any = None,
        refine: bool = True,
        opacity: float = 0.5,
        hover: bool = True,
        layout: Any = None,
        everything: Mapping[str, Any] | None = None,
        explain: bool = False,
        width: int = 0,
        height: int = 0,
    ) -> None:
        factory, self._variant = model_factory(model, checkpoint, device)
        self._checkpoint = checkpoint
        self._image_path: str | None = None
        rgb = to_rgb_uint8(image)  # bad images fail here, before any thread starts
        options = initial_traits(opacity, hover, explain, everything, width, height, layout)
        # _lock: every Python-side read-modify-write of objects/active/history/image.
        # _sync_lock: trait writes from worker threads (ipywidgets' hold_sync bookkeeping is
        # not thread-safe). Order: _lock, then _sync_lock, then the session's own locks.
        self._lock = threading.RLock()
        self._sync_lock = threading.RLock()
        self._book = PromptBook()
        self._resetting = False
        self._closed = False
        self._rgb: np.ndarray | None = None
        self._predictor: Any = None
        self.refine = bool(refine)
        super().__init__(**options)
        self._listeners = MaskListeners(self._set_error)
        self._session = Session(
            Callbacks(
                send=lambda content, buffers: self.send(content, buffers),
                status=self._set_status,
                error=self._set_error,
                loaded=self._on_loaded,
                mask=self._on_mask_update,
            ),
            refine=self.refine,
        )
        self._everything = Everything(
            self._session,
            EverythingCallbacks(
                send=lambda content, buffers: self.send(content, buffers),
                status=self._set_status,
                report=self._report,
                display_size=lambda: (int(self.mask_height), int(self.mask_width)),
            ),
        )
        self._explainer = Explainer(
            self._session,
            image=lambda: (self._rgb, int(self.image_id)),
            enabled=lambda: bool(self.explain) and not self._closed,
            send=lambda content, buffers: self.send(content, buffers),
            report=self._report,
        )
        self.observe(self._on_explain_toggled, names="explain")
        self.on_msg(self._on_custom_message)
        self.set_image(rgb)
        if isinstance(image, (str, os.PathLike)):  # recorded by to_dict
            self._image_path = str(Path(os.fspath(image)).resolve())
        self._session.load(factory)

    # ------------------------------------------------------------------ part callbacks

    def _set_traits(self, **values: Any) -> None:
        with self._sync_lock, self.hold_sync():
            for name, value in values.items():
                if getattr(self, name) != value:
                    self.set_trait(name, value)

    def _set_status(self, status: str, progress: float) -> None:
        self._set_traits(progress=float(progress), status=status)

    def _set_error(self, message: str) -> None:
        self._set_traits(error=message)

    def _on_loaded(self, predictor: Any) -> None:
        self._predictor = predictor
        model = predictor.model
        if not getattr(model, "pretrained", True):
            self._set_traits(notice=untrained_notice(str(getattr(model, "variant", "custom"))))

    def _on_mask_update(self, update: MaskUpdate) -> None:
        # Worker thread, after the mask message went out: the explanation comes later.
        if self.explain and update.object_id == self.active:
            obj = self._object(update.object_id)
            if obj is not None:
                self._explainer.submit(update, obj)
        self._listeners.fire(update)

    def _on_explain_toggled(self, change: Any) -> None:
        if not change["new"] or self._closed:
            return
        obj = self._object(self.active)
        # The active object's last mask, if it was decoded at its current prompts.
        update = self._session.last_result(obj["id"]) if obj is not None else None
        if obj is not None and update is not None and update.seq == obj["seq"]:
            self._explainer.submit(update, obj)

    def _report(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {describe_error(exc)}"
        logger.error("%s", message, exc_info=exc)
        self._set_error(message)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the widget is closed; make a new SamWidget.")

    # ------------------------------------------------------------------ validation

    @traitlets.validate("objects")
    def _validate_objects(self, proposal: Any) -> list[dict[str, Any]]:
        return validate_objects(self._book, proposal["value"], self.image_width, self.image_height)

    @traitlets.validate("everything_params")
    def _validate_everything_params(self, proposal: Any) -> dict[str, Any]:
        return validate_everything_params(proposal["value"])

    @traitlets.validate("active")
    def _validate_active(self, proposal: Any) -> int:
        return validate_active(proposal["value"], self.objects)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply an update from the browser; refused changes are sent back corrected."""
        allowed = {k: v for k, v in sync_data.items() if k in BROWSER_WRITABLE}
        dismiss = sync_data.get("error") == "" and self.error != ""  # the user closed it
        refused = [
            k
            for k in sync_data
            if k not in BROWSER_WRITABLE and k in self.keys and not (k == "error" and dismiss)
        ]
        with self._lock:
            if dismiss:
                self._set_error("")
            try:
                if allowed and not self._closed:
                    super().set_state(allowed)
            except (traitlets.TraitError, ValueError, TypeError) as exc:
                self._report("Rejected a change from the browser", exc)
                refused += [k for k in allowed if k in self.keys]
        if refused:
            self.send_state(refused)

    # ------------------------------------------------------------------ trait observers

    @traitlets.observe("objects")
    def _objects_changed(self, change: Any) -> None:
        removed, changed = self._book.committed(change["old"], change["new"])
        if not self._resetting:
            for oid in removed:
                self._session.forget(oid)
            for o in changed:
                self._session.submit(o)
            ids = {o["id"] for o in change["new"]}
            if self.active != -1 and self.active not in ids:
                self.active = next_active(change["old"], self.active, change["new"])
        self._record()

    @traitlets.observe("active")
    def _active_changed(self, change: Any) -> None:
        self._record()

    def _record(self) -> None:
        if not self._resetting:
            self._book.record(self.objects, self.active)
        self._sync_history_flags()

    def _sync_history_flags(self) -> None:
        history = self._book.history
        self._set_traits(can_undo=history.can_undo, can_redo=history.can_redo)

    # ------------------------------------------------------------------ browser messages

    def _on_custom_message(self, _widget: Any, content: Any, buffers: Any = None) -> None:
        """Handle a ``model.send(content)`` from the browser through :data:`HANDLERS`."""
        if not isinstance(content, Mapping) or "type" not in content:
            return  # not ours (e.g. anywidget's own command messages)
        kind = content.get("type")
        handler = HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            logger.warning("sam_widget: ignoring unknown message %r", kind)
            return
        try:
            handler(self, content)
        except Exception as exc:
            self._report(f"Handling {kind!r} failed", exc)

    def _hover(self, content: Mapping[str, Any]) -> None:
        with self._lock:
            active = self.active
            seq, prompt = hover_prompt(
                content,
                enabled=self.hover,
                objects=self.objects,
                active=active,
                width=self.image_width,
                height=self.image_height,
            )
            self._session.hover(seq, prompt, active if prompt is not None else -1)

    def resend(self) -> None:
        """Send every object's current mask again (what a new view asks for)."""
        for o in self.objects:
            self._session.submit(o)
        self._everything.resend()
        self._explainer.resend()

    # ------------------------------------------------------------------ prompts

    def _commit(self, objs: list[dict[str, Any]], active: int) -> None:
        # One validated, atomic change of objects + active (one history entry).
        with self._lock, self.hold_trait_notifications():
            self.objects = objs
            self.active = active

    def _apply(self, action: dict[str, Any]) -> dict[str, Any]:
        """Apply one edit rule (:func:`.prompts.reduce`) to the current prompts."""
        with self._lock:
            self._check_open()
            new = reduce(self._book.state(self.objects, self.active), action)
            self._commit(new["objects"], new["active"])
            return new

    def _restore(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._book.replaying = True
            try:
                self._commit(copy.deepcopy(list(state["objects"])), int(state["active"]))
            finally:
                self._book.replaying = False
            self._sync_history_flags()

    @property
    def object_ids(self) -> list[int]:
        return [int(o["id"]) for o in self.objects]

    def new_object(
        self,
        name: str | None = None,
        *,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        candidate: int | None = None,
    ) -> int:
        """Make an object (optionally with prompts) the active one; returns its id. As the
        toolbar's "new": an active object that is still empty, with its default name, is
        reused rather than left behind."""
        action = {"type": "newObject", "name": name, "points": points, "labels": labels}
        action.update(box=box, candidate=candidate)
        return int(self._apply(action)["active"])

    def add_point(self, x: float, y: float, label: int = 1, object_id: int | None = None) -> int:
        """Add a positive (1) or negative (0) point to the active (or given) object; creates
        an object when there is none. Returns the object id."""
        action = {"type": "addPoint", "x": x, "y": y, "label": label, "id": object_id}
        return int(self._apply(action)["active"])

    def remove_point(self, index: int = -1, object_id: int | None = None) -> None:
        """Remove a point (default: the last one) of the active (or given) object."""
        self._apply({"type": "removePoint", "index": index, "id": object_id})

    def set_box(self, box: Any, object_id: int | None = None) -> int:
        """Set (XYXY, original pixels) or remove (None) the box of the active (or given)
        object; creates an object when there is none. The candidate is reset. Returns the
        object id."""
        return int(self._apply({"type": "setBox", "box": box, "id": object_id})["active"])

    def paint(
        self, points: Any, radius: float, erase: bool = False, object_id: int | None = None
    ) -> int:
        """Paint one brush stroke (``erase=True``: an eraser stroke) on the active (or given)
        object: a round brush of ``radius`` pixels along ``points`` ((N, 2) XY, original-image
        pixels; one point paints a disc). Creates an object when none is active; one history
        step, no decoder run. Returns the object id."""
        if hasattr(points, "tolist"):
            points = points.tolist()
        action = {"type": "addStroke", "points": points, "radius": radius, "erase": erase}
        action["id"] = object_id
        return int(self._apply(action)["active"])

    def pick_candidate(self, k: int | None, object_id: int | None = None) -> None:
        """Choose multimask candidate ``k`` (0..2; None: best predicted IoU) for the active
        (or given) object."""
        self._apply({"type": "pickCandidate", "candidate": k, "id": object_id})

    def select(self, object_id: int) -> None:
        """Make ``object_id`` the active object (-1: none)."""
        self._apply({"type": "selectObject", "id": object_id})

    def rename(self, name: str, object_id: int | None = None) -> None:
        """Rename the active (or given) object (surrounding spaces are dropped)."""
        oid = self.active if object_id is None else object_id
        self._apply({"type": "rename", "id": oid, "name": name})

    def delete_object(self, object_id: int | None = None) -> None:
        """Delete the active (or given) object; the one before it becomes active."""
        self._apply({"type": "deleteObject", "id": object_id})

    def clear(self, object_id: int | None = None) -> None:
        """Remove all prompts of the active (or given) object, like the toolbar's "clear"
        button; the object itself stays (``delete_object`` removes it)."""
        self._apply({"type": "clearActive", "id": object_id})

    def clear_all(self) -> None:
        """Delete every object (one history entry; undo brings them back)."""
        self._apply({"type": "clearAll"})

    def undo(self) -> bool:
        """Go back one history entry; returns False when there is nothing to undo."""
        with self._lock:
            self._check_open()
            state = self._book.undo()
            if state is not None:
                self._restore(state)
            return state is not None

    def redo(self) -> bool:
        """Go forward one history entry; returns False when there is nothing to redo."""
        with self._lock:
            self._check_open()
            state = self._book.redo()
            if state is not None:
                self._restore(state)
            return state is not None

    @property
    def history(self) -> list[dict[str, Any]]:
        """All history states (``{"objects": [...], "active": id}``), oldest first; the
        current one is ``history[history_index]``."""
        return self._book.history.states

    @property
    def history_index(self) -> int:
        return self._book.history.index

    # ------------------------------------------------------------------ results

    def on_mask(self, callback: Callable[[int, MaskUpdate], None]) -> Callable[[], None]:
        """Call ``callback(object_id, update)`` whenever an object's mask is sent to the
        browser (runs on the widget's worker thread; keep it quick). ``update.mask`` is the
        full-resolution bool mask (computed on first access), ``update.display`` the
        display-resolution one, ``update.scores``/``update.score``/``update.seq`` the rest.
        Returns a function that unsubscribes."""
        return self._listeners.add(callback)

    def _object(self, object_id: int) -> dict[str, Any] | None:
        return next((o for o in self.objects if o["id"] == object_id), None)

    def show_mask(self, object_id: int, mask: Any, score: float | None = None) -> None:
        """Show ``mask`` ((H, W) bool, the image's size) as the object's mask as it is, instead
        of decoding its prompts (e.g. a stored mask: the annotator shows a project's masks
        exactly as stored). ``w.masks`` returns it until the object's prompts change; it is
        not a history step."""
        self._check_open()
        obj = self._object(object_id)
        if obj is None:
            raise ValueError(f"no object with id {object_id!r}; ids: {self.object_ids}.")
        arr = np.asarray(mask)
        if arr.dtype != bool or arr.shape != (self.image_height, self.image_width):
            raise ValueError(
                f"mask must be a bool array of shape ({self.image_height}, {self.image_width}), "
                f"got {arr.dtype} {arr.shape}."
            )
        self._session.show_mask(obj, arr, score)

    def mask_update(self, object_id: int, timeout: float | None = None) -> MaskUpdate:
        """The current :class:`MaskUpdate` of one object (decodes now if needed)."""
        self._check_open()
        obj = self._object(object_id)
        if obj is None:
            raise ValueError(f"no object with id {object_id!r}; ids: {self.object_ids}.")
        return self._session.result(obj, timeout)

    def _results(self) -> tuple[list[dict[str, Any]], list[MaskUpdate]]:
        self._check_open()
        objs = list(self.objects)  # one consistent snapshot
        return objs, [self._session.result(o) for o in objs]

    @property
    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per object, in ``objects`` order, at the original size.
        Blocks until the image is encoded."""
        return [u.mask.copy() for u in self._results()[1]]

    @property
    def mask(self) -> np.ndarray | None:
        """The active object's (H, W) bool mask, or None when no object is active."""
        active = self.active
        return None if active == -1 else self.mask_update(active).mask.copy()

    @property
    def scores(self) -> list[float | None]:
        """Predicted IoU of each object's chosen mask (None for an object without prompts)."""
        return [u.score for u in self._results()[1]]

    def label_map(self) -> np.ndarray:
        """(H, W) int32: 0 background, k for the k-th object (1-based, ``objects`` order).
        Where masks overlap, the later object wins (it is drawn over the earlier ones)."""
        return label_map(self.masks, self.image_height, self.image_width)

    def snapshot(self, *, prompts: bool = True) -> np.ndarray:
        """(H, W, 3) uint8 RGB picture of the image with the objects' masks (and prompts),
        for reports and static pages (:func:`sam_widget.widget.snapshot.snapshot`)."""
        from .snapshot import snapshot

        return snapshot(self, prompts=prompts)

    # ------------------------------------------------------------------ everything

    def segment_everything(self, **params: Any) -> Future[list[dict[str, Any]]]:
        """Run ``SamAutomaticMaskGenerator(model, **everything_params, **params)`` in the
        background and show its masks; returns a ``Future`` of its records (sorted by area,
        largest first). Bad parameters raise here."""
        self._check_open()
        with self._lock:
            image_id, image = self._session.image_id, self.image
            # Checked again: a value equal to the stored one (2.0 == 2) skips the validator.
            merged = {**check_everything_params(self.everything_params), **params}
        return self._everything.start(merged, image_id, image)

    def keep(self, index: Any) -> Any:
        """Turn everything-mask ``index`` into a new object; returns its id. While an
        overlay from :meth:`show_overlay` is shown, calls its ``on_pick(index)`` instead and
        returns what that returns."""
        self._check_open()
        picked, result = self._everything.pick(index)
        if picked:
            return result
        (x, y), candidate = self._everything.choose(index)
        return self.new_object(points=[[x, y]], labels=[1], candidate=candidate)

    def show_overlay(
        self, masks: Sequence[Any], on_pick: Callable[[int], Any] | None = None
    ) -> None:
        """Draw ``masks`` ((H, W) bool each, the image's size) on the segment-everything
        layer (label k = mask k - 1; an empty list clears it). A click on mask k in keep
        mode (the browser's ``keep``) then calls ``on_pick(k)`` (e.g. the annotator accepts
        proposal k) instead of making an object itself. The overlay survives a re-render; a
        new :meth:`segment_everything` run, :meth:`clear_everything` and a new image drop it
        and its picker."""
        self._check_open()
        if on_pick is not None and not callable(on_pick):
            raise TypeError(f"on_pick must be callable or None, got {type(on_pick).__name__}")
        shape = (int(self.image_height), int(self.image_width))
        arrays = []
        for k, m in enumerate(masks):
            arr = np.asarray(m)
            if arr.dtype != bool or arr.shape != shape:
                raise ValueError(
                    f"masks[{k}] must be a bool array of shape {shape}, got {arr.dtype} {arr.shape}"
                )
            arrays.append(arr)
        with self._lock:
            image_id = int(self.image_id)
        self._everything.show_overlay(arrays, image_id, on_pick)

    def explain_everything(self) -> Future[AmgExplanation]:
        """Explain segment-everything (``everything_params``) stage by stage, in the
        background: the Explain panel gets the point grid and each filter stage's masks
        (:mod:`sam_widget.widget.explain_everything`); the future gives the
        :class:`~sam_widget.explain.AmgExplanation`. Costs one or two generator runs."""
        self._check_open()
        with self._lock:
            params = check_everything_params(self.everything_params)
            image_id, image = int(self.image_id), self._rgb
        if image is None:
            raise RuntimeError("the widget has no image.")
        display = (int(self.mask_height), int(self.mask_width))
        return self._explainer.submit_everything(params, image_id, image, display)

    def clear_everything(self) -> None:
        """Hide the segment-everything overlay."""
        self._everything.clear()

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """All prompts and the history as JSON-serialisable data (``version`` 1)."""
        with self._lock:
            return persist.to_dict(
                objects=self.objects,
                active=self.active,
                next_id=self._book.next_id,
                history=self._book.history,
                width=self.image_width,
                height=self.image_height,
                model=model_record(self._variant, self._checkpoint, self._predictor),
                refine=self.refine,
                image_path=self._image_path,
            )

    def load_dict(self, data: Mapping[str, Any]) -> None:
        """Replace objects, active object and history with ``data`` from :meth:`to_dict`.
        Everything is validated first; on error nothing changes."""
        with self._lock:
            self._check_open()
            loaded = persist.parse_dict(data, self.image_width, self.image_height)
            self._book.load(loaded.history, loaded.next_id)
            # Refined masks depend on the order prompts were decoded in: replay the history
            # up to its current entry (one cancellable job, ahead of the decodes below).
            states = loaded.history.states[: loaded.history.index + 1]
            self._session.replay([s["objects"] for s in states])
            self._restore(loaded.current)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], image: Any = None, model: Any = None, **kwargs: Any
    ) -> SamWidget:
        """A new widget with the prompts and history of ``data`` (from :meth:`to_dict`).

        ``image``: the image the data was made on; None uses the image file recorded in
        ``data`` (widgets made from a path record it). ``model``: None rebuilds the model
        recorded in ``data`` (same variant and checkpoint file; an untrained model again
        untrained); give it to use another."""
        image, model, kwargs = persist.widget_arguments(data, image, model, kwargs)
        widget = cls(image, model, **kwargs)
        try:
            widget.load_dict(data)
        except BaseException:
            widget.close()
            raise
        return widget

    def _stack(self) -> tuple[list[dict[str, Any]], np.ndarray, list[MaskUpdate]]:
        objs, updates = self._results()
        masks = [u.mask for u in updates]
        return objs, persist.stack_masks(masks, self.image_height, self.image_width), updates

    def save_masks(self, path: Any) -> Path:
        """Save the masks: ``.npz`` (``masks`` N x H x W bool, ``names``, ``ids``, ``colors``)
        or ``.png`` (label map as :meth:`label_map`). Written atomically: a failed write
        leaves an existing file untouched."""
        objs, stack, _ = self._stack()
        return persist.save_masks(path, stack, objs)

    def export_coco(self, path: Any) -> Path:
        """Write the masks as a COCO JSON file (RLE segmentations, one category per name),
        atomically."""
        objs, stack, updates = self._stack()
        return persist.export_coco(path, stack, objs, [u.score for u in updates])

    # ------------------------------------------------------------------ image

    def set_image(self, image: Any) -> None:
        """Show a new image (new ``image_id``). Objects, prompts and history start empty;
        an image seen before (same model) is not encoded again thanks to the cache."""
        rgb = to_rgb_uint8(image)
        path = (
            str(Path(os.fspath(image)).resolve()) if isinstance(image, (str, os.PathLike)) else None
        )
        data, mime = encode_image(rgb)
        h, w = rgb.shape[:2]
        mh, mw = display_size((h, w))
        with self._lock:
            self._check_open()
            image_id = self.image_id + 1
            self._rgb = rgb
            self._image_path = path
            self._session.set_image(image_id, rgb)
            self._everything.reset()
            self._resetting = True
            try:
                with self._sync_lock, self.hold_sync():
                    self.objects = []
                    self.active = -1
                    self._set_traits(
                        image_id=image_id,
                        image_width=int(w),
                        image_height=int(h),
                        mask_width=int(mw),
                        mask_height=int(mh),
                        image_mime=mime,
                        image_data=data,
                        error="",
                    )
            finally:
                self._resetting = False
            self._book.new_image()
            self._sync_history_flags()
        self.send({"type": "clear_everything"})

    @property
    def image(self) -> np.ndarray:
        """The current image as an (H, W, 3) uint8 RGB array (read-only view)."""
        assert self._rgb is not None
        view = self._rgb.view()
        view.flags.writeable = False
        return view

    @property
    def predictor(self) -> Any:
        """The widget's own ``SamPredictor`` (None until the model is loaded)."""
        return self._predictor

    def use_model(self, model: Any, timeout: float | None = None) -> None:
        """Go on with another model, keeping the image, the objects and the history: a
        fine-tuned checkpoint's path (from :func:`sam_widget.finetune.finetune`; it must be
        of this widget's variant and image encoder), a model from ``build_sam`` or a
        ``SamPredictor`` (its model).

        Waits (``timeout`` seconds) for the current model and image first. When the image
        encoder is unchanged (a fine-tuned checkpoint) the image embedding is kept, not
        computed again; otherwise the image is encoded with the new model. Every object
        with prompts is decoded again by the new model (its history replayed, as
        ``load_dict``); an object shown with a given mask and no prompts keeps that mask.
        ``notice`` says so when the new model is untrained (e.g. tuned from random
        weights); ``to_dict`` records the new checkpoint.
        """
        from .swap import resolve_model, swap_predictor

        self.wait(timeout)
        with self._lock:
            self._check_open()
            old = self._predictor
            new_model, checkpoint = resolve_model(model, old.model)
            predictor, carried = swap_predictor(old, new_model, self._rgb)
            objs = list(self.objects)
            redecode = [o for o in objs if not Prompt.from_object(o).empty]
            self._session.use_predictor(
                predictor, None if carried else self._rgb, [int(o["id"]) for o in redecode]
            )
            self._predictor = predictor
            self._variant = str(getattr(new_model, "variant", self._variant))
            self._checkpoint = checkpoint
            trained = bool(getattr(new_model, "pretrained", True))
            self._set_traits(notice="" if trained else untrained_notice(self._variant))
            history = self._book.history
            self._session.replay([s["objects"] for s in history.states[: history.index + 1]])
            for o in redecode:
                self._session.submit(o)

    def wait(self, timeout: float | None = None) -> SamWidget:
        """Block until the model is loaded, the image encoded and queued decodes are done.

        Raises ``RuntimeError`` if loading or encoding failed or the widget is closed,
        ``TimeoutError`` when ``timeout`` (seconds) passes first.
        """
        self._check_open()
        self._session.wait(timeout)
        return self

    def close(self) -> None:
        """Stop and join the widget's threads (worker, segment-everything) and close it."""
        self._closed = True
        everything = getattr(self, "_everything", None)  # None if __init__ failed early
        if everything is not None:
            everything.close()
        explainer = getattr(self, "_explainer", None)
        if explainer is not None:
            explainer.close()
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        super().close()
