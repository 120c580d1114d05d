"""notebooks/sam_explained.ipynb and notebooks/analysis.ipynb run offline, top to bottom,
with the untrained fallback, and produce their figures and tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from _notebooks import cell_text, run_notebook

# Figures drawn inline (image/png outputs), whatever backend the environment picks.
INLINE = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def _run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    return run_notebook(name, tmp_path, monkeypatch, timeout=600, env=INLINE)


def _figures(cell: dict) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def test_sam_explained_runs_offline_with_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _run("sam_explained.ipynb", tmp_path, monkeypatch)
    assert "untrained model" in cell_text(code[1])
    assert "pretrained=False" in cell_text(code[1])
    # Every section draws a figure from the model (the imports and model cells do not; the
    # widget cell shows the widget).
    figure_cells = [c for c in code if "plot." in c.source or "plt." in c.source]
    assert len(figure_cells) >= 10
    for cell in figure_cells:
        assert _figures(cell) >= 1, cell.source[:80]
    assert "embedding: (1, 256, 64, 64)" in cell_text(code[3])
    assert "['positive', 'padding']" in cell_text(code[5])
    assert "['box top-left', 'box bottom-right']" in cell_text(code[5])
    widget = [c for c in code if c.source.startswith("from sam_widget import SamWidget")][0]
    panel = [c for c in code if c.source.startswith("panel = ExplainPanel(w)")][0]
    for cell in (widget, panel):
        assert "application/vnd.jupyter.widget-view+json" in cell.outputs[-1]["data"]


def test_analysis_runs_offline_with_table_plot_and_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _run("analysis.ipynb", tmp_path, monkeypatch)
    text = "\n".join(cell_text(c) for c in code)
    assert "untrained model" in text
    assert sum(_figures(c) for c in code) >= 2
    csv = (tmp_path / "measurements.csv").read_text()
    assert csv.splitlines()[0].startswith("object,")
    assert "area_um2" in csv.splitlines()[0]
    assert (tmp_path / "amg_measurements.csv").is_file()
