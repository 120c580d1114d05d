"""The project store across real processes: two writers at once, and a writer killed by
SIGKILL mid-session (every change whose call returned survives; the file stays sound)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_widget.data.store import ConflictError, Project

ROOT = Path(__file__).resolve().parents[1]
H, W = 24, 32


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip


def _mask_for(k: int) -> np.ndarray:
    """A mask that identifies k: a block whose corner and size depend on k."""
    m = np.zeros((H, W), dtype=bool)
    m[k % 20 : k % 20 + 1 + k % 4, (k // 20) % 28 : (k // 20) % 28 + 2] = True
    return m


_MASK_SRC = """
import numpy as np
def mask_for(k):
    m = np.zeros((24, 32), dtype=bool)
    m[k % 20 : k % 20 + 1 + k % 4, (k // 20) % 28 : (k // 20) % 28 + 2] = True
    return m
"""


@pytest.fixture
def project_file(tmp_path: Path) -> tuple[Path, int]:
    Image.fromarray(np.full((H, W, 3), 7, np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "labels.sqlite"
    with Project.open(path) as p:
        img = p.add_images([tmp_path / "a.png"]).added[0]
    return path, img.id


def test_two_writer_processes_lose_no_update(
    tmp_path: Path, project_file: tuple[Path, int]
) -> None:
    path, image_id = project_file
    go = tmp_path / "go"
    code = (
        _MASK_SRC
        + """
import sys, time, pathlib
from sam_widget.data.store import Project
path, image_id, who, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4])
p = Project.open(path)
while not go.exists():
    time.sleep(0.005)
for k in range(40):
    p.add_object(image_id, mask_for(who * 1000 + k), prompts={"who": who, "k": k})
    p.add_time(image_id, 0.25)
    p.set_state(f"last{who}", k)
p.close()
print("done")
"""
    )
    procs = [_python(code, str(path), str(image_id), str(w), str(go)) for w in (1, 2)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with Project.open(path) as p:
        assert p.integrity_check() == "ok"
        objs = p.objects(image_id)
        got = sorted((o.prompts["who"], o.prompts["k"]) for o in objs)
        assert got == sorted((w, k) for w in (1, 2) for k in range(40))
        for o in objs:
            np.testing.assert_array_equal(
                o.mask, _mask_for(o.prompts["who"] * 1000 + o.prompts["k"])
            )
        assert p.image(image_id).seconds == pytest.approx(2 * 40 * 0.25)
        assert (p.get_state("last1"), p.get_state("last2")) == (39, 39)


def test_a_stale_update_from_another_process_is_refused(project_file: tuple[Path, int]) -> None:
    path, image_id = project_file
    with Project.open(path) as mine:
        obj = mine.add_object(image_id, _mask_for(1))
        other = _python(
            """
            import sys
            import numpy as np
            from sam_widget.data.store import Project
            with Project.open(sys.argv[1]) as p:
                o = p.object(int(sys.argv[2]))
                p.update_object(o.id, mask=np.ones((24, 32), bool), revision=o.revision)
            print("updated")
            """,
            str(path),
            str(obj.id),
        )
        out, err = other.communicate(timeout=60)
        assert out.strip() == "updated", err
        with pytest.raises(ConflictError):  # no silent overwrite of the other's change
            mine.update_object(obj.id, mask=_mask_for(2), revision=obj.revision)
        assert mine.object(obj.id).area == H * W


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_mid_session_keeps_every_returned_change(
    project_file: tuple[Path, int], seed: int
) -> None:
    path, image_id = project_file
    code = (
        _MASK_SRC
        + """
import sys
from sam_widget.data.store import Project
p = Project.open(sys.argv[1])
image_id = int(sys.argv[2])
print("ready", flush=True)
k = 0
while True:
    o = p.add_object(image_id, mask_for(k), prompts={"k": k})
    if k % 3 == 2:  # rewrite an earlier object too
        p.update_object(o.id, prompts={"k": k, "edited": True}, revision=o.revision)
    p.set_state("position", k)
    print(o.id, k, flush=True)
    k += 1
"""
    )
    rng = random.Random(seed)
    proc = _python(code, str(path), str(image_id))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    stop_after = rng.randint(5, 60)
    returned: list[tuple[int, int]] = []
    while len(returned) < stop_after:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        oid, k = map(int, line.split())
        returned.append((oid, k))
    os.kill(proc.pid, signal.SIGKILL)  # the child is in the middle of its next calls
    proc.wait(timeout=30)
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    with Project.open(path) as p:
        assert p.integrity_check() == "ok"
        stored = {o.id: o for o in p.objects(image_id)}
        for oid, k in returned:
            assert oid in stored, f"object {oid} (k={k}) returned before the kill but is lost"
            assert stored[oid].prompts["k"] == k
            if k % 3 == 2:
                assert stored[oid].prompts.get("edited") is True
            np.testing.assert_array_equal(stored[oid].mask, _mask_for(k))
        assert len(stored) in (len(returned), len(returned) + 1)  # at most the one in flight
        assert p.get_state("position") >= returned[-1][1]
