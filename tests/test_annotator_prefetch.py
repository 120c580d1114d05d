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
