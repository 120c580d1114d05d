"""``SamAnnotator.use_model`` with a fine-tuned checkpoint: the widget and the prefetcher
switch, the embeddings are kept (same encoder), the swap writes nothing to the project, and
masks made afterwards come from the tuned decoder with its weights id."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_annotator import TIMEOUT, make_folder, open_annotator
from test_widget_use_model import tuned_checkpoint

from sam_widget import SamWidget, build_sam
from sam_widget.data.store import Project


def _stored(project: Path) -> list[tuple]:
    """Every stored object (all fields but timestamps) of every image."""
    with Project.open(project, readonly=True) as p:
        out = []
        for img in p.images():
            for o in p.objects(img):
                d = dataclasses.asdict(o)
                d.pop("created", None)
                d.pop("modified", None)
                out.append(tuple(sorted((k, repr(v)) for k, v in d.items())))
        return out


def test_use_model_with_a_finetune_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, project = tmp_path / "data", tmp_path / "labels.sqlite"
    paths = make_folder(folder)
    a = open_annotator(folder, project, prefetch=True)
    try:
        base = a.widget.predictor.model
        ckpt = tuned_checkpoint(base, tmp_path / "tuned.pt")
        a.widget.add_point(20, 15)
        a.widget.wait(TIMEOUT)
        a.next()  # image 1 encoded; image 0 and 2 are its neighbours
        a.widget.add_point(25, 20)
        a.widget.wait(TIMEOUT)
        a.sync.flush()
        stored = _stored(project)
        assert len(stored) == 2

        def no_encoding(*args: object, **kwargs: object) -> None:
            raise AssertionError("an image was encoded again")

        monkeypatch.setattr(type(base.image_encoder), "forward", no_encoding)
        a.use_model(ckpt)
        a.widget.wait(TIMEOUT)
        tuned = a.widget.predictor.model
        assert tuned.weights_id != base.weights_id
        assert a._prefetch_predictor.model is tuned
        assert "untrained" in a.widget.notice.lower()  # its base had random weights
        a.sync.flush()
        assert _stored(project) == stored  # the swap itself wrote nothing
        a.prev()  # the neighbour's embedding was carried too: no encoding
        a.widget.wait(TIMEOUT)
        a.next()
        a.widget.wait(TIMEOUT)
        monkeypatch.undo()

        a.widget.new_object(points=[[40, 12]], labels=[1])
        a.widget.wait(TIMEOUT)
        a.sync.flush()
        objs = a.objects(1)
        assert len(objs) == 2 and objs[1].weights_id == str(tuned.weights_id)
        assert objs[0].weights_id == str(base.weights_id)  # the old mask stays as it was
        got = a.masks(1)[1]
    finally:
        a.close()
    image = np.array(Image.open(paths[1]).convert("RGB"))
    want = {}
    for name, model in (("tuned", build_sam("tiny", checkpoint=ckpt)), ("base", base)):
        ref = SamWidget(image, model=model)
        try:
            ref.new_object(points=[[40, 12]], labels=[1])
            want[name] = ref.wait(TIMEOUT).masks[0]
        finally:
            ref.close()
    np.testing.assert_array_equal(got, want["tuned"])
    assert not np.array_equal(got, want["base"])  # so the decoders do differ here
