"""Matplotlib figures of masks, prompts, SAM's internals and automatic-generation stages.

matplotlib is optional (``pip install 'sam-widget[plot]'``); it is imported when a figure is
drawn, so ``import sam_widget.plot`` and :func:`snapshot` work without it. Every function
draws into ``ax`` (or a new figure) and returns the axes or figure, for static pages,
reports and notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .widget.snapshot import render, snapshot

if TYPE_CHECKING:
    from .explain import AmgExplanation, Explanation

__all__ = [
    "render",
    "show_amg_stages",
    "show_attention",
    "show_candidates",
    "show_embedding_pca",
    "show_masks",
    "show_point_encoding",
    "snapshot",
]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "sam_widget.plot needs matplotlib, which is not installed: "
            "pip install 'sam-widget[plot]' (or pip install matplotlib)"
        ) from err
    return plt


def _axes(ax: Any, figsize: tuple[float, float] = (5, 4)) -> Any:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(figsize=figsize)
    return new


def _grid(n: int, cols: int, size: float) -> tuple[Any, list[Any]]:
    plt = _pyplot()
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    flat = list(axs.ravel())
    for a in flat[n:]:
        a.axis("off")
    return fig, flat[:n]


def show_masks(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray = (),
    colors: Sequence[str] | None = None,
    *,
    points: Any = None,
    labels: Any = None,
    boxes: Any = None,
    alpha: float = 0.5,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Draw (H, W) bool ``masks`` over an (H, W, 3) uint8 ``image``, with points (XY,
    ``labels`` 1 green / 0 red) and XYXY ``boxes`` in image pixels. Returns the axes."""
    ax = _axes(ax)
    ax.imshow(render(image, masks, colors, alpha=alpha, points=points, labels=labels, boxes=boxes))
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _prompt_points(ex: Explanation) -> tuple[np.ndarray | None, np.ndarray | None]:
    pts = [
        xy
        for xy, k in zip(ex.token_xy, ex.token_kinds, strict=True)
        if k in ("positive", "negative")
    ]
    labs = [int(k == "positive") for k in ex.token_kinds if k in ("positive", "negative")]
    return (np.array(pts), np.array(labs)) if pts else (None, None)


def _prompt_box(ex: Explanation) -> np.ndarray | None:
    corners = [xy for xy, k in zip(ex.token_xy, ex.token_kinds, strict=True) if k.startswith("box")]
    return np.concatenate(corners)[None] if len(corners) == 2 else None


def show_candidates(image: np.ndarray, ex: Explanation, *, size: float = 3.0) -> Any:
    """The 4 masks of an :func:`~sam_widget.explain.explain` decode with their predicted
    IoU: mask 0 (the single-mask output) and masks 1-3 (the multimask outputs; the
    highest-scoring one is marked). Returns the figure."""
    fig, axs = _grid(4, 4, size)
    points, labels = _prompt_points(ex)
    box = _prompt_box(ex)
    for k, a in enumerate(axs):
        kind = "single" if k == 0 else "multi"
        mark = "  <- chosen" if k == ex.chosen else ""
        show_masks(
            image,
            [ex.masks[k]],
            ["#1e88e5" if k == ex.chosen else "#e69f00"],
            points=points,
            labels=labels,
            boxes=box,
            title=f"mask {k} ({kind}) IoU {ex.iou_predictions[k]:.2f}{mark}",
            ax=a,
        )
    fig.tight_layout()
    return fig


def _grid_extent(ex: Explanation) -> tuple[list[float], tuple[int, int]]:
    """The embedding cells covering the image, and their extent in original pixels.

    The 64 x 64 grid covers the padded 1024-square input; the image fills its top-left
    ``input_size``. Returns ([left, right, bottom, top], (rows, cols)) for ``imshow``.
    """
    gh, gw = ex.dense_pe.shape[1:]
    cell = ex.canvas_size / gh
    rows, cols = math.ceil(ex.input_size[0] / cell), math.ceil(ex.input_size[1] / cell)
    sy = ex.original_size[0] / ex.input_size[0]
    sx = ex.original_size[1] / ex.input_size[1]
    return [0.0, cols * cell * sx, rows * cell * sy, 0.0], (rows, cols)


def show_attention(
    image: np.ndarray,
    ex: Explanation,
    mask_index: int | None = None,
    *,
    layer: int = -1,
    head: int | None = None,
    ax: Any = None,
) -> Any:
    """Token -> image attention of mask token ``mask_index`` (default: the chosen mask)
    over the image: ``layer`` -1 is the final attention; ``head`` None averages the
    heads. Returns the axes."""
    k = ex.chosen if mask_index is None else int(mask_index)
    maps = ex.token_to_image[layer, :, 1 + k]
    att = maps.mean(axis=0) if head is None else maps[head]
    extent, (rows, cols) = _grid_extent(ex)
    ax = _axes(ax)
    ax.imshow(image)
    ax.imshow(att[:rows, :cols], extent=extent, cmap="magma", alpha=0.6, interpolation="nearest")
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.set_axis_off()
    which = "final" if layer in (-1, ex.token_to_image.shape[0] - 1) else f"layer {layer}"
    ax.set_title(f"mask token {k}: {which} token->image attention")
    return ax


def show_point_encoding(
    image: np.ndarray, ex: Explanation, token: int = 0, *, axs: Any = None
) -> Any:
    """Left: the 256-d positional encoding of prompt token ``token``; right: its cosine
    similarity with the dense encoding of every embedding cell (it peaks at the point:
    this is how the decoder knows where the click is). Returns the figure."""
    if axs is None:
        fig, axs = _grid(2, 2, 4.0)
    else:
        fig = axs[0].figure
    pe = ex.token_pe[token]
    axs[0].bar(np.arange(pe.size), pe, width=1.0, color="#0072b2")
    axs[0].set_title(f"PE of token {token} ({ex.token_kinds[token]})")
    axs[0].set_xlabel("channel (sin | cos)")
    # C x H x W dense PE; cosine similarity with the token's encoding per cell
    dense = ex.dense_pe
    sim = np.tensordot(pe, dense, axes=(0, 0)) / (
        np.linalg.norm(pe) * np.linalg.norm(dense, axis=0) + 1e-12
    )
    extent, (rows, cols) = _grid_extent(ex)
    axs[1].imshow(image)
    axs[1].imshow(sim[:rows, :cols], extent=extent, cmap="viridis", alpha=0.6)
    x, y = ex.token_xy[token]
    axs[1].plot([x], [y], "w+", markersize=12)
    axs[1].set_xlim(0, image.shape[1])
    axs[1].set_ylim(image.shape[0], 0)
    axs[1].set_axis_off()
    axs[1].set_title("similarity with the dense PE")
    fig.tight_layout()
    return fig


def show_embedding_pca(embedding: Any, *, ax: Any = None) -> Any:
    """The image embedding's principal components as RGB
    (:func:`~sam_widget.explain.embedding_pca`). Returns the axes."""
    from .explain.pca import embedding_pca

    ax = _axes(ax)
    ax.imshow(embedding_pca(embedding), interpolation="nearest")
    ax.set_title("image embedding, PCA -> RGB")
    ax.set_axis_off()
    return ax


def show_amg_stages(
    image: np.ndarray, ex: AmgExplanation, *, size: float = 3.0, cols: int = 3
) -> Any:
    """One panel per automatic-generation stage with its surviving masks and count; the
    first panel also shows the point grid and the crop boxes. Returns the figure."""
    fig, axs = _grid(len(ex.stages), cols, size)
    for i, (stage, a) in enumerate(zip(ex.stages, axs, strict=True)):
        masks: list[np.ndarray] = list(stage.masks()) if stage.count else []
        show_masks(image, masks, alpha=0.35, ax=a)
        if i == 0:
            for pts in ex.grid_points:
                a.plot(pts[:, 0], pts[:, 1], ".", color="white", markersize=3)
            for x0, y0, x1, y1 in ex.crop_boxes[1:]:
                a.add_patch(
                    _pyplot().Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=1)
                )
        a.set_title(f"{stage.name}: {stage.count} (-{stage.removed})", fontsize=9)
    fig.tight_layout()
    return fig
