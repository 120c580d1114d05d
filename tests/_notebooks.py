"""Run a notebook of notebooks/ offline in a temp folder (test helper, no tests)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout: int = 300,
    env: dict[str, str] | None = None,
) -> list[Any]:
    """Execute ``notebooks/<name>`` in ``tmp_path`` with this checkout's code and an empty
    weights cache (so the untrained fallback is used); returns its code cells."""
    shutil.copy(ROOT / "notebooks" / name, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("SAM_WIDGET_CACHE", str(tmp_path / "no-weights"))  # forces the fallback
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(tmp_path / name, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def cell_text(cell: Any) -> str:
    """The text a code cell printed or displayed."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)
