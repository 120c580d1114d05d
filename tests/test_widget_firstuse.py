"""What a first-use trial of the widget stumbled on (issue 15), one test per point: the model
that cannot load (one message with the next step, said once; checked at construction where
possible; no traceback printed into unrelated cells), the untrained notice, history without
selection steps, everything parameters, size options, persistence records, error words."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_widget import IMG, TIMEOUT, new_widget
from test_widget import model as model  # noqa: F401  (fixture)

from sam_widget.engine.checkpoints import OFFICIAL
from sam_widget.widget.widget import SamWidget

REPO = Path(__file__).resolve().parents[1]


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


# ---------------------------------------------------------------------------- loading


def test_missing_checkpoint_is_refused_at_construction(tmp_path: Path) -> None:
    before = _threads()
    with pytest.raises(FileNotFoundError, match=r"checkpoint '/no/such/file\.pt' does not exist"):
        SamWidget(IMG, model="vit_t", checkpoint="/no/such/file.pt")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        SamWidget(IMG, model="vit_t", checkpoint=tmp_path)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        SamWidget(IMG, model="vit_t", checkpoint=3)
    assert _threads() <= before  # nothing was started in the background


def test_failed_download_is_one_message_with_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline: name resolution fails, as on a machine without network.
    monkeypatch.setenv("SAM_WIDGET_CACHE", str(tmp_path / "cache"))

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    w = SamWidget(IMG, model="vit_t")
    try:
        with pytest.raises(RuntimeError) as info:
            w.wait(TIMEOUT)
        message = w.error
        assert str(info.value) == message  # w.wait() says the same, not a stacked variant
        assert w.status == "error"
        assert message.startswith("The model could not be loaded: Could not download ")
        assert message.count("could not be loaded") == 1 and message.count("Could not") == 1
        assert "?." not in message and ".." not in message
        info_t = OFFICIAL["vit_t"]
        assert info_t.url in message
        assert str(tmp_path / "cache" / info_t.filename) in message  # the cache path
        assert 'SamWidget(image, checkpoint="/path/to/mobile_sam.pt")' in message
        assert "\n" not in message
    finally:
        w.close()


def test_background_failure_prints_nothing_into_the_running_cell(tmp_path: Path) -> None:
    # A plain script (as a notebook kernel runs cells): the load fails on the worker thread.
    # The widget and the "sam_widget" logger get the failure; stderr gets no traceback.
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from sam_widget import SamWidget
        w = SamWidget(np.zeros((32, 48, 3), np.uint8), model="tiny", checkpoint={str(bad)!r})
        try:
            w.wait(60)
        except RuntimeError:
            pass
        assert w.status == "error" and "could not be loaded" in w.error, w.error
        w.close()
        print("done")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert "Traceback" not in out.stderr and "could not be loaded" not in out.stderr, out.stderr


def test_untrained_notice_once_pointing_to_checkpoint(tmp_path: Path) -> None:
    import torch

    from sam_widget.models.build import assemble_sam
    from sam_widget.widget.loading import untrained_notice

    text = untrained_notice("vit_t")
    assert "random weights" in text and "meaningless" in text
    assert 'checkpoint="/path/to/mobile_sam.pt"' in text and OFFICIAL["vit_t"].url in text
    assert "model='vit_t'" not in text  # not "use vit_t" right after vit_t failed
    # A widget on an untrained model shows it once, and warns nothing on its own.
    torch.manual_seed(0)
    sam = assemble_sam("tiny").eval()
    sam.pretrained = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = SamWidget(IMG, model=sam)
        w.wait(TIMEOUT)
    try:
        assert w.notice.count("random weights") == 1
    finally:
        w.close()


# ---------------------------------------------------------------------------- history


def test_selection_is_not_a_history_step(model: Any) -> None:
    w, _ = new_widget(model)
    w.add_point(40, 30)
    w.new_object()
    w.add_point(90, 60)
    steps = len(w.history)
    w.select(w.object_ids[0])
    w.select(w.object_ids[1])
    w.select(w.object_ids[0])
    assert len(w.history) == steps
    # The browser selects by setting `active`: no step either.
    w.set_state({"active": w.object_ids[1]})
    assert len(w.history) == steps
    w.rename("cup")
    assert len(w.history) == steps + 1  # a rename is one step
    w.undo()
    assert [o["name"] for o in w.objects] == ["object 1", "object 2"]
    w.undo()  # one Ctrl+Z undoes the last click
    assert [len(o["points"]) for o in w.objects] == [1, 0]
    w.close()
