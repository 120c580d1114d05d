"""Mask results: geometry of an encoded image, low-res logits -> masks, error messages.

:class:`MaskUpdate` is what ``SamWidget.on_mask`` callbacks receive and what ``w.masks`` is
built from; it turns the decoder's low-res logits into bool masks lazily, at display size
(``display``) or at the original image size (``mask``), without touching the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .chain import ChainResult
from .strokes import compose

__all__ = ["Frame", "MaskUpdate", "describe_error", "upscale"]


def describe_error(exc: BaseException) -> str:
    """A one-line message for the widget's ``error`` trait."""
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "ModelLoadError":
        return text  # complete already: what failed and the next step
    if oom:
        return (
            f"Out of memory ({text.splitlines()[0][:200]}). Try a smaller model "
            "(model='vit_t'), a smaller image, or device='cpu'."
        )
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}"


DISPLAY_SIDE = 1024  # longest side of the masks sent to the browser (any model family)


def display_size(original_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the browser's masks for an image of ``original_size`` (H, W): the longest
    side ``DISPLAY_SIDE``, aspect ratio kept (rounded half up), whatever the model's frame."""
    h, w = int(original_size[0]), int(original_size[1])
    scale = DISPLAY_SIDE / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


@dataclass(frozen=True)
class Frame:
    """Geometry of one encoded image (for turning low-res logits into masks).

    ``geometry``: the model's :class:`~sam_widget.models.interface.ImageGeometry`;
    ``input_size``: the model's input frame (SAM: longest side 1024; SAM 2: 1024 x 1024);
    ``display``: the browser's mask frame (:func:`display_size`)."""

    image_id: int
    geometry: Any
    input_size: tuple[int, int]  # (h, w)
    original_size: tuple[int, int]  # (H, W)
    threshold: float

    @property
    def display(self) -> tuple[int, int]:
        return display_size(self.original_size)


def upscale(logits: torch.Tensor, frame: Frame, size: str) -> torch.Tensor:
    """C x 256 x 256 logits -> C x h x w (``"display"``) or C x H x W (``"original"``)
    logits, through the model's geometry.

    Stateless (uses ``frame``, not the predictor's current image), so results of an image
    that is no longer current can still be turned into masks; ``"original"`` gives the same
    values as ``SamPredictor.upscale``. For SAM the display frame is the input frame.
    """
    if size not in ("display", "original"):
        raise ValueError(f"size must be 'display' or 'original', got {size!r}.")
    target: tuple[int, int] | None = frame.original_size
    if size == "display":
        target = None if frame.display == tuple(frame.input_size) else frame.display
    return frame.geometry.upscale(logits.float(), frame.input_size, target)


class MaskUpdate:
    """One object's mask result (given to ``on_mask`` callbacks and used by ``w.masks``).

    Attributes:
        object_id, seq, image_id: what it was computed for.
        scores: predicted IoU of each candidate (3 for an ambiguous single point, 1 otherwise,
            none for an object without prompts).
        candidate: index of the chosen candidate when there were alternatives, else None.
        score: predicted IoU of the chosen mask (None without prompts).
        display: bool mask at display resolution (mask_height x mask_width), computed lazily.
        mask: bool mask at the original image size, computed lazily on first access.
        strokes: the object's brush/eraser strokes; ``mask`` is SAM's mask with them applied
            (:func:`.strokes.compose`), and ``display`` is then sampled from ``mask``.
        Both arrays are read-only (shared); ``w.masks`` hands out copies.
    """

    def __init__(
        self,
        object_id: int,
        seq: int,
        frame: Frame,
        result: ChainResult,
        strokes: Any = (),
    ) -> None:
        self.object_id = int(object_id)
        self.seq = int(seq)
        self.image_id = frame.image_id
        self.frame = frame
        self.result = result
        self.scores = [float(s) for s in result.scores]
        self.candidate = result.index if result.multimask else None
        self.score = None if result.empty else self.scores[result.index]
        self.strokes = tuple(strokes or ())
        self._given = False  # the mask was given (from_mask), not decoded
        self._display: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    @classmethod
    def from_mask(
        cls, object_id: int, seq: int, frame: Frame, mask: np.ndarray, score: float | None
    ) -> MaskUpdate:
        """An update whose mask is given (a stored mask, e.g. a reopened annotator project),
        not decoded: ``mask`` (H, W) bool at the original size; its display mask is sampled
        from it (nearest pixel centre). It has no low-res logits."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(frame.original_size):
            raise ValueError(
                f"mask must have the image's shape {tuple(frame.original_size)}, got {mask.shape}"
            )
        empty = ChainResult(torch.zeros(0, 256, 256), (), -1, False)
        update = cls(object_id, seq, frame, empty)
        update.score = None if score is None else float(score)
        update.scores = [] if score is None else [float(score)]
        fixed = mask.copy()
        fixed.flags.writeable = False
        update._mask = fixed
        update._given = True
        return update

    def _sampled(self) -> np.ndarray:
        # The display mask sampled from the original-size mask (nearest pixel centre).
        big = self.mask
        (h, w), (big_h, big_w) = self.frame.display, big.shape
        rows = np.minimum(((np.arange(h) + 0.5) * big_h / h).astype(np.int64), big_h - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * big_w / w).astype(np.int64), big_w - 1)
        display = big[np.ix_(rows, cols)]
        display.flags.writeable = False
        return display

    def _binary(self, size: str) -> np.ndarray:
        h, w = self.frame.display if size == "display" else self.frame.original_size
        if self.result.empty:
            out = np.zeros((h, w), dtype=bool)
        else:
            with torch.no_grad():
                logits = upscale(self.result.chosen, self.frame, size)[0]
            out = (logits > self.frame.threshold).cpu().numpy()
        out.flags.writeable = False  # shared by every reader; copy before editing
        return out

    @property
    def display(self) -> np.ndarray:
        if self._display is None:
            if self.strokes or self._given:
                self._display = self._sampled()
            else:
                self._display = self._binary("display")
        return self._display

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            base = self._binary("original")
            if self.strokes:
                h, w = self.frame.original_size
                base = compose(base, self.strokes, h, w)
                base.flags.writeable = False
            self._mask = base
        return self._mask

    @property
    def low_res_logits(self) -> torch.Tensor:
        """1 x 256 x 256 low-res logits of the chosen mask (0 x 256 x 256 when empty)."""
        return self.result.logits[:0] if self.result.empty else self.result.chosen

    def __repr__(self) -> str:
        return (
            f"MaskUpdate(object_id={self.object_id}, seq={self.seq}, image_id={self.image_id}, "
            f"score={self.score}, candidate={self.candidate})"
        )
