"""SAM 2's two-way transformer: SAM's (``sam_widget.models.sam.transformer``), whose
feed-forward is a two-layer ``MLP`` with ReLU under the key ``mlp.layers.<i>`` instead of
SAM's ``mlp.lin1`` / ``mlp.lin2``.

Same computation as ``sam2/modeling/sam/transformer.py`` (``TwoWayTransformer`` with
``activation=nn.ReLU``, ``attention_downsample_rate=2``); only the feed-forward's module
names differ from SAM's, so the layers are SAM's with that module swapped.
"""

from __future__ import annotations

from ..sam.common import MLP
from ..sam.transformer import TwoWayAttentionBlock, TwoWayTransformer

__all__ = ["build_two_way_transformer"]


def build_two_way_transformer(
    depth: int, embedding_dim: int, num_heads: int, mlp_dim: int
) -> TwoWayTransformer:
    """SAM's :class:`TwoWayTransformer` with SAM 2's feed-forward modules."""
    transformer = TwoWayTransformer(depth, embedding_dim, num_heads, mlp_dim)
    for layer in transformer.layers:
        assert isinstance(layer, TwoWayAttentionBlock)
        # ReLU between two linear layers, as SAM's MLPBlock computes it.
        layer.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2)  # type: ignore[assignment]
    return transformer
