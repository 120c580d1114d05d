"""A tiny anywidget that turns key presses over the annotator into messages to Python.

Keys count only after the user clicked inside the annotator (an element with class
``sam-annotator``) and until they click elsewhere, and never while typing in an input. They
are caught on ``window`` in the capture phase and stopped there, so JupyterLab's own
command-mode shortcuts (``d d`` deletes a cell) do not also run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

__all__ = ["KEYS", "KeyListener"]

#: Keys forwarded to Python.
KEYS = ("n", "p", "d", "1", "2", "3", "4", "5", "6", "7", "8", "9")

_ESM = """
function render({ model, el }) {
  el.className = "sam-annotator-keys";
  el.style.display = "none";
  const keys = new Set(model.get("shortcuts"));
  let armed = false;
  const onPointer = (e) => {
    armed = !!(e.target && e.target.closest && e.target.closest(".sam-annotator"));
  };
  const onKey = (e) => {
    if (!armed || e.ctrlKey || e.metaKey || e.altKey || !keys.has(e.key)) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    model.send({ type: "key", key: e.key });
  };
  window.addEventListener("pointerdown", onPointer, true);
  window.addEventListener("keydown", onKey, true);
  return () => {
    window.removeEventListener("pointerdown", onPointer, true);
    window.removeEventListener("keydown", onKey, true);
  };
}
export default { render };
"""


class KeyListener(anywidget.AnyWidget):  # type: ignore[misc]
    """Calls ``handler(key)`` for each forwarded key press (see the module docstring)."""

    _esm = _ESM
    shortcuts = traitlets.List(traitlets.Unicode(), default_value=list(KEYS)).tag(sync=True)

    def __init__(self, handler: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handler = handler
        self.on_msg(self._message)

    def _message(self, _widget: Any, content: Any, _buffers: Any = None) -> None:
        if isinstance(content, Mapping) and content.get("type") == "key":
            key = content.get("key")
            if isinstance(key, str) and key in self.shortcuts:
                self._handler(key)
