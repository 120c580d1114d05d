"""The variant registry, in timm's style: every model variant is registered by name with its
family, its config and whether official weights exist; ``build_sam`` builds any of them.

A family (a folder under ``sam_widget/models/``) registers itself when its package is
imported: one :func:`register_family` (how to build a model from a config and a state dict,
and how to recognise its state dicts) and one :func:`register_model` per variant. The
registry imports every subpackage of ``sam_widget.models`` on first use, so a new family is
one folder: nothing else lists the families.

Official checkpoint files (URL, size, SHA-256) are facts of ``engine/checkpoints.py``
(``OFFICIAL``, keyed by the variant name); an entry says only whether it has one.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "Family",
    "ModelEntry",
    "build_sam",
    "detect",
    "get_entry",
    "get_family",
    "list_models",
    "register_family",
    "register_model",
    "resolve_device",
]

# (config, state dict or None, source) -> model on the CPU: random weights (PyTorch's
# default initialisation) when the state is None, else the state loaded strictly (the family
# sets aside, by name, keys it knows it does not use). ValueError when the state does not fit.
Builder = Callable[[Any, "Mapping[str, torch.Tensor] | None", str], nn.Module]
# state dict -> the registered name of the variant it belongs to, or None.
Detector = Callable[["Mapping[str, torch.Tensor]"], "str | None"]


@dataclass(frozen=True)
class Family:
    """One model family: ``build`` (see ``Builder``) and ``detect`` (see ``Detector``)."""

    name: str
    build: Builder
    detect: Detector


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant.

    ``name``: what ``build_sam`` takes ("vit_t", "sam2.1_hiera_t"); ``family``: the
    :class:`Family` name; ``config``: the family's frozen config object;
    ``has_official_weights``: False for test-only variants (always random weights);
    ``description``: one line for ``list_models(verbose)`` and error messages.
    """

    name: str
    family: str
    config: Any
    has_official_weights: bool = True
    description: str = ""

    def checkpoint_info(self) -> Any:
        """The official file's ``CheckpointInfo`` (``engine/checkpoints.py``), or None."""
        if not self.has_official_weights:
            return None
        from ..engine.checkpoints import OFFICIAL

        return OFFICIAL.get(self.name)


_lock = threading.RLock()
_families: dict[str, Family] = {}
_entries: dict[str, ModelEntry] = {}
_loaded = False


def register_family(name: str, *, build: Builder, detect: Detector) -> Family:
    """Register a family's builder and state-dict detector (once per family)."""
    family = Family(name, build, detect)
    with _lock:
        old = _families.get(name)
        if old is not None and old != family:
            raise ValueError(f"model family {name!r} is already registered")
        _families[name] = family
    return family


def register_model(
    name: str,
    *,
    family: str,
    config: Any,
    has_official_weights: bool = True,
    description: str = "",
) -> ModelEntry:
    """Register one variant of a registered family under ``name`` (unique across families)."""
    entry = ModelEntry(name, family, config, has_official_weights, description)
    with _lock:
        if family not in _families:
            raise ValueError(f"register family {family!r} before its variant {name!r}")
        old = _entries.get(name)
        if old is not None and old != entry:
            raise ValueError(f"model {name!r} is already registered (family {old.family!r})")
        _entries[name] = entry
    return entry


def _load_families() -> None:
    """Import every family package under ``sam_widget.models`` (they register on import)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        from .. import models

        for info in pkgutil.iter_modules(models.__path__):
            if info.ispkg:
                importlib.import_module(f"{models.__name__}.{info.name}")
        _loaded = True


def list_models(family: str | None = None, *, pretrained: bool | None = None) -> list[str]:
    """Registered names in registration order; only ``family``'s when given; with
    ``pretrained=True`` only those with official weights (False: only those without)."""
    _load_families()
    with _lock:
        return [
            e.name
            for e in _entries.values()
            if (family is None or e.family == family)
            and (pretrained is None or e.has_official_weights == pretrained)
        ]


def get_entry(name: str) -> ModelEntry:
    """The entry of ``name``; ``ValueError`` listing the registered names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    _load_families()
    entry = _entries.get(name)
    if entry is None:
        known = ", ".join(repr(n) for n in list_models())
        raise ValueError(f"unknown model variant {name!r}; known variants: {known}")
    return entry


def get_family(name: str) -> Family:
    _load_families()
    return _families[name]


def detect(state: Mapping[str, torch.Tensor]) -> ModelEntry | None:
    """The registered variant a state dict belongs to (asking every family), or None."""
    _load_families()
    for fam in list(_families.values()):
        found = fam.detect(state)
        if found is not None:
            return get_entry(found)
    return None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``: CUDA if available, else MPS (Apple) if available, else CPU."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None
    raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")


def _is_path(value: Any) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (
        os.sep in value or "/" in value or value.endswith((".pt", ".pth", ".safetensors"))
    )


def build_sam(
    name_or_path: str | os.PathLike[str] = "vit_t",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    *,
    pretrained: bool = True,
) -> Any:
    """Build a registered model (any family) in eval mode on ``device``.

    ``name_or_path``: a registered name (:func:`list_models`), or the path of a checkpoint
    file whose variant is recognised from its keys and shapes. ``checkpoint``: path of a
    state-dict file for the named variant; ``None`` with ``pretrained=True`` means the
    official weights (downloaded once and cached). ``device``: ``None`` picks CUDA, then
    MPS, then CPU. ``pretrained=False``: random, untrained weights (``model.pretrained`` is
    False and a ``UserWarning`` says so). Test-only variants ("tiny") have no official
    weights: without a checkpoint they are random and never ``pretrained``.

    Raises ``ValueError`` for an unknown name, a checkpoint of another variant (naming both)
    or one that does not fit; ``FileNotFoundError`` for a missing file.
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {type(pretrained).__name__}")
    if checkpoint is not None and not pretrained:
        raise ValueError(
            "checkpoint was given together with pretrained=False; pass one or the other"
        )
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"variant must be a registered name (str) or a checkpoint path, got "
            f"{type(name_or_path).__name__}"
        )
    from ..engine import checkpoints

    state: Mapping[str, torch.Tensor] | None = None
    meta: dict[str, Any] | None = None
    source = ""
    name = os.fspath(name_or_path)
    if (isinstance(name_or_path, os.PathLike) or name not in list_models()) and _is_path(
        name_or_path
    ):
        if checkpoint is not None:
            raise ValueError("give the checkpoint path once: as the variant or as checkpoint=")
        if not pretrained:
            raise ValueError("a checkpoint path was given together with pretrained=False")
        path = Path(name).expanduser()
        state, meta = checkpoints.load_checkpoint(path)
        found = detect(state) or _entry_from_metadata(meta)
        if found is None:
            raise ValueError(
                f"checkpoint {path} matches no registered variant; known: {list_models()}"
            )
        entry, source = found, str(path)
    else:
        entry = get_entry(name)
    family = get_family(entry.family)
    target = resolve_device(device)

    if state is None and pretrained and (checkpoint is not None or entry.has_official_weights):
        path = checkpoints.resolve_checkpoint(entry.name, checkpoint)
        state, meta = checkpoints.load_checkpoint(path)
        source = str(path)
        found = detect(state) or _entry_from_metadata(meta)
        if found is not None and found.name != entry.name:
            raise ValueError(
                f"checkpoint {path} holds weights of variant {found.name!r}, but variant "
                f"{entry.name!r} was requested; use build_sam({found.name!r}, checkpoint=...) "
                f"or the {entry.name!r} checkpoint"
            )
    model: Any
    if state is not None:
        model = family.build(entry.config, state, source)
        # A fine-tuned checkpoint records whether its base was trained: fine-tuning random
        # weights still gives an untrained model (sam_widget.finetune metadata).
        base_trained = meta is None or meta.get("pretrained") is not False
        model.pretrained = entry.has_official_weights and base_trained
        model.checkpoint = source
    else:
        if entry.has_official_weights:
            warnings.warn(
                f"{entry.family.upper()} variant {entry.name!r} was built with random, "
                "untrained weights (pretrained=False): its masks are meaningless",
                UserWarning,
                stacklevel=2,
            )
        # On the CPU so that torch.manual_seed gives the same weights on every machine.
        with torch.device("cpu"):
            model = family.build(entry.config, None, "")
        model.pretrained = False
        model.checkpoint = None
    return model.to(target).eval()


def _entry_from_metadata(meta: Mapping[str, Any] | None) -> ModelEntry | None:
    """The registered variant a checkpoint's metadata names (fine-tuned checkpoints record
    it), or None."""
    if meta is None or not isinstance(meta.get("variant"), str):
        return None
    name = meta["variant"]
    return get_entry(name) if name in list_models() else None
