"""The atomic writer: a failing write leaves the old file byte-identical and no temp file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sam_widget.data.atomic import atomic_open, atomic_write_bytes, atomic_write_text


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert _leftovers(tmp_path, "a.json") == []


def test_raising_writer_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    atomic_write_bytes(target, b"good" * 1000)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="mid-stream"):
        with atomic_open(target, "wb") as fh:
            fh.write(b"partial" * 100)
            raise RuntimeError("mid-stream")
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, "m.bin") == []


def test_keeps_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "p.txt"
    atomic_write_text(target, "x")
    os.chmod(target, 0o600)
    atomic_write_text(target, "y")
    assert (target.stat().st_mode & 0o777) == 0o600


def test_bad_mode_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "ab"):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")


def test_full_disk_keeps_old_file(tmp_path: Path) -> None:
    """A real short write: RLIMIT_FSIZE in a subprocess makes write() fail with EFBIG."""
    target = tmp_path / "big.bin"
    atomic_write_bytes(target, b"\x01" * 50_000)
    before = target.read_bytes()
    code = textwrap.dedent(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        from sam_widget.data.atomic import atomic_write_bytes
        try:
            atomic_write_bytes({str(target)!r}, b"\\x02" * 100_000)
        except OSError as e:
            print("failed", e.errno)
        else:
            print("wrote")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.startswith("failed"), out.stdout + out.stderr
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, "big.bin") == []
