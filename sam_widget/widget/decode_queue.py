"""The session's pending object decodes: latest state per object wins, plus the refinement
backlog (plain data; :class:`~.session.Session` holds its lock around every call).

- One job per object id, in the order the objects last changed (oldest first).
- With refinement each prompt state's ``mask_input`` is the previous state's result, so a
  state that a newer one replaces before it was decoded is kept in the object's backlog and
  decoded (one decoder run each) before the queued job: the mask is a function of the
  prompt states alone, as a replay (``from_dict``, a reopened annotator project) computes
  it, not of how fast the worker kept up. A state that does not refine (a clear, a single
  ambiguous point, refinement off) drops the backlog.
- ``seqs`` holds each object's newest ``seq``: a job or result of another seq is stale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chain import Prompt

__all__ = ["DecodeJob", "DecodeQueue"]


@dataclass(frozen=True)
class DecodeJob:
    """One object's prompt state to decode (or a given mask to show) on one image."""

    image_id: int
    object_id: int
    seq: int
    prompt: Prompt
    # a given mask ((H, W) bool) and its score instead of a decode (see Session.show_mask)
    given: tuple[np.ndarray, float | None] | None = None
    # the object's brush/eraser strokes, applied to the decoded mask (no decoder run)
    strokes: tuple[Any, ...] = ()


class DecodeQueue:
    """Pending decodes per object (see the module docstring). ``refines(prompt)``: whether
    decoding ``prompt`` reads the previous state's logits."""

    def __init__(self, refines: Callable[[Prompt], bool]) -> None:
        self._refines = refines
        self._jobs: OrderedDict[int, DecodeJob] = OrderedDict()
        # object id -> prompt states submitted before its queued job and not decoded yet,
        # oldest first
        self._backlog: dict[int, list[Prompt]] = {}
        self._seqs: dict[int, int] = {}

    def __bool__(self) -> bool:
        """Whether any job is queued."""
        return bool(self._jobs)

    def submit(self, job: DecodeJob) -> None:
        """Queue ``job`` as its object's newest prompt state (replacing a queued one)."""
        oid = job.object_id
        queued = self._jobs.get(oid)
        if not self._refines(job.prompt):
            self._backlog.pop(oid, None)  # no state before this one matters any more
        elif (
            queued is not None
            and queued.image_id == job.image_id
            and queued.given is None
            and queued.prompt != job.prompt  # a stroke-only change: no prompt state to decode
        ):
            self._backlog.setdefault(oid, []).append(queued.prompt)
        self._put(job)

    def show(self, job: DecodeJob) -> None:
        """Queue ``job`` (with a ``given`` mask) as its object's newest state; the states
        before it are not decoded."""
        self._backlog.pop(job.object_id, None)
        self._put(job)

    def _put(self, job: DecodeJob) -> None:
        self._seqs[job.object_id] = job.seq
        self._jobs[job.object_id] = job
        self._jobs.move_to_end(job.object_id)

    def take(self) -> DecodeJob:
        """The job of the object that changed least recently, removed (``KeyError`` when
        none is queued)."""
        _, job = self._jobs.popitem(last=False)
        return job

    def take_backlog(self, object_id: int) -> list[Prompt]:
        """The object's earlier states to decode before its job, oldest first, removed."""
        return self._backlog.pop(object_id, [])

    def queued(self, object_id: int) -> DecodeJob | None:
        return self._jobs.get(object_id)

    def seq(self, object_id: int) -> int | None:
        """The object's newest seq (None: unknown or forgotten)."""
        return self._seqs.get(object_id)

    def alive(self, job: DecodeJob) -> bool:
        """Whether ``job``'s state still matters to its object (same image assumed): the
        object is not forgotten, and ``job`` is its newest state or the base the next
        queued state refines from."""
        if job.object_id not in self._seqs:
            return False
        queued = self._jobs.get(job.object_id)
        if queued is None or queued.seq == job.seq:
            return True
        backlog = self._backlog.get(job.object_id)
        following = backlog[0] if backlog else queued.prompt
        return self._refines(following)

    def forget(self, object_id: int) -> None:
        """The object was deleted: its job, backlog and seq go."""
        self._seqs.pop(object_id, None)
        self._jobs.pop(object_id, None)
        self._backlog.pop(object_id, None)

    def drop_jobs(self) -> None:
        """Every queued job and backlog goes; the seqs stay."""
        self._jobs.clear()
        self._backlog.clear()

    def clear(self) -> None:
        """Everything goes (a new image)."""
        self.drop_jobs()
        self._seqs.clear()
