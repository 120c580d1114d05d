"""The prompt-edit rules: the shared cases (tests/shared/prompt_edit_cases.json, which the
frontend's vitest suite runs too) against the kernel's reducer, and the same rules through
the widget's Python API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sam_widget.widget import objects as objmod
from sam_widget.widget.prompts import PromptError, reduce

CASES = json.loads((Path(__file__).parent / "shared" / "prompt_edit_cases.json").read_text())


def expand(raw: dict[str, Any]) -> dict[str, Any]:
    """A case's state in the reducer's form (defaults filled in, see the file's "about")."""
    objects = []
    for i in range(1, raw.get("fillObjects", 0) + 1):
        objects.append({"id": i, "color": "#000000", "points": [[1, 1]], "labels": [1], "seq": 1})
    for o in raw.get("objects", []):
        o = dict(o)
        n = o.pop("repeatPoints", None)
        if n is not None:
            o["points"], o["labels"] = [[1, 1]] * n, [1] * n
        k = o.pop("repeatStrokes", None)
        if k is not None:
            o["strokes"] = [{"points": [[1, 1]], "radius": 1, "erase": False}] * k
        objects.append(o)
    full = [
        {
            "id": o["id"],
            "name": o.get("name", f"object {o['id']}"),
            "color": o["color"],
            "points": o.get("points", []),
            "labels": o.get("labels", []),
            "box": o.get("box"),
            "candidate": o.get("candidate"),
            "strokes": o.get("strokes", []),
            "seq": o.get("seq", 0),
        }
        for o in objects
    ]
    return {"objects": full, "active": raw["active"], "next_id": raw["nextId"]}


def test_limits_are_the_shared_ones() -> None:
    limits = CASES["limits"]
    assert limits == {
        "maxObjects": objmod.MAX_OBJECTS,
        "maxPoints": objmod.MAX_POINTS,
        "maxNameLength": objmod.MAX_NAME_LENGTH,
        "maxStrokes": objmod.MAX_STROKES,
        "maxStrokePoints": objmod.MAX_STROKE_POINTS,
        "maxRadius": objmod.MAX_RADIUS,
    }


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_shared_prompt_edit_case(case: dict[str, Any]) -> None:
    before = expand(case["before"])
    if case["after"] == "refused":
        # refused by the edit rule itself or by the validator every committed value meets
        with pytest.raises(ValueError):
            after = reduce(before, case["action"])
            objmod.normalize_objects(after["objects"], 100, 100, after["next_id"])
        return
    after = reduce(before, case["action"])
    assert after == expand(case["after"])
    # the result is what the kernel's validator accepts unchanged (apart from number types)
    objs, _ = objmod.normalize_objects(after["objects"], 100, 100, after["next_id"])
    assert objs == after["objects"]


def test_reducer_does_not_modify_its_input() -> None:
    before = expand({"objects": [{"id": 1, "color": "#e69f00"}], "active": 1, "nextId": 2})
    frozen = json.dumps(before)
    reduce(before, {"type": "addPoint", "x": 1, "y": 2, "label": 1})
    assert json.dumps(before) == frozen


def test_python_only_fields_of_new_object_and_ids() -> None:
    state = expand({"objects": [{"id": 1, "color": "#e69f00"}], "active": 1, "nextId": 2})
    # the empty, unnamed active object is reused and takes the given prompts
    got = reduce(state, {"type": "newObject", "name": "cat", "points": [[3, 4]]})
    assert [o["id"] for o in got["objects"]] == [1] and got["active"] == 1
    obj = got["objects"][0]
    assert (obj["name"], obj["points"], obj["labels"], obj["seq"]) == ("cat", [[3, 4]], [1], 1)
    # an edit of another object (by id) makes it the active one
    two = reduce(got, {"type": "newObject"})
    moved = reduce(two, {"type": "addPoint", "x": 5, "y": 5, "label": 0, "id": 1})
    assert moved["active"] == 1 and moved["objects"][0]["labels"] == [1, 0]
    with pytest.raises(PromptError, match="no object with id 9"):
        reduce(two, {"type": "addPoint", "x": 5, "y": 5, "label": 0, "id": 9})
    with pytest.raises(ValueError, match="unknown prompt edit"):
        reduce(two, {"type": "explode"})
    with pytest.raises(TypeError, match="box must be a list, got str '0 0 10 10'"):
        reduce(two, {"type": "setBox", "box": "0 0 10 10"})
