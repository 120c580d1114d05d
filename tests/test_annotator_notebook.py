"""notebooks/annotate_folder.ipynb runs offline, top to bottom, with the untrained fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from _notebooks import cell_text as _text
from _notebooks import run_notebook


def test_annotate_folder_notebook_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = run_notebook("annotate_folder.ipynb", tmp_path, monkeypatch, timeout=300)
    assert "untrained model" in _text(code[1])  # no weights here: the fallback was used
    assert "1 of 4 images done, 1 object(s)" in _text(code[3])
    assert "('person', 'manual'" in _text(code[3])
    assert "'annotations': 1" in _text(code[4])
    assert "position: 0 | objects on image 0: 1" in _text(code[5])
    for cell in (code[2], code[5]):  # the annotator's view is displayed
        assert "application/vnd.jupyter.widget-view+json" in cell.outputs[-1]["data"]
    project = tmp_path / "annotate_demo" / "labels.sqlite"
    assert project.is_file() and (tmp_path / "annotate_demo" / "yolo" / "data.yaml").is_file()
