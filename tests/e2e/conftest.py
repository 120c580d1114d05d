"""Fixtures for the end-to-end tests: JupyterLab server, Chromium, pages, notebooks.

Every test here is marked ``e2e`` and gets a time limit. Missing Chromium is a test failure
(never a skip), with a message saying how to install it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    ARTIFACTS,
    REPO_ROOT,
    SUMMARY,
    HarnessError,
    JupyterLab,
    Notebook,
    launch_chromium,
    save_artifacts,
)

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(600))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("end-to-end measurements")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def jupyter_lab() -> Iterator[JupyterLab]:
    """One private JupyterLab server for the whole session (kernels end after each test)."""
    log = ARTIFACTS / "jupyter-server.log"
    if log.exists():
        log.unlink()
    lab = JupyterLab(log_path=log)
    problem = ""
    try:
        lab.start()
    except HarnessError as exc:
        problem = str(exc)
    if problem:
        lab.cleanup()
        pytest.fail(problem, pytrace=False)
    yield lab
    lab.cleanup()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system Chromium, headless, driven by Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        problem = ""
        try:
            chromium = launch_chromium(pw)
        except HarnessError as exc:
            problem = str(exc)
        if problem:  # a failure, never a skip (also in CI)
            pytest.fail(problem, pytrace=False)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any, jupyter_lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page; on failure its screenshot, console and the server
    log tail go to test-artifacts/<test>/."""
    context = browser.new_context(viewport={"width": 1280, "height": 1200}, device_scale_factor=1)
    context.set_default_timeout(60_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"[console.{msg.type}] {msg.text}"))
    pg.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
    pg.console_lines = console  # type: ignore[attr-defined]
    yield pg
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None
        and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        out = save_artifacts(
            pg,
            request.node.nodeid,
            [*console, "", "---- jupyter server log (tail) ----", jupyter_lab.log_tail(200)],
        )
        print(f"\nartifacts of the failed test: {out}")
    context.close()
    jupyter_lab.shutdown_kernels()


@pytest.fixture
def open_notebook(
    page: Any, jupyter_lab: JupyterLab, request: pytest.FixtureRequest
) -> Callable[..., Notebook]:
    """``open_notebook(cells, name=None, run=True, ui="lab")``: write a notebook with these
    cells into the server's root, open it in the page (JupyterLab, or the Notebook 7 UI with
    ``ui="notebook"``), and (by default) run all cells."""

    def _open(
        cells: list[str], name: str | None = None, run: bool = True, ui: str = "lab"
    ) -> Notebook:
        nb_name = name or re.sub(r"[^\w]+", "_", request.node.name) + ".ipynb"
        path = jupyter_lab.write_notebook(nb_name, cells)
        nb = Notebook(page, jupyter_lab, path, ui=ui).open()
        if run:
            nb.run_all()
        return nb

    return _open


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
