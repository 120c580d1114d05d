"""What identifies a batch result: the model spec, the generator parameters, the result key.

A result is keyed by ``result_key(image_sha256, weights_id, params_key)``: the same image
content, the same weights and the same effective generator parameters give the same key, so
a rerun recognises what is done and a worker retried by Dask rewrites the same record.

- :class:`ModelSpec`: how a worker builds its model (variant, checkpoint, pretrained, seed,
  device). Small and picklable: it travels with every task; the model itself never does.
- :func:`generator_params`: the user's generator options with every default filled in (so
  passing a default explicitly gives the same key), validated by name.
- :func:`params_key`: SHA-256 of the parameters' canonical JSON.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ModelSpec",
    "file_sha256",
    "generator_params",
    "params_key",
    "result_key",
]

_PARAMS_TAG = "sam-widget/batch/auto-params/v1"
_RESULT_TAG = b"sam-widget/batch/auto-result/v1"
# Set by the batch runner itself, never by the user.
_FIXED = {"model", "output_mode", "progress"}


@dataclass(frozen=True)
class ModelSpec:
    """How to build the model in a worker process.

    ``variant``: a registered variant ("vit_t", "vit_b", ..., "tiny"); ``checkpoint``: an
    absolute path readable by every worker, or None (official weights, downloaded into each
    worker machine's cache once); ``pretrained=False``: random untrained weights, the same in
    every worker because they are drawn after ``torch.manual_seed(seed)``; ``device``: a torch
    device string or None (CUDA, then MPS, then CPU).
    """

    variant: str = "vit_t"
    checkpoint: str | None = None
    pretrained: bool = True
    seed: int = 0
    device: str | None = None

    @classmethod
    def create(
        cls,
        variant: Any,
        checkpoint: Any = None,
        *,
        pretrained: Any = True,
        seed: Any = 0,
        device: Any = None,
    ) -> ModelSpec:
        """Validated spec; the checkpoint path is made absolute (workers resolve it as is)."""
        if not isinstance(variant, str):
            raise TypeError(
                f"model must be a variant name (str, e.g. 'vit_t'), got {type(variant).__name__}"
                "; batch workers build their own model, a model object is never sent to them."
            )
        if not isinstance(pretrained, bool):
            raise TypeError(f"pretrained must be a bool, got {type(pretrained).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        ckpt = None
        if checkpoint is not None:
            if not isinstance(checkpoint, (str, os.PathLike)):
                raise TypeError(
                    f"checkpoint must be a path or None, got {type(checkpoint).__name__}"
                )
            if not pretrained:
                raise ValueError("checkpoint was given together with pretrained=False")
            ckpt = str(Path(os.fspath(checkpoint)).expanduser().resolve())
        if device is not None and not isinstance(device, str):
            raise TypeError(f"device must be a str or None, got {type(device).__name__}")
        return cls(variant, ckpt, pretrained, int(seed), device)


def _generator_signature() -> inspect.Signature:
    from ..engine.amg.generator import SamAutomaticMaskGenerator

    return inspect.signature(SamAutomaticMaskGenerator.__init__)


def _canonical(value: Any, name: str) -> Any:
    """JSON-ready copy of a parameter value (numpy arrays and scalars become lists/numbers)."""
    if isinstance(value, np.ndarray):
        return _canonical(value.tolist(), name)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_canonical(v, name) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"generator parameter {name} must be a number, a string, None or a list of them, "
        f"got {type(value).__name__}"
    )


def generator_params(given: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of ``SamAutomaticMaskGenerator`` (except model, output_mode and
    progress, which the batch sets) with the user's values over the defaults, sorted by name.

    Raises ``TypeError`` naming an unknown parameter. Values are checked by the generator
    itself when the first worker builds it.
    """
    sig = _generator_signature()
    names = [n for n in sig.parameters if n != "self" and n not in _FIXED]
    for key in given:
        if key in _FIXED:
            raise TypeError(f"{key} is set by the batch runner and cannot be passed")
        if key not in names:
            raise TypeError(
                f"unknown generator parameter {key!r}; expected one of {', '.join(names)}"
            )
    out = {}
    for n in sorted(names):
        value = given[n] if n in given else sig.parameters[n].default
        out[n] = _canonical(value, n)
    return out


def params_key(params: dict[str, Any]) -> str:
    """Hex SHA-256 of the parameters' canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps({"tag": _PARAMS_TAG, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def result_key(image_sha256: str, weights_id: str, params_key: str) -> str:
    """Hex SHA-256 identifying one image's automatic masks for one model and parameter set."""
    h = hashlib.sha256(_RESULT_TAG)
    for part in (image_sha256, weights_id, params_key):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
