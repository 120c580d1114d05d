"""``auto_annotate`` and ``embed``: a dataset through the automatic mask generator or the
image encoder, on a Dask cluster or in this process, resumable and tolerant of bad files.

The driver (this process) lists the images, hashes each file, and skips those whose result
key (:func:`~sam_widget.batch.keys.result_key`) is already stored; the rest become tasks
that carry only a path and small settings (:mod:`~sam_widget.batch.worker`). Results come
back as compact COCO RLE records and are written by the driver, one image at a time, each
write atomic, the "done" record last. A run killed at any moment (Ctrl+C, SIGKILL of the
driver, a dead worker) and started again therefore finishes the remaining images with no
duplicate and no missing one.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..engine.images import MAX_PIXELS
from .execution import open_executor
from .inputs import ImageItem, collect_images
from .keys import ModelSpec, file_sha256, generator_params, params_key, result_key
from .outdir import OutDir
from .summary import UNTRAINED_NOTE, BatchInterrupted, BatchSummary, Failure, ProgressBar
from .worker import annotate_task, embed_task, probe_task

__all__ = ["auto_annotate", "embed"]

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_limits(min_side: Any, max_pixels: Any) -> tuple[int, int]:
    for name, value in (("min_side", min_side), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(min_side), int(max_pixels)


def _start(
    images: Any,
    model: str,
    checkpoint: str | os.PathLike[str] | None,
    pretrained: bool,
    seed: int,
    device: str | None,
    min_side: Any,
    max_pixels: Any,
    log: Log | None,
) -> tuple[Log, tuple[int, int], list[ImageItem], ModelSpec]:
    """What ``auto_annotate`` and ``embed`` start from, checked in this order: the log
    (stderr by default), the size limits, the images, the model spec."""
    log = _stderr if log is None else log
    limits = _check_limits(min_side, max_pixels)
    items = collect_images(images)
    spec = ModelSpec.create(model, checkpoint, pretrained=pretrained, seed=seed, device=device)
    return log, limits, items, spec


def _record_peak(summary: BatchSummary, result: Any) -> None:
    if isinstance(result, dict) and "pid" in result and "peak_rss_mb" in result:
        pid = str(result["pid"])
        summary.peak_rss_mb[pid] = max(summary.peak_rss_mb.get(pid, 0.0), result["peak_rss_mb"])


def _task_failure(result: Any) -> str | None:
    """The reason a task failed, or None if it returned a usable result."""
    if isinstance(result, BaseException):
        return f"the worker failed: {type(result).__name__}: {result}"
    if result.get("status") == "failed":
        return str(result["reason"])
    return None


def auto_annotate(
    images: Any,
    project: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    model: str = "vit_t",
    checkpoint: str | os.PathLike[str] | None = None,
    client: Any = None,
    *,
    pretrained: bool = True,
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
    dashboard_address: str | None = ":8787",
    progress: bool = True,
    min_side: int = 8,
    max_pixels: int = MAX_PIXELS,
    log: Log | None = None,
    **generator_params_: Any,
) -> BatchSummary:
    """Run ``SamAutomaticMaskGenerator`` over every image and store the masks.

    ``images``: a folder (searched recursively), a glob pattern, a file, or a list of them.
    ``out``: a folder for one SA-1B JSON per image (:mod:`~sam_widget.batch.outdir`);
    ``project``: an annotator project file (records with source "automatic"); at least one.
    ``model`` / ``checkpoint`` / ``pretrained`` / ``seed`` / ``device``: how each worker
    builds its model (:class:`~sam_widget.batch.keys.ModelSpec`; ``pretrained=False`` gives
    random weights from ``seed``, and the run says they are untrained). ``client``: where
    to run (:func:`~sam_widget.batch.execution.open_executor`: None = a local Dask cluster
    of ``workers`` processes, ``"threads"`` = this process, an address or a
    ``distributed.Client`` = that cluster). ``min_side`` / ``max_pixels``: smaller or larger
    images are recorded as failed. ``generator_params_``: ``SamAutomaticMaskGenerator``
    options (``points_per_side=16``, ``pred_iou_thresh=0.8``, ...).

    Images already done with the same content, weights and parameters are skipped. A
    failed image never stops the run; it is listed with its reason in the returned
    :class:`~sam_widget.batch.summary.BatchSummary` (and in ``out/batch-summary.json``).
    """
    if project is None and out is None:
        raise ValueError(
            "give out= (a folder for SA-1B JSON files), project= (an annotator project "
            "file), or both"
        )
    log, limits, items, spec = _start(
        images, model, checkpoint, pretrained, seed, device, min_side, max_pixels, log
    )
    params = generator_params(generator_params_)
    pkey = params_key(params)
    sinks = _open_sinks(out, project)
    summary = BatchSummary("auto", len(items), params_key=pkey)
    for sink in sinks:
        summary.outputs[sink.label] = sink.location
    executor = None
    try:
        executor = open_executor(
            client, workers=workers, dashboard_address=dashboard_address, log=log
        )
        summary.executor = executor.description
        _describe_model(summary, executor.run(probe_task, spec, params, pkey), log)
        for sink in sinks:
            sink.start(summary.weights_id, pkey)
        meta = {
            "model": spec.variant,
            "weights_id": summary.weights_id,
            "pretrained": summary.pretrained,
            "params_key": pkey,
            "params": params,
        }
        run = _AutoRun(summary, sinks, ProgressBar(len(items), "Automatic masks", progress))
        jobs = run.jobs(items, (spec, params, pkey, limits))
        run.collect(executor.map_unordered(annotate_task, jobs), meta)
    finally:
        if executor is not None:
            executor.close()
        for sink in sinks:
            sink.finish(summary)
    return summary


class _AutoRun:
    """The driver's side of one ``auto_annotate`` run: skip, submit, store, count."""

    def __init__(self, summary: BatchSummary, sinks: list[Any], bar: ProgressBar) -> None:
        self.summary = summary
        self.sinks = sinks
        self.bar = bar

    def fail(self, item: ImageItem, reason: str) -> None:
        self.summary.failed.append(Failure(item.name, str(item.path), reason))
        for sink in self.sinks:
            sink.write_failed(item, reason)
        self.bar.update("failed")

    def jobs(
        self, items: list[ImageItem], settings: tuple[Any, ...]
    ) -> Iterator[tuple[Any, tuple[Any, ...]]]:
        """Tasks for the images not done yet (hashed here, lazily, as tasks are taken)."""
        wid, pkey = self.summary.weights_id, self.summary.params_key
        for item in items:
            try:
                sha = file_sha256(item.path)
            except FileNotFoundError:
                self.fail(item, f"no such file: {item.path}")
                continue
            except OSError as err:
                self.fail(item, f"cannot read the file: {err}")
                continue
            key = result_key(sha, wid, pkey)
            if all(sink.is_done(item, sha, key) for sink in self.sinks):
                self.summary.skipped += 1
                self.bar.update("skipped")
                continue
            yield (item, key), (str(item.path), sha, *settings)

    def collect(self, results: Iterator[tuple[Any, Any]], meta: dict[str, Any]) -> None:
        """Store each result as it arrives; a failure is recorded and the run goes on."""
        summary = self.summary
        started = time.perf_counter()
        try:
            for (item, key), result in results:
                _record_peak(summary, result)
                reason = _task_failure(result)
                if reason is None and result["weights_id"] != summary.weights_id:
                    reason = (
                        f"the worker's model differs (weights {result['weights_id'][:12]}, "
                        f"expected {summary.weights_id[:12]}): do all workers see the same "
                        "checkpoint?"
                    )
                if reason is None:
                    try:
                        for sink in self.sinks:
                            sink.write_done(item, key, result, meta)
                    except (OSError, RuntimeError, ValueError) as err:
                        reason = f"could not store the result: {err}"
                if reason is not None:
                    self.fail(item, reason)
                    continue
                summary.done += 1
                summary.masks += len(result["records"])
                self.bar.update("done")
        except KeyboardInterrupt:
            summary.interrupted = True
            raise BatchInterrupted(summary) from None
        finally:
            summary.seconds = time.perf_counter() - started
            self.bar.close()
            close = getattr(results, "close", None)
            if close is not None:  # stop the executor's generator (cancels its tasks) now
                close()


def _describe_model(summary: BatchSummary, probe: dict[str, Any], log: Log) -> None:
    summary.weights_id = str(probe["weights_id"])
    summary.pretrained = bool(probe["pretrained"])
    summary.variant = str(probe["variant"])
    if not summary.pretrained:
        log(UNTRAINED_NOTE)


class _OutSink:
    label = "out"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.out = OutDir(folder)
        self.location = str(self.out.folder)

    def start(self, weights_id: str, params_key: str) -> None:
        pass

    def is_done(self, item: ImageItem, sha: str, key: str) -> bool:
        return self.out.is_done(item, key)

    def write_done(
        self, item: ImageItem, key: str, result: dict[str, Any], meta: dict[str, Any]
    ) -> None:
        self.out.write_done(item, key, result, meta)

    def write_failed(self, item: ImageItem, reason: str) -> None:
        self.out.write_failed(item, reason)

    def finish(self, summary: BatchSummary) -> None:
        self.out.write_summary(summary.to_dict())


def _open_sinks(out: Any, project: Any) -> list[Any]:
    sinks: list[Any] = []
    if out is not None:
        sinks.append(_OutSink(out))
    if project is not None:
        from .project import ProjectSink

        sinks.append(ProjectSink(project))
    return sinks


def embed(
    images: Any,
    cache_dir: str | os.PathLike[str],
    model: str = "vit_t",
    checkpoint: str | os.PathLike[str] | None = None,
    client: Any = None,
    *,
    pretrained: bool = True,
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
    dashboard_address: str | None = ":8787",
    progress: bool = True,
    min_side: int = 8,
    max_pixels: int = MAX_PIXELS,
    log: Log | None = None,
) -> BatchSummary:
    """Precompute image embeddings into the on-disk embedding cache ``cache_dir`` (an
    :class:`~sam_widget.engine.embedding_cache.EmbeddingCache` folder, one ``<key>.npz``
    per image and model), so that a widget or annotator using that cache folder shows each
    image ready to click. Images already in the cache are skipped. Arguments as in
    :func:`auto_annotate`; every worker must be able to write to ``cache_dir``.
    """
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, got {type(cache_dir).__name__}")
    log, limits, items, spec = _start(
        images, model, checkpoint, pretrained, seed, device, min_side, max_pixels, log
    )
    folder = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    os.makedirs(folder, exist_ok=True)
    summary = BatchSummary("embed", len(items), outputs={"cache": folder})
    executor = open_executor(client, workers=workers, dashboard_address=dashboard_address, log=log)
    bar: ProgressBar | None = None
    try:
        summary.executor = executor.description
        _describe_model(summary, executor.run(probe_task, spec, None, ""), log)
        bar = ProgressBar(len(items), "Embeddings", progress)
        started = time.perf_counter()
        jobs = ((item, (str(item.path), None, spec, folder, limits)) for item in items)
        results = executor.map_unordered(embed_task, jobs)
        try:
            for item, result in results:
                _record_peak(summary, result)
                reason = _task_failure(result)
                if reason is None and result["weights_id"] != summary.weights_id:
                    reason = "the worker's model differs: do all workers see the same checkpoint?"
                if reason is not None:
                    summary.failed.append(Failure(item.name, str(item.path), reason))
                    bar.update("failed")
                elif result["status"] == "cached":
                    summary.skipped += 1
                    bar.update("skipped")
                else:
                    summary.done += 1
                    bar.update("done")
        except KeyboardInterrupt:
            summary.interrupted = True
            raise BatchInterrupted(summary) from None
        finally:
            summary.seconds = time.perf_counter() - started
            results.close()
    finally:
        if bar is not None:
            bar.close()
        executor.close()
    return summary
