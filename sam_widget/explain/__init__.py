"""SAM's internals as numpy arrays, for teaching and analysis (no widget needed).

- :func:`explain`: one decode's intermediate tensors (positional encodings, prompt tokens,
  attention maps per layer and head, hypernetwork weights, the 4 masks and their IoUs).
- :func:`explain_amg`: automatic mask generation stage by stage.
- :func:`embedding_pca`: the image embedding's 256 channels as an RGB picture.
- :class:`ExplainPanel` (imported on first use): a view that explains a ``SamWidget``'s
  active object after every click, as small images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .amg import STAGES, AmgExplanation, AmgStage, explain_amg
from .decode import Explanation, explain
from .pca import embedding_pca

if TYPE_CHECKING:
    from .panel import ExplainPanel

__all__ = [
    "STAGES",
    "AmgExplanation",
    "AmgStage",
    "ExplainPanel",
    "Explanation",
    "embedding_pca",
    "explain",
    "explain_amg",
]


def __getattr__(name: str) -> Any:
    if name == "ExplainPanel":  # ipywidgets only when the panel is used
        from .panel import ExplainPanel

        return ExplainPanel
    raise AttributeError(f"module 'sam_widget.explain' has no attribute {name!r}")
