"""``SamPredictor``: encode an image once, then turn prompts into masks quickly.

Same public behaviour as the published ``segment_anything/predictor.py`` (``set_image``,
``predict``, ``predict_torch``, ``get_image_embedding``, ...), plus the split that the widget
builds on (docs/ARCHITECTURE.md, "Predictor contract"):

- ``compute_embedding(image, progress=None)``: the slow encoder run, pure and thread-safe,
  cache-aware (``EmbeddingCache``); ``set_embedding(emb)`` makes it the current image and
  precomputes the decoder's per-image context (dense PE, layer-0 image-side projections).
- ``decode(...)``: the per-click path in original-image pixels -> low-res logits and IoU;
  ``upscale(...)``: low-res logits -> the input or original frame (only the unpadded region
  is upsampled; bit-identical to the published postprocessing).

The predictor works for any model family through the model interface only
(:class:`sam_widget.models.interface.SegmentModel`: ``encode``, ``prepare``, ``decode``,
``geometry``, ``feature_shapes``); ``transform`` is the model's ``geometry``. Prompts are
checked by :mod:`sam_widget.engine.transforms` (``ValueError``/``TypeError`` naming the
argument for every bad input).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.interface import SegmentModel
from .embedding_cache import EmbeddingCache, ImageEmbedding, embedding_key
from .images import to_rgb_uint8
from .transforms import (
    check_box,
    check_mask_input,
    check_points,
    check_prompt_batch,
)

__all__ = ["ImageEmbedding", "SamPredictor"]

Progress = Callable[[float], Any]

# Per-thread progress callback of the encoder run in progress (see _install_progress_hooks).
_PROGRESS = threading.local()
_HOOK_LOCK = threading.Lock()
# Masks at original size are thresholded in chunks of this many float32 values, so a large
# batch of prompts on a large image never holds all its float logits at once.
_CHUNK_VALUES = 1 << 26


def _install_progress_hooks(model: Any) -> None:
    """Once per model: forward hooks on its encoder's blocks (``model.encoder_blocks()``,
    optional in the interface) that report progress.

    The hooks call the callback stored for the *current thread* (``_PROGRESS.callback``),
    so concurrent encodings in several threads each see only their own progress, and an
    encoder run outside ``compute_embedding`` reports nothing.
    """
    with _HOOK_LOCK:
        if model.__dict__.get("_sam_widget_progress_hooks", False):
            return
        blocks_of = getattr(model, "encoder_blocks", None)
        blocks: list[nn.Module] = list(blocks_of()) if callable(blocks_of) else []
        total = len(blocks) + 1  # the final step (neck) is reported by compute_embedding

        def make_hook(done: int) -> Callable[..., None]:
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                callback = getattr(_PROGRESS, "callback", None)
                if callback is not None:
                    callback(done / total)

            return hook

        for i, block in enumerate(blocks):
            block.register_forward_hook(make_hook(i + 1))
        model.__dict__["_sam_widget_progress_hooks"] = True


# What the predictor calls on a model (models/interface.py).
_INTERFACE = (
    "encode",
    "prepare",
    "decode",
    "geometry",
    "feature_shapes",
    "low_res_size",
    "mask_threshold",
    "weights_id",
    "device",
)


def _check_model(model: Any) -> None:
    # Attribute presence on the type (properties are not evaluated: weights_id hashes).
    missing = [a for a in _INTERFACE if not (hasattr(type(model), a) or hasattr(model, a))]
    if missing or not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a segmentation model built by sam_widget.build_sam (a "
            f"SegmentModel), got {type(model).__name__}"
            + (f" (missing {missing})." if missing else ".")
        )


@dataclass(frozen=True)
class _ImageState:
    """Everything about the current image, swapped in one assignment (thread-safe reads)."""

    embedding: ImageEmbedding
    features: Mapping[str, torch.Tensor]  # every named feature, on the model's device
    context: Any  # the model's per-image context (model.prepare)


class SamPredictor:
    """Predict masks for one image at a time from points, boxes and mask prompts.

    Args:
        model: a model of any registered family (``sam_widget.build_sam``), in eval mode.
            The predictor runs on the model's device (``build_sam(device=...)``: CPU, CUDA
            or MPS; chosen automatically when not given).
        cache: optional :class:`EmbeddingCache`; an image seen before (same pixels, same
            model weights) is then set without running the encoder.
    """

    def __init__(self, model: SegmentModel, *, cache: EmbeddingCache | None = None) -> None:
        _check_model(model)
        if cache is not None and not isinstance(cache, EmbeddingCache):
            raise TypeError(f"cache must be an EmbeddingCache or None, got {type(cache).__name__}.")
        self.model = model
        self.cache = cache
        self.transform = model.geometry
        self._state: _ImageState | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)

    @property
    def is_image_set(self) -> bool:
        return self._state is not None

    @property
    def features(self) -> torch.Tensor | None:
        """``1 x C x h x w`` embedding of the current image (``None`` before ``set_image``)."""
        return None if self._state is None else self._state.features["image_embed"]

    @property
    def original_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the current image, as given."""
        return None if self._state is None else self._state.embedding.original_size

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(h, w)`` of the current image in the model's input frame
        (``transform.input_size(original_size)``; SAM: longest side 1024)."""
        return None if self._state is None else self._state.embedding.input_size

    @property
    def embedding(self) -> ImageEmbedding | None:
        """The current image's :class:`ImageEmbedding` (``None`` before ``set_image``)."""
        return None if self._state is None else self._state.embedding

    def reset_image(self) -> None:
        """Forget the current image."""
        self._state = None

    def _require_state(self) -> _ImageState:
        state = self._state
        if state is None:
            raise RuntimeError(
                "An image must be set with .set_image(...) (or .set_embedding(...)) before "
                "mask prediction."
            )
        return state

    def _feature_shapes(self) -> dict[str, tuple[int, ...]]:
        return {str(k): tuple(int(d) for d in v) for k, v in self.model.feature_shapes.items()}

    # -- encoding ------------------------------------------------------------------------

    def compute_embedding(
        self, image: Any, progress: Progress | None = None, *, image_format: str = "RGB"
    ) -> ImageEmbedding:
        """Encode ``image`` (see :mod:`sam_widget.images` for what is accepted).

        Pure: the predictor's current image is not changed. Thread-safe (several threads may
        encode at once). ``progress(fraction)`` is called from the calling thread with
        increasing values in ``(0, 1]`` as the encoder's blocks finish, and with ``1.0`` at
        the end (also on a cache hit); an exception raised by ``progress`` aborts the
        encoding and propagates (a way to cancel it).
        """
        rgb = to_rgb_uint8(image, image_format)
        original_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        input_size = tuple(self.transform.input_size(original_size))
        weights_id = str(self.model.weights_id)
        key = ""
        if self.cache is not None:
            key = embedding_key(rgb, weights_id)
            hit = self.cache.get(
                key,
                weights_id=weights_id,
                feature_shapes=self._feature_shapes(),
                original_size=original_size,
                device=self.device,
            )
            if hit is not None and hit.input_size == input_size:
                if progress is not None:
                    progress(1.0)
                return hit

        resized = self.transform.apply_image(rgb)  # h x w x 3 uint8
        # h x w x 3 -> 3 x h x w -> 1 x 3 x h x w
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        _install_progress_hooks(self.model)
        previous = getattr(_PROGRESS, "callback", None)
        _PROGRESS.callback = progress
        try:
            with torch.no_grad():
                features = dict(self.model.encode(x.float()))
        finally:
            _PROGRESS.callback = previous
        emb = ImageEmbedding(
            features, original_size, (input_size[0], input_size[1]), weights_id, key
        )
        if self.cache is not None:
            self.cache.put(emb)
        if progress is not None:
            progress(1.0)
        return emb

    def set_embedding(self, emb: ImageEmbedding) -> None:
        """Make ``emb`` the current image and precompute the decoder's per-image context.

        ``emb`` must come from this model (same ``weights_id``). Its features are used as
        they are (moved to the model's device if needed); do not modify them afterwards.
        """
        if not isinstance(emb, ImageEmbedding):
            raise TypeError(f"emb must be an ImageEmbedding, got {type(emb).__name__}.")
        if emb.weights_id != self.model.weights_id:
            raise ValueError(
                "emb was computed by a different model (weights_id "
                f"{emb.weights_id!r}, this model is {self.model.weights_id!r})."
            )
        expected = self._feature_shapes()
        got = {n: tuple(t.shape) for n, t in emb.named_features.items()}
        if got != expected:
            if set(got) == set(expected) == {"image_embed"}:
                raise ValueError(
                    f"emb.features has shape {got['image_embed']}, expected "
                    f"{expected['image_embed']}."
                )
            raise ValueError(f"emb's features have shapes {got}, expected {expected}.")
        expected_input = tuple(self.transform.input_size(emb.original_size))
        if tuple(emb.input_size) != expected_input:
            raise ValueError(
                f"emb.input_size {emb.input_size} does not fit emb.original_size "
                f"{emb.original_size} (expected {expected_input})."
            )
        features = {n: t.detach().to(self.device) for n, t in emb.named_features.items()}
        with torch.no_grad():
            context = self.model.prepare(features)
        self._state = _ImageState(emb, features, context)

    def set_image(self, image: Any, image_format: str = "RGB") -> None:
        """Encode ``image`` and make it the current image (cache-aware).

        ``image``: HWC uint8 RGB array, PIL image or path; other layouts and value types are
        converted or refused by the rule in :mod:`sam_widget.images`. ``image_format``:
        ``"RGB"`` or ``"BGR"`` (channel order of array inputs).
        """
        self.set_embedding(self.compute_embedding(image, image_format=image_format))

    def set_torch_image(
        self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]
    ) -> None:
        """Published-API variant of ``set_image`` for an already resized image.

        ``transformed_image``: ``1 x 3 x h x w`` RGB in 0..255, resized with
        ``transform.apply_image`` (``h, w = transform.input_size(original_image_size)``);
        ``original_image_size``: ``(H, W)``. Not cached (the original pixels are unknown).
        """
        if not isinstance(transformed_image, torch.Tensor):
            raise TypeError("transformed_image must be a torch tensor 1 x 3 x h x w.")
        shape = tuple(transformed_image.shape)
        size = (int(original_image_size[0]), int(original_image_size[1]))
        expected = tuple(self.transform.input_size(size))
        if len(shape) != 4 or shape[:2] != (1, 3) or shape[2:] != expected:
            raise ValueError(
                f"transformed_image must be 1 x 3 x {expected[0]} x {expected[1]} for an "
                f"original size {size}, got {shape}."
            )
        with torch.no_grad():
            features = dict(self.model.encode(transformed_image.to(self.device).float()))
        self.set_embedding(
            ImageEmbedding(
                features, size, (expected[0], expected[1]), str(self.model.weights_id), ""
            )
        )

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding, ``1 x C x h x w`` (C=256, h=w=64 for SAM)."""
        return self._require_state().features["image_embed"]

    # -- decoding ------------------------------------------------------------------------

    @torch.no_grad()
    def decode(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-click fast path: prompts in original-image pixels -> masks in the low-res grid.

        Args:
            point_coords: ``(N, 2)`` XY pixels of the original image, or ``None``.
            point_labels: ``(N,)`` labels, 1 foreground, 0 background, -1 ignored point.
            box: ``(4,)`` XYXY pixels of the original image, or ``None``.
            mask_input: ``(1, 256, 256)`` or ``(256, 256)`` logits of a previous prediction.
            multimask_output: three candidate masks (True) or one (False).
        Returns:
            ``low_res_logits`` ``C x 256 x 256`` float32 and ``iou_predictions`` ``C``
            float32, torch tensors on the model's device.
        """
        state = self._require_state()
        coords, labels, boxes, masks = self._torch_prompts(
            state, point_coords, point_labels, box, mask_input
        )
        low_res, iou = self.model.decode(
            state.context, coords, labels, boxes, masks, bool(multimask_output)
        )
        return low_res[0], iou[0]

    def upscale(self, low_res_logits: torch.Tensor, size: str = "original") -> torch.Tensor:
        """Low-res logits ``[B x] C x 256 x 256`` -> float logits ``[B x] C x h x w``.

        ``size="original"``: the original image (H x W). ``size="input"``: the model's
        input frame (``input_size``; SAM: the resized, unpadded image). Threshold at
        ``model.mask_threshold`` (0.0) for binary masks.
        """
        state = self._require_state()
        if size not in ("original", "input"):
            raise ValueError(f"size must be 'original' or 'input', got {size!r}.")
        if not isinstance(low_res_logits, torch.Tensor):
            raise TypeError("low_res_logits must be a torch tensor (as returned by decode).")
        with torch.no_grad():
            return self.transform.upscale(
                low_res_logits,
                state.embedding.input_size,
                state.embedding.original_size if size == "original" else None,
            )

    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt set, as numpy arrays (published ``SamPredictor.predict``).

        Prompts as in :meth:`decode` (original-image pixels). Returns ``masks``
        ``C x H x W`` bool (float32 logits with ``return_logits``) at the original size,
        ``scores`` ``C`` float32 (predicted IoU) and ``low_res_logits`` ``C x 256 x 256``
        float32 (feed one back as ``mask_input``).
        """
        state = self._require_state()
        coords, labels, boxes, masks_in = self._torch_prompts(
            state, point_coords, point_labels, box, mask_input
        )
        masks, iou, low_res = self.predict_torch(
            coords, labels, boxes, masks_in, multimask_output, return_logits=return_logits
        )
        return masks[0].cpu().numpy(), iou[0].cpu().numpy(), low_res[0].cpu().numpy()

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prediction; prompts already in the model's *input* frame.

        Args:
            point_coords: ``B x N x 2`` XY (use ``transform.apply_coords_torch``) or None.
            point_labels: ``B x N`` labels (1, 0, -1), given with ``point_coords``.
            boxes: ``B x 4`` XYXY (``transform.apply_boxes_torch``) or None.
            mask_input: ``B x 1 x 256 x 256`` logits or None.
        Returns:
            ``masks`` ``B x C x H x W`` bool (float logits with ``return_logits``) at the
            original size, ``iou_predictions`` ``B x C``, ``low_res_logits``
            ``B x C x 256 x 256``.
        """
        state = self._require_state()
        check_prompt_batch(point_coords, point_labels, boxes, mask_input, self._low_res_size())
        dev = self.device
        coords = None if point_coords is None else point_coords.to(dev, torch.float32)
        labels = None if point_labels is None else point_labels.to(dev, torch.int32)
        boxes_t = None if boxes is None else boxes.to(dev, torch.float32)
        masks_in = None if mask_input is None else mask_input.to(dev, torch.float32)
        low_res, iou = self.model.decode(
            state.context, coords, labels, boxes_t, masks_in, bool(multimask_output)
        )
        masks = self._to_original(state, low_res, bool(return_logits))
        clamp = getattr(self.model, "low_res_clamp", None)
        if clamp is not None:
            # SAM 2's published predictor returns its low-res logits clamped (the masks above
            # come from the unclamped ones).
            low_res = low_res.clamp(-float(clamp), float(clamp))
        return masks, iou, low_res

    # -- helpers -------------------------------------------------------------------------

    def _low_res_size(self) -> tuple[int, int]:
        h, w = self.model.low_res_size
        return (int(h), int(w))

    def _to_original(
        self, state: _ImageState, low_res: torch.Tensor, return_logits: bool
    ) -> torch.Tensor:
        """B x C x 256 x 256 logits -> B x C x H x W logits or bool masks (chunked)."""
        emb = state.embedding
        upscale = self.transform.upscale
        if return_logits:
            return upscale(low_res, emb.input_size, emb.original_size)
        b, c = low_res.shape[:2]
        h, w = emb.original_size
        step = max(1, _CHUNK_VALUES // max(1, c * h * w))
        threshold = float(self.model.mask_threshold)
        if step >= b:
            # One chunk (the usual case). Plain ">" is much faster than gt(out=) on CPU.
            return upscale(low_res, emb.input_size, emb.original_size) > threshold
        out = torch.empty((b, c, h, w), dtype=torch.bool, device=low_res.device)
        for i in range(0, b, step):
            logits = upscale(low_res[i : i + step], emb.input_size, emb.original_size)
            torch.gt(logits, threshold, out=out[i : i + step])
        return out

    def _torch_prompts(
        self,
        state: _ImageState,
        point_coords: Any,
        point_labels: Any,
        box: Any,
        mask_input: Any,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Check single-prompt numpy inputs and move them to the input frame (batch 1)."""
        size = state.embedding.original_size
        coords, labels = check_points(point_coords, point_labels, size)
        box_np = check_box(box, size)
        mask_np = check_mask_input(mask_input, self._low_res_size())
        dev = self.device
        coords_t = labels_t = box_t = mask_t = None
        if coords is not None and labels is not None:
            scaled = self.transform.apply_coords(coords, size)
            coords_t = torch.as_tensor(scaled, dtype=torch.float32, device=dev)[None]
            labels_t = torch.as_tensor(labels, dtype=torch.int32, device=dev)[None]
        if box_np is not None:
            box_t = torch.as_tensor(
                self.transform.apply_boxes(box_np, size), dtype=torch.float32, device=dev
            )  # 1 x 4
        if mask_np is not None:
            mask_t = torch.as_tensor(mask_np, dtype=torch.float32, device=dev)[None, None]
        return coords_t, labels_t, box_t, mask_t
