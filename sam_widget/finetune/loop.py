"""``finetune``: train a model's mask decoder on the user's own masks (the data engine's
retraining loop, SAM paper section 4), with the image encoder frozen and every image encoded
once."""

from __future__ import annotations

import copy
import importlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..engine.embedding_cache import EmbeddingCache
from .checkpoint import save_checkpoint
from .data import data_hash, load_samples, split_samples
from .evaluate import METRICS, evaluate
from .prepare import Prepared, prepare_samples
from .step import train_step

__all__ = ["family_training", "finetune"]

Callback = Callable[[dict[str, Any]], Any]


def family_training(model: Any) -> ModuleType:
    """The training hooks of ``model``'s family (``sam_widget.models.<family>.training``)."""
    family = getattr(model, "family", "sam")
    try:
        return importlib.import_module(f"sam_widget.models.{family}.training")
    except ModuleNotFoundError:
        raise ValueError(f"model family {family!r} does not support fine-tuning") from None


def _resolve_model(
    model: Any, checkpoint: Any, device: Any, pretrained: bool
) -> tuple[Any, torch.device]:
    base: Any
    if isinstance(model, str):
        from ..models.build import build_sam

        base = build_sam(model, checkpoint=checkpoint, device=device, pretrained=pretrained)
    elif isinstance(model, torch.nn.Module):
        if checkpoint is not None:
            raise ValueError("checkpoint= is only used with a variant name; model is a model")
        base = model
        if device is not None:
            from ..models.build import resolve_device

            if resolve_device(device) != base.device:
                raise ValueError(f"model is on {base.device}, but device={device!r} was given")
    else:
        raise TypeError(f"model must be a variant name or a model, got {type(model).__name__}")
    return base, torch.device(base.device)


def annotator_cache(data: Any) -> EmbeddingCache | None:
    """The embedding cache ``SamAnnotator`` keeps beside a project file
    (``<project>.cache/embeddings``), if ``data`` is such a project and the folder exists:
    images encoded while annotating (with the same model weights) are not encoded again."""
    if not isinstance(data, (str, os.PathLike)):
        return None
    path = Path(os.fspath(data)).expanduser()
    folder = path.with_name(path.name + ".cache") / "embeddings"
    return EmbeddingCache(directory=folder) if folder.is_dir() else None


class _Progress:
    """tqdm bar and/or user callback over the whole run (embedding, training, validation)."""

    def __init__(self, total: int, show: bool, callback: Callback | None) -> None:
        self.total, self.done, self.callback = max(total, 1), 0, callback
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="finetune", unit="step")

    def tick(self, stage: str, epoch: int, **info: Any) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(stage, refresh=False)
        if self.callback is not None:
            self.callback(
                {"stage": stage, "epoch": epoch, "fraction": min(1.0, self.done / self.total)}
                | info
            )

    def metrics(self, epoch: int, values: dict[str, float]) -> None:
        """A validation result (no unit of work): shown on the bar, passed to the callback
        as ``{"stage": "metrics", "epoch", "fraction", "metrics": {...}}``."""
        if self.bar is not None:
            shown = ", ".join(f"{k[4:]} {v:.3f}" for k, v in values.items())
            self.bar.set_postfix_str(f"epoch {epoch} IoU: {shown}")
        if self.callback is not None:
            fraction = min(1.0, self.done / self.total)
            self.callback(
                {"stage": "metrics", "epoch": epoch, "fraction": fraction, "metrics": dict(values)}
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_params(train: Any, epochs: Any, rounds: Any, masks_per_step: Any, lr: Any) -> None:
    if not isinstance(train, str):
        raise TypeError(f"train must be a str, got {type(train).__name__}")
    for name, v, lo in (
        ("epochs", epochs, 1),
        ("rounds", rounds, 1),
        ("masks_per_step", masks_per_step, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")


def finetune(
    data: Any,
    model: Any = "vit_t",
    checkpoint: str | os.PathLike[str] | None = None,
    train: str = "decoder",
    epochs: int = 10,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    rounds: int = 3,
    masks_per_step: int = 8,
    val_fraction: float = 0.2,
    val_data: Any = None,
    patience: int = 3,
    image_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    pretrained: bool = True,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    callback: Callback | None = None,
) -> Any:
    """Fine-tune a model on ``data`` and return it (eval mode); write a checkpoint to ``out``.

    ``data``: an annotator project file, a COCO JSON file (images found via ``file_name``
    under ``image_root``, default the file's folder) or a list of ``(image, masks)`` pairs
    (masks (N, H, W) bool). ``model``: a variant name (built with ``build_sam(model,
    checkpoint, device, pretrained=pretrained)``) or a model, which is copied, never
    changed. ``train``: ``"decoder"`` (mask decoder) or ``"decoder+prompt"`` (also the prompt
    encoder); the image encoder is frozen and each image is encoded once (through
    ``cache``, an :class:`EmbeddingCache`; for a project, by default the annotator's cache
    beside it when there is one, so images already encoded there are not encoded again).

    Each step runs ``rounds`` interactive rounds on up to ``masks_per_step`` masks of one
    training image (:mod:`sam_widget.finetune.step`), AdamW(``lr``, ``weight_decay``).
    ``val_data`` (same kinds as ``data``) or else ``val_fraction`` of the images (by
    ``seed``) are held out; validation mean IoU for 1 click, 3 clicks and a box is measured
    before training and after each epoch. Training stops after ``patience`` epochs without
    improvement of their mean, and the best epoch's weights are kept. The same ``seed``, data
    and machine give the same weights.

    ``progress``: a tqdm bar; ``callback(info)`` gets ``{"stage", "epoch", "fraction",
    ...}`` after each unit of work (stages "embed", "train" with ``"loss"``, "validate"), and
    ``{"stage": "metrics", "metrics": {"iou_1click", "iou_3click", "iou_box"}, ...}`` after
    each validation (epoch 0: before training). An exception raised there stops the run. The history
    is ``model.finetune_history`` (and in the checkpoint's metadata; see ``plot_history``).
    Sources are only read, never modified.
    """
    _check_params(train, epochs, rounds, masks_per_step, lr)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an int >= 1, got {patience!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if out is not None:  # checked now, not after the training it would lose
        if not isinstance(out, (str, os.PathLike)):
            raise TypeError(f"out must be a path or None, got {type(out).__name__}")
        folder = Path(os.fspath(out)).expanduser().absolute().parent
        if not folder.is_dir():
            raise FileNotFoundError(f"out: folder {str(folder)!r} does not exist")
    samples = load_samples(data, image_root=image_root)
    if val_data is not None:
        train_samples, val_samples = samples, load_samples(val_data, image_root=image_root)
    else:
        train_samples, val_samples = split_samples(samples, val_fraction, seed)

    base, dev = _resolve_model(model, checkpoint, device, pretrained)
    if cache is None:
        cache = annotator_cache(data)
    fam = family_training(base)
    if train not in fam.TRAINABLE:
        raise ValueError(f"train must be one of {sorted(fam.TRAINABLE)}, got {train!r}")
    # The model interface's frames (models/interface.py): SAM's input frame is the longest
    # side resized to 1024, its low-res grid 256 x 256.
    low_res = int(base.low_res_size[0])
    transform = base.geometry

    n_img = len(train_samples) + len(val_samples)
    bar = _Progress(
        n_img + (epochs + 1) * len(val_samples) + epochs * len(train_samples), progress, callback
    )
    try:
        train_prep = prepare_samples(
            base,
            train_samples,
            cache=cache,
            device=dev,
            low_res=low_res,
            tick=lambda: bar.tick("embed", 0),
        )
        val_prep = prepare_samples(
            base,
            val_samples,
            cache=cache,
            device=dev,
            low_res=low_res,
            tick=lambda: bar.tick("embed", 0),
        )
        if not train_prep:
            raise ValueError("data has no training masks left after the validation split")
        if not val_prep:
            raise ValueError("the validation split has no masks")
        tuned = copy.deepcopy(base).eval()
        params = fam.set_trainable(tuned, train)
        history = _train(
            fam,
            tuned,
            params,
            train_prep,
            val_prep,
            transform,
            bar,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            rounds=rounds,
            masks_per_step=masks_per_step,
            patience=patience,
            seed=seed,
        )
    finally:
        bar.close()
    for p in tuned.parameters():
        p.requires_grad_(False)

    metadata = {
        "format": "sam-widget finetune v1",
        "family": str(getattr(base, "family", "sam")),
        "variant": str(base.variant),
        "pretrained": bool(base.pretrained),
        "base_weights_id": str(base.weights_id),
        "weights_id": str(tuned.weights_id),
        "data_hash": data_hash(train_samples),
        "val_data_hash": data_hash(val_samples),
        "num_train_images": len(train_prep),
        "num_train_masks": int(sum(len(p.masks) for p in train_prep)),
        "num_val_images": len(val_prep),
        "num_val_masks": int(sum(len(p.masks) for p in val_prep)),
        "params": {
            "train": train,
            "epochs": epochs,
            "seed": seed,
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "rounds": rounds,
            "masks_per_step": masks_per_step,
            "val_fraction": float(val_fraction),
            "patience": patience,
            "optimizer": "AdamW",
        },
        "history": history,
        "torch_version": str(torch.__version__),
    }
    tuned.finetune_history = history
    tuned.finetune_metadata = metadata
    if out is not None:
        save_checkpoint(out, tuned, metadata)
    return tuned


def _train(
    fam: ModuleType,
    model: Any,
    params: list[torch.nn.Parameter],
    train_prep: list[Prepared],
    val_prep: list[Prepared],
    transform: Any,
    bar: _Progress,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    rounds: int,
    masks_per_step: int,
    patience: int,
    seed: int,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def validate(epoch: int) -> dict[str, float]:
        return evaluate(fam, model, val_prep, transform, tick=lambda: bar.tick("validate", epoch))

    history: dict[str, Any] = {"epoch": [0], "train_loss": [None]}
    first = validate(0)
    bar.metrics(0, first)
    for k in METRICS:
        history[k] = [first[k]]
    best_score, best_epoch = float(np.mean(list(first.values()))), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(1, epochs + 1):
        losses = []
        for i in rng.permutation(len(train_prep)):
            opt.zero_grad(set_to_none=True)
            loss = train_step(
                fam,
                model,
                train_prep[int(i)],
                rounds=rounds,
                masks_per_step=masks_per_step,
                rng=rng,
                generator=generator,
                transform=transform,
            )
            if not np.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss} at epoch {epoch}; lower lr")
            opt.step()
            losses.append(loss)
            bar.tick("train", epoch, loss=loss)
        metrics = validate(epoch)
        bar.metrics(epoch, metrics)
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        for k in METRICS:
            history[k].append(metrics[k])
        score = float(np.mean(list(metrics.values())))
        if score > best_score + 1e-4:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    if best_epoch == 0:
        warnings.warn(
            "fine-tuning did not improve the validation IoU; the returned weights are the "
            "base model's",
            UserWarning,
            stacklevel=3,
        )
    history["best_epoch"] = best_epoch
    return history
