"""End-to-end harness: a private JupyterLab server, headless Chromium, and notebook helpers.

Used by the pytest fixtures in ``conftest.py`` and by ``benchmarks/bench_widget.py``.

- ``JupyterLab``: starts ``python -m jupyterlab`` on a free loopback port with a random token,
  in a temporary root directory, with every ``JUPYTER_*``/``IPYTHONDIR`` directory (config,
  data, runtime, lab settings and workspaces) and the checkpoint cache in that temp place, so
  nothing leaks into the user's files. Stopped (kernels included) by ``stop()``.
- ``launch_chromium``: the system Chromium (``/usr/bin/chromium`` or ``$SAM_WIDGET_CHROMIUM``)
  driven by Playwright; never a browser downloaded by Playwright. Playwright gives every
  launch a fresh temporary user-data-dir.
- ``Notebook``: opens a notebook in JupyterLab (in its own workspace), runs all cells the way
  "Run > Run All Cells" does, and runs kernel-side checks in the same kernel through the
  page's own kernel connection (``window.jupyterapp``, exposed with
  ``--LabApp.expose_app_in_browser``, as JupyterLab's own UI tests do).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--disable-sync",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Lines the e2e tests report (latencies); printed in pytest's terminal summary.
SUMMARY: list[str] = []


class HarnessError(RuntimeError):
    """The harness could not do what a test asked (server, browser, notebook, kernel)."""


# ------------------------------------------------------------------------------ JupyterLab


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    """A private JupyterLab server; ``with JupyterLab() as lab: ...`` or ``start()``/``stop()``.

    ``root``: the server's root dir (notebooks are written here); a temp dir when None.
    ``env``: extra environment for the server and so for its kernels.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="sam-widget-e2e-"))
        self.root = Path(root) if root is not None else self._tmp / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(env or {})
        self.log_path = log_path or (self._tmp / "jupyter-server.log")
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            d = self._tmp / var.lower()
            d.mkdir(exist_ok=True)
            env[var] = str(d)
        env["JUPYTERLAB_SETTINGS_DIR"] = str(self._tmp / "lab-settings")
        env["JUPYTERLAB_WORKSPACES_DIR"] = str(self._tmp / "lab-workspaces")
        env["MPLCONFIGDIR"] = str(self._tmp / "mpl")
        # Weights never come from (or go into) the user's cache during tests.
        env["SAM_WIDGET_CACHE"] = str(self._tmp / "sam-widget-cache")
        env.pop("JUPYTER_TOKEN", None)
        env.pop("JUPYTER_PATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        # The repository on the kernel's path even when sam_widget is not installed editable.
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env.update(self.extra_env)
        # No news/announcement toast over the page.
        labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
        labconfig.mkdir(exist_ok=True)
        (labconfig / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        return env

    def start(self) -> JupyterLab:
        env = self._environment()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            cmd = [
                sys.executable, "-m", "jupyterlab",
                "--no-browser",
                "--ServerApp.open_browser=False",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                "--ServerApp.disable_check_xsrf=False",
                "--LabApp.expose_app_in_browser=True",
                # The same for the Notebook 7 UI (/tree, /notebooks/...) the server also has.
                "--JupyterNotebookApp.expose_app_in_browser=True",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                "--LanguageServerManager.autodetect=False",
                "--ServerApp.terminals_enabled=False",
            ]  # fmt: skip
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=env,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kernels are stopped with it
            )
            try:
                self._wait_ready()
                return self
            except HarnessError as exc:
                last_error = str(exc)
                self.stop()
        raise HarnessError(f"JupyterLab did not start:\n{last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                status = self.api("GET", "/api/status", timeout=5)
                if isinstance(status, dict) and "started" in status:
                    self.api("GET", "/lab", raw=True, timeout=30)
                    return
            except (OSError, urllib.error.URLError, HarnessError):
                pass
            time.sleep(0.5)
        raise HarnessError(
            f"jupyter lab not ready after {self.startup_timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:  # a clean shutdown stops the kernels too
                self.api("POST", "/api/shutdown", timeout=5)
                proc.wait(timeout=20)
            except Exception:
                pass
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait(timeout=10)
        if proc is not None:
            # Whatever is left of its process group (kernels of a killed server).
            _signal_group(proc, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])

    # -- REST
    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bool = False,
        timeout: float = 30,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def shutdown_kernels(self) -> None:
        """End every session (and its kernel); tests run one notebook at a time."""
        for session in self.api("GET", "/api/sessions") or []:
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            except urllib.error.HTTPError:
                pass

    # -- notebooks
    def write_notebook(self, name: str, cells: Sequence[str | tuple[str, str]]) -> str:
        """Write ``name`` (relative to the root) with the given cells; returns its path.

        A cell is code, or ``("markdown", text)``. The kernel is the server's ``python3``.
        """
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        }
        for cell in cells:
            if isinstance(cell, tuple):
                kind, text = cell
                nb.cells.append(
                    nbformat.v4.new_markdown_cell(text)
                    if kind == "markdown"
                    else nbformat.v4.new_code_cell(text)
                )
            else:
                nb.cells.append(nbformat.v4.new_code_cell(cell))
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        return name

    def notebook_url(self, path: str, workspace: str | None = None) -> str:
        ws = workspace or f"e2e-{uuid.uuid4().hex[:8]}"
        return f"{self.base_url}/lab/workspaces/{ws}/tree/{path}?token={self.token}"

    def notebook7_url(self, path: str) -> str:
        """The notebook in the Jupyter Notebook 7 UI (served by the same server)."""
        return f"{self.base_url}/notebooks/{path}?token={self.token}"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group we created with start_new_session
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------------------ Chromium


def find_chromium() -> str | None:
    """The system Chromium/Chrome: ``$SAM_WIDGET_CHROMIUM``, else the usual names on PATH."""
    explicit = os.environ.get("SAM_WIDGET_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_MISSING = (
    "Chromium not found: the end-to-end tests need the system Chromium (no Playwright-"
    "downloaded browser). Install it (Debian/Ubuntu: `apt-get install -y chromium`; "
    "`bash scripts/setup.sh` does it as root) or set SAM_WIDGET_CHROMIUM=/path/to/chromium."
)


def launch_chromium(playwright: Any) -> Any:
    """Launch the system Chromium headless; raises HarnessError when it is missing."""
    path = find_chromium()
    if path is None:
        raise HarnessError(CHROMIUM_MISSING)
    return playwright.chromium.launch(
        executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=120_000
    )


# ------------------------------------------------------------------------------ notebooks

_FIND_PANEL_JS = """
(path) => {
  const app = window.jupyterapp;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
}
"""


class Notebook:
    """A notebook open in a JupyterLab page (``ui="lab"``, the default) or in the Jupyter
    Notebook 7 UI (``ui="notebook"``; same application API: ``window.jupyterapp``, its shell's
    main-area widgets, the same notebook commands).

    ``open()`` loads it and waits for a connected, idle kernel; ``run_all()`` runs every cell
    and raises with the traceback if one fails; ``kernel(code)`` runs code in the same kernel
    (not as a cell) and returns its stdout; ``kernel_json(expr)`` evaluates a JSON-able
    expression there.
    """

    def __init__(self, page: Any, lab: JupyterLab, path: str, ui: str = "lab") -> None:
        if ui not in ("lab", "notebook"):
            raise ValueError(f"ui must be 'lab' or 'notebook', not {ui!r}")
        self.page = page
        self.lab = lab
        self.path = path
        self.ui = ui

    def open(self, timeout: float = 120.0) -> Notebook:
        if self.ui == "notebook":
            url = self.lab.notebook7_url(self.path)
        else:
            url = self.lab.notebook_url(self.path)
        self.page.goto(url, timeout=timeout * 1000)
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout * 1000)
        self._eval(
            """async ({path, findPanel}) => {
                const app = window.jupyterapp;
                await app.started; await app.restored;
                const find = eval(findPanel);
                let panel = null;
                const t0 = Date.now();
                while (!(panel = find(path))) {
                  if (Date.now() - t0 > 60000) throw new Error('notebook panel not found: ' + path);
                  await new Promise(r => setTimeout(r, 100));
                }
                await panel.context.ready;
                await panel.sessionContext.ready;
                app.shell.activateById(panel.id);
                return true;
            }""",
            {"path": self.path, "findPanel": _FIND_PANEL_JS},
        )
        self.wait_kernel_idle(timeout)
        return self

    def _eval(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def wait_kernel_idle(self, timeout: float = 120.0) -> None:
        self.page.wait_for_function(
            """({path, findPanel}) => {
                const panel = eval(findPanel)(path);
                const k = panel?.sessionContext.session?.kernel;
                return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
            }""",
            arg={"path": self.path, "findPanel": _FIND_PANEL_JS},
            timeout=timeout * 1000,
            polling=100,
        )

    def run_all(self, timeout: float = 300.0) -> None:
        """Run All Cells (JupyterLab's own command) and wait until every code cell ran."""
        # Fire the command without awaiting it in the page, so that this side keeps control.
        self._eval(
            """({path, findPanel}) => {
                const app = window.jupyterapp;
                const panel = eval(findPanel)(path);
                app.shell.activateById(panel.id);
                window.__e2eRunAll = app.commands.execute('notebook:run-all-cells');
                return true;
            }""",
            {"path": self.path, "findPanel": _FIND_PANEL_JS},
        )
        deadline = time.monotonic() + timeout
        while True:
            state = self._eval(
                """({path, findPanel}) => {
                    const panel = eval(findPanel)(path);
                    const cells = panel.content.widgets.filter(
                      c => c.model.type === 'code'
                           && c.model.sharedModel.getSource().trim() !== '');
                    const errors = [];
                    for (const c of cells) {
                      for (const o of c.model.outputs.toJSON()) {
                        if (o.output_type === 'error')
                          errors.push(o.ename + ': ' + o.evalue + '\\n'
                                      + (o.traceback || []).join('\\n'));
                      }
                    }
                    const running = (c) => c.model.executionState !== undefined
                      ? c.model.executionState === 'running'
                      : (c.node.querySelector('.jp-InputPrompt')?.textContent ?? '').includes('*');
                    const k = panel.sessionContext.session && panel.sessionContext.session.kernel;
                    return {
                      done: cells.every(c => c.model.executionCount !== null && !running(c)),
                      ran: cells.filter(c => c.model.executionCount !== null).length,
                      cells: cells.length,
                      idle: !!k && k.status === 'idle',
                      errors,
                    };
                }""",
                {"path": self.path, "findPanel": _FIND_PANEL_JS},
            )
            if state["errors"]:
                raise HarnessError("a notebook cell failed:\n" + _ANSI.sub("", state["errors"][0]))
            if state["done"] and state["idle"]:
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"cells still running after {timeout:.0f}s: {state}")
            time.sleep(0.2)

    def kernel(self, code: str, timeout: float = 120.0) -> str:
        """Run ``code`` in the notebook's kernel (not as a cell); return its stdout.

        Raises HarnessError with the traceback when the code raises.
        """
        result = self._eval(
            """async ({path, findPanel, code, timeoutMs}) => {
                const panel = eval(findPanel)(path);
                const kernel = panel.sessionContext.session.kernel;
                const future = kernel.requestExecute(
                  {code, silent: false, store_history: false, stop_on_error: true}, true);
                let out = '', err = null;
                future.onIOPub = (msg) => {
                  const t = msg.header.msg_type;
                  if (t === 'stream' && msg.content.name === 'stdout') out += msg.content.text;
                  else if (t === 'error') err = msg.content.ename + ': ' + msg.content.evalue
                                                + '\\n' + msg.content.traceback.join('\\n');
                };
                const timer = new Promise((_, rej) =>
                  setTimeout(() => rej(new Error('kernel call timed out')), timeoutMs));
                const reply = await Promise.race([future.done, timer]);
                return {out, err, status: reply.content.status};
            }""",
            {
                "path": self.path,
                "findPanel": _FIND_PANEL_JS,
                "code": code,
                "timeoutMs": int(timeout * 1000),
            },
        )
        if result["err"] or result["status"] != "ok":
            raise HarnessError(
                f"kernel code failed:\n{code}\n---\n" + _ANSI.sub("", result["err"] or "")
            )
        return str(result["out"])

    def kernel_json(self, expr: str, setup: str = "", timeout: float = 120.0) -> Any:
        """Evaluate the JSON-able Python expression ``expr`` in the kernel and return it."""
        marker = "@@E2E_JSON@@"
        code = f"{setup}\nimport json as _e2e_json\nprint({marker!r} + _e2e_json.dumps({expr}))"
        out = self.kernel(code, timeout=timeout)
        for line in reversed(out.splitlines()):
            if line.startswith(marker):
                return json.loads(line[len(marker) :])
        raise HarnessError(f"no JSON in kernel output:\n{out}")

    def wait_kernel_true(self, expr: str, timeout: float = 120.0, interval: float = 0.25) -> Any:
        """Poll until the Python expression ``expr`` is truthy in the kernel; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.kernel_json(f"bool({expr})")
            if value:
                return value
            if time.monotonic() > deadline:
                raise HarnessError(f"kernel condition still false after {timeout:.0f}s: {expr}")
            time.sleep(interval)

    def output_text(self) -> list[str]:
        """Text of every code cell's outputs (streams, plain-text results, errors), in order.

        Read from the output models, not the page: JupyterLab does not render cells that are
        scrolled out of view, and their ``innerText`` is then empty."""
        return list(
            self._eval(
                """({path, findPanel}) => {
                    const panel = eval(findPanel)(path);
                    const join = t => Array.isArray(t) ? t.join('') : (t ?? '');
                    const text = o => o.output_type === 'stream' ? join(o.text)
                      : o.output_type === 'error' ? `${o.ename}: ${o.evalue}`
                      : join(o.data?.['text/plain']);
                    return panel.content.widgets.filter(c => c.model.type === 'code')
                      .map(c => c.model.outputs.toJSON().map(text).join('\\n'));
                }""",
                {"path": self.path, "findPanel": _FIND_PANEL_JS},
            )
        )


def save_artifacts(page: Any, name: str, lines: Iterable[str] = ()) -> Path:
    """Screenshot and log lines of a page into test-artifacts/<name>/."""
    out = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
    out.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(out / "page.png"), full_page=False)
    except Exception as exc:  # the page may be gone
        (out / "screenshot-error.txt").write_text(str(exc))
    (out / "log.txt").write_text("\n".join(lines))
    return out
