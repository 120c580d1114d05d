"""SamAnnotator's background prefetch: the neighbour is encoded while the user is idle (so
"next" needs no encoder run), and a click on the current image cancels a running prefetch
instead of waiting for it."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_annotator import TIMEOUT, make_folder

from sam_widget.annotator import SamAnnotator
from sam_widget.engine.predictor import SamPredictor


def _open(tmp_path: Path) -> SamAnnotator:
    make_folder(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SamAnnotator(tmp_path / "data", project=tmp_path / "p.sqlite", model="tiny")
    a.widget.wait(TIMEOUT)
    return a


def test_next_image_is_encoded_while_idle(tmp_path: Path) -> None:
    a = _open(tmp_path)
    try:
        assert a.wait_prefetch(TIMEOUT)
        assert a.prefetched(1) and not a.prefetched(2)
        on_disk = list((tmp_path / "p.sqlite.cache" / "embeddings").glob("*.npz"))
        assert len(on_disk) == 2  # image 0 (the widget) and image 1 (the prefetch)
        calls: list[int] = []
        encoder = a.widget.predictor.model.image_encoder
        handle = encoder.register_forward_hook(lambda *_: calls.append(1))
        try:
            a.next()
            a.widget.wait(TIMEOUT)
            assert calls == []  # the embedding came from the cache
            assert a.wait_prefetch(TIMEOUT) and a.prefetched(2)
            assert len(calls) == 1  # image 2 encoded in the background; image 0 was cached
        finally:
            handle.remove()
    finally:
        a.close()


def test_a_click_cancels_a_running_prefetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SamPredictor.compute_embedding
    started, cancelled = threading.Event(), threading.Event()
    runs: list[float] = []

    def slow(self: SamPredictor, image: Any, progress: Any = None, **kw: Any) -> Any:
        in_prefetch = threading.current_thread().name == "sam-annotator-prefetch"
        if in_prefetch:
            runs.append(time.monotonic())
        if not in_prefetch or len(runs) > 1:  # only the first prefetch is slow
            return original(self, image, progress, **kw)
        started.set()
        try:
            for k in range(200):  # a 10 s encode that reports progress like the real one
                time.sleep(0.05)
                progress(k / 200)
        except BaseException:
            cancelled.set()
            raise
        return original(self, image, progress, **kw)

    monkeypatch.setattr(SamPredictor, "compute_embedding", slow)
    a = _open(tmp_path)
    try:
        assert started.wait(TIMEOUT)
        w = a.widget
        w.add_point(20, 15)
        w.wait(TIMEOUT)
        clicked = time.monotonic()
        assert cancelled.wait(1.0)
        assert clicked - runs[0] < 10.0  # the click did not wait for the prefetch to finish
        assert len(w.masks) == 1
        # Once the user is quiet again, the prefetch starts over and finishes.
        assert a.wait_prefetch(TIMEOUT) and a.prefetched(1)
        assert len(runs) >= 2
    finally:
        a.close()


def test_only_the_current_images_pixels_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every array of pixels the annotator loads (current image or prefetch) is freed once
    another image is current; the embedding cache stays within its byte budget."""
    import gc
    import weakref

    import numpy as np

    import sam_widget.engine.images as images

    original = images.to_rgb_uint8
    loaded: list[Any] = []

    def tracked(*args: Any, **kw: Any) -> np.ndarray:
        out = original(*args, **kw)
        loaded.append(weakref.ref(out))
        return out

    monkeypatch.setattr(images, "to_rgb_uint8", tracked)
    make_folder(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SamAnnotator(tmp_path / "data", project=tmp_path / "p.sqlite", model="tiny",
                         cache_bytes=1)  # fmt: skip
    try:
        for i in (0, 1, 2, 1):
            a.goto(i)
            a.widget.wait(TIMEOUT)
            assert a.wait_prefetch(TIMEOUT)
            gc.collect()
            alive = {id(x): x.shape for x in (r() for r in loaded) if x is not None}
            assert list(alive.values()) == [a.widget.image.shape]  # the current one only
            assert a.cache.nbytes <= 1  # nothing fits the budget: nothing is kept in memory
        assert len(loaded) >= 6  # four shown images and the prefetched neighbours
        on_disk = list((tmp_path / "p.sqlite.cache" / "embeddings").glob("*.npz"))
        assert len(on_disk) == 3  # the disk tier keeps them
    finally:
        a.close()


def _live_tensor_bytes() -> int:
    """Bytes of every distinct storage behind the torch tensors and numpy arrays the
    garbage collector can see (what the process holds in arrays, model weights included)."""
    import gc

    import numpy as np
    import torch

    gc.collect()
    seen: set[int] = set()
    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
        elif isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            key, size = base.__array_interface__["data"][0], base.nbytes
        else:
            continue
        if key not in seen:
            seen.add(key)
            total += size
    return total


def test_memory_stays_bounded_over_a_1000_image_project(tmp_path: Path) -> None:
    """A 1,000-image project: walking on through 7 more images (each encoded, its two
    neighbours prefetched) leaves the arrays the process holds where they were after the
    first 3: only the current image's pixels and a byte-budgeted embedding cache are kept."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    for k in range(1000):  # distinct contents (the project deduplicates by hash)
        img = np.zeros((12, 16, 3), np.uint8)
        img[..., 0], img[..., 1] = k % 256, k // 256
        Image.fromarray(img).save(folder / f"im{k:04d}.png")
    budget = 12 * 2**20  # three of the tiny model's 4 MiB embeddings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SamAnnotator(folder, project=tmp_path / "p.sqlite", model="tiny", cache_bytes=budget)
    try:
        assert len(a.images) == 1000
        levels = []
        for i in range(10):
            a.goto(i * 100)  # far apart: every image and its neighbours are new
            a.widget.wait(TIMEOUT)
            assert a.wait_prefetch(TIMEOUT)
            assert a.cache.nbytes <= budget
            if i in (2, 9):
                levels.append(_live_tensor_bytes())
        assert a.summary()["total"] == 1000
    finally:
        a.close()
    after_3, after_10 = levels
    # 7 more images (and 14 prefetched neighbours) added less than one embedding; keeping
    # each image's 4 MiB embedding would add 84 MiB.
    assert after_10 - after_3 < 4 * 2**20, (after_3, after_10)
