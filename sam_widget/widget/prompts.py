"""Editing prompts and history from Python (mixed into ``SamWidget``).

Every method here changes the ``objects``/``active`` traits in one validated step (one
history entry), so prompts set from Python take exactly the path of clicks in the browser:
validation, ``seq`` bump, background decode, ``mask`` message. Methods that act on "the
object" use the active one unless ``object_id`` is given.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import objects as objmod

if TYPE_CHECKING:
    from .history import History

__all__ = ["PromptsMixin", "next_active", "snapshot"]


def snapshot(objs: Sequence[Mapping[str, Any]], active: int) -> dict[str, Any]:
    """A history state: objects without ``seq``, and the active id."""
    return {"objects": [objmod.strip_seq(o) for o in objs], "active": int(active)}


def next_active(
    old: Sequence[Mapping[str, Any]], removed: int, remaining: Sequence[Mapping[str, Any]]
) -> int:
    """Active id after deleting the active object ``removed``: the object before it (the
    first one if it was first), -1 when none is left."""
    if not remaining:
        return -1
    index = next((i for i, o in enumerate(old) if o["id"] == removed), len(old))
    return int(remaining[max(0, min(index - 1, len(remaining) - 1))]["id"])


class PromptsMixin:
    """Prompt editing and undo/redo for ``SamWidget`` (see the module docstring)."""

    # Provided by SamWidget (traits and state).
    objects: Any
    active: Any
    _next_id: int
    _history: History
    _replaying: bool

    if TYPE_CHECKING:  # only for the type checker: a real stub would shadow the methods

        def hold_trait_notifications(self) -> Any: ...

        def _sync_history_flags(self) -> None: ...

    def _object(self, object_id: int) -> dict[str, Any] | None:
        for o in self.objects:
            if o["id"] == object_id:
                return o
        return None

    def _target(self, object_id: int | None) -> dict[str, Any] | None:
        oid = self.active if object_id is None else object_id
        obj = self._object(oid) if oid != -1 else None
        if obj is None and object_id is not None:
            raise ValueError(f"no object with id {object_id!r}; ids: {self.object_ids}.")
        return obj

    def _commit(self, objs: list[dict[str, Any]], active: int) -> None:
        # One validated, atomic change of objects + active (one history entry).
        with self.hold_trait_notifications():
            self.objects = objs
            self.active = active

    def _edit(self, object_id: int | None, create: bool, **changes: Any) -> int:
        obj = self._target(object_id)
        objs = copy.deepcopy(self.objects)
        if obj is None:
            if not create:
                raise ValueError("no active object; create one with new_object() first.")
            new = {
                "id": self._next_id,
                "points": [],
                "labels": [],
                "box": None,
                "candidate": None,
                **changes,
            }
            oid = self._next_id
            self._commit(objs + [new], oid)
            return oid
        for o in objs:
            if o["id"] == obj["id"]:
                o.update(changes)
                o["seq"] = None
        self._commit(objs, obj["id"])
        return int(obj["id"])

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
        """Add an object (optionally with prompts), make it active; returns its id."""
        oid = self._next_id
        new = {
            "id": oid,
            "name": name,
            "points": points if points is not None else [],
            "labels": labels if labels is not None else [],
            "box": box,
            "candidate": candidate,
        }
        if points is not None and labels is None and hasattr(points, "__len__"):
            new["labels"] = [1] * len(points)  # all positive; the validator checks the rest
        self._commit(copy.deepcopy(self.objects) + [new], oid)
        return oid

    def add_point(self, x: float, y: float, label: int = 1, object_id: int | None = None) -> int:
        """Add a positive (1) or negative (0) point to the active (or given) object; creates
        an object when there is none. Returns the object id."""
        obj = self._target(object_id)
        points = ([*obj["points"]] if obj else []) + [[x, y]]
        labels = ([*obj["labels"]] if obj else []) + [label]
        return self._edit(object_id, True, points=points, labels=labels)

    def remove_point(self, index: int = -1, object_id: int | None = None) -> None:
        """Remove a point (default: the last one) of the active (or given) object."""
        obj = self._target(object_id)
        if obj is None or not obj["points"]:
            raise ValueError("the object has no points to remove.")
        points, labels = [*obj["points"]], [*obj["labels"]]
        del points[index], labels[index]
        self._edit(obj["id"], False, points=points, labels=labels)

    def set_box(self, box: Sequence[float] | None, object_id: int | None = None) -> int:
        """Set (XYXY, original pixels) or remove (None) the box of the active (or given)
        object; creates an object when there is none. Returns the object id."""
        return self._edit(object_id, box is not None, box=None if box is None else list(box))

    def pick_candidate(self, k: int | None, object_id: int | None = None) -> None:
        """Choose multimask candidate ``k`` (0..2; None: best predicted IoU) for the active
        (or given) object."""
        self._edit(object_id, False, candidate=k)

    def select(self, object_id: int) -> None:
        """Make ``object_id`` the active object (-1: none)."""
        self.active = object_id

    def delete_object(self, object_id: int | None = None) -> None:
        """Delete the active (or given) object."""
        obj = self._target(object_id)
        if obj is None:
            raise ValueError("no active object to delete.")
        objs = [o for o in copy.deepcopy(self.objects) if o["id"] != obj["id"]]
        active = self.active
        if active == obj["id"]:  # the previous object becomes active (as in the browser)
            active = next_active(self.objects, obj["id"], objs)
        self._commit(objs, active)

    def clear(self, object_id: int | None = None) -> None:
        """Remove all prompts of the active (or given) object, like the toolbar's "clear"
        button; the object itself stays (``delete_object`` removes it)."""
        self._edit(object_id, False, points=[], labels=[], box=None, candidate=None)

    def clear_all(self) -> None:
        """Delete every object (one history entry; undo brings them back)."""
        self._commit([], -1)

    # ------------------------------------------------------------------ history

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._replaying = True
        try:
            self._commit(copy.deepcopy(list(state["objects"])), int(state["active"]))
        finally:
            self._replaying = False
        self._sync_history_flags()

    def undo(self) -> bool:
        """Go back one history entry; returns False when there is nothing to undo."""
        state = self._history.undo()
        if state is None:
            return False
        self._restore(state)
        return True

    def redo(self) -> bool:
        """Go forward one history entry; returns False when there is nothing to redo."""
        state = self._history.redo()
        if state is None:
            return False
        self._restore(state)
        return True

    @property
    def history(self) -> list[dict[str, Any]]:
        """All history states (``{"objects": [...], "active": id}``), oldest first; the
        current one is ``history[history_index]``."""
        return self._history.states

    @property
    def history_index(self) -> int:
        return self._history.index
