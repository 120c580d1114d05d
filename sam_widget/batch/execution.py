"""Where batch tasks run: a Dask cluster (local or existing) or this process.

:func:`open_executor` picks by ``client``:

- ``None`` or ``"local"``: a ``distributed.LocalCluster`` started here and closed at the end,
  sized to the machine: one worker *process* per available CPU (``workers=`` overrides),
  one thread each (Dask's nanny also sets ``OMP_NUM_THREADS=1`` for them, so torch runs
  single-threaded in each), whose malloc keeps freed memory for reuse
  (:mod:`~sam_widget.batch.malloc`). Its dashboard link is printed when the dashboard can start.
  Closing it gives this process back the environment variables Dask's nanny overwrote.
  Without Dask installed: this process, with a note saying so.
- a ``distributed.Client``: that cluster, used as it is (nothing is started, resized or
  closed).
- another string (``"tcp://host:8786"``): a client is connected to that scheduler, used as
  it is, and disconnected at the end.
- ``"threads"``: this process, one image at a time (torch uses its own threads).

Both executors offer :meth:`run` (one call, for the model probe) and
:meth:`map_unordered`, which keeps at most ``window`` tasks in flight (memory stays bounded
however many images there are) and yields each task's tag with its result or exception, in
completion order. A worker process that dies mid-task has its task retried by the scheduler
(``distributed.scheduler.allowed-failures`` times, then the task fails with
``KilledWorker``, which is yielded like any other exception).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Callable, Generator, Iterable
from typing import Any

__all__ = ["DaskExecutor", "InProcessExecutor", "default_workers", "open_executor"]

Log = Callable[[str], None]
Job = tuple[Any, tuple[Any, ...]]  # (tag, args)


def default_workers() -> int:
    """Number of CPUs this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class InProcessExecutor:
    """Runs every task in this process, one after the other."""

    kind = "in-process"

    def __init__(self, note: str) -> None:
        self.workers = 1
        self.description = note

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def map_unordered(
        self, fn: Callable[..., Any], jobs: Iterable[Job], window: int | None = None
    ) -> Generator[tuple[Any, Any], None, None]:
        for tag, args in jobs:
            try:
                yield tag, fn(*args)
            except Exception as err:  # reported per task, like the Dask executor
                yield tag, err

    def close(self) -> None:
        pass


class DaskExecutor:
    """Runs tasks on a ``distributed`` cluster through ``client``.

    ``owned``: what to close at the end (the cluster we started and our client, or only
    the client we connected); nothing for a client the caller passed.
    """

    kind = "dask"

    def __init__(self, client: Any, description: str, owned: tuple[Any, ...] = ()) -> None:
        self.client = client
        self.description = description
        self._owned = owned
        self._token = uuid.uuid4().hex[:12]
        info = client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = self.client.submit(fn, *args, pure=False, key=f"sam-widget-probe-{self._token}")
        try:
            return future.result()
        finally:
            future.release()

    def map_unordered(
        self, fn: Callable[..., Any], jobs: Iterable[Job], window: int | None = None
    ) -> Generator[tuple[Any, Any], None, None]:
        from distributed import as_completed

        limit = window if window is not None else 2 * self.workers + 2
        pending = iter(jobs)
        tags: dict[str, Any] = {}
        count = 0

        def submit() -> Any | None:
            nonlocal count
            try:
                tag, args = next(pending)
            except StopIteration:
                return None
            key = f"sam-widget-task-{self._token}-{count}"
            count += 1
            future = self.client.submit(fn, *args, key=key, pure=False)
            tags[future.key] = tag
            return future

        first = [f for f in (submit() for _ in range(max(1, limit))) if f is not None]
        if not first:
            return
        outstanding = {f.key: f for f in first}
        completed = as_completed(first)
        try:
            for future in completed:
                tag = tags.pop(future.key)
                outstanding.pop(future.key, None)
                try:
                    result: Any = future.result()
                except Exception as err:  # KilledWorker, CancelledError, ...
                    result = err
                future.release()
                nxt = submit()
                if nxt is not None:
                    outstanding[nxt.key] = nxt
                    completed.add(nxt)
                yield tag, result
        finally:
            # Stopped early (Ctrl+C, an error in the caller): a cluster we do not own must
            # not go on computing tasks nobody will collect.
            if outstanding:
                try:
                    self.client.cancel(list(outstanding.values()))
                except Exception:  # the client is already closed
                    pass

    def close(self) -> None:
        for thing in self._owned:
            try:
                thing.close()
            except Exception:  # closing a cluster that is already gone
                pass


def _is_client(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "distributed" and hasattr(obj, "submit")


class _EnvironRestorer:
    """Gives this process its environment variables back on ``close()``, as they were when
    the local cluster was made. Dask's nanny writes the workers' variables into the process
    that starts them (``distributed.nanny.pre-spawn-environ``: ``OMP_NUM_THREADS=1`` and the
    like, plus ``PYTHONHASHSEED`` and its own bookkeeping) and leaves them there: in the
    user's kernel they would reach every process it starts later."""

    def __init__(self) -> None:
        self._saved = dict(os.environ)

    def close(self) -> None:
        for key in [k for k in os.environ if k not in self._saved]:
            del os.environ[key]
        for key, value in self._saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def _local_cluster(workers: int | None, dashboard_address: str | None, log: Log) -> DaskExecutor:
    from distributed import Client, LocalCluster

    from .malloc import KeepFreedMemory

    n = default_workers() if workers is None else workers
    dashboard = dashboard_address
    if dashboard is not None and importlib.util.find_spec("bokeh") is None:
        log("Dask dashboard: not started (it needs bokeh: pip install 'bokeh>=3.1').")
        dashboard = None
    restorer = _EnvironRestorer()
    try:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            # Without a dashboard the scheduler still serves health checks over HTTP, by
            # default on 8787 (with a warning when that port is taken): any free port then.
            scheduler_kwargs=None if dashboard is not None else {"dashboard_address": ":0"},
            silence_logs=logging.ERROR,
        )
    except BaseException:
        restorer.close()  # the nanny may have written into this process's environment
        raise
    client = Client(cluster)
    client.register_plugin(KeepFreedMemory())
    if dashboard is not None:
        log(f"Dask dashboard: {client.dashboard_link}")
    text = f"a local Dask cluster of {n} worker process{'es' if n != 1 else ''}, 1 thread each"
    return DaskExecutor(client, text, owned=(client, cluster, restorer))


def open_executor(
    client: Any = None,
    *,
    workers: int | None = None,
    dashboard_address: str | None = ":8787",
    log: Log = print,
) -> InProcessExecutor | DaskExecutor:
    """The executor for ``client`` (see the module docstring). ``workers`` sizes a local
    cluster only. Raises ``TypeError``/``ValueError`` for a bad ``client`` or ``workers``
    and ``ImportError`` when a scheduler address is given but Dask is not installed."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise TypeError(f"workers must be an int or None, got {type(workers).__name__}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if _is_client(client):
        return DaskExecutor(client, f"the Dask cluster of {client!r}")
    if client is not None and not isinstance(client, str):
        raise TypeError(
            "client must be None, 'local', 'threads', a scheduler address or a "
            f"distributed.Client, got {type(client).__name__}"
        )
    if client == "threads":
        note = "Running in this process, one image at a time (scheduler 'threads')."
        log(note)
        return InProcessExecutor(note)
    has_dask = importlib.util.find_spec("distributed") is not None
    if client is None or client == "local":
        if not has_dask:
            note = (
                "Dask is not installed: running in this process, one image at a time "
                "(pip install 'sam-widget[dask]' for a local or remote cluster)."
            )
            log(note)
            return InProcessExecutor(note)
        executor = _local_cluster(workers, dashboard_address, log)
        log(f"Running on {executor.description}.")
        return executor
    if not client:
        raise ValueError("client (scheduler) must not be an empty string")
    if not has_dask:
        raise ImportError(f"scheduler {client!r} needs Dask: pip install 'sam-widget[dask]'")
    from distributed import Client

    dask_client = Client(client)
    executor = DaskExecutor(dask_client, f"the Dask cluster at {client}", owned=(dask_client,))
    log(f"Running on {executor.description} ({executor.workers} workers).")
    return executor
