"""Fine-tune a model on the user's own masks (the data engine's retraining loop).

``finetune(data, model="vit_t", ...)`` trains the mask decoder (optionally the prompt
encoder) with SAM's interactive recipe on cached image embeddings and writes a checkpoint
that ``build_sam(variant, checkpoint=path)`` loads. ``use_model(predictor, path)`` switches a
predictor to a fine-tuned model keeping its image embedding; ``plot_history`` draws the
validation curves.
"""

from __future__ import annotations

from .checkpoint import load_finetuned, read_metadata, save_checkpoint, use_model
from .loop import finetune
from .plot import plot_history

__all__ = [
    "finetune",
    "load_finetuned",
    "plot_history",
    "read_metadata",
    "save_checkpoint",
    "use_model",
]
