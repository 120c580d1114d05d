"""Official checkpoints: where they live, where we cache them, how we fetch and load them.

- ``OFFICIAL``: URL, file name, size and hashes of the published weights per variant.
- ``cache_dir()``: ``$SAM_WIDGET_CACHE``, else ``$XDG_CACHE_HOME/sam-widget``, else
  ``~/.cache/sam-widget``.
- ``resolve_checkpoint()``: a user path (must exist) or the cached official file (downloaded
  on first use).
- ``download()``: stream to a private temp file next to the target, verify size and hashes,
  fsync, then ``os.replace`` it into place. A failed download never touches the target.
- ``load_state_dict()``: ``torch.load(..., weights_only=True)`` only, plus checks that the
  result is a dict of tensors.

Concurrency: every download writes its own temp file (``tempfile.mkstemp``: unique per
process and thread) and publishes it with one atomic ``os.replace``. Readers therefore see
either no file, the old file, or a complete verified file. We deliberately use no lock file:
a crashed process can never leave a lock that blocks later downloads. The price is that two
processes starting a first download at the same moment both fetch the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._download import _DEFAULT_TIMEOUT, DownloadError, _download, download

if TYPE_CHECKING:
    import torch

__all__ = [
    "OFFICIAL",
    "CheckpointError",
    "CheckpointInfo",
    "DownloadError",
    "cache_dir",
    "download",
    "load_checkpoint",
    "load_state_dict",
    "resolve_checkpoint",
]


@dataclass(frozen=True)
class CheckpointInfo:
    """One published checkpoint file.

    ``size`` is in bytes; ``md5_prefix`` is the leading hex digits of the file's MD5 (the SAM
    files carry them in their names); ``sha256`` is the full hex digest. ``None`` = unknown,
    not checked.
    """

    url: str
    filename: str
    size: int | None = None
    md5_prefix: str | None = None
    sha256: str | None = None


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"

# URLs and file names: facebookresearch/segment-anything README, "Model Checkpoints"; the
# 6 hex digits in each name are the start of the file's MD5 (the published repo's naming).
# Sizes: the same byte counts appear in several independent public download manifests
# (e.g. an HTTP log "Length: 375042383" for vit_b; model tables listing all three).
# SHA-256: computational-cell-analytics/micro-sam, micro_sam/util.py (_CHECKSUMS), and the
# same digests in many other public manifests.
# MobileSAM (vit_t): the file in ChaoningZhang/MobileSAM at weights/mobile_sam.pt. Size
# 40728226 bytes and SHA-256 6dbb9052... are listed together for that GitHub file (also
# pinned to commit f706ad9c4eb7f219c00d9050e46328518ffb65d2) in independent public
# manifests; the same SHA-256 is micro-sam's _CHECKSUMS["vit_t"]. Its name carries no MD5.
OFFICIAL: dict[str, CheckpointInfo] = {
    "vit_h": CheckpointInfo(
        url=_SAM_BASE + "sam_vit_h_4b8939.pth",
        filename="sam_vit_h_4b8939.pth",
        size=2564550879,
        md5_prefix="4b8939",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
    "vit_l": CheckpointInfo(
        url=_SAM_BASE + "sam_vit_l_0b3195.pth",
        filename="sam_vit_l_0b3195.pth",
        size=1249524607,
        md5_prefix="0b3195",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "vit_b": CheckpointInfo(
        url=_SAM_BASE + "sam_vit_b_01ec64.pth",
        filename="sam_vit_b_01ec64.pth",
        size=375042383,
        md5_prefix="01ec64",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "vit_t": CheckpointInfo(
        url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        filename="mobile_sam.pt",
        size=40728226,
        md5_prefix=None,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
    ),
}

# SAM 2 (July 2024, ".../072824/") and SAM 2.1 (September 2024, ".../092824/"): URLs from
# facebookresearch/sam2, checkpoints/download_ckpts.sh; the same files are on the Hugging Face
# hub as facebook/sam2-hiera-* and facebook/sam2.1-hiera-*. Each holds {"model": state_dict}
# of the whole video model (models/sam2/checkpoint.py sets the video-only keys aside).
# SHA-256 of all eight: computational-cell-analytics/micro-sam, micro_sam/v2/util.py (HASHES,
# pooch known_hash per file). Independent manifests list the same digests for sam2 t and l and
# for all four sam2.1 files (and the Hugging Face file of sam2.1 tiny at revision
# de431c4043854a71d8101e17995dfe596bf101a5); for sam2 s and b+ the 3D Slicer extension
# mazurowski-lab/SlicerSegmentWithSAM checks the same SHA-256 when it downloads the official
# URLs, and other download manifests list them too (sam2 s with the size 184309650).
# Sizes in bytes: several independent download manifests list all eight; sam2 tiny's also
# appears in a wget log of the official URL ("Length: 155906050").
_SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/"
_SAM2_FILES = {
    # variant: (release folder, file name, size, SHA-256)
    "sam2_hiera_t": (
        "072824",
        "sam2_hiera_tiny.pt",
        155906050,
        "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
    ),
    "sam2_hiera_s": (
        "072824",
        "sam2_hiera_small.pt",
        184309650,
        "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
    ),
    "sam2_hiera_b+": (
        "072824",
        "sam2_hiera_base_plus.pt",
        323493298,
        "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
    ),
    "sam2_hiera_l": (
        "072824",
        "sam2_hiera_large.pt",
        897952466,
        "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
    ),
    "sam2.1_hiera_t": (
        "092824",
        "sam2.1_hiera_tiny.pt",
        156008466,
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    ),
    "sam2.1_hiera_s": (
        "092824",
        "sam2.1_hiera_small.pt",
        184416285,
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    ),
    "sam2.1_hiera_b+": (
        "092824",
        "sam2.1_hiera_base_plus.pt",
        323606802,
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    ),
    "sam2.1_hiera_l": (
        "092824",
        "sam2.1_hiera_large.pt",
        898083611,
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
    ),
}
for _variant, (_folder, _name, _size, _sha) in _SAM2_FILES.items():
    OFFICIAL[_variant] = CheckpointInfo(
        url=f"{_SAM2_BASE}{_folder}/{_name}", filename=_name, size=_size, sha256=_sha
    )

# Variants that exist (docs/ARCHITECTURE.md, config.VARIANTS) but have no published weights.
_NO_OFFICIAL_WEIGHTS = frozenset({"tiny"})


class CheckpointError(ValueError):
    """A checkpoint file could not be loaded safely as a dict of tensors."""


# ---------------------------------------------------------------------------------------
# cache and resolution


def cache_dir() -> Path:
    """Directory for downloaded checkpoints (not created here).

    ``$SAM_WIDGET_CACHE`` if set and non-empty, else ``$XDG_CACHE_HOME/sam-widget``, else
    ``~/.cache/sam-widget``. Read from the environment on every call.
    """
    explicit = os.environ.get("SAM_WIDGET_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "sam-widget"
    return Path.home() / ".cache" / "sam-widget"


def _known_variants() -> frozenset[str]:
    from ..models.registry import list_models  # every registered variant of every family

    return frozenset(set(OFFICIAL) | _NO_OFFICIAL_WEIGHTS | set(list_models()))


def resolve_checkpoint(
    variant: str, checkpoint: str | os.PathLike[str] | None, *, progress: bool = True
) -> Path:
    """Path of the checkpoint file to load for ``variant``.

    ``checkpoint`` given: that file, which must exist (``FileNotFoundError`` naming it).
    ``checkpoint=None``: the official weights in ``cache_dir()``, downloaded and verified
    first if missing (or if the cached file has the wrong size). Unknown variants and variants
    without official weights (``"tiny"``) raise ``ValueError``.
    """
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a str, got {type(variant).__name__}")
    known = _known_variants()
    if variant not in known:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(known)}")

    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"checkpoint must be a path (str or os.PathLike) or None, "
                f"got {type(checkpoint).__name__}"
            )
        path = Path(os.fspath(checkpoint)).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint path is not a file: {path}")
        return path

    if variant not in OFFICIAL:
        raise ValueError(
            f"variant {variant!r} has no official weights; pass checkpoint=<path> or use "
            f"pretrained=False (variants with official weights: {sorted(OFFICIAL)})"
        )
    info = OFFICIAL[variant]
    dest = cache_dir() / info.filename
    if dest.is_file():
        actual = dest.stat().st_size
        if info.size is None or actual == info.size:
            # Only verified files are ever renamed into the cache, so the size check is
            # enough here; re-hashing gigabytes on every model load would be slow.
            return dest
        warnings.warn(
            f"cached checkpoint {dest} has {actual} bytes, expected {info.size}; "
            "downloading it again (the file is replaced only after the new one is verified)",
            RuntimeWarning,
            stacklevel=2,
        )
    return _download(
        info.url,
        dest,
        size=info.size,
        md5_prefix=info.md5_prefix,
        sha256=info.sha256,
        progress=progress,
        timeout=_DEFAULT_TIMEOUT,
        variant=variant,
    )


# ---------------------------------------------------------------------------------------
# loading

# Containers that training scripts commonly wrap a state dict in. We accept a top-level dict
# whose values are all tensors, or else the dict of tensors under one of these keys (other
# entries, such as optimizer state or epoch counters, are ignored).
_WRAPPER_KEYS = ("model", "state_dict")


def _is_tensor_dict(obj: Any, torch_mod: Any) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch_mod.Tensor) for v in obj.values())
    )


def _unpickler_reason(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    if inner is not None and str(inner):
        return str(inner).splitlines()[0]
    lines = [line.strip() for line in str(exc).splitlines()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            if rest:
                return rest
            following = [x for x in lines[i + 1 :] if x]
            if following:
                return following[0]
    return lines[0] if lines and lines[0] else type(exc).__name__


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of :func:`load_checkpoint` (its metadata dropped)."""
    return load_checkpoint(path)[0]


def load_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Load a checkpoint file as ``{parameter name: tensor}`` on the CPU, safely, plus the
    plain-data ``"metadata"`` dict stored beside a wrapped state dict (``None`` if absent;
    ``sam_widget.finetune`` writes ``{"model": state_dict, "metadata": {...}}``).

    Only ``torch.load(path, map_location="cpu", weights_only=True)`` is used: a pickle that
    names arbitrary Python callables is refused before anything runs. Accepted layouts: a
    dict of tensors, or such a dict under ``"model"`` or ``"state_dict"`` in a larger dict.
    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` (a ValueError)
    naming the file for unsafe, truncated, corrupt or non-state-dict content.
    """
    import pickle

    import torch

    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint file not found: {p}")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint path is not a file: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError as exc:
        # torch wraps every refusal of its restricted unpickler in one long message; the
        # specific reason is the chained exception (or the line after "WeightsUnpickler
        # error:"). Either way the restricted unpickler stopped before running anything.
        reason = _unpickler_reason(exc)
        if "Unsupported global" in reason:
            raise CheckpointError(
                f"refused to load {p}: it references Python code that a safe load does not "
                f"allow ({reason.split(' was not')[0]}); nothing in it was executed. Use "
                "checkpoint files from a trusted source, saved as a plain state dict "
                "(torch.save(model.state_dict(), path))."
            ) from exc
        raise CheckpointError(
            f"cannot load {p}: it is corrupt, not a PyTorch checkpoint, or uses pickle "
            f"features a safe load does not allow ({reason}); nothing in it was executed. "
            "If it was downloaded, delete it and download it again."
        ) from exc
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"cannot load {p}: the file is truncated, corrupt or not a PyTorch checkpoint "
            f"({type(exc).__name__}: {first}). If it was downloaded, delete it and download "
            "it again."
        ) from exc

    if _is_tensor_dict(obj, torch):
        return dict(obj), None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner: Any = obj.get(key)
            if _is_tensor_dict(inner, torch):
                meta = obj.get("metadata")
                return dict(inner), (dict(meta) if isinstance(meta, dict) else None)
    if isinstance(obj, dict) and not obj:
        detail = "it is an empty dict"
    elif isinstance(obj, dict):
        bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:5]
        detail = (
            f"entries that are not tensors: {bad!r}, and no dict of tensors under "
            f"{' or '.join(repr(k) for k in _WRAPPER_KEYS)}"
        )
    else:
        detail = f"it holds a {type(obj).__name__}, not a dict"
    raise CheckpointError(
        f"{p} is not a model state dict (a dict of parameter name -> tensor): {detail}"
    )
