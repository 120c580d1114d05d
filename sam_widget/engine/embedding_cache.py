"""Remember image embeddings so that an image seen before needs no second encoder run.

- Key: :func:`embedding_key` = SHA-256 over a format tag, the model identity
  (``model.weights_id``, which includes the variant), the image's shape and dtype, and its
  pixels *after* conversion to ``(H, W, 3)`` uint8 RGB (so a PIL image, its file and its
  array give the same key).
- Memory: an LRU of :class:`ImageEmbedding` within a byte budget (``max_bytes``).
- Disk (optional, ``directory=``): one ``<key>.npz`` per embedding, written atomically
  (temporary file in the same directory, then ``os.replace``) and read with
  ``allow_pickle=False``. A file is trusted only if its stored key, model identity, sizes,
  dtype and shape match what is asked for and its values are finite; otherwise it is
  ignored (with a warning if it cannot be read at all). A bad file never raises and never
  affects other entries.
- Isolation: stored tensors are private clones; :meth:`EmbeddingCache.get` returns fresh
  clones, so nothing a caller does to a returned embedding changes the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["EmbeddingCache", "ImageEmbedding", "embedding_key"]

_FORMAT = 1
_KEY_TAG = b"sam-widget/embedding/v1"


@dataclass(frozen=True, eq=False, repr=False)
class ImageEmbedding:
    """One image's encoder output plus what is needed to decode prompts against it.

    Attributes:
        features: ``1 x C x h x w`` float32 image embedding (C=256, h=w=64 for SAM).
        original_size: ``(H, W)`` of the image the user gave, in pixels.
        input_size: ``(h, w)`` of the resized image fed to the encoder (longest side 1024).
        weights_id: identity of the model that computed it (``model.weights_id``).
        key: cache key (:func:`embedding_key`) of the image and model.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    weights_id: str
    key: str

    @property
    def nbytes(self) -> int:
        return int(self.features.numel() * self.features.element_size())

    def __repr__(self) -> str:
        return (
            f"ImageEmbedding(features={tuple(self.features.shape)} {self.features.dtype} on "
            f"{self.features.device}, original_size={self.original_size}, "
            f"input_size={self.input_size}, weights_id={self.weights_id!r}, key={self.key!r})"
        )

    def clone(self, device: torch.device | str | None = None) -> ImageEmbedding:
        """A copy whose ``features`` share no memory with this one (optionally moved)."""
        features = self.features.detach()
        moved = features.to(device) if device is not None else features
        features = moved.clone() if moved.data_ptr() == features.data_ptr() else moved
        return ImageEmbedding(
            features, self.original_size, self.input_size, self.weights_id, self.key
        )


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
        max_bytes: memory budget for the stored ``features`` (default 256 MiB, i.e. 64 SAM
            embeddings). Least recently used entries are evicted to stay within it; an entry
            larger than the whole budget is not kept in memory. ``0`` disables the memory tier.
        directory: if given, embeddings are also persisted there as ``<key>.npz``.
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
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._entries: OrderedDict[str, ImageEmbedding] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

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
        original_size: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
    ) -> ImageEmbedding | None:
        """A fresh copy of the embedding stored under ``key``, or ``None``.

        ``weights_id``, ``feature_shape`` and ``original_size``, when given, must match the
        stored entry (a mismatching entry counts as a miss). ``device`` places the features.
        """
        expect = (weights_id, feature_shape, original_size)
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
        feature_shape: tuple[int, ...] | None,
        original_size: tuple[int, int] | None,
    ) -> bool:
        return (
            emb.key == key
            and (weights_id is None or emb.weights_id == weights_id)
            and (feature_shape is None or tuple(emb.features.shape) == tuple(feature_shape))
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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{emb.key[:16]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    format=np.array(_FORMAT, dtype=np.int64),
                    key=np.array(emb.key),
                    weights_id=np.array(emb.weights_id),
                    original_size=np.array(emb.original_size, dtype=np.int64),
                    input_size=np.array(emb.input_size, dtype=np.int64),
                    features=emb.features.numpy(),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        except OSError as err:
            warnings.warn(f"Could not write embedding cache file {path}: {err}", stacklevel=3)
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
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
        feature_shape: tuple[int, ...] | None,
        original_size: tuple[int, int] | None,
    ) -> ImageEmbedding | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = int(data["format"])
                stored_key = str(data["key"])
                stored_wid = str(data["weights_id"])
                original = tuple(int(v) for v in data["original_size"])
                input_size = tuple(int(v) for v in data["input_size"])
                features = np.array(data["features"])
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"Ignoring unreadable embedding cache file {path}: {type(err).__name__}: {err}",
                stacklevel=3,
            )
            return None
        trusted = (
            fmt == _FORMAT
            and stored_key == key
            and (weights_id is None or stored_wid == weights_id)
            and len(original) == 2
            and len(input_size) == 2
            and min(original) > 0
            and (original_size is None or original == tuple(original_size))
            and min(input_size) > 0
            and features.dtype == np.float32
            and features.ndim == 4
            and features.shape[0] == 1
            and (feature_shape is None or tuple(features.shape) == tuple(feature_shape))
            and bool(np.isfinite(features).all())
        )
        if not trusted:
            warnings.warn(
                f"Ignoring embedding cache file {path}: its contents do not match its key.",
                stacklevel=3,
            )
            return None
        return ImageEmbedding(
            torch.from_numpy(features),
            (original[0], original[1]),
            (input_size[0], input_size[1]),
            stored_wid,
            stored_key,
        )
