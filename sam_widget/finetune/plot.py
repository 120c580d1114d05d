"""``plot_history``: the validation curves of a fine-tuning run (matplotlib, optional)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["plot_history"]

_LABELS = {"iou_1click": "1 click", "iou_3click": "3 clicks", "iou_box": "box"}


def plot_history(history: Any, ax: Any = None) -> Any:
    """Plot validation mean IoU per epoch (epoch 0 = before training) for 1 click, 3 clicks
    and a box, marking the kept epoch. ``history``: ``model.finetune_history``, a
    checkpoint's metadata, or the path of a fine-tuned checkpoint. Returns the axes.

    Needs matplotlib (``pip install matplotlib``); ``ImportError`` saying so otherwise.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plot_history needs matplotlib, which is not installed: pip install matplotlib "
            "(the history itself is plain data: model.finetune_history)"
        ) from exc
    if isinstance(history, (str, os.PathLike)):
        from .checkpoint import read_metadata

        history = read_metadata(history)["history"]
    elif isinstance(history, dict) and "history" in history:
        history = history["history"]
    if not isinstance(history, dict) or "epoch" not in history:
        raise TypeError("history must be model.finetune_history, checkpoint metadata or a path")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    epochs = history["epoch"]
    for key, label in _LABELS.items():
        ax.plot(epochs, history[key], marker="o", label=label)
    best = history.get("best_epoch")
    if best is not None:
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"kept (epoch {best})")
    ax.set_xlabel("epoch (0 = before fine-tuning)")
    ax.set_ylabel("validation mean IoU")
    ax.set_ylim(0.0, 1.0)
    ax.legend()
    return ax
