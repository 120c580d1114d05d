"""The annotator's navigator view: its controls call the Python API and show its state."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_annotator import TIMEOUT, open_annotator, setup  # noqa: F401  (fixture)

from sam_widget.annotator.keys import KeyListener


def test_view_controls_and_keys(setup: tuple[Path, Path, list[Path]]) -> None:  # noqa: F811
    folder, project, _ = setup
    a = open_annotator(folder, project, categories=["cell", "dot"])
    try:
        v = a.view
        assert a.widget in v.box.children[2].children  # the SamWidget is composed in
        assert "sam-annotator" in v.box._dom_classes
        assert len(v.list.options) == 3 and v.list.value == 0
        assert "0 of 3 done" in v.progress.value
        v.next.click()
        assert a.index == 1 and v.list.value == 1 and "image 2 / 3" in v.progress.value
        v.prev.click()
        assert a.index == 0
        v.jump.value = 3
        v.go.click()
        assert a.index == 2
        v.list.value = 0  # picking in the list navigates
        assert a.index == 0
        # Keys: a category by number, then a click, then "d" (done and next), "p", "n".
        v.keys._message(v.keys, {"type": "key", "key": "2"})
        assert a.category == "dot" and v.category.value == "dot"
        a.widget.add_point(20, 15)
        a.widget.wait(TIMEOUT)
        v.keys._message(v.keys, {"type": "key", "key": "d"})
        assert a.index == 1 and a.summary()["images"][0]["status"] == "done"
        assert "1 of 3 done" in v.progress.value
        assert "1 obj" in v.list.options[0][0] and "0 obj" in v.list.options[1][0]
        v.keys._message(v.keys, {"type": "key", "key": "p"})
        assert a.index == 0
        v.keys._message(v.keys, {"type": "key", "key": "n"})
        assert a.index == 1
        v.keys._message(v.keys, {"type": "key", "key": "x"})  # not a shortcut: ignored
        assert a.index == 1
        v.skip.click()  # skipped, and on to the last image
        assert a.index == 2 and a.summary()["images"][1]["status"] == "skipped"
        # The unfinished filter hides done and skipped images (the current one stays listed).
        v.unfinished.value = True
        assert [value for _, value in v.list.options] == [2]
        v.category.value = "cell"
        assert a.category == "cell"
        # A missing file is reported, not raised into the event loop.
        v.unfinished.value = False
        a.project.resolve(a.images[1]).unlink()
        v.list.value = 1
        assert a.index == 1 and "missing" in v.message.value
    finally:
        a.close()


def test_key_listener_forwards_only_its_keys() -> None:
    got: list[str] = []
    keys = KeyListener(got.append)
    try:
        for msg in ({"type": "key", "key": "n"}, {"type": "key", "key": "q"}, {"type": "x"}, "n"):
            keys._message(keys, msg)
        assert got == ["n"]
    finally:
        keys.close()


def test_bad_arguments(tmp_path: Path) -> None:
    from sam_widget.annotator import SamAnnotator

    with pytest.raises(ValueError, match="neither a folder"):
        SamAnnotator(tmp_path / "nothing_here", project=tmp_path / "p.sqlite", model="tiny")
    with pytest.raises(ValueError, match="matches no file"):
        SamAnnotator(str(tmp_path / "*.png"), project=tmp_path / "p.sqlite", model="tiny")
    with pytest.raises(TypeError, match=r"images\[0\] must be a path"):
        SamAnnotator([1], project=tmp_path / "p.sqlite", model="tiny")
    with pytest.raises(ValueError, match="has no images"):
        SamAnnotator([], project=tmp_path / "p.sqlite", model="tiny")
    with pytest.raises(TypeError, match="categories must be"):
        SamAnnotator([], project=tmp_path / "p.sqlite", model="tiny", categories="cell")
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(TypeError, match="model must be"):
        SamAnnotator([tmp_path / "a.png"], project=tmp_path / "p.sqlite", model=3)
    with pytest.raises(ValueError, match="checkpoint and device"):
        SamAnnotator([tmp_path / "a.png"], project=tmp_path / "p.sqlite",
                     model=object(), device="cpu")  # fmt: skip
