"""Full-resolution statistics of SAM's upscaled mask logits without upscaling every pixel.

SAM turns low-res logits L (h x w, 256 x 256) into full-resolution logits F by two bilinear
resizes (align_corners=False): to the padded model square (4x), then, after cropping the
padding, to the original image size (``Sam.postprocess_masks``). Both are separable, so
each output pixel is a weighted sum of a few low-res values with non-negative weights that
sum to one (2 taps per axis and stage, so at most 4 x 4 low-res pixels). Hence on any tile
of output pixels, F lies between the minimum and the maximum of L over the low-res block
that the tile reads.

:class:`TiledUpscaler` cuts the output into ``tile x tile`` squares and, per threshold t,
classifies each tile from those bounds: all pixels > t, none, or "mixed". Only mixed tiles
(the ones a mask boundary runs through) are evaluated pixel by pixel, with the composed
weights of both resizes. That gives the pixel counts the stability score needs, the mask's
box and the mask itself at a small fraction of the cost of upscaling everything.

The values equal ``Sam.postprocess_masks`` up to float32 rounding (the weights are composed
instead of applied in two rounded steps): a pixel can only come out differently when its
logit is within about 1e-6 of a threshold.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...models.geometry import ResizeLongestSide
from ...models.interface import ImageGeometry
from .postprocess import masks_to_boxes

__all__ = ["PlainUpscaler", "TiledUpscaler", "Upscaler", "make_upscaler"]


def _stage_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (align_corners=False) resize n_in -> n_out along one axis: for each output
    index its first source index, the step to the second (0 at the border) and the second's
    weight, computed in float32 as PyTorch's CPU kernel does."""
    scale = np.float32(n_in) / np.float32(n_out)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    first = np.floor(src).astype(np.int64)
    lam = np.clip(src - first.astype(np.float32), 0, 1).astype(np.float32)
    step = (first < n_in - 1).astype(np.int64)
    return first, step, lam


def _axis_weights(n_low: int, n_square: int, n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_low) float32 matrix: output index <- low-res index, both resizes composed.

    Stage 1 resizes n_low -> n_square and keeps the first n_in samples (the crop of the
    padding); stage 2 resizes n_in -> n_out.
    """
    a, a_step, lam1 = _stage_taps(n_low, n_square)
    b, b_step, lam2 = _stage_taps(n_in, n_out)
    weights = np.zeros((n_out, n_low), dtype=np.float64)
    rows = np.arange(n_out)
    for mid, w_mid in ((b, 1.0 - lam2.astype(np.float64)), (b + b_step, lam2.astype(np.float64))):
        for src, w_src in (
            (a[mid], 1.0 - lam1[mid].astype(np.float64)),
            (a[mid] + a_step[mid], lam1[mid].astype(np.float64)),
        ):
            np.add.at(weights, (rows, src), w_mid * w_src)
    return torch.from_numpy(weights.astype(np.float32))


def _count_true(flags: torch.Tensor) -> torch.Tensor:
    """(M, ...) bool -> (M,) int64: the number of True entries of each row.

    A contiguous bool row of a multiple of 8 entries, read as int64 words, has one byte per
    entry (0 or 1); the sum of k words adds the bytes lane by lane without carries while
    k < 256, so the row's count is the sum of the 8 byte lanes of that sum. That reads the
    flags once instead of widening each one to int64 (~25x faster on a 2-core Xeon).
    """
    m = flags.shape[0]
    if m == 0:
        return torch.zeros(0, dtype=torch.int64, device=flags.device)
    rows = flags.reshape(m, -1)
    width = rows.shape[1]
    if width % 8 or width // 8 >= 256 or not rows.is_contiguous():
        return rows.sum(dim=1)
    words = rows.view(torch.uint8).view(torch.int64)  # M x (width / 8)
    lanes = words.sum(dim=1, keepdim=True).view(torch.uint8)  # M x 8, each lane < 256
    return lanes.sum(dim=1, dtype=torch.int64)


def _first(flags: torch.Tensor) -> torch.Tensor:
    """(M, K) bool -> (M,) int64 index of the first True of each row (0 when none)."""
    return flags.to(torch.uint8).argmax(dim=1)


def _last(flags: torch.Tensor) -> torch.Tensor:
    """(M, K) bool -> (M,) int64 index of the last True of each row (K - 1 when none)."""
    return flags.shape[1] - 1 - flags.flip(1).to(torch.uint8).argmax(dim=1)


def _any_rows_cols(flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, t, t) bool -> (whether row r has a True, whether column c has one), (M, t) each.

    As ``_count_true``: with t a multiple of 8, a row is t / 8 int64 words of 0/1 bytes, so
    a row has a True iff its words are not all zero, and summing the rows' words (t < 256
    of them) gives per byte lane the count of Trues in that column.
    """
    m, t, _ = flags.shape
    if m == 0 or t % 8 or t >= 256 or not flags.is_contiguous():
        return flags.any(dim=2), flags.any(dim=1)
    words = flags.view(torch.uint8).view(torch.int64)  # M x t x (t / 8)
    rows = (words != 0).any(dim=2)
    cols = words.sum(dim=1).view(torch.uint8).view(m, t) != 0  # M x t/8 words -> M x t lanes
    return rows, cols


class _Axis:
    """Tiling of one output axis: per tile its low-res block start and local weights."""

    def __init__(self, weights: torch.Tensor, tile: int) -> None:
        n_out, n_low = weights.shape
        nz = weights > 0
        # Low-res support of every output index (contiguous, non-decreasing along the axis).
        first = nz.to(torch.uint8).argmax(dim=1)
        last = n_low - 1 - nz.flip(1).to(torch.uint8).argmax(dim=1)
        starts = torch.arange(0, n_out, tile)
        self.n_out = n_out
        self.n_tiles = len(starts)
        stops = torch.clamp(starts + tile, max=n_out)
        self.lo = first[starts]  # T: first low-res index a tile reads
        self.hi = last[stops - 1]  # T: last one
        self.block = int((self.hi - self.lo).max()) + 1  # K: low-res block length
        self.size = stops - starts  # T: output pixels in the tile (last may be short)
        self.start = starts
        # Local weights: tile t, output offset r, block offset k -> weight (T x tile x K).
        local = torch.zeros((self.n_tiles, tile, self.block), dtype=torch.float32)
        for t in range(self.n_tiles):
            lo, s0, n = int(self.lo[t]), int(starts[t]), int(self.size[t])
            width = min(self.block, n_low - lo)
            local[t, :n, :width] = weights[s0 : s0 + n, lo : lo + width]
        self.local = local
        # Block indices, clamped inside the grid (clamped columns have zero weight).
        self.index = torch.clamp(self.lo[:, None] + torch.arange(self.block), max=n_low - 1)


class TiledUpscaler:
    """Thresholded statistics and masks of upscaled logits for one crop geometry.

    low_hw: low-res grid (h, w); img_size: side of the padded model square; input_size:
    (h_in, w_in) of the resized crop inside that square; out_size: (H, W) of the crop in the
    original image; tile: output tile side in pixels.
    """

    def __init__(
        self,
        low_hw: Sequence[int],
        img_size: int,
        input_size: Sequence[int],
        out_size: Sequence[int],
        tile: int = 16,
        device: torch.device | str = "cpu",
    ) -> None:
        self.tile = tile
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.rows = _Axis(_axis_weights(low_hw[0], img_size, input_size[0], out_size[0]), tile)
        self.cols = _Axis(_axis_weights(low_hw[1], img_size, input_size[1], out_size[1]), tile)
        self.device = torch.device(device)
        for axis in (self.rows, self.cols):
            axis.local = axis.local.to(self.device)
            axis.index = axis.index.to(self.device)
        # Only this top-left part of the low-res grid is ever read.
        self.need = (int(self.rows.index.max()) + 1, int(self.cols.index.max()) + 1)

    # -- bounds ----------------------------------------------------------------------------

    def _bounds(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, Tr, Tc) lower and upper bounds of the logits in each output tile: the min and
        max of the low-res block the tile reads (or of a slightly larger window)."""
        n, h, w = low.shape
        # Sliding max over K consecutive columns, sampled at each tile's first column; a
        # window clipped at the grid's end starts earlier instead (a superset: still a bound).
        kc, kr = min(self.cols.block, w), min(self.rows.block, h)
        c_at = torch.clamp(self.cols.lo.to(low.device), max=w - kc)
        r_at = torch.clamp(self.rows.lo.to(low.device), max=h - kr)
        flat = low.reshape(n * h, 1, w)  # N x h x w -> Nh x 1 x w
        # (index_select: a plain gather along one dimension, much faster than x[:, 0, idx])
        cmax = F.max_pool1d(flat, kc, stride=1)[:, 0].index_select(1, c_at).view(n, h, -1)
        cmin = F.max_pool1d(-flat, kc, stride=1)[:, 0].index_select(1, c_at).view(n, h, -1)
        tc = cmax.shape[2]
        # Same along the rows: N x h x Tc -> N x Tc x h (pool over h) -> N x Tr x Tc
        rmax = F.max_pool1d(cmax.transpose(1, 2).reshape(n * tc, 1, h), kr, stride=1)
        rmin = F.max_pool1d(cmin.transpose(1, 2).reshape(n * tc, 1, h), kr, stride=1)
        upper = rmax[:, 0].index_select(1, r_at).view(n, tc, -1).transpose(1, 2)
        lower = rmin[:, 0].index_select(1, r_at).view(n, tc, -1).transpose(1, 2).neg()
        return lower, upper

    def _tiles(self, low: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Exact values of the tiles ``which`` ((M, 3) rows of (n, tile_row, tile_col)):
        (M, tile, tile) float32; pixels beyond the image edge are garbage."""
        n, tr, tc = which[:, 0], which[:, 1], which[:, 2]
        _, h, w = low.shape
        ri = self.rows.index.index_select(0, tr)  # M x Kr
        ci = self.cols.index.index_select(0, tc)  # M x Kc
        # flat offsets of the blocks in low (N x h x w): M x Kr x Kc
        at = (n[:, None] * h + ri)[:, :, None] * w + ci[:, None, :]
        block = low.reshape(-1).take(at)  # M x Kr x Kc
        rows = self.rows.local.index_select(0, tr)  # M x tile x Kr
        cols = self.cols.local.index_select(0, tc)  # M x tile x Kc
        # (M x tile x Kr) @ (M x Kr x Kc) @ (M x Kc x tile) -> M x tile x tile
        return rows @ block @ cols.transpose(1, 2)

    def _valid(self, which: torch.Tensor) -> torch.Tensor:
        """(M, tile, tile) bool: the tile pixels that lie inside the output."""
        ar = torch.arange(self.tile, device=which.device)
        r_ok = ar[None, :] < self.rows.size.to(which.device)[which[:, 1]][:, None]
        c_ok = ar[None, :] < self.cols.size.to(which.device)[which[:, 2]][:, None]
        return r_ok[:, :, None] & c_ok[:, None, :]

    # -- public ----------------------------------------------------------------------------

    def _prepare(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = low[:, : self.need[0], : self.need[1]].to(torch.float32)
        tmin, tmax = self._bounds(low)  # N x Tr x Tc
        return low, tmin, tmax

    def counts(self, low: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
        """(N, len(thresholds)) int64: pixels of the upscaled logits above each threshold.

        low: (N, h, w) low-res logits.
        """
        counts, _ = self._evaluate(low, thresholds, None)
        return counts

    def boxes(self, low: torch.Tensor, threshold: float) -> torch.Tensor:
        """(N, 4) int64 XYXY boxes (inclusive max pixel) of the upscaled logits above
        ``threshold``; [0, 0, 0, 0] for an empty mask."""
        _, boxes = self._evaluate(low, [], threshold)
        assert boxes is not None
        return boxes

    def stats(
        self, low: torch.Tensor, threshold: float, offset: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the generator needs of each candidate, in one pass over the tiles:
        (N, 2) int64 pixel counts above ``threshold + offset`` and ``threshold - offset``
        (the stability score) and the (N, 4) boxes above ``threshold`` (as ``counts`` and
        ``boxes``)."""
        counts, boxes = self._evaluate(low, [threshold + offset, threshold - offset], threshold)
        assert boxes is not None
        return counts, boxes

    def _evaluate(
        self, low: torch.Tensor, thresholds: Sequence[float], box_at: float | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Counts above each of ``thresholds`` and boxes above ``box_at`` (None: no boxes),
        evaluating every tile that is mixed at any of these levels once."""
        low, tmin, tmax = self._prepare(low)
        n = low.shape[0]
        levels = [*thresholds, *([] if box_at is None else [box_at])]
        mixed_at = [(tmin <= t) & (tmax > t) for t in levels]  # each N x Tr x Tc
        which = functools.reduce(torch.logical_or, mixed_at).nonzero()  # M x 3: (n, row, col)
        values = self._outside_to_minus_inf(self._tiles(low, which), which)  # M x tile x tile
        at = (which[:, 0], which[:, 1], which[:, 2])
        area = self.rows.size.to(low.device)[:, None] * self.cols.size.to(low.device)[None, :]
        counts = torch.zeros((n, len(thresholds)), dtype=torch.int64, device=low.device)
        for i, t in enumerate(thresholds):
            # Tiles wholly above t count in full; tiles mixed at t pixel by pixel. (A tile
            # evaluated for another level may be whole at this one.)
            whole = (tmin > t).to(torch.int64) * area  # N x Tr x Tc
            part = _count_true(values > t) * mixed_at[i][at]  # M
            counts[:, i] = whole.sum(dim=(1, 2)).index_add(0, which[:, 0], part)
        if box_at is None:
            return counts, None
        # Tiles in ``which`` that are whole at box_at add nothing new: wholly above it, they
        # span the same pixels as in the ``tmin > t`` list; wholly below, they are empty.
        return counts, self._boxes(tmin, which, values > box_at, box_at)

    def _outside_to_minus_inf(self, values: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Pixels of the tiles that lie beyond the output's edge -> -inf (never above a
        threshold), in place. Only tiles in the last tile row or column can have any."""
        rows_short = self.rows.size.to(which.device)[which[:, 1]] < self.tile
        cols_short = self.cols.size.to(which.device)[which[:, 2]] < self.tile
        edge = (rows_short | cols_short).nonzero()[:, 0]
        if len(edge):
            values[edge] = values[edge].masked_fill(~self._valid(which[edge]), float("-inf"))
        return values

    def _boxes(
        self, tmin: torch.Tensor, which: torch.Tensor, positive: torch.Tensor, t: float
    ) -> torch.Tensor:
        """Boxes from the tiles wholly above t and the positive pixels of mixed tiles."""
        dev = tmin.device
        rs, cs = self.rows.start.to(dev), self.cols.start.to(dev)
        re, ce = rs + self.rows.size.to(dev) - 1, cs + self.cols.size.to(dev) - 1
        big = 1 << 40
        # Whole tiles: the first and last tile row and column holding one, per candidate.
        whole = tmin > t  # N x Tr x Tc
        w_r, w_c = whole.any(dim=2), whole.any(dim=1)  # N x Tr, N x Tc
        has_w = w_r.any(dim=1)
        r0 = torch.where(has_w, rs[_first(w_r)], big)
        r1 = torch.where(has_w, re[_last(w_r)], -1)
        c0 = torch.where(has_w, cs[_first(w_c)], big)
        c1 = torch.where(has_w, ce[_last(w_c)], -1)
        # Mixed tiles: the first and last pixel row and column holding a positive pixel.
        rany, cany = _any_rows_cols(positive)  # M x tile each
        has = rany.any(dim=1)
        mw, rany, cany = which[has], rany[has], cany[has]
        k = mw[:, 0]
        r0 = r0.scatter_reduce(0, k, rs[mw[:, 1]] + _first(rany), "amin")
        r1 = r1.scatter_reduce(0, k, rs[mw[:, 1]] + _last(rany), "amax")
        c0 = c0.scatter_reduce(0, k, cs[mw[:, 2]] + _first(cany), "amin")
        c1 = c1.scatter_reduce(0, k, cs[mw[:, 2]] + _last(cany), "amax")
        boxes = torch.stack([c0, r0, c1, r1], dim=1)
        boxes[r1 < 0] = 0  # empty mask
        return boxes

    def masks(self, low: torch.Tensor, threshold: float) -> torch.Tensor:
        """(N, H, W) bool masks of the upscaled logits above ``threshold``."""
        low, tmin, tmax = self._prepare(low)
        n = low.shape[0]
        mixed = (tmin <= threshold) & (tmax > threshold)
        which = mixed.nonzero()
        t = self.tile
        nr, nc = self.rows.n_tiles, self.cols.n_tiles
        # Tile grid with whole tiles: N x Tr x Tc x tile x tile, filled from the bounds.
        grid = (tmin > threshold)[:, :, :, None, None].expand(n, nr, nc, t, t).clone()
        if len(which):
            values = self._tiles(low, which) > threshold
            grid[which[:, 0], which[:, 1], which[:, 2]] = values
        # N x Tr x Tc x t x t -> N x Tr x t x Tc x t -> N x (Tr t) x (Tc t), then crop
        out = grid.permute(0, 1, 3, 2, 4).reshape(n, nr * t, nc * t)
        return out[:, : self.out_size[0], : self.out_size[1]]


class PlainUpscaler:
    """The same three questions as :class:`TiledUpscaler` (``need``, ``stats``, ``masks``),
    answered by upscaling every pixel with the model's ``geometry.upscale``: the path for a
    family whose geometry has no tiled form (anything but ``ResizeLongestSide``).

    ``input_size``: the crop in the model's input frame; ``out_size``: (H, W) of the crop in
    the original image.
    """

    need: tuple[int, int] | None = None  # every low-res logit is read

    def __init__(
        self, geometry: ImageGeometry, input_size: Sequence[int], out_size: Sequence[int]
    ) -> None:
        self.geometry = geometry
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.out_size = (int(out_size[0]), int(out_size[1]))

    def _logits(self, low: torch.Tensor) -> torch.Tensor:
        # N x h x w -> N x 1 x h x w -> N x 1 x H x W -> N x H x W
        up = self.geometry.upscale(low[:, None].float(), self.input_size, self.out_size)
        return up[:, 0]

    def stats(
        self, low: torch.Tensor, threshold: float, offset: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 2) int64 counts above ``threshold + offset`` and ``threshold - offset``, and
        (N, 4) int64 XYXY boxes (inclusive) of the pixels above ``threshold``."""
        up = self._logits(low)
        counts = torch.stack(
            [
                (up > threshold + offset).sum(dim=(1, 2)),
                (up > threshold - offset).sum(dim=(1, 2)),
            ],
            dim=1,
        ).to(torch.int64)
        return counts, masks_to_boxes(up > threshold)

    def masks(self, low: torch.Tensor, threshold: float) -> torch.Tensor:
        """(N, H, W) bool masks of the upscaled logits above ``threshold``."""
        return self._logits(low) > threshold


Upscaler = TiledUpscaler | PlainUpscaler


def make_upscaler(
    geometry: ImageGeometry,
    low_hw: Sequence[int],
    input_size: Sequence[int],
    out_size: Sequence[int],
    device: torch.device,
) -> Upscaler:
    """The tiled upscaler when ``geometry`` is SAM's ``ResizeLongestSide`` (its exact
    tiled form), else the plain one."""
    if isinstance(geometry, ResizeLongestSide):
        return TiledUpscaler(low_hw, geometry.target_length, input_size, out_size, device=device)
    return PlainUpscaler(geometry, input_size, out_size)
