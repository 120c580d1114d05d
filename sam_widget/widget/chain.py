"""From an object's prompts to its mask logits: ambiguity and iterative refinement.

Rules (one decoder run per prompt change, whatever the number of points):

- No points and no box: no mask (empty).
- A single point and no box is ambiguous: the decoder returns its 3 multimask candidates
  (whole / part / sub-part, SAM paper Sec. 3) and ``candidate`` picks one (``None``: the one
  with the highest predicted IoU).
- Anything else gives one mask (``multimask_output=False``) from all the prompts at once.
- Refinement (``refine=True``, the published interactive practice: SAM paper Sec. 7.1 and
  the predictor example notebook, "pass the previous low-res logits as mask_input"): an
  unambiguous prompt also gets, as ``mask_input``, the chosen low-res logits of the object's
  previous prompt state (:class:`ObjectMemo` keeps them). Every prompt state is decoded
  once, in order (the widget's worker decodes the states it has not caught up with before
  the newest), so the mask is a function of the sequence of prompt states: a replay of the
  saved history (``SamWidget.from_dict``, a reopened annotator project) gives the same
  masks.
- A prompt state decoded before (undo, redo, a click where the hover preview was) is not
  decoded again: the memo keeps the last few results per object.
- ``refine=False``: no ``mask_input`` ever; the mask depends only on the prompts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["ChainResult", "DecodeFn", "ObjectMemo", "Prompt", "run_chain"]

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
        mask_input: 1 x 256 x 256 logits the decoder got as ``mask_input`` (refinement),
            or None; what an explanation of this decode must feed again.
    """

    logits: torch.Tensor
    scores: tuple[float, ...]
    index: int
    multimask: bool
    mask_input: torch.Tensor | None = None

    @property
    def empty(self) -> bool:
        return self.index < 0

    @property
    def chosen(self) -> torch.Tensor:
        """1 x 256 x 256 logits of the chosen mask."""
        return self.logits[self.index : self.index + 1]


Stage = tuple[torch.Tensor, torch.Tensor]  # (C x 256 x 256 logits, C IoU predictions)


class ObjectMemo:
    """What one object remembers between decodes: the chosen low-res logits of its last
    decoded state (``last``, fed back as ``mask_input``), a small LRU of recent results by
    prompt (undo/redo cost no decode) and the last hover preview (outside the LRU, so
    pointer motion never evicts real results)."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = int(limit)
        self.last: torch.Tensor | None = None  # 1 x 256 x 256
        self._d: OrderedDict[Any, Stage] = OrderedDict()
        # prompt key -> the mask_input its result was decoded with (same keys as _d)
        self._inputs: dict[Any, torch.Tensor | None] = {}
        # (prompt key, result, the ``last`` it was refined from, the mask_input it used)
        self._preview: tuple[Any, Stage, torch.Tensor | None, torch.Tensor | None] | None = None

    def get(self, key: Any) -> Stage | None:
        hit = self._d.get(key)
        if hit is not None:
            self._d.move_to_end(key)
        elif (
            self._preview is not None and self._preview[0] == key and self._preview[2] is self.last
        ):
            # The preview counts only if it was refined from the same previous state.
            hit = self._preview[1]
            # a real result now: keep it with the others
            self.put(key, hit, self._preview[3])
        return hit

    def input_of(self, key: Any) -> torch.Tensor | None:
        """The ``mask_input`` the stored result for ``key`` was decoded with."""
        return self._inputs.get(key)

    def put(self, key: Any, value: Stage, mask_input: torch.Tensor | None = None) -> None:
        self._d[key] = value
        self._inputs[key] = mask_input
        self._d.move_to_end(key)
        while len(self._d) > self.limit:
            old, _ = self._d.popitem(last=False)
            self._inputs.pop(old, None)

    def put_preview(self, key: Any, value: Stage, mask_input: torch.Tensor | None = None) -> None:
        self._preview = (key, value, self.last, mask_input)

    def nbytes(self) -> int:
        """Bytes of tensors held (for the memory bound tests)."""
        tensors = [t for v in self._d.values() for t in v]
        if self._preview is not None:
            tensors += list(self._preview[1])
        if self.last is not None:
            tensors.append(self.last)
        return sum(t.element_size() * t.nelement() for t in tensors)

    def __len__(self) -> int:
        return len(self._d)


def _choose(iou: torch.Tensor, multimask: bool, candidate: int | None) -> int:
    if not multimask:
        return 0
    if candidate is not None and 0 <= candidate < iou.shape[0]:
        return int(candidate)
    return int(torch.argmax(iou).item())


def run_chain(
    decode: DecodeFn,
    prompt: Prompt,
    *,
    refine: bool = True,
    memo: ObjectMemo | None = None,
    store_final: bool = True,
) -> ChainResult:
    """Decode ``prompt`` by the module's rules: at most one decoder run.

    ``memo`` (per object) supplies the previous logits and remembers the result;
    ``store_final=False`` (hover previews) reads the memo but keeps the result only in its
    preview slot and does not make it the object's previous state.
    """
    if prompt.empty:
        return ChainResult(torch.zeros(0, 256, 256), (), -1, False)
    multimask = prompt.ambiguous
    # The candidate matters only while the prompt is ambiguous.
    key = (prompt.points, prompt.labels, prompt.box, refine)
    hit = memo.get(key) if memo is not None else None
    mask_input: torch.Tensor | None = None
    if hit is not None and memo is not None:
        mask_input = memo.input_of(key)
    if hit is None:
        if refine and not multimask and memo is not None and memo.last is not None:
            mask_input = memo.last
        pts = np.asarray(prompt.points, dtype=np.float64).reshape(-1, 2) if prompt.points else None
        lbl = np.asarray(prompt.labels, dtype=np.int64) if prompt.points else None
        bx = np.asarray(prompt.box, dtype=np.float64) if prompt.box is not None else None
        logits, iou = decode(pts, lbl, bx, mask_input, multimask)
        hit = (logits.detach(), iou.detach().reshape(-1))
        if memo is not None:
            if store_final:
                memo.put(key, hit, mask_input)
            else:
                memo.put_preview(key, hit, mask_input)
    logits, iou = hit
    index = _choose(iou, multimask, prompt.candidate)
    if memo is not None and store_final:
        memo.last = logits[index : index + 1]
    return ChainResult(logits, tuple(iou.tolist()), index, multimask, mask_input)
