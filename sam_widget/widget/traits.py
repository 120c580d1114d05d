"""``SamWidget``'s user-writable traits: the ``objects`` trait type, the checks behind its
``@traitlets.validate`` methods and the errors they raise, and which traits the browser may
write (docs/ARCHITECTURE.md, "Widget protocol").

The errors are ``TraitError`` subclasses, so that traitlets rolls back every trait of the
same change, and also ``ValueError``/``TypeError``, as everywhere in sam_widget. Their class
names are part of the message the widget shows (:func:`~.updates.describe_error`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import traitlets

from .everything_params import check_everything_params
from .prompts import PromptBook

__all__ = [
    "BROWSER_WRITABLE",
    "ObjectsError",
    "ObjectsTrait",
    "initial_traits",
    "validate_active",
    "validate_everything_params",
    "validate_objects",
]

# The traits a browser update may change (the others are sent back as they are).
BROWSER_WRITABLE = frozenset(
    {"objects", "active", "opacity", "hover", "explain", "everything_params"}
)


class ObjectsError(traitlets.TraitError, ValueError):
    """A bad ``objects``/``active`` value (a ``ValueError``; also a ``TraitError`` so that
    traitlets rolls back every trait of the same change)."""


class _ObjectsTypeError(traitlets.TraitError, TypeError):
    """A bad ``objects`` value of the wrong type (a ``TypeError``)."""


class _ParamsError(traitlets.TraitError, ValueError):
    """A bad ``everything_params`` value (a ``TraitError``, so a refused browser update is
    rolled back)."""


class _ParamsTypeError(traitlets.TraitError, TypeError):
    """A bad ``everything_params`` value of the wrong type."""


class ObjectsTrait(traitlets.TraitType):  # type: ignore[type-arg]
    """The ``objects`` trait: any value reaches ``SamWidget._validate_objects``
    (:func:`validate_objects`), which checks everything and raises ``TypeError``/
    ``ValueError`` subclasses with clear text."""

    info_text = "a list of object dicts (see docs/ARCHITECTURE.md)"

    def __init__(self) -> None:
        super().__init__(default_value=[])

    def make_dynamic_default(self) -> list[dict[str, Any]]:
        return []


def validate_objects(
    book: PromptBook, value: Any, image_width: int, image_height: int
) -> list[dict[str, Any]]:
    """``value`` checked by ``book`` for an image of ``image_width`` x ``image_height``
    pixels; raises :class:`ObjectsError` (or its ``TypeError`` sibling)."""
    try:
        return book.validate(value, image_width, image_height)
    except TypeError as exc:
        raise _ObjectsTypeError(str(exc)) from exc
    except ValueError as exc:
        raise ObjectsError(str(exc)) from exc


def validate_everything_params(value: Any) -> dict[str, Any]:
    """``value`` checked as segment-everything parameters (:mod:`.everything_params`)."""
    try:
        return check_everything_params(value, name="everything_params")
    except TypeError as exc:
        raise _ParamsTypeError(str(exc)) from None
    except ValueError as exc:
        raise _ParamsError(str(exc)) from None


def validate_active(value: Any, objects: Sequence[dict[str, Any]]) -> int:
    """``value`` as the ``active`` id: -1 or the id of one of ``objects``."""
    ids = [o["id"] for o in objects]
    if value != -1 and value not in ids:
        raise ObjectsError(f"active must be -1 or the id of an object {ids}, got {value!r}.")
    return int(value)


def initial_traits(
    opacity: Any,
    hover: Any,
    explain: Any,
    everything: Mapping[str, Any] | None,
    width: Any,
    height: Any,
    layout: Any,
) -> dict[str, Any]:
    """``SamWidget``'s keyword arguments checked, as the trait values it starts with
    (``width``/``height``: CSS pixels >= 0, 0 automatic; ``layout`` only when given)."""
    if not isinstance(explain, bool):
        raise TypeError(f"explain must be a bool, got {type(explain).__name__}.")
    options: dict[str, Any] = {
        "opacity": float(opacity),
        "hover": bool(hover),
        "explain": explain,
    }
    options["everything_params"] = check_everything_params(everything)
    for name, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"{name} must be a number of CSS pixels >= 0, got {size!r}.")
        options[name] = size
    if layout is not None:
        options["layout"] = layout
    return options
