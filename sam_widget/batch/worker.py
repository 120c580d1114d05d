"""What runs in a worker: one image in, a compact result out.

Each worker process keeps one model (and its generators) in a module-level cache keyed by
the :class:`~sam_widget.batch.keys.ModelSpec`: the model is built by the first task that
needs it and reused by every later task in that process; it is never pickled or sent. Tasks
carry an image path and small settings; results are plain dicts with COCO RLE masks (the
compressed string form), never dense arrays, so a worker holds at most one image's work.

Every failure of one image (missing, unreadable, corrupt, too small, too large, changed
during the run, an error in the model) is returned as ``{"status": "failed", "reason": ...}``
instead of raised, so the run goes on; only the death of the worker process itself reaches
the scheduler (which retries the task elsewhere).
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .keys import ModelSpec

__all__ = [
    "ImageRejected",
    "annotate_task",
    "embed_task",
    "load_model",
    "probe_task",
    "read_image",
]

_LOCK = threading.Lock()
# One model per process: {"spec": ModelSpec, "model": model, "generators": {...}, ...}.
_CACHE: dict[str, Any] = {}


class ImageRejected(ValueError):
    """An input image that the run records as failed (the message is the reason)."""


def load_model(spec: ModelSpec) -> Any:
    """The process's model for ``spec``, built on first use (a different spec replaces it).

    Random weights (``pretrained=False``, or a variant without official weights and no
    checkpoint) are drawn after ``torch.manual_seed(spec.seed)`` in a forked RNG state, so
    every worker builds the same model and the caller's random state is untouched.
    """
    import torch

    from ..models.build import build_sam

    with _LOCK:
        if _CACHE.get("spec") == spec:
            return _CACHE["model"]
        _CACHE.clear()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            with warnings.catch_warnings():
                # The run itself reports untrained weights (once, not once per worker).
                warnings.filterwarnings("ignore", message=".*untrained.*", category=UserWarning)
                model = build_sam(
                    spec.variant, spec.checkpoint, spec.device, pretrained=spec.pretrained
                )
        _CACHE.update(spec=spec, model=model, generators={}, caches={})
        return model


def _generator(spec: ModelSpec, params: dict[str, Any], key: str) -> Any:
    from ..engine.amg import SamAutomaticMaskGenerator

    model = load_model(spec)
    with _LOCK:
        gens = _CACHE["generators"]
        gen = gens.get(key)
        if gen is None:
            kwargs = dict(params)
            if kwargs.get("point_grids") is not None:
                kwargs["point_grids"] = [np.asarray(g) for g in kwargs["point_grids"]]
            gen = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **kwargs)
            gens[key] = gen
        return gen


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def read_image(
    path: str, expected_sha256: str | None, *, min_side: int, max_pixels: int
) -> tuple[np.ndarray, str]:
    """Read, check and decode one image file: ``((H, W, 3) uint8 RGB, sha256 of the bytes)``.

    The size is checked from the header before the pixels are decoded. Raises
    :class:`ImageRejected` with the reason for a missing, unreadable, corrupt, too small,
    too large or changed file (``expected_sha256`` differs from the bytes read).
    """
    from PIL import Image

    from ..engine.images import check_image_size, to_rgb_uint8

    p = Path(path)
    if not p.is_file():
        raise ImageRejected(f"no such file: {path}")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ImageRejected(f"cannot read the file: {err}") from err
    sha = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256:
        raise ImageRejected("the file changed on disk during the run; run again to include it")
    unreadable = (Image.UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError)
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageRejected(f"image too large to decode safely: {err}") from err
    except Image.UnidentifiedImageError as err:
        raise ImageRejected("not a readable image: unknown format or corrupt header") from err
    except unreadable as err:
        raise ImageRejected(f"not a readable image: {err}") from err
    with im:
        width, height = im.size
        try:
            check_image_size(height, width)
        except ValueError as err:
            raise ImageRejected(str(err)) from err
        if width * height > max_pixels:
            raise ImageRejected(
                f"image too large: {width} x {height} = {width * height} pixels, the run's "
                f"limit is {max_pixels} (max_pixels)"
            )
        if min(width, height) < min_side:
            raise ImageRejected(
                f"image too small: {width} x {height} pixels (width x height), the run needs "
                f"at least {min_side} pixels on each side (min_side)"
            )
        try:
            rgb = to_rgb_uint8(im)
        except unreadable as err:  # truncated or corrupt pixel data
            raise ImageRejected(f"corrupt image data: {err}") from err
    return rgb, sha


def _failed(reason: str, started: float, sha: str | None = None) -> dict[str, Any]:
    return {
        "status": "failed",
        "reason": reason,
        "sha256": sha,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def probe_task(spec: ModelSpec, params: dict[str, Any] | None, params_key: str) -> dict[str, Any]:
    """Build (and keep) the model and, if ``params`` is given, the generator; returns the
    model's identity. Errors (unknown variant, missing checkpoint, bad parameter) propagate:
    they concern the whole run, not one image."""
    model = load_model(spec)
    if params is not None:
        _generator(spec, params, params_key)
    return {
        "weights_id": str(model.weights_id),
        "pretrained": bool(model.pretrained),
        "variant": str(model.variant),
        "pid": os.getpid(),
    }


def annotate_task(
    path: str,
    sha256: str,
    spec: ModelSpec,
    params: dict[str, Any],
    params_key: str,
    limits: tuple[int, int],
) -> dict[str, Any]:
    """Automatic masks of one image file as a compact result.

    ``limits``: ``(min_side, max_pixels)``. Returns ``{"status": "done", "records": [...],
    "width", "height", "sha256", "weights_id", "seconds", "pid", "peak_rss_mb"}`` with the
    generator's records (``segmentation`` as COCO RLE with string counts), or a failure.
    """
    started = time.perf_counter()
    try:
        rgb, sha = read_image(path, sha256, min_side=limits[0], max_pixels=limits[1])
    except ImageRejected as err:
        return _failed(str(err), started)
    try:
        gen = _generator(spec, params, params_key)
        records = gen.generate(rgb)
        weights_id = str(gen.model.weights_id)
    except Exception as err:  # one image's failure must not stop the run
        return _failed(f"mask generation failed: {type(err).__name__}: {err}", started, sha)
    height, width = rgb.shape[:2]
    return {
        "status": "done",
        "records": records,
        "width": int(width),
        "height": int(height),
        "sha256": sha,
        "weights_id": weights_id,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _embedding_cache(directory: str) -> Any:
    from ..engine.embedding_cache import EmbeddingCache

    with _LOCK:
        caches = _CACHE.setdefault("caches", {})
        cache = caches.get(directory)
        if cache is None:
            # Disk only: an embedding is written once and never read back by this run.
            cache = EmbeddingCache(max_bytes=0, directory=directory)
            caches[directory] = cache
        return cache


def embed_task(
    path: str, sha256: str | None, spec: ModelSpec, cache_dir: str, limits: tuple[int, int]
) -> dict[str, Any]:
    """Encode one image into the on-disk embedding cache ``cache_dir`` (skipped when a valid
    entry for this image and model is there). Returns ``{"status": "encoded" | "cached",
    "key", ...}`` or a failure."""
    from ..engine.embedding_cache import embedding_key
    from ..engine.predictor import SamPredictor

    started = time.perf_counter()
    try:
        rgb, sha = read_image(path, sha256, min_side=limits[0], max_pixels=limits[1])
    except ImageRejected as err:
        return _failed(str(err), started)
    try:
        model = load_model(spec)
        cache = _embedding_cache(cache_dir)
        weights_id = str(model.weights_id)
        key = embedding_key(rgb, weights_id)
        if cache.get(key, weights_id=weights_id, original_size=rgb.shape[:2]) is not None:
            status = "cached"
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                SamPredictor(model, cache=cache).compute_embedding(rgb)
            problems = [str(w.message) for w in caught if "embedding cache" in str(w.message)]
            if problems:
                return _failed(problems[0], started, sha)
            status = "encoded"
    except Exception as err:  # one image's failure must not stop the run
        return _failed(f"encoding failed: {type(err).__name__}: {err}", started, sha)
    return {
        "status": status,
        "key": key,
        "sha256": sha,
        "weights_id": weights_id,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }
