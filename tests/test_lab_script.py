"""`make lab` (scripts/lab.sh) leaves the checkout clean.

JupyterLab marks a notebook modified on opening and autosaves it (outputs, execution counts,
widget state). The script serves a copy of notebooks/ from an ignored folder, so a save
through the server (what autosave does) changes the copy, never the committed notebook.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "lab.sh"
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


def _env(lab_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_WIDGET_LAB_DIR"] = str(lab_dir)
    env["SAM_WIDGET_VENV"] = sys.prefix  # the environment running the tests
    env["JUPYTER_RUNTIME_DIR"] = str(lab_dir.parent / "runtime")
    env.pop("DISPLAY", None)
    return env


def test_prepare_copies_once_and_keeps_the_users_copy(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    out = subprocess.run(
        ["bash", str(SCRIPT), "--prepare"], env=_env(lab), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(lab)
    copy = lab / "quickstart.ipynb"
    assert copy.read_bytes() == NOTEBOOK.read_bytes()
    copy.write_text("{}  ", encoding="utf-8")  # the user's work in the copy
    subprocess.run(["bash", str(SCRIPT), "--prepare"], env=_env(lab), check=True)
    assert copy.read_text(encoding="utf-8") == "{}  "


def test_default_lab_folder_is_ignored_by_git() -> None:
    out = subprocess.run(
        ["git", "check-ignore", "-q", ".lab/quickstart.ipynb"], cwd=REPO, capture_output=True
    )
    assert out.returncode == 0, ".lab/ must be in .gitignore"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def test_saving_through_the_server_leaves_the_checkout_clean(tmp_path: Path) -> None:
    before = NOTEBOOK.read_bytes()
    lab = tmp_path / "lab"
    port, token = _free_port(), "sam-widget-test"
    args = [f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"]
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), *args, "--ServerApp.port_retries=0"],
        env=_env(lab),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/contents/quickstart.ipynb?token={token}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"jupyter lab exited: {proc.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            try:
                model = _request(base)
                break
            except OSError:
                assert time.monotonic() < deadline, "jupyter lab did not answer within 60 s"
                time.sleep(0.3)
        # What JupyterLab's autosave sends after a run: outputs and metadata changed.
        nb = model["content"]
        nb["metadata"]["widgets"] = {"state": {}}
        nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        nb["cells"][1]["execution_count"] = 1
        _request(base, "PUT", {"type": "notebook", "format": "json", "content": nb})
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert NOTEBOOK.read_bytes() == before, "the committed notebook was modified"
    saved = json.loads((lab / "quickstart.ipynb").read_text(encoding="utf-8"))
    assert "".join(saved["cells"][1]["outputs"][0]["text"]) == "ran\n"
