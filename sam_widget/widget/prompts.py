"""Prompt editing as plain data: the edit rules (a reducer) and the prompt book (history,
ids and sequence numbers). Nothing here knows the widget.

**Edit rules** (:func:`reduce`; the frontend's ``js/src/state.ts`` follows the same rules, and
both test suites run the cases in ``tests/shared/prompt_edit_cases.json``). A state is
``{"objects": [object dicts], "active": id, "next_id": int}``; an action is a dict with a
``"type"``:

- ``addPoint`` ``{x, y, label}``: appends a point to the active object (creating one when
  none is active); ``candidate`` is kept (refinement grows from the candidate picked at the
  first click).
- ``addStroke`` ``{points, radius, erase}``: appends a brush (``erase`` false) or eraser
  stroke to the active object (creating one when none is active); the candidate is kept.
- ``removePoint`` ``{index}``: removes one point (default the last).
- ``setBox`` ``{box}``: sets (XYXY) or removes (None) the box; ``candidate`` is reset to None
  (the box changes the first stage, so the old choice no longer applies). A box with no
  active object creates one; removing a box needs an active object.
- ``newObject``: a new empty object becomes active. When the active object is still empty
  (no points, no box) and keeps its default name, it is reused instead, so pressing "new"
  twice makes one object. Python may give ``name``/``points``/``labels``/``box``/
  ``candidate``; they apply to the new (or reused) object.
- ``deleteObject`` ``{id?}``: the object before it becomes active (the first one if it was
  first), -1 when none is left.
- ``selectObject`` ``{id}``, ``clearActive`` (the object's prompts, strokes and candidate
  go, the object stays), ``pickCandidate`` ``{candidate}``, ``rename`` ``{id, name}`` (trimmed),
  ``clearAll``.
- Every change of an object's prompts or candidate adds 1 to its ``seq``; an edit makes its
  object the active one. Actions on an object other than the active one give ``id``.
- An action that cannot apply (no active object to clear, an unknown id, a limit of
  :mod:`.objects` reached) is *refused*: :func:`reduce` raises :class:`PromptError` (a
  ``ValueError``), the frontend returns its state unchanged. An action that applies but
  changes nothing returns an equal state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from . import objects as objmod
from .history import History

__all__ = ["PromptBook", "PromptError", "next_active", "reduce", "snapshot"]

State = dict[str, Any]


class PromptError(ValueError):
    """An edit that cannot apply to the current prompts."""


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


# ---------------------------------------------------------------------------- the reducer


def _find(state: State, object_id: Any) -> dict[str, Any] | None:
    return next((o for o in state["objects"] if o["id"] == object_id), None)


def _target(state: State, action: Mapping[str, Any], *, create: bool) -> tuple[State, int]:
    """The state (with a new object when needed and ``create``) and the id to edit."""
    oid = action.get("id")
    if oid is not None:
        if _find(state, oid) is None:
            ids = [o["id"] for o in state["objects"]]
            raise PromptError(f"no object with id {oid!r}; ids: {ids}.")
        return state, int(oid)
    if _find(state, state["active"]) is not None:
        return state, int(state["active"])
    if not create:
        raise PromptError("no active object; create one with new_object() first.")
    made = _create(state)
    return made, int(made["active"])


def _create(state: State) -> State:
    objs = state["objects"]
    if len(objs) >= objmod.MAX_OBJECTS:
        raise PromptError(f"an image holds at most {objmod.MAX_OBJECTS} objects.")
    oid = max([int(state["next_id"])] + [int(o["id"]) + 1 for o in objs])
    new = {
        "id": oid,
        "name": f"object {oid}",
        "color": objmod.color_for([o["color"] for o in objs], len(objs)),
        "points": [],
        "labels": [],
        "box": None,
        "candidate": None,
        "strokes": [],
        "seq": 0,
    }
    return {"objects": [*objs, new], "active": oid, "next_id": oid + 1}


def _edit(state: State, oid: int, **changes: Any) -> State:
    objs = [
        {**o, **changes, "seq": int(o["seq"]) + 1} if o["id"] == oid else o
        for o in state["objects"]
    ]
    return {**state, "objects": objs, "active": oid}


def _has_prompts(obj: Mapping[str, Any]) -> bool:
    return bool(obj["points"]) or obj["box"] is not None or bool(obj.get("strokes"))


def _as_list(value: Any, what: str) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a list, got {type(value).__name__} {value!r}.")
    return list(value)


def _add_point(state: State, action: Mapping[str, Any]) -> State:
    state, oid = _target(state, action, create=True)
    obj = _find(state, oid)
    assert obj is not None
    if len(obj["points"]) >= objmod.MAX_POINTS:
        raise PromptError(f"an object holds at most {objmod.MAX_POINTS} points.")
    point = [action["x"], action["y"]]
    return _edit(
        state,
        oid,
        points=[*obj["points"], point],
        labels=[*obj["labels"], action.get("label", 1)],
    )


def _add_stroke(state: State, action: Mapping[str, Any]) -> State:
    state, oid = _target(state, action, create=True)
    obj = _find(state, oid)
    assert obj is not None
    strokes = obj.get("strokes") or []
    if len(strokes) >= objmod.MAX_STROKES:
        raise PromptError(f"an object holds at most {objmod.MAX_STROKES} strokes.")
    points = [_as_list(p, "stroke point") for p in _as_list(action.get("points"), "points")]
    stroke = {"points": points, "radius": action.get("radius"), "erase": action.get("erase", False)}
    return _edit(state, oid, strokes=[*strokes, stroke])


def _remove_point(state: State, action: Mapping[str, Any]) -> State:
    state, oid = _target(state, action, create=False)
    obj = _find(state, oid)
    assert obj is not None
    index = action.get("index", -1)
    n = len(obj["points"])
    if isinstance(index, bool) or not isinstance(index, int) or not -n <= index < n:
        raise PromptError(f"the object has no point {index!r} to remove ({n} points).")
    points, labels = [*obj["points"]], [*obj["labels"]]
    del points[index], labels[index]
    return _edit(state, oid, points=points, labels=labels)


def _set_box(state: State, action: Mapping[str, Any]) -> State:
    box = action.get("box")
    if box is not None:
        box = _as_list(box, "box")
    state, oid = _target(state, action, create=box is not None)
    return _edit(state, oid, box=box, candidate=None)


def _new_object(state: State, action: Mapping[str, Any]) -> State:
    active = _find(state, state["active"])
    if (
        active is not None
        and not _has_prompts(active)
        and active["name"] == (f"object {active['id']}")
    ):
        made, oid = state, int(active["id"])  # the active object is still empty: use it
    else:
        made = _create(state)
        oid = int(made["active"])
    changes: dict[str, Any] = {}
    if action.get("name") is not None:
        changes["name"] = action["name"]
    points = action.get("points")
    if points is not None:
        changes["points"] = _as_list(points, "points")
        labels = action.get("labels")
        changes["labels"] = [1] * len(changes["points"]) if labels is None else labels
    elif action.get("labels") is not None:
        changes["labels"] = action["labels"]
    for key in ("box", "candidate"):
        if action.get(key) is not None:
            changes[key] = action[key]
    if not changes:
        return made if made is not state else {**state, "active": oid}
    return _edit(made, oid, **changes)


def _delete_object(state: State, action: Mapping[str, Any]) -> State:
    oid = action.get("id")
    oid = state["active"] if oid is None else oid
    if _find(state, oid) is None:
        if action.get("id") is None:
            raise PromptError("no active object to delete.")
        ids = [o["id"] for o in state["objects"]]
        raise PromptError(f"no object with id {oid!r}; ids: {ids}.")
    objs = [o for o in state["objects"] if o["id"] != oid]
    active = state["active"]
    if active == oid:
        active = next_active(state["objects"], oid, objs)
    return {"objects": objs, "active": active, "next_id": max(state["next_id"], oid + 1)}


def _select(state: State, action: Mapping[str, Any]) -> State:
    oid = action.get("id")
    if oid != -1 and _find(state, oid) is None:
        ids = [o["id"] for o in state["objects"]]
        raise PromptError(f"active must be -1 or the id of an object {ids}, got {oid!r}.")
    return {**state, "active": oid}


def _clear(state: State, action: Mapping[str, Any]) -> State:
    state, oid = _target(state, action, create=False)
    obj = _find(state, oid)
    assert obj is not None
    if not _has_prompts(obj) and obj["candidate"] is None:
        return {**state, "active": oid}
    return _edit(state, oid, points=[], labels=[], box=None, candidate=None, strokes=[])


def _pick(state: State, action: Mapping[str, Any]) -> State:
    state, oid = _target(state, action, create=False)
    obj = _find(state, oid)
    assert obj is not None
    if obj["candidate"] == action.get("candidate"):
        return {**state, "active": oid}
    return _edit(state, oid, candidate=action.get("candidate"))


def _rename(state: State, action: Mapping[str, Any]) -> State:
    oid, name = action.get("id"), action.get("name")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}.")
    obj = _find(state, oid)
    if obj is None:
        raise PromptError(f"no object with id {oid!r}.")
    name = name.strip()
    if not name:
        raise PromptError("name must not be empty.")
    if len(name) > objmod.MAX_NAME_LENGTH:
        raise PromptError(f"name has {len(name)} characters; at most {objmod.MAX_NAME_LENGTH}.")
    objs = [{**o, "name": name} if o["id"] == oid else o for o in state["objects"]]
    return {**state, "objects": objs}


def _clear_all(state: State, action: Mapping[str, Any]) -> State:
    next_id = max([state["next_id"]] + [o["id"] + 1 for o in state["objects"]])
    return {"objects": [], "active": -1, "next_id": next_id}


_RULES = {
    "addPoint": _add_point,
    "addStroke": _add_stroke,
    "removePoint": _remove_point,
    "setBox": _set_box,
    "newObject": _new_object,
    "deleteObject": _delete_object,
    "selectObject": _select,
    "clearActive": _clear,
    "pickCandidate": _pick,
    "rename": _rename,
    "clearAll": _clear_all,
}


def reduce(state: Mapping[str, Any], action: Mapping[str, Any]) -> State:
    """Apply one edit (see the module docstring) to ``state``; returns a new state (the
    input is not modified). Raises :class:`PromptError` for a refused edit; coordinates,
    labels and the like are checked afterwards by :func:`.objects.normalize_objects`."""
    rule = _RULES.get(str(action.get("type")))
    if rule is None:
        raise ValueError(f"unknown prompt edit {action.get('type')!r}; known: {list(_RULES)}.")
    current = {
        "objects": copy.deepcopy(list(state["objects"])),
        "active": int(state["active"]),
        "next_id": int(state.get("next_id", 1)),
    }
    return rule(current, action)


# ---------------------------------------------------------------------------- the book


class PromptBook:
    """What the widget remembers about its prompts besides the traits: the history, the
    next free id and each id's highest ``seq`` (plain data; no reference to the widget).

    The owner calls :meth:`validate` from its ``objects`` validator, :meth:`committed`
    after every committed change and :meth:`record` once per change of objects/active.
    """

    def __init__(self, *, history_limit: int = 1000) -> None:
        self._limit = int(history_limit)
        self.next_id = 1
        self._seq_hw: dict[int, int] = {}  # id -> highest seq it ever had (ids never reused)
        self.new_image()

    def new_image(self) -> None:
        """Start over for a new image: no objects, a fresh history (ids and seqs keep
        growing, so nothing of the old image can be taken for the new one's)."""
        self._committed: dict[int, dict[str, Any]] = {}  # id -> object, as last committed
        self.history = History(snapshot([], -1), limit=self._limit)
        self.replaying = False

    def state(self, objects: Sequence[Mapping[str, Any]], active: int) -> State:
        """The reducer's view of the current prompts."""
        return {"objects": list(objects), "active": int(active), "next_id": self.next_id}

    def validate(self, value: Any, width: int, height: int) -> list[dict[str, Any]]:
        """Normalise a proposed ``objects`` value and settle its seqs (raises
        ``TypeError``/``ValueError``; changes nothing)."""
        objs, _ = objmod.normalize_objects(value, width, height, self.next_id)
        return objmod.assign_seqs(objs, self._committed, self._seq_hw)

    def committed(
        self, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
    ) -> tuple[list[int], list[dict[str, Any]]]:
        """Note a committed ``objects`` change; returns (ids removed, objects whose prompts
        need decoding: new ones and those whose ``seq`` moved)."""
        before = {o["id"]: o for o in old}
        self._committed = {o["id"]: dict(o) for o in new}
        for o in new:
            self._seq_hw[o["id"]] = max(self._seq_hw.get(o["id"], -1), int(o["seq"]))
            self.next_id = max(self.next_id, int(o["id"]) + 1)
        removed = [oid for oid in before if oid not in self._committed]
        changed = [
            dict(o) for o in new if o["id"] not in before or before[o["id"]]["seq"] != o["seq"]
        ]
        return removed, changed

    def record(self, objects: Sequence[Mapping[str, Any]], active: int) -> None:
        """One history entry for the current state (none while replaying undo/redo)."""
        if not self.replaying:
            self.history.push(snapshot(objects, active))

    def undo(self) -> State | None:
        return self.history.undo()

    def redo(self) -> State | None:
        return self.history.redo()

    def load(self, history: History, next_id: int) -> None:
        """Take a validated history (``load_dict``)."""
        ids = [o["id"] for s in history.states for o in s["objects"]]
        self.next_id = max([self.next_id, int(next_id)] + [i + 1 for i in ids])
        self.history = history
