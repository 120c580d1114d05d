"""``SamWidget``: Segment Anything live in Jupyter (traits, handlers and the Python API).

The browser side is ``js/`` (bundled into ``sam_widget/static/widget.js``); the protocol
between the two is fixed in docs/ARCHITECTURE.md ("Widget protocol"). Model work runs in
:class:`sam_widget.session.Session` (one background thread per widget).

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

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..engine.images import to_rgb_uint8
from ..engine.transforms import ResizeLongestSide
from . import objects as objmod
from .chain import Prompt
from .codec import encode_image
from .history import History
from .prompts import PromptsMixin, next_active, snapshot
from .results import ResultsMixin
from .session import Callbacks, MaskUpdate, Session, describe_error

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
_MODEL_SIDE = 1024  # the model's input frame (longest side); display masks use it
_BROWSER_WRITABLE = frozenset({"objects", "active", "opacity", "hover"})


class ObjectsError(traitlets.TraitError, ValueError):
    """A bad ``objects``/``active`` value (a ``ValueError``; also a ``TraitError`` so that
    traitlets rolls back every trait of the same change)."""


class _ObjectsTypeError(traitlets.TraitError, TypeError):
    """A bad ``objects`` value of the wrong type (a ``TypeError``)."""


class _ObjectsTrait(traitlets.TraitType):  # type: ignore[type-arg]
    """The ``objects`` trait: any value reaches ``SamWidget._validate_objects``, which
    checks everything and raises ``TypeError``/``ValueError`` subclasses with clear text."""

    info_text = "a list of object dicts (see docs/ARCHITECTURE.md)"

    def __init__(self) -> None:
        super().__init__(default_value=[])

    def make_dynamic_default(self) -> list[dict[str, Any]]:
        return []


def _esm() -> Path | str:
    bundle = _STATIC / "widget.js"
    return bundle if bundle.is_file() else _FALLBACK_ESM


class SamWidget(PromptsMixin, ResultsMixin, anywidget.AnyWidget):
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
        refine: feed each prompt stage's low-res logits back as ``mask_input`` (published SAM
            practice, see :mod:`sam_widget.chain`); False decodes all prompts at once.
        opacity, hover, layout: initial overlay opacity (0..1), hover preview on/off,
            ipywidgets ``Layout``. Any other keyword is a ``TypeError``.

    Prompts (each call is one history entry and takes the same path as a click: ``objects``
    trait -> validation -> background decode -> ``mask`` message): ``new_object``,
    ``add_point``, ``remove_point``, ``set_box``, ``pick_candidate``, ``select``,
    ``delete_object``, ``clear`` (the active object's prompts, like the toolbar button),
    ``clear_all``, ``undo``/``redo``, or assigning ``objects``/``active`` directly. Bad
    prompts raise ``ValueError``/``TypeError`` and change nothing.

    Results: ``masks``, ``mask``, ``label_map()`` (later objects over earlier ones),
    ``scores``, ``mask_update(id)``, ``on_mask(callback)``, ``segment_everything``/``keep``,
    ``save_masks``, ``export_coco``, ``to_dict``/``from_dict``/``load_dict``, ``history``.
    They block until the image is encoded (``wait()`` does too).

    ``set_image`` replaces the image and starts over: objects and history are cleared (save
    them with ``to_dict`` first); an image seen before is not encoded again (cache).
    """

    _esm = _esm()

    image_data = traitlets.Bytes(b"").tag(sync=True)
    image_mime = traitlets.Unicode("image/png").tag(sync=True)
    image_width = traitlets.Int(0).tag(sync=True)
    image_height = traitlets.Int(0).tag(sync=True)
    image_id = traitlets.Int(0).tag(sync=True)
    mask_width = traitlets.Int(0).tag(sync=True)
    mask_height = traitlets.Int(0).tag(sync=True)
    objects = _ObjectsTrait().tag(sync=True)
    active = traitlets.Int(-1).tag(sync=True)
    opacity = traitlets.Float(0.5, min=0.0, max=1.0).tag(sync=True)
    hover = traitlets.Bool(True).tag(sync=True)
    status = traitlets.Unicode("loading").tag(sync=True)
    progress = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    can_undo = traitlets.Bool(False).tag(sync=True)
    can_redo = traitlets.Bool(False).tag(sync=True)

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
    ) -> None:
        factory, self._variant = _model_factory(model, checkpoint, device)
        rgb = to_rgb_uint8(image)  # bad images fail here, before any thread starts
        options: dict[str, Any] = {"opacity": float(opacity), "hover": bool(hover)}
        if layout is not None:
            options["layout"] = layout
        self._next_id = 1
        self._seq_hw: dict[int, int] = {}
        self._committed: dict[int, dict[str, Any]] = {}  # id -> object, as last committed
        self._history = History(snapshot([], -1))
        self._replaying = False
        self._resetting = False
        self._callbacks: list[Callable[[int, MaskUpdate], None]] = []
        self._rgb: np.ndarray | None = None
        self._predictor: Any = None
        self._sync_lock = threading.RLock()
        self.refine = bool(refine)
        super().__init__(**options)
        from .everything import Everything

        self._session = Session(
            Callbacks(
                send=lambda content, buffers: self.send(content, buffers),
                status=self._set_status,
                error=self._set_error,
                loaded=self._on_loaded,
                mask=self._fire_callbacks,
            ),
            refine=self.refine,
        )
        self._everything = Everything(self)
        self.on_msg(self._on_custom_message)
        self.set_image(rgb)
        self._session.load(factory)

    # ------------------------------------------------------------------ worker callbacks

    # Worker threads set only status/progress/error/notice, always under _sync_lock, and
    # never inside hold_sync. The main thread's hold_sync blocks take _sync_lock too:
    # ipywidgets' hold_sync bookkeeping (_states_to_send) is not thread-safe.

    def _set_status(self, status: str, progress: float) -> None:
        with self._sync_lock:
            self.progress = float(progress)
            self.status = status

    def _set_error(self, message: str) -> None:
        with self._sync_lock:
            if self.error != message:
                self.error = message

    def _on_loaded(self, predictor: Any) -> None:
        self._predictor = predictor
        model = predictor.model
        if not getattr(model, "pretrained", True):
            variant = getattr(model, "variant", "custom")
            notice = (
                f"Untrained model: {variant!r} has random weights, so its masks are "
                "meaningless. Use a pretrained model (e.g. model='vit_t') or a checkpoint."
            )
            with self._sync_lock:
                self.notice = notice

    def _fire_callbacks(self, update: MaskUpdate) -> None:
        for cb in list(self._callbacks):
            try:
                cb(update.object_id, update)
            except Exception as exc:
                logger.exception("sam_widget: on_mask callback %r failed", cb)
                self._set_error(f"on_mask callback failed: {describe_error(exc)}")

    def _report(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {describe_error(exc)}"
        logger.error("%s", message, exc_info=exc)
        self._set_error(message)

    # ------------------------------------------------------------------ validation

    @traitlets.validate("objects")
    def _validate_objects(self, proposal: Any) -> list[dict[str, Any]]:
        try:
            objs, _ = objmod.normalize_objects(
                proposal["value"], self.image_width, self.image_height, self._next_id
            )
        except TypeError as exc:
            raise _ObjectsTypeError(str(exc)) from exc
        except ValueError as exc:
            raise ObjectsError(str(exc)) from exc
        # Not self.objects: inside hold_trait_notifications it already holds the proposal.
        return objmod.assign_seqs(objs, self._committed, self._seq_hw)

    @traitlets.validate("active")
    def _validate_active(self, proposal: Any) -> int:
        value = proposal["value"]
        ids = [o["id"] for o in self.objects]
        if value != -1 and value not in ids:
            raise ObjectsError(f"active must be -1 or the id of an object {ids}, got {value!r}.")
        return int(value)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply an update from the browser; refused changes are sent back corrected."""
        allowed = {k: v for k, v in sync_data.items() if k in _BROWSER_WRITABLE}
        if sync_data.get("error") == "":
            allowed["error"] = ""  # the user dismissed the error line
        refused = [
            k
            for k in sync_data
            if k not in _BROWSER_WRITABLE and k in self.keys and k not in allowed
        ]
        try:
            if allowed:
                super().set_state(allowed)
        except (traitlets.TraitError, ValueError, TypeError) as exc:
            self._report("Rejected a change from the browser", exc)
            refused += [k for k in allowed if k in self.keys]
        if refused:
            self.send_state(refused)

    # ------------------------------------------------------------------ trait observers

    @traitlets.observe("objects")
    def _objects_changed(self, change: Any) -> None:
        old = {o["id"]: o for o in change["old"]}
        new = change["new"]
        self._committed = {o["id"]: o for o in new}
        for o in new:
            self._seq_hw[o["id"]] = max(self._seq_hw.get(o["id"], -1), o["seq"])
            self._next_id = max(self._next_id, o["id"] + 1)
        if not self._resetting:
            ids = {o["id"] for o in new}
            for oid in old.keys() - ids:
                self._session.forget(oid)
            for o in new:
                if o["id"] not in old or old[o["id"]]["seq"] != o["seq"]:
                    self._session.submit(o)
            if self.active != -1 and self.active not in ids:
                self.active = next_active(change["old"], self.active, new)
        self._record()

    @traitlets.observe("active")
    def _active_changed(self, change: Any) -> None:
        self._record()

    def _record(self) -> None:
        if not (self._replaying or self._resetting):
            self._history.push(snapshot(self.objects, self.active))
        self._sync_history_flags()

    def _sync_history_flags(self) -> None:
        with self._sync_lock, self.hold_sync():
            self.can_undo = self._history.can_undo
            self.can_redo = self._history.can_redo

    # ------------------------------------------------------------------ browser messages

    def _on_custom_message(self, _widget: Any, content: Any, buffers: Any = None) -> None:
        """Handle a ``model.send(content)`` from the browser (protocol messages)."""
        if not isinstance(content, Mapping) or "type" not in content:
            return  # not ours (e.g. anywidget's own command messages)
        kind = content.get("type")
        try:
            if kind == "undo":
                self.undo()
            elif kind == "redo":
                self.redo()
            elif kind == "hover":
                self._hover_message(content)
            elif kind == "segment_everything":
                self.segment_everything()
            elif kind == "keep":
                self.keep(content.get("index"))
            elif kind == "sync":
                self.resend()
            else:
                logger.warning("sam_widget: ignoring unknown message %r", kind)
        except Exception as exc:
            self._report(f"Handling {kind!r} failed", exc)

    def _hover_message(self, content: Mapping[str, Any]) -> None:
        seq, x, y = content.get("seq"), content.get("x"), content.get("y")
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError(f"hover message needs an integer seq, got {seq!r}.")
        if not (
            self.hover
            and isinstance(x, (int, float))
            and isinstance(y, (int, float))
            and 0 <= x <= self.image_width
            and 0 <= y <= self.image_height
        ):
            self._session.hover(seq, None)
            return
        base = Prompt()
        active = self._object(self.active) if self.active != -1 else None
        if active is not None:
            base = Prompt.from_object(active)
        self._session.hover(seq, base.with_point(float(x), float(y), 1), self.active)

    def resend(self) -> None:
        """Send every object's current mask again (what a new view asks for)."""
        for o in self.objects:
            self._session.submit(o)
        self._everything.resend()

    # ------------------------------------------------------------------ image

    def set_image(self, image: Any) -> None:
        """Show a new image (new ``image_id``). Objects, prompts and history start empty;
        an image seen before (same model) is not encoded again thanks to the cache."""
        rgb = to_rgb_uint8(image)
        data, mime = encode_image(rgb)
        h, w = rgb.shape[:2]
        mh, mw = ResizeLongestSide.get_preprocess_shape(h, w, _MODEL_SIDE)
        image_id = self.image_id + 1
        self._rgb = rgb
        self._session.set_image(image_id, rgb)
        self._everything.reset()
        self._resetting = True
        try:
            with self._sync_lock, self.hold_sync():
                self.objects = []
                self.active = -1
                self.image_id = image_id
                self.image_width, self.image_height = int(w), int(h)
                self.mask_width, self.mask_height = int(mw), int(mh)
                self.image_mime = mime
                self.image_data = data
                self.error = ""
        finally:
            self._resetting = False
        self._history = History(snapshot([], -1))
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

    def wait(self, timeout: float | None = None) -> SamWidget:
        """Block until the model is loaded, the image encoded and queued decodes are done.

        Raises ``RuntimeError`` if loading or encoding failed, ``TimeoutError`` on timeout.
        """
        self._session.wait_ready(timeout)
        self._session.wait_idle(timeout)
        return self

    def close(self) -> None:
        """Stop the worker thread and close the widget."""
        session = getattr(self, "_session", None)  # None if __init__ failed early
        if session is not None:
            session.close()
        super().close()


def _model_factory(model: Any, checkpoint: Any, device: Any) -> tuple[Callable[[], Any], str]:
    """Check ``model`` now (cheap) and return a factory for the widget's predictor."""
    from ..engine import model_cache as registry

    if isinstance(model, str):
        from ..models.sam.config import get_config

        get_config(model)  # ValueError listing the variants
        variant = model
        return (
            lambda: registry.make_predictor(registry.get_model(variant, checkpoint, device)),
            variant,
        )
    if checkpoint is not None or device is not None:
        raise ValueError("checkpoint and device only apply when model is a variant name.")
    from ..engine.predictor import SamPredictor
    from ..models.sam import Sam

    if isinstance(model, SamPredictor):
        base: Any = model
        cache = getattr(base, "cache", None)
        return lambda: registry.make_predictor(base.model, cache), str(base.model.variant)
    if isinstance(model, Sam):
        sam: Any = model
        return lambda: registry.make_predictor(sam), str(sam.variant)
    raise TypeError(
        "model must be a variant name, a Sam model or a SamPredictor, got "
        f"{type(model).__module__}.{type(model).__qualname__}."
    )
