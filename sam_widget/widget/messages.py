"""Browser -> kernel custom messages (docs/ARCHITECTURE.md, "Widget protocol"): one handler
per message type, looked up in :data:`HANDLERS` (no if/elif chain), and the hover rule.

A handler takes the widget and the message content; it may raise ``ValueError``/``TypeError``
for a malformed message (the widget reports it on its error line and goes on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import objects as objmod
from .chain import Prompt

if TYPE_CHECKING:
    from .widget import SamWidget

__all__ = ["HANDLERS", "hover_prompt"]

Handler = Callable[["SamWidget", Mapping[str, Any]], None]


def hover_prompt(
    content: Mapping[str, Any],
    *,
    enabled: bool,
    objects: Sequence[Mapping[str, Any]],
    active: int,
    width: int,
    height: int,
) -> tuple[int, Prompt | None]:
    """``(seq, prompt)`` for a ``{type: "hover", seq, x, y}`` message: the active object's
    prompts plus a positive point at (x, y); prompt None (clear the preview) when hover is
    off or the point is off the image. Raises ``ValueError`` for a bad ``seq``."""
    seq, x, y = content.get("seq"), content.get("x"), content.get("y")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= objmod.MAX_SAFE_INTEGER:
        raise ValueError(f"hover message needs an integer seq in 0..2**53-1, got {seq!r}.")
    if not (
        enabled
        and isinstance(x, (int, float))
        and not isinstance(x, bool)
        and isinstance(y, (int, float))
        and not isinstance(y, bool)
        and 0 <= x <= width
        and 0 <= y <= height
    ):
        return seq, None
    base = next((Prompt.from_object(o) for o in objects if o["id"] == active), Prompt())
    return seq, base.with_point(float(x), float(y), 1)


def _undo(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.undo()


def _redo(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.redo()


def _hover(w: SamWidget, content: Mapping[str, Any]) -> None:
    w._hover(content)


def _segment_everything(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.segment_everything()


def _explain_everything(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.explain_everything()


def _keep(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.keep(content.get("index"))


def _sync(w: SamWidget, content: Mapping[str, Any]) -> None:
    w.resend()


#: message type -> handler
HANDLERS: dict[str, Handler] = {
    "undo": _undo,
    "redo": _redo,
    "hover": _hover,
    "segment_everything": _segment_everything,
    "keep": _keep,
    "explain_everything": _explain_everything,
    "sync": _sync,
}
