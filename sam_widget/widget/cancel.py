"""Abandoning model work nobody needs any more (a newer prompt state, a deleted object, a
new image, a closed widget).

A worker runs a decoder call inside ``with cancellable(check):``. A forward pre-hook on every
module of the model (plain ``torch.nn.Module`` API, whatever the model family) calls
``check()`` and raises :class:`Cancelled` as soon as it is true, so a run is abandoned
between two module calls instead of finishing a long decode (a 1,000-point prompt). Threads
that set no check (a caller's ``w.masks``, segment-everything, other widgets sharing the
model) are not affected: the check lives in a context variable, which is per thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["Cancelled", "cancellable", "install_cancel_points"]


class Cancelled(Exception):
    """The work was abandoned (from a cancel point or an encoder's progress callback)."""


_CHECK: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "sam_widget_cancel_check", default=None
)
_HOOKED: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()


def _cancel_point(module: torch.nn.Module, args: Any) -> None:
    check = _CHECK.get()
    if check is not None and check():
        raise Cancelled


@contextlib.contextmanager
def cancellable(check: Callable[[], bool]) -> Iterator[None]:
    """Model runs inside (on this thread) are abandoned with :class:`Cancelled` as soon as
    ``check()`` is true."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def install_cancel_points(model: Any) -> None:
    """Add the cancel point to every module of ``model`` (once per model; no-op for
    anything that is not a ``torch.nn.Module``)."""
    if not isinstance(model, torch.nn.Module):
        return
    with _HOOK_LOCK:
        if model in _HOOKED:
            return
        for module in model.modules():
            module.register_forward_pre_hook(_cancel_point)
        _HOOKED.add(model)
