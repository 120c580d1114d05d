"""Batch runs on real Dask clusters: a 2-process LocalCluster gives the sequential records, a
killed worker and a SIGKILLed driver lose and duplicate nothing.

Dask is a test dependency (the ``dev`` extra): without it this module fails to import,
which fails the run; nothing is skipped.
"""

# Fixtures are imported from test_batch_fixtures and used as test arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from distributed import Client, LocalCluster, WorkerPlugin
from test_batch_fixtures import (
    CLI,
    CLI_PARAMS,
    PARAMS,
    assert_out_matches,
    cli_env,
    dataset,
    reference,
    tiny_weights_id,
)

from sam_widget.batch import auto_annotate


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def annotate(images, out, client, **kwargs):
    return auto_annotate(
        images,
        out=out,
        model="tiny",
        pretrained=False,
        client=client,
        progress=False,
        log=lambda _: None,
        **PARAMS,
        **kwargs,
    )


def test_two_workers_give_the_sequential_records(
    client, dataset, reference, tiny_weights_id, tmp_path
):
    # The workers run torch single-threaded, like the reference.
    assert set(client.run(torch.get_num_threads).values()) == {1}
    workers_before = sorted(client.scheduler_info()["workers"])
    s = annotate(dataset[0].parent, tmp_path / "out", client)
    assert (s.done, s.skipped, s.failed) == (len(dataset), 0, [])
    assert s.weights_id == tiny_weights_id
    assert_out_matches(tmp_path / "out", reference)
    # Both worker processes did work, and the caller's cluster is left as it was.
    worker_pids = set(client.run(os.getpid).values())
    assert set(s.peak_rss_mb) == {str(p) for p in worker_pids}
    assert sorted(client.scheduler_info()["workers"]) == workers_before
    assert client.submit(sum, [1, 2]).result() == 3


class KillFirstTask(WorkerPlugin):
    """SIGKILLs the worker process that starts the first batch task (once per marker)."""

    name = "kill-first-batch-task"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):  # noqa: ANN001
        if finish != "executing" or "sam-widget-task" not in str(key):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()} {key}".encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_task_is_retried_without_duplicates(client, dataset, reference, tmp_path):
    marker = tmp_path / "killed"
    workers_before = set(client.run(os.getpid).values())
    client.register_plugin(KillFirstTask(str(marker)))
    images = dataset[:4]
    try:
        s = annotate(images, tmp_path / "out", client)
    finally:
        client.unregister_worker_plugin(KillFirstTask.name)
    killed_pid = int(marker.read_text().split()[0])
    assert killed_pid in workers_before, "a worker process was killed mid-task"
    assert not psutil.pid_exists(killed_pid) or psutil.Process(killed_pid).status() == "zombie"
    assert (s.done, s.failed) == (len(images), [])
    assert_out_matches(tmp_path / "out", {p.name: reference[p.name] for p in images})


def _done_names(out: Path) -> set[str]:
    names = set()
    for p in (out / ".sam-widget-batch").glob("*.json"):
        try:
            state = json.loads(p.read_text())
        except ValueError:
            continue
        if state.get("status") == "done":
            names.add(state["name"])
    return names


def test_a_sigkilled_driver_resumes_with_nothing_lost_or_doubled(dataset, reference, tmp_path):
    out = tmp_path / "out"
    data = str(dataset[0].parent)
    cmd = [*CLI, "auto", data, "--out", str(out), "--model", "tiny", "--untrained"]
    cmd += [*CLI_PARAMS, "--no-progress"]
    driver = subprocess.Popen(
        [*cmd, "--scheduler", "local", "--workers", "2", "--dashboard", "none"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while len(_done_names(out)) < 2:
            assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
            assert time.monotonic() < deadline, "the driver made no progress"
            time.sleep(0.05)
        children = psutil.Process(driver.pid).children(recursive=True)
        assert children, "the local cluster runs worker processes"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        # The workers of a dead driver exit on their own (no orphans left computing).
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"worker processes outlived their driver: {alive}"
    finally:
        if driver.poll() is None:
            driver.kill()
        for child in children:
            if child.is_running():
                child.kill()
        if driver.stderr is not None:
            driver.stderr.close()
    finished = _done_names(out)
    assert 2 <= len(finished) < len(dataset), "the driver was killed mid-run"

    rerun = subprocess.run(
        [*cmd, "--scheduler", "threads"], env=cli_env(), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    rest = len(dataset) - len(finished)
    assert f"{rest} annotated, {len(finished)} already done, 0 failed" in rerun.stdout
    assert_out_matches(out, reference)


def test_cli_uses_a_running_cluster_by_address(client, dataset, reference, tmp_path):
    workers_before = sorted(client.scheduler_info()["workers"])
    out = tmp_path / "out"
    images = [str(p) for p in dataset[:3]]
    cmd = [*CLI, "auto", *images, "--out", str(out), "--model", "tiny", "--untrained"]
    cmd += [*CLI_PARAMS, "--scheduler", client.scheduler.address, "--no-progress"]
    proc = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 annotated" in proc.stdout and client.scheduler.address in proc.stderr
    assert_out_matches(out, {p.name: reference[p.name] for p in dataset[:3]})
    assert sorted(client.scheduler_info()["workers"]) == workers_before


def _page_faults_of_reused_buffers() -> int:
    """Minor page faults while a 16 MiB tensor is allocated, written and freed 20 times:
    thousands a time when every large allocation is a fresh mapping, next to none when
    freed memory is reused. (torch, not numpy: numpy asks for huge pages, whose faults
    are few either way.)"""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = torch.ones(4 * 2**20, dtype=torch.float32)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_local_cluster_workers_reuse_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ (in the workers' environment, and left by the nanny in
    the environment of whatever process started a cluster before) made every large buffer
    a fresh mapping; the local cluster's workers reuse freed memory all the same, restarted
    ones too; the process that started the cluster gets its environment back."""
    from sam_widget.batch.execution import open_executor

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # inherited by the workers
    # A plain process with that setting faults on every allocation (what this guards).
    code = "import test_batch_dask as t; print(t._page_faults_of_reused_buffers())"
    probe = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
    )  # fmt: skip
    fresh = int(probe.stdout)
    assert fresh >= 20 * 1000, fresh
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    environ = dict(os.environ)
    executor = open_executor("local", workers=1, dashboard_address=None, log=lambda _: None)
    try:
        client = executor.client  # type: ignore[union-attr]
        assert client.run(lambda: os.environ["OMP_NUM_THREADS"]) == {  # the workers' limit
            w: "1" for w in client.scheduler_info()["workers"]
        }
        for _ in range(2):  # the first workers, then restarted ones
            env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
            assert set(env.values()) == {"65536"}
            (faults,) = client.run(_page_faults_of_reused_buffers).values()
            assert faults < fresh / 4, (faults, fresh)
            client.restart()
    finally:
        executor.close()
    # Dask's nanny wrote the workers' variables into this process's environment too; they
    # are put back (here: OMP_NUM_THREADS was unset, MALLOC_TRIM_THRESHOLD_ as it was).
    assert dict(os.environ) == environ
