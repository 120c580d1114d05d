"""Prompt encoder: points, boxes and a low-res mask -> sparse tokens and a dense embedding.

Points and box corners are encoded with random Fourier features of their position
(Tancik et al. 2020, as used by SAM) plus a learned embedding per kind (negative point,
positive point, box top-left, box bottom-right, padding). A mask prompt is downscaled 4x by
two strided convs to the embedding grid; without one a learned ``no_mask_embed`` fills the
grid. Names follow ``segment_anything/modeling/prompt_encoder.py`` for checkpoint loading.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d, tensor_state_key

__all__ = ["PositionEmbeddingRandom", "PromptEncoder"]


class PositionEmbeddingRandom(nn.Module):
    """Fourier features ``[sin(2π f·p), cos(2π f·p)]`` of positions p in [-1, 1]² with a fixed
    random frequency matrix f (2 x F, a persistent buffer: it is part of the checkpoints)."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def encode_unit(self, coords: torch.Tensor) -> torch.Tensor:
        """... x 2 float, XY in [0, 1] -> ... x 2F (sin features, then cos features)."""
        proj = (2.0 * coords - 1.0) @ self.positional_encoding_gaussian_matrix
        proj = (2.0 * math.pi) * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an H x W grid of cells -> 2F x H x W."""
        h, w = size
        gauss = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, device=gauss.device, dtype=gauss.dtype) + 0.5) / h
        xs = (torch.arange(w, device=gauss.device, dtype=gauss.dtype) + 0.5) / w
        # H x W x 2 grid of (x, y) cell centres in [0, 1].
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        # H x W x 2F -> 2F x H x W
        return self.encode_unit(grid).permute(2, 0, 1)

    def forward_with_coords(
        self, coords: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """B x N x 2 XY in pixels of an (H, W) image -> B x N x 2F."""
        h, w = image_size
        dtype = self.positional_encoding_gaussian_matrix.dtype
        extent = torch.tensor([w, h], device=coords.device, dtype=dtype)
        return self.encode_unit(coords.to(dtype) / extent)


class PromptEncoder(nn.Module):
    """Embeds SAM prompts for the mask decoder.

    Point labels: 1 foreground, 0 background, -1 padding ("not a point"; its positional
    part is dropped). Other labels get the positional encoding only, as in the published
    model.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        # The mask prompt is 4x the embedding grid (256² for a 64² grid).
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        # Indices 0..6 match the checkpoint keys mask_downscaling.{0,1,3,4,6}.
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        # get_dense_pe() cache: (key identifying the frequency buffer's state, value).
        self._dense_pe_cache: tuple[object, torch.Tensor] | None = None

    def _embedding(self, index: int) -> torch.Tensor:
        """Learned embedding ``point_embeddings[index]`` as a C vector."""
        module = self.point_embeddings[index]
        assert isinstance(module, nn.Embedding)
        return module.weight[0]

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid, 1 x C x H x W.

        Cached: recomputed only when the frequency buffer is replaced, moved or modified in
        place (e.g. by ``load_state_dict``). Treat the result as read-only.
        """
        gauss = self.pe_layer.positional_encoding_gaussian_matrix
        # An inference-mode result must not be reused outside inference mode (autograd
        # refuses inference tensors there).
        key = (tensor_state_key(gauss), torch.is_inference_mode_enabled())
        cached = self._dense_pe_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            pe = self.pe_layer(self.image_embedding_size).unsqueeze(0)
        self._dense_pe_cache = (key, pe)
        return pe

    def no_mask_dense(self) -> torch.Tensor:
        """The dense embedding used when there is no mask prompt, 1 x C x H x W (a view)."""
        h, w = self.image_embedding_size
        # C -> 1 x C x 1 x 1 -> 1 x C x H x W (broadcast view, no copy)
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """B x N x 2 XY (model input frame, pixels) and B x N labels -> B x N(+1) x C.

        ``pad`` appends one padding point per prompt (the published model does this when
        there is no box, so the decoder always sees a "not a point" token then).
        """
        coords = coords + 0.5  # pixel index -> pixel centre
        if pad:
            b = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((b, 1), -1)], dim=1)
        pe = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        # B x N -> B x N x 1 masks, broadcast against C vectors.
        is_pad = (labels == -1).unsqueeze(-1)
        is_neg = (labels == 0).unsqueeze(-1)
        is_pos = (labels == 1).unsqueeze(-1)
        out = torch.where(is_pad, self.not_a_point_embed.weight[0], pe)
        out = out + is_neg * self._embedding(0) + is_pos * self._embedding(1)
        return out

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """B x 4 XYXY boxes (model input frame, pixels) -> B x 2 x C corner tokens."""
        # B x 4 -> B x 2 corners x 2 coords
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        # 2 x C: top-left and bottom-right corner embeddings, broadcast over B.
        corner_kind = torch.stack([self._embedding(2), self._embedding(3)], dim=0)
        return pe + corner_kind

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """B x 1 x 4H x 4W mask logits -> B x C x H x W dense embedding."""
        return self.mask_downscaling(masks)

    def encode(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Like ``forward``, but the dense output is ``None`` when there is no mask prompt
        (the decoder's fast path then uses the image-only precomputation)."""
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        weight = self.no_mask_embed.weight
        parts = [weight.new_empty((batch, 0, self.embed_dim))]
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        dense = self.embed_masks(masks) if masks is not None else None
        return sparse, dense

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens B x N x C (points, then box corners) and dense B x C x H x W."""
        sparse, dense = self.encode(points, boxes, masks)
        if dense is None:
            dense = self.no_mask_dense().expand(sparse.shape[0], -1, -1, -1)
        return sparse, dense
