"""The annotator-project output of a batch run (:mod:`sam_widget.data.store`).

Each finished image is added to the project (deduplicated by content SHA-256) and its masks
are stored with :meth:`Project.put_automatic` under (image SHA-256, weights id, parameters
key): source ``"automatic"``, one transaction per image, replacing a previous copy of the
same key, so a rerun or a retried task never doubles an image's masks. An image is done when
:meth:`Project.has_automatic` says so for this run's key. The run's summary (failures with
their reasons included) is kept in the project state under ``"batch_summary"``.
"""

from __future__ import annotations

import os
from typing import Any

from ..data.store import Project
from .inputs import ImageItem
from .summary import BatchSummary

__all__ = ["ProjectSink"]

STATE_KEY = "batch_summary"


class ProjectSink:
    """Writes a batch run into the project file ``path`` (created if missing)."""

    label = "project"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.project = Project.open(path)
        self.location = str(self.project.path)
        self.weights_id = ""
        self.params_key = ""

    def start(self, weights_id: str, params_key: str) -> None:
        self.weights_id = weights_id
        self.params_key = params_key

    def is_done(self, item: ImageItem, sha: str, key: str) -> bool:
        try:
            return self.project.has_automatic(sha, self.weights_id, self.params_key)
        except KeyError:  # not in the project yet
            return False

    def write_done(
        self, item: ImageItem, key: str, result: dict[str, Any], meta: dict[str, Any]
    ) -> None:
        sha = str(result["sha256"])
        added = self.project.add_images([item.path])
        if added.failed:
            raise RuntimeError(f"the project could not add {item.path}: {added.failed[0][1]}")
        try:  # add_images hashed the file again: it must still hold the pixels of the masks
            self.project.image(sha)
        except KeyError:
            raise RuntimeError(
                "the file changed on disk during the run; run again to include it"
            ) from None
        self.project.put_automatic(sha, self.weights_id, self.params_key, result["records"])

    def write_failed(self, item: ImageItem, reason: str) -> None:
        # The project lists images with masks; failures live in the run's summary.
        pass

    def finish(self, summary: BatchSummary) -> None:
        try:
            self.project.set_state(STATE_KEY, summary.to_dict())
        finally:
            self.project.close()
