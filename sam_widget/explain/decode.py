"""``explain``: one decode of the current image, every intermediate as a numpy array.

The tracing itself is family specific (for SAM / MobileSAM:
:func:`sam_widget.models.sam.trace.trace_decode`); this module checks the prompts like
``SamPredictor.predict`` does, maps them to the model's input frame, picks the family's
tracer by ``model.family`` and wraps the result in an :class:`Explanation`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..engine.transforms import check_box, check_mask_input, check_points

__all__ = ["Explanation", "explain"]

# Family name -> module holding its ``trace_decode`` (imported on first use).
_TRACERS = {"sam": "sam_widget.models.sam.trace"}


@dataclass
class Explanation:
    """The intermediate tensors of one SAM decode (Kirillov et al. 2023, appendix A).

    Shapes for SAM: C = 256 channels, an H x W = 64 x 64 embedding grid, T = 5 + N tokens
    (the IoU token, 4 mask tokens, then the N prompt tokens), L = 2 transformer layers,
    n = 8 heads.

    Positional encoding (random Fourier features, Tancik et al. 2020):

    - ``gaussian_matrix`` (2, C/2): the fixed random frequencies; a position p in [0, 1]²
      is encoded as ``[sin(2π (2p-1) G), cos(2π (2p-1) G)]``.
    - ``dense_pe`` (C, H, W): the encoding of every embedding cell's centre.
    - ``token_pe`` (N, C): the encoding of each point / box corner (for the padding point it
      is computed but not used: its token is ``not_a_point_embed`` alone).

    Sparse prompt tokens, one row per point or corner, in decoder order:

    - ``token_kinds`` (N,) str: "positive", "negative", "ignored" (label -1), "padding"
      (appended when there is no box), "box top-left", "box bottom-right".
    - ``token_xy`` (N, 2) float32, XY original-image pixels (input frame: ``token_xy_input``).
    - ``token_learned`` (N, C): the learned embedding of the token's kind.
    - ``sparse_tokens`` (N, C): what the decoder gets (``token_pe + token_learned``, or the
      learned ``not_a_point_embed`` alone for label -1).

    - ``dense_embedding`` (C, H, W): ``no_mask_embed`` at every cell, or the mask input
      downscaled by ``mask_downscaling``; ``has_mask_input`` says which.
    - ``output_tokens_in`` (5, C): the learned IoU token and 4 mask tokens;
      ``output_tokens_out`` (5, C) the same after the two-way transformer;
      ``prompt_tokens_out`` (N, C) the prompt tokens after it.
    - ``token_to_image`` (L + 1, n, T, H, W): softmax weights of each token over the image
      per layer and head; the last entry is the final token -> image attention.
      ``image_to_token`` (L, n, T, H, W): for each image cell, its weight on token t.
    - ``upscaled_embedding`` (C/8, 4H, 4W): image tokens after ``output_upscaling``.
    - ``hypernetwork_weights`` (4, C/8): each mask token's MLP output; mask k's logits are
      ``hypernetwork_weights[k] @ upscaled_embedding``.
    - ``low_res_logits`` (4, 4H, 4W) and ``iou_predictions`` (4,): mask 0 is the single-mask
      output (``multimask_output=False``), masks 1-3 the multimask outputs.
    - ``masks`` (4, H_img, W_img) bool: the 4 masks at the original image size.
    - ``original_size`` (H, W) of the image; ``input_size`` (h, w) of the resized image the
      model saw; ``canvas_size``: the side of the square the embedding grid covers (1024:
      the resized image sits in its top-left corner, the rest is padding).
    - ``chosen`` int: the mask shown for an ambiguous prompt (highest predicted IoU among
      1-3, what ``predict(multimask_output=True)`` users usually take).
    """

    gaussian_matrix: np.ndarray
    dense_pe: np.ndarray
    token_kinds: list[str]
    token_xy: np.ndarray
    token_xy_input: np.ndarray
    token_pe: np.ndarray
    token_learned: np.ndarray
    sparse_tokens: np.ndarray
    dense_embedding: np.ndarray
    has_mask_input: bool
    output_tokens_in: np.ndarray
    output_tokens_out: np.ndarray
    prompt_tokens_out: np.ndarray
    token_to_image: np.ndarray
    image_to_token: np.ndarray
    upscaled_embedding: np.ndarray
    hypernetwork_weights: np.ndarray
    low_res_logits: np.ndarray
    iou_predictions: np.ndarray
    masks: np.ndarray
    chosen: int
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    canvas_size: int

    @property
    def num_output_tokens(self) -> int:
        """Tokens before the prompt tokens (1 IoU token + mask tokens)."""
        return int(self.output_tokens_in.shape[0])

    def final_attention(self, mask_index: int | None = None) -> np.ndarray:
        """(H, W) head-averaged final token -> image attention of mask token ``mask_index``
        (default: ``chosen``)."""
        k = self.chosen if mask_index is None else int(mask_index)
        if not 0 <= k < self.hypernetwork_weights.shape[0]:
            raise ValueError(
                f"mask_index must be in 0..{self.hypernetwork_weights.shape[0] - 1}, got {k}"
            )
        return self.token_to_image[-1, :, 1 + k].mean(axis=0)


def _tracer(model: Any) -> Callable[..., dict[str, Any]]:
    # SegmentModel.family; the SAM classes before the interface refactor lack it.
    family = getattr(model, "family", "sam")
    if family not in _TRACERS:
        raise ValueError(
            f"explain does not support the {family!r} model family yet "
            f"(supported: {sorted(_TRACERS)})"
        )
    return importlib.import_module(_TRACERS[family]).trace_decode  # type: ignore[no-any-return]


def _geometry(predictor: Any) -> Any:
    """The predictor's image geometry (``model.geometry`` or the predictor's transform)."""
    geometry = getattr(predictor.model, "geometry", None)
    return geometry if geometry is not None else predictor.transform


def _canvas_size(model: Any) -> int:
    # SegmentModel.image_size; the SAM classes before the interface refactor name it img_size.
    size = getattr(model, "image_size", None)
    return int(size if size is not None else model.img_size)


def explain(
    predictor: Any,
    point_coords: Any = None,
    point_labels: Any = None,
    box: Any = None,
    mask_input: Any = None,
) -> Explanation:
    """Decode one prompt on ``predictor``'s current image and return every intermediate.

    Prompts as in ``SamPredictor.predict``: ``point_coords`` (N, 2) XY and ``point_labels``
    (N,) (1 foreground, 0 background, -1 ignored) in original-image pixels, ``box`` (4,)
    XYXY, ``mask_input`` (1, 256, 256) low-res logits of a previous prediction. At least
    one of them is needed. All four masks are computed; ``masks[0]`` equals
    ``predict(..., multimask_output=False)`` and ``masks[1:]`` equal
    ``predict(..., multimask_output=True)`` (up to float rounding of the logits).
    """
    if not hasattr(predictor, "get_image_embedding") or not hasattr(predictor, "model"):
        raise TypeError(f"predictor must be a SamPredictor, got {type(predictor).__name__}")
    if not predictor.is_image_set:
        raise RuntimeError("set an image on the predictor (set_image) before explain().")
    size = (int(predictor.original_size[0]), int(predictor.original_size[1]))
    input_size = (int(predictor.input_size[0]), int(predictor.input_size[1]))
    coords, labels = check_points(point_coords, point_labels, size)
    box_np = check_box(box, size)
    # SegmentModel.low_res_size; the SAM classes before the interface refactor lack it.
    lr = getattr(predictor.model, "low_res_size", (256, 256))
    low_res = (int(lr[0]), int(lr[1]))
    mask_np = check_mask_input(mask_input, low_res)
    if coords is None and box_np is None and mask_np is None:
        raise ValueError("give a prompt: point_coords with point_labels, a box or a mask_input")
    geometry = _geometry(predictor)
    coords_t = labels_t = box_t = mask_t = None
    if coords is not None and labels is not None:
        coords_t = torch.as_tensor(geometry.apply_coords(coords, size), dtype=torch.float32)
        labels_t = torch.as_tensor(labels, dtype=torch.int64)
    if box_np is not None:
        box_t = torch.as_tensor(geometry.apply_boxes(box_np, size), dtype=torch.float32)[0]
    if mask_np is not None:
        mask_t = torch.as_tensor(mask_np, dtype=torch.float32)[None, None]
    features = predictor.get_image_embedding()
    with torch.no_grad():
        out = _tracer(predictor.model)(predictor.model, features, coords_t, labels_t, box_t, mask_t)
        device_logits = torch.as_tensor(out["low_res_logits"], device=predictor.device)
        masks = predictor.upscale(device_logits, size="original") > float(
            predictor.model.mask_threshold
        )
    xy_input = out["token_xy"]
    # input frame -> original pixels (the inverse of the resize; XY order)
    scale = np.array([size[1] / input_size[1], size[0] / input_size[0]], dtype=np.float32)
    iou = out["iou_predictions"]
    return Explanation(
        gaussian_matrix=out["gaussian_matrix"],
        dense_pe=out["dense_pe"],
        token_kinds=list(out["token_kinds"]),
        token_xy=(xy_input * scale).astype(np.float32),
        token_xy_input=xy_input,
        token_pe=out["token_pe"],
        token_learned=out["token_learned"],
        sparse_tokens=out["sparse_tokens"],
        dense_embedding=out["dense_embedding"],
        has_mask_input=mask_np is not None,
        output_tokens_in=out["output_tokens_in"],
        output_tokens_out=out["output_tokens_out"],
        prompt_tokens_out=out["prompt_tokens_out"],
        token_to_image=out["token_to_image"],
        image_to_token=out["image_to_token"],
        upscaled_embedding=out["upscaled_embedding"],
        hypernetwork_weights=out["hypernetwork_weights"],
        low_res_logits=out["low_res_logits"],
        iou_predictions=iou,
        masks=masks.cpu().numpy(),
        chosen=1 + int(np.argmax(iou[1:])),
        original_size=(size[0], size[1]),
        input_size=(input_size[0], input_size[1]),
        canvas_size=_canvas_size(predictor.model),
    )
