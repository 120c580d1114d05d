"""Mask results: geometry of an encoded image, low-res logits -> masks, error messages.

:class:`MaskUpdate` is what ``SamWidget.on_mask`` callbacks receive and what ``w.masks`` is
built from; it turns the decoder's low-res logits into bool masks lazily, at display size
(``display``) or at the original image size (``mask``), without touching the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine.transforms import upscale_logits
from .chain import ChainResult

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


@dataclass(frozen=True)
class Frame:
    """Geometry of one encoded image (for turning low-res logits into masks)."""

    image_id: int
    img_size: int  # the model's square input side (1024)
    input_size: tuple[int, int]  # (h, w): resized image, longest side img_size
    original_size: tuple[int, int]  # (H, W)
    threshold: float


def upscale(logits: torch.Tensor, frame: Frame, size: str) -> torch.Tensor:
    """C x 256 x 256 logits -> C x h x w (``"input"``) or C x H x W (``"original"``) logits.

    Stateless (uses ``frame``, not the predictor's current image), so results of an image
    that is no longer current can still be turned into masks; same values as
    ``SamPredictor.upscale`` (both use ``transforms.upscale_logits``).
    """
    if size not in ("input", "original"):
        raise ValueError(f"size must be 'input' or 'original', got {size!r}.")
    original = frame.original_size if size == "original" else None
    return upscale_logits(logits.float(), frame.input_size, original, frame.img_size)


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
        Both arrays are read-only (shared); ``w.masks`` hands out copies.
    """

    def __init__(self, object_id: int, seq: int, frame: Frame, result: ChainResult) -> None:
        self.object_id = int(object_id)
        self.seq = int(seq)
        self.image_id = frame.image_id
        self.frame = frame
        self.result = result
        self.scores = [float(s) for s in result.scores]
        self.candidate = result.index if result.multimask else None
        self.score = None if result.empty else self.scores[result.index]
        self._display: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    def _binary(self, size: str) -> np.ndarray:
        h, w = self.frame.input_size if size == "input" else self.frame.original_size
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
            self._display = self._binary("input")
        return self._display

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            self._mask = self._binary("original")
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
