"""Undo/redo history of a widget, kept as plain data.

A *state* is ``{"objects": [object dicts without "seq"], "active": int}`` (JSON-serialisable).
The history is a list of states and an index: ``states[index]`` is the current one; undo
moves the index back, redo forward, and a new state drops everything after the index
(like every editor). Sequence numbers are not part of a state: they are a transport detail
(the widget renumbers restored objects so that ``seq`` only grows).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["History"]

State = dict[str, Any]


class History:
    """Linear undo/redo history of widget states.

    Args:
        limit: most states kept; the oldest are dropped beyond it (the first state then
            becomes the oldest kept one).
    """

    def __init__(self, initial: State, *, limit: int = 1000) -> None:
        if int(limit) < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}.")
        self.limit = int(limit)
        self._states: list[State] = [copy.deepcopy(initial)]
        self._index = 0

    @property
    def current(self) -> State:
        """A copy of the current state."""
        return copy.deepcopy(self._states[self._index])

    @property
    def index(self) -> int:
        return self._index

    @property
    def states(self) -> list[State]:
        """Copies of all states, oldest first."""
        return copy.deepcopy(self._states)

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._states) - 1

    def push(self, state: State) -> bool:
        """Record ``state`` as a new entry; returns False (and records nothing) when it equals
        the current state. A change of ``active`` alone (selecting an object) is not a step of
        its own: it updates the current entry, so undo goes back to the last change of the
        objects (prompts, masks, names, objects made or deleted)."""
        current = self._states[self._index]
        if state == current:
            return False
        if "objects" in state and state.get("objects") == current.get("objects"):
            self._states[self._index] = copy.deepcopy(state)
            return False
        del self._states[self._index + 1 :]
        self._states.append(copy.deepcopy(state))
        if len(self._states) > self.limit:
            del self._states[: len(self._states) - self.limit]
        self._index = len(self._states) - 1
        return True

    def undo(self) -> State | None:
        """Step back; returns the state to restore, or None when there is nothing to undo."""
        if not self.can_undo:
            return None
        self._index -= 1
        return self.current

    def redo(self) -> State | None:
        """Step forward; returns the state to restore, or None when there is nothing to redo."""
        if not self.can_redo:
            return None
        self._index += 1
        return self.current

    def to_data(self) -> dict[str, Any]:
        """``{"states": [...], "index": int}``, JSON-serialisable."""
        return {"states": self.states, "index": self._index}

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, Any],
        check_state: Callable[[Any, str], State],
        *,
        limit: int = 1000,
    ) -> History:
        """Rebuild a history from :meth:`to_data` output.

        ``check_state(state, where)`` validates (and may normalise) each state and raises
        ``ValueError``/``TypeError`` for bad ones; nothing is built unless all are valid.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"history must be a dict, got {type(data).__name__}.")
        states = data.get("states")
        if not isinstance(states, list) or not states:
            raise ValueError("history.states must be a non-empty list of states.")
        index = data.get("index", len(states) - 1)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(states):
            raise ValueError(f"history.index must be an integer in 0..{len(states) - 1}.")
        checked = [check_state(s, f"history.states[{i}]") for i, s in enumerate(states)]
        hist = cls(checked[0], limit=max(limit, len(checked)))
        hist._states = [copy.deepcopy(s) for s in checked]
        hist._index = index
        return hist
