"""From an object's prompts to its mask logits: ambiguity and iterative refinement.

Rules (deterministic: the same prompts always give the same mask, however the prompts were
entered and whichever intermediate states a coalescing worker skipped):

- No points and no box: no mask (empty).
- A single point and no box is ambiguous: the decoder returns its 3 multimask candidates
  (whole / part / sub-part, SAM paper Sec. 3) and ``candidate`` picks one (``None``: the one
  with the highest predicted IoU).
- Anything else gives one mask (``multimask_output=False``).
- Refinement (``refine=True``, the published interactive practice: SAM paper Sec. 7.1 and
  the predictor example notebook, "pass the previous low-res logits as mask_input"): the
  prompts are replayed as *stages*. With a box, stage 0 is the box alone; without one,
  stage 1 is the first point. Each later stage adds the next point (in list order) and passes
  the chosen low-res logits of the previous stage as ``mask_input``. The last stage is the
  object's mask. Stages are cached per object (:class:`StageCache`), so adding one point costs
  one decoder run, and undoing costs none.
- ``refine=False``: one decoder run on all prompts, no ``mask_input``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["ChainResult", "DecodeFn", "Prompt", "StageCache", "run_chain"]

#: decode(points (N,2) float64 | None, labels (N,) int64 | None, box (4,) float64 | None,
#:        mask_input 1 x 256 x 256 logits | None, multimask) -> (logits C x 256 x 256, iou C)
DecodeFn = Callable[
    [np.ndarray | None, np.ndarray | None, np.ndarray | None, torch.Tensor | None, bool],
    tuple[torch.Tensor, torch.Tensor],
]


@dataclass(frozen=True)
class Prompt:
    """What decides one object's mask (original-image pixels, XY / XYXY)."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    candidate: int | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Prompt:
        box = obj.get("box")
        return cls(
            tuple((float(x), float(y)) for x, y in obj.get("points") or ()),
            tuple(int(v) for v in obj.get("labels") or ()),
            None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            obj.get("candidate"),
        )

    def with_point(self, x: float, y: float, label: int = 1) -> Prompt:
        return Prompt(
            self.points + ((float(x), float(y)),),
            self.labels + (int(label),),
            self.box,
            self.candidate,
        )

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def ambiguous(self) -> bool:
        """A single point without a box: answered with multimask candidates."""
        return len(self.points) == 1 and self.box is None


@dataclass(frozen=True)
class ChainResult:
    """The decoder's answer for a prompt.

    Attributes:
        logits: C x 256 x 256 float low-res logits (C = 3 for an ambiguous prompt, else 1;
            C = 0 for an empty prompt).
        scores: C predicted IoUs.
        index: which of the C masks is the object's mask (-1 when empty).
        multimask: whether the C masks are alternatives the user may choose between.
    """

    logits: torch.Tensor
    scores: tuple[float, ...]
    index: int
    multimask: bool

    @property
    def empty(self) -> bool:
        return self.index < 0

    @property
    def chosen(self) -> torch.Tensor:
        """1 x 256 x 256 logits of the chosen mask."""
        return self.logits[self.index : self.index + 1]


class StageCache:
    """Small LRU of decoded stages for one object (keys are prompt prefixes).

    ``run_chain`` raises the limit to the chain's length plus some slack, so an object's
    whole current chain always fits (no re-decoding from scratch for long prompt lists),
    while variants (undone prompts, other candidates) are evicted oldest first.
    """

    def __init__(self, limit: int = 8) -> None:
        self.limit = int(limit)
        self._d: OrderedDict[Any, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        # The last hover preview's final stage, outside the LRU: a click where the preview
        # was just shown asks for exactly this stage and then needs no decoder run.
        self._preview: tuple[Any, tuple[torch.Tensor, torch.Tensor]] | None = None

    def reserve(self, stages: int, slack: int = 6) -> None:
        self.limit = max(self.limit, int(stages) + slack)

    def get(self, key: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        hit = self._d.get(key)
        if hit is not None:
            self._d.move_to_end(key)
        elif self._preview is not None and self._preview[0] == key:
            hit = self._preview[1]
            self.put(key, hit)  # a real stage now: keep it with the others
        return hit

    def put_preview(self, key: Any, value: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Remember one hover stage without evicting any real stage."""
        self._preview = (key, value)

    def put(self, key: Any, value: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.limit:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


def _choose(iou: torch.Tensor, multimask: bool, candidate: int | None) -> int:
    if not multimask:
        return 0
    if candidate is not None and 0 <= candidate < iou.shape[0]:
        return int(candidate)
    return int(torch.argmax(iou).item())


def _stage(
    decode: DecodeFn,
    cache: StageCache | None,
    key: Any,
    points: tuple[tuple[float, float], ...],
    labels: tuple[int, ...],
    box: tuple[float, ...] | None,
    mask_input: torch.Tensor | None,
    multimask: bool,
    store: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return hit
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) if points else None
    lbl = np.asarray(labels, dtype=np.int64) if points else None
    bx = np.asarray(box, dtype=np.float64) if box is not None else None
    logits, iou = decode(pts, lbl, bx, mask_input, multimask)
    out = (logits.detach(), iou.detach().reshape(-1))
    if cache is not None:
        if store:
            cache.put(key, out)
        else:
            cache.put_preview(key, out)
    return out


def run_chain(
    decode: DecodeFn,
    prompt: Prompt,
    *,
    refine: bool = True,
    cache: StageCache | None = None,
    store_final: bool = True,
) -> ChainResult:
    """Decode ``prompt`` by the module's rules; ``cache`` (per object) saves repeated stages.

    ``store_final=False`` reads the cache but does not add the last stage to its LRU (hover
    previews: every pointer position would otherwise evict the object's real stages); it is
    kept in the cache's one-entry preview slot instead, so a click on the previewed spot
    reuses it.
    """
    if prompt.empty:
        return ChainResult(torch.zeros(0, 256, 256), (), -1, False)
    n = len(prompt.points)
    if not refine:
        multimask = prompt.ambiguous
        key: tuple[Any, ...] = ("all", prompt.points, prompt.labels, prompt.box)
        logits, iou = _stage(
            decode,
            cache,
            key,
            prompt.points,
            prompt.labels,
            prompt.box,
            None,
            multimask,
            store_final,
        )
        index = _choose(iou, multimask, prompt.candidate)
        return ChainResult(logits, tuple(iou.tolist()), index, multimask)
    first = 0 if prompt.box is not None else 1
    if cache is not None:
        cache.reserve(n + 1 - first)
    prev: torch.Tensor | None = None
    result: ChainResult | None = None
    for k in range(first, n + 1):
        multimask = prompt.box is None and k == 1
        # The choice made at the ambiguous first stage shapes every later stage.
        choice = prompt.candidate if (prompt.box is None and k >= 2) else None
        key = ("refine", prompt.box, prompt.points[:k], prompt.labels[:k], choice)
        logits, iou = _stage(
            decode,
            cache,
            key,
            prompt.points[:k],
            prompt.labels[:k],
            prompt.box,
            prev,
            multimask,
            store_final or k < n,
        )
        index = _choose(iou, multimask, prompt.candidate)
        prev = logits[index : index + 1]
        result = ChainResult(logits, tuple(iou.tolist()), index, multimask)
    assert result is not None
    return result
