"""notebooks/annotate_folder.ipynb runs offline, top to bottom, with the untrained fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def _text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_annotate_folder_notebook_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ROOT / "notebooks" / "annotate_folder.ipynb", tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("SAM_WIDGET_CACHE", str(tmp_path / "no-weights"))  # forces the fallback
    nb = nbformat.read(tmp_path / "annotate_folder.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "untrained model" in _text(code[1])  # no weights here: the fallback was used
    assert "1 of 4 images done, 1 object(s)" in _text(code[3])
    assert "('person', 'manual'" in _text(code[3])
    assert "'annotations': 1" in _text(code[4])
    assert "position: 0 | objects on image 0: 1" in _text(code[5])
    for cell in (code[2], code[5]):  # the annotator's view is displayed
        assert "application/vnd.jupyter.widget-view+json" in cell.outputs[-1]["data"]
    project = tmp_path / "annotate_demo" / "labels.sqlite"
    assert project.is_file() and (tmp_path / "annotate_demo" / "yolo" / "data.yaml").is_file()
