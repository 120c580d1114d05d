"""Batch runs over a dataset: automatic masks (``auto_annotate``) and precomputed
embeddings (``embed``), on a Dask cluster or in this process; ``sam-widget auto`` and
``sam-widget embed`` on the command line (:mod:`sam_widget.batch.cli`).

Layout: ``inputs`` (which files, output names), ``keys`` (model spec, parameters, result
keys), ``worker`` (what runs per image in a worker), ``execution`` (Dask or in-process),
``outdir`` (SA-1B JSON folder), ``project`` (annotator project), ``summary`` (progress and
summary), ``runner`` (the two entry points), ``cli``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchInterrupted", "BatchSummary", "auto_annotate", "embed"]

if TYPE_CHECKING:
    from .runner import auto_annotate, embed
    from .summary import BatchInterrupted, BatchSummary

_LAZY = {
    "auto_annotate": ".runner",
    "embed": ".runner",
    "BatchSummary": ".summary",
    "BatchInterrupted": ".summary",
}


def __getattr__(name: str) -> Any:
    # Lazy: the command line's --help must not import torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'sam_widget.batch' has no attribute {name!r}")
