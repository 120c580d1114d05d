"""Objects of the widget: validation, normalisation, colours and sequence numbers.

An object is the dict of the ``objects`` trait (docs/ARCHITECTURE.md, widget protocol)::

    {"id": int, "name": str, "color": "#rrggbb", "points": [[x, y], ...],
     "labels": [1 | 0, ...], "box": [x0, y0, x1, y1] | None, "candidate": int | None,
     "strokes": [{"points": [[x, y], ...], "radius": r, "erase": bool}, ...], "seq": int}

Coordinates are original-image pixels, continuous: a point lies in the image when
``0 <= x <= width`` and ``0 <= y <= height``. A box is XYXY with ``x0 < x1`` and ``y0 < y1``,
inside the same bounds. ``candidate`` picks one of the 3 multimask candidates and only matters
while the object is a single point without a box (it is kept afterwards, because with
refinement the later masks grow from that choice). ``strokes`` are the brush (``erase`` False)
and eraser (True) strokes, oldest first: a round brush of ``radius`` pixels along the polyline
``points`` (:mod:`.strokes` rasterises them). The object's mask is SAM's mask of its prompts
(empty without prompts), then each stroke in turn adds (brush) or removes (eraser) its
pixels. Every function here is pure; errors are
``ValueError``/``TypeError`` naming the offending field and never leave anything half-changed.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.transforms import check_box_corners

__all__ = [
    "KEYS",
    "MAX_NAME_LENGTH",
    "MAX_OBJECTS",
    "MAX_POINTS",
    "MAX_RADIUS",
    "MAX_SAFE_INTEGER",
    "MAX_STROKES",
    "MAX_STROKE_POINTS",
    "NUM_CANDIDATES",
    "PALETTE",
    "assign_seqs",
    "color_for",
    "copy_strokes",
    "normalize_objects",
    "prompts_of",
    "same_prompts",
    "strip_seq",
    "strokes_key",
]

#: Keys an object dict may have (all of them are present after normalisation).
KEYS = ("id", "name", "color", "points", "labels", "box", "candidate", "strokes", "seq")
#: Number of multimask candidates SAM's decoder returns for an ambiguous prompt.
NUM_CANDIDATES = 3
#: Object colours, in the order new objects receive them: Okabe & Ito (2008) without black,
#: then Paul Tol's "muted" scheme (distinguishable with colour-vision deficiencies). The same
#: list and rule as the frontend (js/src/state.ts), so objects made on either side match.
PALETTE = (
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
    "#332288",
    "#88ccee",
    "#44aa99",
    "#117733",
    "#999933",
    "#ddcc77",
    "#cc6677",
    "#882255",
    "#aa4499",
)
#: Limits on what one image may hold (the frontend's js/src/state.ts has the same numbers,
#: and tests/shared/prompt_edit_cases.json checks that both sides agree). They bound the
#: memory and decode time a frontend (or a script) can ask for.
MAX_OBJECTS = 256
MAX_POINTS = 1000
MAX_NAME_LENGTH = 200
#: Strokes per object, points per stroke and the largest brush radius (image pixels).
MAX_STROKES = 1000
MAX_STROKE_POINTS = 10000
MAX_RADIUS = 1000
#: Largest integer a JavaScript number holds exactly (2**53 - 1): ids and seqs above it
#: would be rounded in the browser.
MAX_SAFE_INTEGER = 2**53 - 1
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def color_for(used: list[str], count: int) -> str:
    """The colour for a new object: the first :data:`PALETTE` colour not in ``used``, or
    (all taken) ``PALETTE[count % len(PALETTE)]`` where ``count`` is the number of objects."""
    taken = {c.lower() for c in used}
    for c in PALETTE:
        if c not in taken:
            return c
    return PALETTE[count % len(PALETTE)]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _coord(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{where} must be a number, got {type(v).__name__} {v!r}.")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{where} must be finite, got {f!r}.")
    return f


def _check_inside(x: float, y: float, width: int, height: int, where: str) -> None:
    if not (0.0 <= x <= width):
        raise ValueError(f"{where}: x={x:g} is outside the image (0 <= x <= width={width}).")
    if not (0.0 <= y <= height):
        raise ValueError(f"{where}: y={y:g} is outside the image (0 <= y <= height={height}).")


def _points(value: Any, width: int, height: int, where: str) -> list[list[float]]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{where} must be a list of [x, y] pairs, got {type(value).__name__}.")
    if len(value) > MAX_POINTS:
        raise ValueError(f"{where} has {len(value)} points; at most {MAX_POINTS} are allowed.")
    out = []
    for i, p in enumerate(value):
        if hasattr(p, "tolist"):
            p = p.tolist()
        # Points are numbered from 1, as the user counts them on screen.
        point = f"{where.removesuffix('.points')}, point {i + 1}"
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
            raise ValueError(f"{point} must be an [x, y] pair, got {p!r}.")
        x, y = _coord(p[0], f"{point}: x"), _coord(p[1], f"{point}: y")
        _check_inside(x, y, width, height, point)
        out.append([x, y])
    return out


def _labels(value: Any, n: int, where: str) -> list[int]:
    if value is None:
        value = []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{where} must be a list of 0/1 labels, got {type(value).__name__}.")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool):
            v = int(v)
        if not _is_int(v) or int(v) not in (0, 1):
            raise ValueError(f"{where}[{i}] must be 1 (positive) or 0 (negative), got {v!r}.")
        out.append(int(v))
    if len(out) != n:
        raise ValueError(f"{where} has {len(out)} labels for {n} points; they must match.")
    return out


def _strokes(value: Any, width: int, height: int, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{where} must be a list of stroke dicts, got {type(value).__name__}.")
    if len(value) > MAX_STROKES:
        raise ValueError(f"{where} has {len(value)} strokes; at most {MAX_STROKES} are allowed.")
    out = []
    for i, s in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(s, Mapping):
            raise TypeError(f"{at} must be a dict {{points, radius, erase}}, got {s!r}.")
        unknown = sorted(set(map(str, s)) - {"points", "radius", "erase"})
        if unknown:
            raise ValueError(f"{at} has unknown key(s) {unknown}; allowed: points, radius, erase.")
        pts: Any = s.get("points")
        if hasattr(pts, "tolist"):
            pts = pts.tolist()
        if isinstance(pts, (str, bytes)) or not isinstance(pts, Sequence) or not pts:
            raise ValueError(f"{at}.points must be a non-empty list of [x, y] pairs, got {pts!r}.")
        if len(pts) > MAX_STROKE_POINTS:
            raise ValueError(
                f"{at}.points has {len(pts)} points; at most {MAX_STROKE_POINTS} are allowed."
            )
        points = []
        for k, p in enumerate(pts):
            if hasattr(p, "tolist"):
                p = p.tolist()
            if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
                raise ValueError(f"{at}.points[{k}] must be an [x, y] pair, got {p!r}.")
            x, y = _coord(p[0], f"{at}.points[{k}]: x"), _coord(p[1], f"{at}.points[{k}]: y")
            _check_inside(x, y, width, height, f"{at}.points[{k}]")
            points.append([x, y])
        radius = _coord(s.get("radius"), f"{at}.radius")
        if not 0.0 < radius <= MAX_RADIUS:
            raise ValueError(f"{at}.radius must be in (0, {MAX_RADIUS}] pixels, got {radius:g}.")
        erase = s.get("erase", False)
        if hasattr(erase, "item"):
            erase = erase.item()
        if not isinstance(erase, bool):
            raise TypeError(f"{at}.erase must be True or False, got {erase!r}.")
        out.append({"points": points, "radius": radius, "erase": erase})
    return out


def _box(value: Any, width: int, height: int, where: str) -> list[float] | None:
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{where} must be None or a list [x0, y0, x1, y1], got {type(value).__name__} "
            f"{value!r}."
        )
    if len(value) != 4:
        raise ValueError(f"{where} must be None or [x0, y0, x1, y1], got {value!r}.")
    x0, y0, x1, y1 = (_coord(v, f"{where}[{i}]") for i, v in enumerate(value))
    _check_inside(x0, y0, width, height, f"{where} corner (x0, y0)")
    _check_inside(x1, y1, width, height, f"{where} corner (x1, y1)")
    check_box_corners(x0, y0, x1, y1, where)  # the predictor's rule too
    return [x0, y0, x1, y1]


def _normalize_one(
    obj: Any, index: int, width: int, height: int, new_id: int
) -> tuple[dict[str, Any], bool]:
    """One object dict, validated; returns it and whether its id was assigned here."""
    where = f"objects[{index}]"
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(obj).__name__}.")
    unknown = sorted(set(map(str, obj)) - set(KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; allowed: {list(KEYS)}.")
    assigned = obj.get("id") is None
    oid = new_id if assigned else obj["id"]
    if not _is_int(oid) or not 0 <= int(oid) <= MAX_SAFE_INTEGER:
        raise ValueError(f"{where}.id must be an integer in 0..2**53-1, got {oid!r}.")
    oid = int(oid)
    name = obj.get("name")
    if name is None:
        name = f"object {oid}"
    if not isinstance(name, str):
        raise TypeError(f"{where}.name must be a string, got {type(name).__name__}.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{where}.name has {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed."
        )
    # From here on, the object as the user sees it: its number in the list, name and id.
    where = f"object {index + 1} {name!r} (id {oid})"
    color = obj.get("color")
    if color is not None and (not isinstance(color, str) or not _COLOR_RE.match(color)):
        raise ValueError(f'{where}.color must look like "#rrggbb", got {color!r}.')
    points = _points(obj.get("points"), width, height, f"{where}.points")
    labels = _labels(obj.get("labels"), len(points), f"{where}.labels")
    box = _box(obj.get("box"), width, height, f"{where}.box")
    cand = obj.get("candidate")
    if cand is not None and (not _is_int(cand) or not 0 <= int(cand) < NUM_CANDIDATES):
        raise ValueError(
            f"{where}.candidate must be None or an integer in 0..{NUM_CANDIDATES - 1}, "
            f"got {cand!r}."
        )
    strokes = _strokes(obj.get("strokes"), width, height, f"{where}.strokes")
    seq = obj.get("seq")
    if seq is not None and (not _is_int(seq) or not 0 <= int(seq) <= MAX_SAFE_INTEGER):
        raise ValueError(f"{where}.seq must be an integer in 0..2**53-1, got {seq!r}.")
    out = {
        "id": oid,
        "name": name,
        "color": None if color is None else color.lower(),
        "points": points,
        "labels": labels,
        "box": box,
        "candidate": None if cand is None else int(cand),
        "strokes": strokes,
        "seq": None if seq is None else int(seq),
    }
    return out, assigned


def normalize_objects(
    value: Any, width: int, height: int, next_id: int
) -> tuple[list[dict[str, Any]], int]:
    """Validate a whole ``objects`` value; returns ``(objects, next_id)``.

    Objects without an ``id`` receive ids counting up from ``next_id`` (ids are never reused
    within a widget); missing names get ``"object <id>"``, missing colours the first palette
    colour no other object uses (the frontend's rule); numbers become plain Python floats
    and ints (numpy scalars and arrays are accepted). ``seq`` is left as given (``None`` when
    missing): :func:`assign_seqs` settles it. Raises ``TypeError``/``ValueError`` naming the
    object and field at fault.
    """
    if hasattr(value, "tolist") and not isinstance(value, Sequence):
        value = value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"objects must be a list of dicts, got {type(value).__name__}.")
    if len(value) > MAX_OBJECTS:
        raise ValueError(f"objects has {len(value)} objects; at most {MAX_OBJECTS} are allowed.")
    explicit = [o.get("id") for o in value if isinstance(o, Mapping) and o.get("id") is not None]
    ints = [int(i) for i in explicit if i is not None and _is_int(i)]
    nxt = max([int(next_id)] + [i + 1 for i in ints])
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, obj in enumerate(value):
        norm, assigned = _normalize_one(obj, i, width, height, nxt)
        if assigned:
            nxt += 1
        if norm["id"] in seen:
            raise ValueError(f"objects[{i}].id {norm['id']} is used by another object.")
        seen.add(norm["id"])
        out.append(norm)
    # Missing colours last, so that they avoid every colour given explicitly.
    for i, norm in enumerate(out):
        if norm["color"] is None:
            used = [o["color"] for o in out if o["color"] is not None]
            norm["color"] = color_for(used, i)
    return out, nxt


def prompts_of(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """The part of an object that decides its mask: points, labels, box, candidate and
    strokes."""
    return (
        tuple(tuple(p) for p in obj["points"]),
        tuple(obj["labels"]),
        None if obj["box"] is None else tuple(obj["box"]),
        obj["candidate"],
        strokes_key(obj.get("strokes") or ()),
    )


def strokes_key(strokes: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
    """Hashable form of a strokes list (equal strokes, equal keys)."""
    return tuple(
        (tuple((float(x), float(y)) for x, y in s["points"]), float(s["radius"]), bool(s["erase"]))
        for s in strokes
    )


def copy_strokes(strokes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy of a strokes list."""
    return [
        {"points": [list(p) for p in s["points"]], "radius": s["radius"], "erase": s["erase"]}
        for s in strokes
    ]


def same_prompts(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two objects would produce the same mask."""
    return prompts_of(a) == prompts_of(b)


def assign_seqs(
    objects: list[dict[str, Any]],
    previous: Mapping[int, Mapping[str, Any]],
    high_water: Mapping[int, int],
) -> list[dict[str, Any]]:
    """Settle each object's ``seq`` (returns new dicts; inputs are not modified).

    Unchanged prompts keep the previous ``seq`` (or a larger given one). Changed (or new)
    prompts get a ``seq`` above every ``seq`` that id ever had (``high_water``), or the given
    one if that is larger
    (the browser bumps ``seq`` itself before it sends). So ``seq`` only ever grows per id,
    which is what lets both sides drop stale masks.
    """
    out = []
    for obj in objects:
        oid = obj["id"]
        old = previous.get(oid)
        given = obj["seq"]
        if old is not None and same_prompts(old, obj):
            # Same prompts: keep the seq, unless the sender moved it forward (then it wants
            # the mask again under that seq); never move it back.
            seq = int(old["seq"]) if given is None else max(int(given), int(old["seq"]))
        else:
            floor = max(high_water.get(oid, -1), -1 if old is None else int(old["seq"])) + 1
            seq = floor if given is None else max(int(given), floor)
        out.append({**obj, "seq": seq})
    return out


def strip_seq(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep-enough copy of an object without its ``seq`` (history snapshots, to_dict)."""
    return {
        "id": obj["id"],
        "name": obj["name"],
        "color": obj["color"],
        "points": [list(p) for p in obj["points"]],
        "labels": list(obj["labels"]),
        "box": None if obj["box"] is None else list(obj["box"]),
        "candidate": obj["candidate"],
        "strokes": copy_strokes(obj.get("strokes") or ()),
    }
