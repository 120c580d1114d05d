"""SAM's internals as numpy arrays, for teaching and analysis (no widget needed).

- :func:`explain`: one decode's intermediate tensors (positional encodings, prompt tokens,
  attention maps per layer and head, hypernetwork weights, the 4 masks and their IoUs).
- :func:`explain_amg`: automatic mask generation stage by stage.
- :func:`embedding_pca`: the image embedding's 256 channels as an RGB picture.
"""

from __future__ import annotations

from .amg import STAGES, AmgExplanation, AmgStage, explain_amg
from .decode import Explanation, explain
from .pca import embedding_pca

__all__ = [
    "STAGES",
    "AmgExplanation",
    "AmgStage",
    "Explanation",
    "embedding_pca",
    "explain",
    "explain_amg",
]
