"""The ``sam-widget`` command line: --help, runs end to end in a subprocess, exit codes."""

# Fixtures are imported from test_batch_fixtures and used as test arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import importlib
import inspect
import json
import re
import signal
import subprocess
import time

import pytest
from test_batch_fixtures import (
    CLI,
    CLI_PARAMS,
    ROOT,
    assert_out_matches,
    cli_env,
    dataset,
    reference,
)

from sam_widget.batch.cli import GENERATOR_OPTIONS, build_parser, main
from sam_widget.engine.amg import SamAutomaticMaskGenerator


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_option(capsys) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[attr-defined]
    assert set(sub) == {"auto", "embed"}
    top = _help(["--help"], capsys)
    assert "auto" in top and "embed" in top
    for name, command in sub.items():
        text = _help([name, "--help"], capsys)
        flags = [s for a in command._actions for s in a.option_strings]
        assert len(flags) > 10
        for flag in flags:
            assert flag in text, (name, flag)
    auto_flags = {s for a in sub["auto"]._actions for s in a.option_strings}
    for flag in [
        "--out",
        "--project",
        "--scheduler",
        "--workers",
        "--model",
        "--checkpoint",
        "--untrained",
        "--strict",
    ]:
        assert flag in auto_flags
    assert "--cache" in {s for a in sub["embed"]._actions for s in a.option_strings}


def test_generator_options_are_the_generators() -> None:
    sig = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    offered = {name: default for name, _, default, _ in GENERATOR_OPTIONS}
    not_offered = {"self", "model", "output_mode", "progress", "point_grids"}
    assert set(offered) == set(sig) - not_offered
    for name, default in offered.items():
        assert default == sig[name].default, name


def test_help_starts_without_torch() -> None:
    code = (
        "import sys; from sam_widget.batch.cli import build_parser; "
        "build_parser().format_help(); assert 'torch' not in sys.modules"
    )
    proc = subprocess.run([*CLI[:1], "-c", code], env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_auto_and_embed_end_to_end(dataset, reference, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in dataset[:2]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    base = [*CLI, "auto", str(data), "--out", str(out), "--model", "tiny", "--untrained"]
    base += [*CLI_PARAMS, "--scheduler", "threads"]
    env = cli_env()
    first = subprocess.run(base, env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "2 annotated, 0 already done, 1 failed" in first.stdout
    assert "untrained" in first.stdout and "untrained" in first.stderr
    assert "broken.jpg" in first.stdout and "not a readable image" in first.stdout
    assert "Automatic masks" in first.stderr  # the progress bar
    assert_out_matches(out, {p.name: reference[p.name] for p in dataset[:2]})
    summary = json.loads((out / "batch-summary.json").read_text())
    assert [f["name"] for f in summary["failed"]] == ["broken"]

    strict = subprocess.run(
        [*base, "--strict", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert strict.returncode == 1
    assert "0 annotated, 2 already done, 1 failed" in strict.stdout
    assert "Automatic masks" not in strict.stderr

    only_bad = [
        *CLI,
        "auto",
        str(data / "broken.jpg"),
        "--out",
        str(tmp_path / "o2"),
        "--model",
        "tiny",
        "--untrained",
        "--scheduler",
        "threads",
    ]
    proc = subprocess.run(only_bad, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, "nothing succeeded"

    no_output = subprocess.run([*CLI, "auto", str(data)], env=env, capture_output=True, text=True)
    assert no_output.returncode == 2 and "--out" in no_output.stderr
    bad_model = subprocess.run(
        [
            *CLI,
            "auto",
            str(data),
            "--out",
            str(tmp_path / "o3"),
            "--model",
            "vit_q",
            "--scheduler",
            "threads",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad_model.returncode == 2 and "vit_q" in bad_model.stderr

    cache = tmp_path / "cache"
    emb = [
        *CLI,
        "embed",
        str(data),
        "--cache",
        str(cache),
        "--model",
        "tiny",
        "--untrained",
        "--scheduler",
        "threads",
        "--no-progress",
    ]
    proc = subprocess.run(emb, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 embedded, 0 already cached, 1 failed" in proc.stdout
    assert len(list(cache.glob("*.npz"))) == 2


def test_console_script_entry_point() -> None:
    # (tomllib is Python 3.11+; the package supports 3.10.)
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^sam-widget = "([\w.]+):(\w+)"$', section, re.M)
    assert found is not None, section
    module, func = found.groups()
    assert getattr(importlib.import_module(module), func) is main


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(dataset, reference, tmp_path):
    out = tmp_path / "out"
    cmd = [
        *CLI,
        "auto",
        str(dataset[0].parent),
        "--out",
        str(out),
        "--model",
        "tiny",
        "--untrained",
        *CLI_PARAMS,
        "--scheduler",
        "threads",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list((out / ".sam-widget-batch").glob("*.json")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "(interrupted)" in stdout and "run the same command again" in stderr
    summary = json.loads((out / "batch-summary.json").read_text())
    assert summary["interrupted"] is True
    done = summary["done"]
    assert 1 <= done < len(dataset)
    rerun = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(dataset) - done} annotated, {done} already done" in rerun.stdout
    assert_out_matches(out, reference)
