"""notebooks/finetune_loop.ipynb runs offline, top to bottom, with the untrained fallback:
annotate, fine-tune, IoU before and after (table and figure), switch model, keep going."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _notebooks import cell_text as _text
from _notebooks import run_notebook


def test_finetune_loop_notebook_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = run_notebook(
        "finetune_loop.ipynb",
        tmp_path,
        monkeypatch,
        timeout=600,
        env={"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    )
    assert "untrained model" in _text(code[1]) and "pretrained: False" in _text(code[1])
    assert "8 of 8 images done, 8 object(s)" in _text(code[2])
    table = _text(code[4])
    assert "untrained base model" in table
    row = r"^(1 click|3 clicks|box)\s+([\d.]+)\s+([\d.]+)$"
    rows = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(row, table, re.M)}
    assert set(rows) == {"1 click", "3 clicks", "box"}, table
    before, after = rows["1 click"]
    assert after > before + 0.2, table  # fine-tuning clearly helped on held-out images
    assert sum("image/png" in o.get("data", {}) for o in code[5].outputs) == 1  # the curves
    assert "saved with the tuned weights: True" in _text(code[6])
    assert "application/vnd.jupyter.widget-view+json" in code[6].outputs[-1]["data"]
    assert (tmp_path / "finetune_demo" / "tuned.pt").is_file()
