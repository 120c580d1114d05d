"""Remember image embeddings so that an image seen before needs no second encoder run.

- Key: :func:`embedding_key` = SHA-256 over a format tag, the model identity
  (``model.weights_id``, which includes the variant), the image's shape and dtype, and its
  pixels *after* conversion to ``(H, W, 3)`` uint8 RGB (so a PIL image, its file and its
  array give the same key).
- Memory: an LRU of :class:`ImageEmbedding` within a byte budget (``max_bytes``).
- Disk (optional, ``directory=``): one ``<key>.npz`` per embedding holding every named
  feature (format 2: ``features`` is ``"image_embed"``, ``feature.<name>`` the others,
  ``names`` lists them), written atomically (``data/atomic.py``) and read with
  ``allow_pickle=False``. Before anything is decompressed, each array's declared dtype and
  shape (its npy header) is checked against what is expected, so a small file that would
  decompress to gigabytes is refused cheaply. A file is trusted only if its stored key,
  model identity, sizes, dtypes and shapes match what is asked for and its values are
  finite; otherwise it is ignored (with a warning). Files of the old format (1: one
  feature) are recomputed and replaced. A bad file never raises and never affects other
  entries. The disk is an optimisation: a folder that cannot be written (read-only,
  deleted, full) gives one warning, and the cache carries on in memory.
- Isolation: stored tensors are private clones; :meth:`EmbeddingCache.get` returns fresh
  clones, so nothing a caller does to a returned embedding changes the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..data.atomic import atomic_open

__all__ = ["EmbeddingCache", "ImageEmbedding", "embedding_key"]

_FORMAT = 2
_KEY_TAG = b"sam-widget/embedding/v1"
_MAIN = "image_embed"
# Feature names as stored in a file's member names.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Largest array a file may declare when the caller gives no expected shape.
_MAX_ARRAY_BYTES = 1 << 30
# Largest declared size of the small metadata arrays (key, weights_id, sizes, names).
_MAX_META_BYTES = 1 << 16


class ImageEmbedding:
    """One image's encoder output plus what is needed to decode prompts against it.

    Args / attributes:
        features: ``1 x C x h x w`` float32 image embedding (C=256, h=w=64 for SAM), or a
            mapping of every named feature the model's ``encode`` returned (must hold
            ``"image_embed"``; SAM 2 adds its high-resolution maps). The attribute
            ``features`` is always the ``"image_embed"`` tensor, ``named_features`` all.
        original_size: ``(H, W)`` of the image the user gave, in pixels.
        input_size: ``(h, w)`` of the resized image fed to the encoder (the model's
            ``geometry.input_size(original_size)``).
        weights_id: identity of the model that computed it (``model.weights_id``).
        key: cache key (:func:`embedding_key`) of the image and model.

    Immutable (the tensors are shared, not copied: do not modify them).
    """

    __slots__ = ("_named", "input_size", "key", "original_size", "weights_id")

    _named: Mapping[str, torch.Tensor]
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    weights_id: str
    key: str

    def __init__(
        self,
        features: torch.Tensor | Mapping[str, torch.Tensor],
        original_size: tuple[int, int],
        input_size: tuple[int, int],
        weights_id: str,
        key: str,
    ) -> None:
        if isinstance(features, torch.Tensor):
            named = {_MAIN: features}
        elif isinstance(features, Mapping):
            named = dict(features)
        else:
            raise TypeError(
                f"features must be a tensor or a mapping of named tensors, got "
                f"{type(features).__name__}."
            )
        if _MAIN not in named:
            raise ValueError(f"features must contain {_MAIN!r}, got {sorted(named)}.")
        for name, t in named.items():
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"features[{name!r}] must be a tensor, got {type(t).__name__}.")
        set_ = object.__setattr__
        set_(self, "_named", MappingProxyType(named))
        set_(self, "original_size", (int(original_size[0]), int(original_size[1])))
        set_(self, "input_size", (int(input_size[0]), int(input_size[1])))
        set_(self, "weights_id", weights_id)
        set_(self, "key", key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ImageEmbedding is immutable (cannot set {name!r})")

    @property
    def features(self) -> torch.Tensor:
        """The ``"image_embed"`` feature, ``1 x C x h x w``."""
        return self._named[_MAIN]

    @property
    def named_features(self) -> Mapping[str, torch.Tensor]:
        """Every named feature (read-only mapping), ``"image_embed"`` first."""
        return self._named

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self._named.values()))

    def __repr__(self) -> str:
        f = self.features
        more = [n for n in self._named if n != _MAIN]
        extra = f", more features={more}" if more else ""
        return (
            f"ImageEmbedding(features={tuple(f.shape)} {f.dtype} on {f.device}{extra}, "
            f"original_size={self.original_size}, input_size={self.input_size}, "
            f"weights_id={self.weights_id!r}, key={self.key!r})"
        )

    def clone(self, device: torch.device | str | None = None) -> ImageEmbedding:
        """A copy whose features share no memory with this one (optionally moved)."""
        named = {}
        for name, t in self._named.items():
            t = t.detach()
            moved = t.to(device) if device is not None else t
            named[name] = moved.clone() if moved.data_ptr() == t.data_ptr() else moved
        return ImageEmbedding(named, self.original_size, self.input_size, self.weights_id, self.key)


def embedding_key(image_rgb: np.ndarray, weights_id: str) -> str:
    """Hex SHA-256 of the converted image (pixels, shape, dtype) and the model identity."""
    if not isinstance(image_rgb, np.ndarray):
        raise TypeError("image_rgb must be a numpy array (converted with sam_widget.images).")
    h = hashlib.sha256()
    h.update(_KEY_TAG)
    ident = str(weights_id).encode("utf-8")
    h.update(len(ident).to_bytes(8, "little") + ident)
    h.update(repr((tuple(image_rgb.shape), image_rgb.dtype.str)).encode("ascii"))
    h.update(np.ascontiguousarray(image_rgb).data)
    return h.hexdigest()


class EmbeddingCache:
    """Thread-safe LRU of image embeddings with a byte budget and optional npz disk store.

    Args:
        max_bytes: memory budget for the stored features (default 256 MiB, i.e. 64 SAM
            embeddings). Least recently used entries are evicted to stay within it; an entry
            larger than the whole budget is not kept in memory. ``0`` disables the memory tier.
        directory: if given, embeddings are also persisted there as ``<key>.npz``. If it
            cannot be created or written, one warning is given and the cache works in memory.
        max_disk_bytes: optional budget for the directory's ``.npz`` files; the least recently
            written files are deleted after a write to stay within it.
    """

    def __init__(
        self,
        max_bytes: int = 256 * 2**20,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_disk_bytes: int | None = None,
    ) -> None:
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}.")
        if max_disk_bytes is not None and int(max_disk_bytes) < 0:
            raise ValueError(f"max_disk_bytes must be >= 0 or None, got {max_disk_bytes!r}.")
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = None if max_disk_bytes is None else int(max_disk_bytes)
        self.directory = Path(directory) if directory is not None else None
        self._entries: OrderedDict[str, ImageEmbedding] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._disk_warned = False
        self.hits = 0
        self.misses = 0
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                self._disk_failed(f"cannot create embedding cache folder {self.directory}", err)

    def _disk_failed(self, what: str, err: OSError) -> None:
        """Warn once per cache that the disk store failed; the memory tier carries on."""
        with self._lock:
            if self._disk_warned:
                return
            self._disk_warned = True
        warnings.warn(
            f"Could not write embedding cache: {what}: {err}. Embeddings are kept in memory "
            "only (this warning is given once).",
            UserWarning,
            stacklevel=4,
        )

    # -- memory tier ---------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Bytes of features currently held in memory."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """Keys in memory, least recently used first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget everything held in memory (files on disk stay)."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def _insert(self, emb: ImageEmbedding) -> None:
        # Caller holds the lock; emb is already a private copy.
        old = self._entries.pop(emb.key, None)
        if old is not None:
            self._nbytes -= old.nbytes
        if emb.nbytes > self.max_bytes:
            return
        self._entries[emb.key] = emb
        self._nbytes += emb.nbytes
        while self._nbytes > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._nbytes -= evicted.nbytes

    def put(self, emb: ImageEmbedding) -> None:
        """Store a private CPU copy of ``emb`` (memory, and disk if configured)."""
        if not isinstance(emb, ImageEmbedding):
            raise TypeError(f"emb must be an ImageEmbedding, got {type(emb).__name__}.")
        private = emb.clone(device="cpu")
        with self._lock:
            self._insert(private)
        if self.directory is not None:
            self._write(private)

    def get(
        self,
        key: str,
        *,
        weights_id: str | None = None,
        feature_shape: tuple[int, ...] | None = None,
        feature_shapes: Mapping[str, tuple[int, ...]] | None = None,
        original_size: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
    ) -> ImageEmbedding | None:
        """A fresh copy of the embedding stored under ``key``, or ``None``.

        ``weights_id``, ``feature_shapes`` (name -> shape of every feature, e.g. the
        model's ``feature_shapes``; ``feature_shape`` is the shape of ``"image_embed"``
        alone) and ``original_size``, when given, must match the stored entry (a
        mismatching entry counts as a miss). ``device`` places the features.
        """
        shapes: dict[str, tuple[int, ...]] | None = None
        if feature_shapes is not None:
            shapes = {str(k): tuple(int(d) for d in v) for k, v in feature_shapes.items()}
        if feature_shape is not None:
            shapes = dict(shapes or {})
            shapes[_MAIN] = tuple(int(d) for d in feature_shape)
        expect = (weights_id, shapes, original_size)
        with self._lock:
            emb = self._entries.get(key)
            if emb is not None and self._matches(emb, key, *expect):
                self._entries.move_to_end(key)
                self.hits += 1
                return emb.clone(device)
        emb = self._read(key, *expect) if self.directory is not None else None
        with self._lock:
            if emb is None:
                self.misses += 1
                return None
            self.hits += 1
            self._insert(emb)
        return emb.clone(device)

    @staticmethod
    def _matches(
        emb: ImageEmbedding,
        key: str,
        weights_id: str | None,
        shapes: Mapping[str, tuple[int, ...]] | None,
        original_size: tuple[int, int] | None,
    ) -> bool:
        named = emb.named_features
        exact = shapes is not None and len(shapes) > 1
        return (
            emb.key == key
            and (weights_id is None or emb.weights_id == weights_id)
            and (
                shapes is None
                or all(n in named and tuple(named[n].shape) == s for n, s in shapes.items())
            )
            and (not exact or shapes is None or set(named) == set(shapes))
            and (original_size is None or emb.original_size == tuple(original_size))
        )

    # -- disk tier -----------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"key must be a 64-character lowercase hex digest, got {key!r}.")
        return self.directory / f"{key}.npz"

    def _write(self, emb: ImageEmbedding) -> None:
        path = self._path(emb.key)
        named = emb.named_features
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT, dtype=np.int64),
            "key": np.array(emb.key),
            "weights_id": np.array(emb.weights_id),
            "original_size": np.array(emb.original_size, dtype=np.int64),
            "input_size": np.array(emb.input_size, dtype=np.int64),
            "names": np.array(list(named)),
            "features": named[_MAIN].numpy(),
        }
        for name, t in named.items():
            if name != _MAIN:
                if not _NAME.fullmatch(name):
                    raise ValueError(
                        f"feature name {name!r} cannot be stored (letters, _, digits)."
                    )
                arrays[f"feature.{name}"] = t.numpy()
        try:
            with atomic_open(path, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
        except OSError as err:
            # Read-only, deleted or full folder: the disk is an optimisation (warn once).
            self._disk_failed(f"writing {path}", err)
            return
        if self.max_disk_bytes is not None:
            self._prune_disk(keep=path)

    def _prune_disk(self, keep: Path) -> None:
        assert self.directory is not None and self.max_disk_bytes is not None
        files = []
        for p in self.directory.glob("*.npz"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files, key=lambda t: t[0]):
            if total <= self.max_disk_bytes:
                break
            if p == keep:
                continue
            try:
                p.unlink()
                total -= size
            except OSError:
                pass

    def _read(
        self,
        key: str,
        weights_id: str | None,
        shapes: Mapping[str, tuple[int, ...]] | None,
        original_size: tuple[int, int] | None,
    ) -> ImageEmbedding | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with zipfile.ZipFile(path) as zf:
                headers = _npy_headers(zf)
            problem = _check_headers(headers, shapes)
            if problem == "old":
                return None  # format 1: recomputed, and the new file replaces it
            if problem is None:
                with np.load(path, allow_pickle=False) as data:
                    fmt = int(data["format"])
                    stored_key = str(data["key"])
                    stored_wid = str(data["weights_id"])
                    original = tuple(int(v) for v in data["original_size"])
                    input_size = tuple(int(v) for v in data["input_size"])
                    names = [str(n) for n in data["names"]]
                    arrays = {
                        n: np.array(data["features" if n == _MAIN else f"feature.{n}"])
                        for n in names
                    }
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"Ignoring unreadable embedding cache file {path}: {type(err).__name__}: {err}",
                stacklevel=3,
            )
            return None
        trusted = (
            problem is None
            and fmt == _FORMAT
            and stored_key == key
            and (weights_id is None or stored_wid == weights_id)
            and len(original) == 2
            and len(input_size) == 2
            and min(original) > 0
            and (original_size is None or original == tuple(original_size))
            and min(input_size) > 0
            and all(
                a.dtype == np.float32 and a.ndim >= 1 and a.shape[0] == 1 for a in arrays.values()
            )
            and arrays[_MAIN].ndim == 4
            and all(bool(np.isfinite(a).all()) for a in arrays.values())
        )
        if not trusted:
            warnings.warn(
                f"Ignoring embedding cache file {path}: its contents do not match its key"
                + (f" ({problem})." if problem else "."),
                stacklevel=3,
            )
            return None
        return ImageEmbedding(
            {n: torch.from_numpy(a) for n, a in arrays.items()},
            (original[0], original[1]),
            (input_size[0], input_size[1]),
            stored_wid,
            stored_key,
        )


def _npy_headers(zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Member name (without ``.npy``) -> declared (shape, dtype), read from each member's
    npy header only (a few hundred bytes are decompressed, never the data)."""
    out = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise ValueError(f"unexpected member {name!r}")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported npy version {version} in {name!r}")
        out[name[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    return out


def _check_headers(
    headers: Mapping[str, tuple[tuple[int, ...], np.dtype]],
    shapes: Mapping[str, tuple[int, ...]] | None,
) -> str | None:
    """``None`` if the declared arrays are what a format-2 file of ``shapes`` holds,
    ``"old"`` for a format-1 file, else what is wrong."""
    if "features" not in headers:
        return "no features"
    if "names" not in headers:
        return "old"
    for member, (shape, dtype) in headers.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if dtype.hasobject:
            return f"{member} holds Python objects"
        if member == "features" or member.startswith("feature."):
            name = _MAIN if member == "features" else member[len("feature.") :]
            if shapes is not None and name in shapes:
                if shape != tuple(shapes[name]) or dtype != np.float32:
                    return f"{name} is declared {dtype} {shape}, expected float32 {shapes[name]}"
            elif shapes is not None and len(shapes) > 1:
                return f"unexpected feature {name!r}"
            elif nbytes > _MAX_ARRAY_BYTES:
                return f"{name} declares {nbytes} bytes"
        elif member in ("format", "key", "weights_id", "original_size", "input_size", "names"):
            if nbytes > _MAX_META_BYTES:
                return f"{member} declares {nbytes} bytes"
        else:
            return f"unexpected member {member!r}"
    if shapes is not None and len(shapes) > 1:
        stored = {_MAIN} | {m[len("feature.") :] for m in headers if m.startswith("feature.")}
        if stored != set(shapes):
            return f"features {sorted(stored)}, expected {sorted(shapes)}"
    return None
