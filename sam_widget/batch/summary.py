"""What a batch run reports: a progress bar while it runs, a summary at the end."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BatchInterrupted", "BatchSummary", "Failure", "ProgressBar"]

UNTRAINED_NOTE = (
    "NOTE: the model has untrained, random weights: its masks are meaningless "
    "(use them only to try the pipeline)."
)


@dataclass(frozen=True)
class Failure:
    """One image that failed: its output ``name``, file ``path`` and the ``reason``."""

    name: str
    path: str
    reason: str


@dataclass
class BatchSummary:
    """The outcome of :func:`~sam_widget.batch.auto_annotate` or :func:`~sam_widget.batch.embed`.

    ``done``: images processed by this run; ``skipped``: images whose result was already
    there (``auto``: same image content, weights and parameters; ``embed``: the embedding
    was already in the cache); ``failed``: the images that failed, with reasons. ``masks``:
    masks written by this run (``auto``). ``seconds``: wall time of the processing (after
    the model was loaded once); ``images_per_minute``: images done or failed by this run
    per minute of it.
    """

    task: str
    total: int
    variant: str = ""
    weights_id: str = ""
    pretrained: bool = True
    params_key: str = ""
    executor: str = ""
    done: int = 0
    skipped: int = 0
    masks: int = 0
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        """Images with a result after this run (done now or before)."""
        return self.done + self.skipped

    @property
    def images_per_minute(self) -> float:
        processed = self.done + len(self.failed)
        return 60.0 * processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_minute"] = self.images_per_minute
        return out

    def format(self) -> str:
        """A few lines for people: counts, speed, and every failure with its reason."""
        what = "embedded" if self.task == "embed" else "annotated"
        already = "already cached" if self.task == "embed" else "already done"
        lines = [
            f"{self.total} images: {self.done} {what}, {self.skipped} {already}, "
            f"{len(self.failed)} failed"
            + (" (interrupted)" if self.interrupted else "")
            + f"; {self.images_per_minute:.1f} images/min",
        ]
        if self.task == "auto":
            lines.append(f"{self.masks} masks written")
        lines.append(f"model {self.variant} (weights {self.weights_id[:12]}), {self.executor}")
        if not self.pretrained:
            lines.append(UNTRAINED_NOTE)
        for where, path in self.outputs.items():
            lines.append(f"{where}: {path}")
        for f in self.failed:
            lines.append(f"FAILED {f.path}: {f.reason}")
        return "\n".join(lines)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl+C during a batch run; ``summary`` says what was finished (all of it stored)."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__("batch run interrupted")
        self.summary = summary


class ProgressBar:
    """tqdm bar over the run's images with done / failed counts and images per minute."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="img", disable=not enabled)
        self._start = time.perf_counter()
        self.done = 0
        self.failed = 0
        self.skipped = 0

    def update(self, status: str) -> None:
        """Count one image: ``status`` is ``"done"``, ``"failed"`` or ``"skipped"``."""
        if status == "done":
            self.done += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.skipped += 1
        minutes = (time.perf_counter() - self._start) / 60.0
        rate = (self.done + self.failed) / minutes if minutes > 0 else 0.0
        self._bar.set_postfix(
            done=self.done,
            failed=self.failed,
            skipped=self.skipped,
            img_per_min=f"{rate:.1f}",
            refresh=False,
        )
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
