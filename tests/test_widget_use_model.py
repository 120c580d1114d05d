"""``SamWidget.use_model``: switch a live widget to a fine-tuned checkpoint, keeping the
image embedding (the encoder is unchanged) and re-decoding the objects with the new
decoder."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sam_widget import SamWidget, build_sam
from sam_widget.finetune import save_checkpoint

TIMEOUT = 120


@pytest.fixture(scope="module")
def base() -> torch.nn.Module:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained on purpose
        return build_sam("tiny", pretrained=False)


def tuned_checkpoint(base: torch.nn.Module, path: Path, seed: int = 1) -> Path:
    """A checkpoint as ``finetune`` writes it: ``base`` with another mask decoder."""
    tuned = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tuned.mask_decoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    meta = {"format": "sam-widget finetune v1", "variant": "tiny", "pretrained": False}
    save_checkpoint(path, tuned, meta)
    return path


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((60, 80, 3)) * 255).astype(np.uint8)


def _prompt(w: SamWidget) -> None:
    w.add_point(20, 15)
    w.add_point(50, 40, label=0)
    w.new_object("box", box=[30, 10, 70, 50])


def test_use_model_redecodes_with_the_tuned_decoder_without_encoding(
    base: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tuned_checkpoint(base, tmp_path / "tuned.pt")
    w = SamWidget(_image(), model=base)
    try:
        _prompt(w)
        before = w.masks
        state = w.to_dict()

        def no_encoding(*args: object, **kwargs: object) -> None:
            raise AssertionError("the image was encoded again")

        monkeypatch.setattr(type(base.image_encoder), "forward", no_encoding)
        w.use_model(path, timeout=TIMEOUT)
        after = w.wait(TIMEOUT).masks
        monkeypatch.undo()
        assert w.predictor.model is not base
        assert str(w.predictor.model.weights_id) != str(base.weights_id)
        assert w.to_dict()["history"] == state["history"]  # prompts and history kept
        assert w.to_dict()["model"]["checkpoint"] == str(path.resolve())
        assert "untrained" in w.notice.lower()  # tuned from random weights: still untrained
        assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))
    finally:
        w.close()

    # The oracle: a fresh widget on the tuned model, given the same prompts.
    ref = SamWidget(_image(), model=build_sam("tiny", checkpoint=path))
    try:
        _prompt(ref)
        want = ref.wait(TIMEOUT).masks
    finally:
        ref.close()
    for got, exp in zip(after, want, strict=True):
        np.testing.assert_array_equal(got, exp)


def test_use_model_with_another_encoder_encodes_again(base: torch.nn.Module) -> None:
    torch.manual_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        other = build_sam("tiny", pretrained=False)  # other encoder weights too
    w = SamWidget(_image(), model=base)
    try:
        _prompt(w)
        w.wait(TIMEOUT)
        w.use_model(other, timeout=TIMEOUT)
        after = w.wait(TIMEOUT).masks
        assert w.predictor.model is other
        assert w.predictor.embedding is not None
        assert w.predictor.embedding.weights_id == str(other.weights_id)
    finally:
        w.close()
    ref = SamWidget(_image(), model=other)
    try:
        _prompt(ref)
        want = ref.wait(TIMEOUT).masks
    finally:
        ref.close()
    for got, exp in zip(after, want, strict=True):
        np.testing.assert_array_equal(got, exp)


def test_use_model_refuses_a_checkpoint_of_another_encoder(
    base: torch.nn.Module, tmp_path: Path
) -> None:
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        other = build_sam("tiny", pretrained=False)
    path = tuned_checkpoint(other, tmp_path / "other.pt")
    w = SamWidget(_image(), model=base)
    try:
        w.add_point(20, 15)
        before = w.wait(TIMEOUT).masks
        with pytest.raises(ValueError, match="image-encoder weights"):
            w.use_model(path, timeout=TIMEOUT)
        with pytest.raises(TypeError, match="model must be"):
            w.use_model(3, timeout=TIMEOUT)
        assert w.predictor.model is base  # nothing changed
        np.testing.assert_array_equal(w.masks[0], before[0])
    finally:
        w.close()
