"""Tests for MobileSAM's TinyViT image encoder (``sam_widget.models.sam.tiny_vit``)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _mobilesam_oracle import (
    GOLDEN_OUTPUT_RMS,
    GOLDEN_PROJECTIONS,
    GOLDEN_SAMPLES,
    deterministic_input,
    deterministic_state_dict,
    summarize,
)

from sam_widget.models.sam import tiny_vit
from sam_widget.models.sam.tiny_vit import MBConv, TinyViT, TinyViTBlock

# The image encoder's entries of MobileSAM's ``mobile_sam.pt`` (there under the prefix
# ``image_encoder.``): key and shape ("-" = scalar). Written out from MobileSAM's
# ``mobile_sam/modeling/tiny_vit_sam.py`` built as in its ``build_sam_vit_t`` (embed_dims
# 64/128/160/320, depths 2/2/6/2, heads 2/4/5/10, windows 7/7/14/7, 1000 classes):
# Conv2d_BN = bias-free conv ``c`` + BatchNorm ``bn`` (with running stats and
# num_batches_tracked); MBConv hidden = 4x; qkv = 3 x dim (key_dim = head_dim, attn_ratio 1);
# attention_biases = heads x window² (one per |row|,|col| offset); ``attention_bias_idxs`` is a
# non-persistent buffer (not in the checkpoint); the last stage has no downsample.
_ENCODER_TABLE = """
patch_embed.seq.0.c.weight 32,3,3,3
patch_embed.seq.0.bn.weight 32
patch_embed.seq.0.bn.bias 32
patch_embed.seq.0.bn.running_mean 32
patch_embed.seq.0.bn.running_var 32
patch_embed.seq.0.bn.num_batches_tracked -
patch_embed.seq.2.c.weight 64,32,3,3
patch_embed.seq.2.bn.weight 64
patch_embed.seq.2.bn.bias 64
patch_embed.seq.2.bn.running_mean 64
patch_embed.seq.2.bn.running_var 64
patch_embed.seq.2.bn.num_batches_tracked -
layers.0.blocks.0.conv1.c.weight 256,64,1,1
layers.0.blocks.0.conv1.bn.weight 256
layers.0.blocks.0.conv1.bn.bias 256
layers.0.blocks.0.conv1.bn.running_mean 256
layers.0.blocks.0.conv1.bn.running_var 256
layers.0.blocks.0.conv1.bn.num_batches_tracked -
layers.0.blocks.0.conv2.c.weight 256,1,3,3
layers.0.blocks.0.conv2.bn.weight 256
layers.0.blocks.0.conv2.bn.bias 256
layers.0.blocks.0.conv2.bn.running_mean 256
layers.0.blocks.0.conv2.bn.running_var 256
layers.0.blocks.0.conv2.bn.num_batches_tracked -
layers.0.blocks.0.conv3.c.weight 64,256,1,1
layers.0.blocks.0.conv3.bn.weight 64
layers.0.blocks.0.conv3.bn.bias 64
layers.0.blocks.0.conv3.bn.running_mean 64
layers.0.blocks.0.conv3.bn.running_var 64
layers.0.blocks.0.conv3.bn.num_batches_tracked -
layers.0.blocks.1.conv1.c.weight 256,64,1,1
layers.0.blocks.1.conv1.bn.weight 256
layers.0.blocks.1.conv1.bn.bias 256
layers.0.blocks.1.conv1.bn.running_mean 256
layers.0.blocks.1.conv1.bn.running_var 256
layers.0.blocks.1.conv1.bn.num_batches_tracked -
layers.0.blocks.1.conv2.c.weight 256,1,3,3
layers.0.blocks.1.conv2.bn.weight 256
layers.0.blocks.1.conv2.bn.bias 256
layers.0.blocks.1.conv2.bn.running_mean 256
layers.0.blocks.1.conv2.bn.running_var 256
layers.0.blocks.1.conv2.bn.num_batches_tracked -
layers.0.blocks.1.conv3.c.weight 64,256,1,1
layers.0.blocks.1.conv3.bn.weight 64
layers.0.blocks.1.conv3.bn.bias 64
layers.0.blocks.1.conv3.bn.running_mean 64
layers.0.blocks.1.conv3.bn.running_var 64
layers.0.blocks.1.conv3.bn.num_batches_tracked -
layers.0.downsample.conv1.c.weight 128,64,1,1
layers.0.downsample.conv1.bn.weight 128
layers.0.downsample.conv1.bn.bias 128
layers.0.downsample.conv1.bn.running_mean 128
layers.0.downsample.conv1.bn.running_var 128
layers.0.downsample.conv1.bn.num_batches_tracked -
layers.0.downsample.conv2.c.weight 128,1,3,3
layers.0.downsample.conv2.bn.weight 128
layers.0.downsample.conv2.bn.bias 128
layers.0.downsample.conv2.bn.running_mean 128
layers.0.downsample.conv2.bn.running_var 128
layers.0.downsample.conv2.bn.num_batches_tracked -
layers.0.downsample.conv3.c.weight 128,128,1,1
layers.0.downsample.conv3.bn.weight 128
layers.0.downsample.conv3.bn.bias 128
layers.0.downsample.conv3.bn.running_mean 128
layers.0.downsample.conv3.bn.running_var 128
layers.0.downsample.conv3.bn.num_batches_tracked -
layers.1.blocks.0.attn.attention_biases 4,49
layers.1.blocks.0.attn.norm.weight 128
layers.1.blocks.0.attn.norm.bias 128
layers.1.blocks.0.attn.qkv.weight 384,128
layers.1.blocks.0.attn.qkv.bias 384
layers.1.blocks.0.attn.proj.weight 128,128
layers.1.blocks.0.attn.proj.bias 128
layers.1.blocks.0.mlp.norm.weight 128
layers.1.blocks.0.mlp.norm.bias 128
layers.1.blocks.0.mlp.fc1.weight 512,128
layers.1.blocks.0.mlp.fc1.bias 512
layers.1.blocks.0.mlp.fc2.weight 128,512
layers.1.blocks.0.mlp.fc2.bias 128
layers.1.blocks.0.local_conv.c.weight 128,1,3,3
layers.1.blocks.0.local_conv.bn.weight 128
layers.1.blocks.0.local_conv.bn.bias 128
layers.1.blocks.0.local_conv.bn.running_mean 128
layers.1.blocks.0.local_conv.bn.running_var 128
layers.1.blocks.0.local_conv.bn.num_batches_tracked -
layers.1.blocks.1.attn.attention_biases 4,49
layers.1.blocks.1.attn.norm.weight 128
layers.1.blocks.1.attn.norm.bias 128
layers.1.blocks.1.attn.qkv.weight 384,128
layers.1.blocks.1.attn.qkv.bias 384
layers.1.blocks.1.attn.proj.weight 128,128
layers.1.blocks.1.attn.proj.bias 128
layers.1.blocks.1.mlp.norm.weight 128
layers.1.blocks.1.mlp.norm.bias 128
layers.1.blocks.1.mlp.fc1.weight 512,128
layers.1.blocks.1.mlp.fc1.bias 512
layers.1.blocks.1.mlp.fc2.weight 128,512
layers.1.blocks.1.mlp.fc2.bias 128
layers.1.blocks.1.local_conv.c.weight 128,1,3,3
layers.1.blocks.1.local_conv.bn.weight 128
layers.1.blocks.1.local_conv.bn.bias 128
layers.1.blocks.1.local_conv.bn.running_mean 128
layers.1.blocks.1.local_conv.bn.running_var 128
layers.1.blocks.1.local_conv.bn.num_batches_tracked -
layers.1.downsample.conv1.c.weight 160,128,1,1
layers.1.downsample.conv1.bn.weight 160
layers.1.downsample.conv1.bn.bias 160
layers.1.downsample.conv1.bn.running_mean 160
layers.1.downsample.conv1.bn.running_var 160
layers.1.downsample.conv1.bn.num_batches_tracked -
layers.1.downsample.conv2.c.weight 160,1,3,3
layers.1.downsample.conv2.bn.weight 160
layers.1.downsample.conv2.bn.bias 160
layers.1.downsample.conv2.bn.running_mean 160
layers.1.downsample.conv2.bn.running_var 160
layers.1.downsample.conv2.bn.num_batches_tracked -
layers.1.downsample.conv3.c.weight 160,160,1,1
layers.1.downsample.conv3.bn.weight 160
layers.1.downsample.conv3.bn.bias 160
layers.1.downsample.conv3.bn.running_mean 160
layers.1.downsample.conv3.bn.running_var 160
layers.1.downsample.conv3.bn.num_batches_tracked -
layers.2.blocks.0.attn.attention_biases 5,196
layers.2.blocks.0.attn.norm.weight 160
layers.2.blocks.0.attn.norm.bias 160
layers.2.blocks.0.attn.qkv.weight 480,160
layers.2.blocks.0.attn.qkv.bias 480
layers.2.blocks.0.attn.proj.weight 160,160
layers.2.blocks.0.attn.proj.bias 160
layers.2.blocks.0.mlp.norm.weight 160
layers.2.blocks.0.mlp.norm.bias 160
layers.2.blocks.0.mlp.fc1.weight 640,160
layers.2.blocks.0.mlp.fc1.bias 640
layers.2.blocks.0.mlp.fc2.weight 160,640
layers.2.blocks.0.mlp.fc2.bias 160
layers.2.blocks.0.local_conv.c.weight 160,1,3,3
layers.2.blocks.0.local_conv.bn.weight 160
layers.2.blocks.0.local_conv.bn.bias 160
layers.2.blocks.0.local_conv.bn.running_mean 160
layers.2.blocks.0.local_conv.bn.running_var 160
layers.2.blocks.0.local_conv.bn.num_batches_tracked -
layers.2.blocks.1.attn.attention_biases 5,196
layers.2.blocks.1.attn.norm.weight 160
layers.2.blocks.1.attn.norm.bias 160
layers.2.blocks.1.attn.qkv.weight 480,160
layers.2.blocks.1.attn.qkv.bias 480
layers.2.blocks.1.attn.proj.weight 160,160
layers.2.blocks.1.attn.proj.bias 160
layers.2.blocks.1.mlp.norm.weight 160
layers.2.blocks.1.mlp.norm.bias 160
layers.2.blocks.1.mlp.fc1.weight 640,160
layers.2.blocks.1.mlp.fc1.bias 640
layers.2.blocks.1.mlp.fc2.weight 160,640
layers.2.blocks.1.mlp.fc2.bias 160
layers.2.blocks.1.local_conv.c.weight 160,1,3,3
layers.2.blocks.1.local_conv.bn.weight 160
layers.2.blocks.1.local_conv.bn.bias 160
layers.2.blocks.1.local_conv.bn.running_mean 160
layers.2.blocks.1.local_conv.bn.running_var 160
layers.2.blocks.1.local_conv.bn.num_batches_tracked -
layers.2.blocks.2.attn.attention_biases 5,196
layers.2.blocks.2.attn.norm.weight 160
layers.2.blocks.2.attn.norm.bias 160
layers.2.blocks.2.attn.qkv.weight 480,160
layers.2.blocks.2.attn.qkv.bias 480
layers.2.blocks.2.attn.proj.weight 160,160
layers.2.blocks.2.attn.proj.bias 160
layers.2.blocks.2.mlp.norm.weight 160
layers.2.blocks.2.mlp.norm.bias 160
layers.2.blocks.2.mlp.fc1.weight 640,160
layers.2.blocks.2.mlp.fc1.bias 640
layers.2.blocks.2.mlp.fc2.weight 160,640
layers.2.blocks.2.mlp.fc2.bias 160
layers.2.blocks.2.local_conv.c.weight 160,1,3,3
layers.2.blocks.2.local_conv.bn.weight 160
layers.2.blocks.2.local_conv.bn.bias 160
layers.2.blocks.2.local_conv.bn.running_mean 160
layers.2.blocks.2.local_conv.bn.running_var 160
layers.2.blocks.2.local_conv.bn.num_batches_tracked -
layers.2.blocks.3.attn.attention_biases 5,196
layers.2.blocks.3.attn.norm.weight 160
layers.2.blocks.3.attn.norm.bias 160
layers.2.blocks.3.attn.qkv.weight 480,160
layers.2.blocks.3.attn.qkv.bias 480
layers.2.blocks.3.attn.proj.weight 160,160
layers.2.blocks.3.attn.proj.bias 160
layers.2.blocks.3.mlp.norm.weight 160
layers.2.blocks.3.mlp.norm.bias 160
layers.2.blocks.3.mlp.fc1.weight 640,160
layers.2.blocks.3.mlp.fc1.bias 640
layers.2.blocks.3.mlp.fc2.weight 160,640
layers.2.blocks.3.mlp.fc2.bias 160
layers.2.blocks.3.local_conv.c.weight 160,1,3,3
layers.2.blocks.3.local_conv.bn.weight 160
layers.2.blocks.3.local_conv.bn.bias 160
layers.2.blocks.3.local_conv.bn.running_mean 160
layers.2.blocks.3.local_conv.bn.running_var 160
layers.2.blocks.3.local_conv.bn.num_batches_tracked -
layers.2.blocks.4.attn.attention_biases 5,196
layers.2.blocks.4.attn.norm.weight 160
layers.2.blocks.4.attn.norm.bias 160
layers.2.blocks.4.attn.qkv.weight 480,160
layers.2.blocks.4.attn.qkv.bias 480
layers.2.blocks.4.attn.proj.weight 160,160
layers.2.blocks.4.attn.proj.bias 160
layers.2.blocks.4.mlp.norm.weight 160
layers.2.blocks.4.mlp.norm.bias 160
layers.2.blocks.4.mlp.fc1.weight 640,160
layers.2.blocks.4.mlp.fc1.bias 640
layers.2.blocks.4.mlp.fc2.weight 160,640
layers.2.blocks.4.mlp.fc2.bias 160
layers.2.blocks.4.local_conv.c.weight 160,1,3,3
layers.2.blocks.4.local_conv.bn.weight 160
layers.2.blocks.4.local_conv.bn.bias 160
layers.2.blocks.4.local_conv.bn.running_mean 160
layers.2.blocks.4.local_conv.bn.running_var 160
layers.2.blocks.4.local_conv.bn.num_batches_tracked -
layers.2.blocks.5.attn.attention_biases 5,196
layers.2.blocks.5.attn.norm.weight 160
layers.2.blocks.5.attn.norm.bias 160
layers.2.blocks.5.attn.qkv.weight 480,160
layers.2.blocks.5.attn.qkv.bias 480
layers.2.blocks.5.attn.proj.weight 160,160
layers.2.blocks.5.attn.proj.bias 160
layers.2.blocks.5.mlp.norm.weight 160
layers.2.blocks.5.mlp.norm.bias 160
layers.2.blocks.5.mlp.fc1.weight 640,160
layers.2.blocks.5.mlp.fc1.bias 640
layers.2.blocks.5.mlp.fc2.weight 160,640
layers.2.blocks.5.mlp.fc2.bias 160
layers.2.blocks.5.local_conv.c.weight 160,1,3,3
layers.2.blocks.5.local_conv.bn.weight 160
layers.2.blocks.5.local_conv.bn.bias 160
layers.2.blocks.5.local_conv.bn.running_mean 160
layers.2.blocks.5.local_conv.bn.running_var 160
layers.2.blocks.5.local_conv.bn.num_batches_tracked -
layers.2.downsample.conv1.c.weight 320,160,1,1
layers.2.downsample.conv1.bn.weight 320
layers.2.downsample.conv1.bn.bias 320
layers.2.downsample.conv1.bn.running_mean 320
layers.2.downsample.conv1.bn.running_var 320
layers.2.downsample.conv1.bn.num_batches_tracked -
layers.2.downsample.conv2.c.weight 320,1,3,3
layers.2.downsample.conv2.bn.weight 320
layers.2.downsample.conv2.bn.bias 320
layers.2.downsample.conv2.bn.running_mean 320
layers.2.downsample.conv2.bn.running_var 320
layers.2.downsample.conv2.bn.num_batches_tracked -
layers.2.downsample.conv3.c.weight 320,320,1,1
layers.2.downsample.conv3.bn.weight 320
layers.2.downsample.conv3.bn.bias 320
layers.2.downsample.conv3.bn.running_mean 320
layers.2.downsample.conv3.bn.running_var 320
layers.2.downsample.conv3.bn.num_batches_tracked -
layers.3.blocks.0.attn.attention_biases 10,49
layers.3.blocks.0.attn.norm.weight 320
layers.3.blocks.0.attn.norm.bias 320
layers.3.blocks.0.attn.qkv.weight 960,320
layers.3.blocks.0.attn.qkv.bias 960
layers.3.blocks.0.attn.proj.weight 320,320
layers.3.blocks.0.attn.proj.bias 320
layers.3.blocks.0.mlp.norm.weight 320
layers.3.blocks.0.mlp.norm.bias 320
layers.3.blocks.0.mlp.fc1.weight 1280,320
layers.3.blocks.0.mlp.fc1.bias 1280
layers.3.blocks.0.mlp.fc2.weight 320,1280
layers.3.blocks.0.mlp.fc2.bias 320
layers.3.blocks.0.local_conv.c.weight 320,1,3,3
layers.3.blocks.0.local_conv.bn.weight 320
layers.3.blocks.0.local_conv.bn.bias 320
layers.3.blocks.0.local_conv.bn.running_mean 320
layers.3.blocks.0.local_conv.bn.running_var 320
layers.3.blocks.0.local_conv.bn.num_batches_tracked -
layers.3.blocks.1.attn.attention_biases 10,49
layers.3.blocks.1.attn.norm.weight 320
layers.3.blocks.1.attn.norm.bias 320
layers.3.blocks.1.attn.qkv.weight 960,320
layers.3.blocks.1.attn.qkv.bias 960
layers.3.blocks.1.attn.proj.weight 320,320
layers.3.blocks.1.attn.proj.bias 320
layers.3.blocks.1.mlp.norm.weight 320
layers.3.blocks.1.mlp.norm.bias 320
layers.3.blocks.1.mlp.fc1.weight 1280,320
layers.3.blocks.1.mlp.fc1.bias 1280
layers.3.blocks.1.mlp.fc2.weight 320,1280
layers.3.blocks.1.mlp.fc2.bias 320
layers.3.blocks.1.local_conv.c.weight 320,1,3,3
layers.3.blocks.1.local_conv.bn.weight 320
layers.3.blocks.1.local_conv.bn.bias 320
layers.3.blocks.1.local_conv.bn.running_mean 320
layers.3.blocks.1.local_conv.bn.running_var 320
layers.3.blocks.1.local_conv.bn.num_batches_tracked -
norm_head.weight 320
norm_head.bias 320
head.weight 1000,320
head.bias 1000
neck.0.weight 256,320,1,1
neck.1.weight 256
neck.1.bias 256
neck.2.weight 256,256,3,3
neck.3.weight 256
neck.3.bias 256
"""

ENCODER_SHAPES: dict[str, tuple[int, ...]] = {
    key: () if dims == "-" else tuple(int(d) for d in dims.split(","))
    for key, dims in (line.split() for line in _ENCODER_TABLE.strip().splitlines())
}


def _slow_offset_index(window_size: int) -> tuple[torch.Tensor, int]:
    """MobileSAM's (LeViT's) numbering: walk all (query, key) pairs of a row-major window and
    give each new (|row distance|, |col distance|) the next free column. Returns the N x N
    index and the number of distinct offsets."""
    points = list(itertools.product(range(window_size), range(window_size)))
    columns: dict[tuple[int, int], int] = {}
    flat = []
    for p in points:
        for q in points:
            offset = (abs(p[0] - q[0]), abs(p[1] - q[1]))
            columns.setdefault(offset, len(columns))
            flat.append(columns[offset])
    return torch.tensor(flat).view(len(points), len(points)), len(columns)


def _slow_window_attention(block: TinyViTBlock, x: torch.Tensor) -> torch.Tensor:
    """Window attention written out window by window, head by head (B x H x W x C)."""
    attn = block.attn
    ws = block.window_size
    b, h, w, c = x.shape
    heads = attn.num_heads
    hd = c // heads
    index, _ = _slow_offset_index(ws)
    out = torch.zeros_like(x)
    for bi in range(b):
        for top in range(0, h, ws):
            for left in range(0, w, ws):
                cells = [(r, col) for r in range(top, top + ws) for col in range(left, left + ws)]
                # Cells past the bottom/right edge are zero tokens that still act as keys.
                tokens = torch.stack(
                    [x[bi, r, col] if r < h and col < w else x.new_zeros(c) for r, col in cells]
                )
                t = F.layer_norm(tokens, (c,), attn.norm.weight, attn.norm.bias, attn.norm.eps)
                qkv = t @ attn.qkv.weight.T + attn.qkv.bias
                per_head = []
                for k in range(heads):
                    # Features of head k: [q | k | v], each hd wide.
                    chunk = qkv[:, 3 * hd * k : 3 * hd * (k + 1)]
                    q, key, v = chunk[:, :hd], chunk[:, hd : 2 * hd], chunk[:, 2 * hd :]
                    logits = q @ key.T / hd**0.5 + attn.attention_biases[k][index]
                    per_head.append(torch.softmax(logits, dim=-1) @ v)
                y = torch.cat(per_head, dim=1) @ attn.proj.weight.T + attn.proj.bias
                for n, (r, col) in enumerate(cells):
                    if r < h and col < w:
                        out[bi, r, col] = y[n]
    return out


@pytest.fixture(scope="module")
def encoder() -> TinyViT:
    """vit_t encoder with the oracle's deterministic weights, eval mode."""
    model = TinyViT()
    model.load_state_dict(deterministic_state_dict(ENCODER_SHAPES), strict=True)
    return model.eval()


def test_state_dict_matches_mobile_sam_checkpoint():
    model = TinyViT()
    sd = model.state_dict()
    assert list(sd) and {k: tuple(v.shape) for k, v in sd.items()} == ENCODER_SHAPES
    for key, value in sd.items():
        expected = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        assert value.dtype == expected, key
    # The bias index is a buffer (moves with .to()) but not a checkpoint entry.
    buffers = dict(model.named_buffers())
    assert "layers.2.blocks.0.attn.attention_bias_idxs" in buffers
    assert model.img_size == 1024


@pytest.mark.parametrize("window_size", [1, 2, 5, 7, 14])
def test_attention_bias_index_matches_first_appearance_numbering(window_size):
    from sam_widget.models.sam.tiny_vit import Attention

    attn = Attention(dim=8, num_heads=2, window_size=window_size)
    expected, n_offsets = _slow_offset_index(window_size)
    assert torch.equal(attn.attention_bias_idxs, expected)
    assert attn.attention_biases.shape == (2, n_offsets)


@pytest.mark.parametrize("hw", [(5, 7), (3, 3), (6, 3)])
def test_window_attention_matches_slow_reference(hw):
    torch.manual_seed(0)
    block = TinyViTBlock(dim=8, num_heads=2, window_size=3, mlp_ratio=2.0, local_conv_size=3)
    block = block.double()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, *hw, 8, dtype=torch.float64)
    with torch.no_grad():
        got = block.window_attention(x)
        expected = _slow_window_attention(block, x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_output_matches_mobilesam_reference(encoder):
    # Golden values recorded from MobileSAM's TinyViT code in float64 (see _mobilesam_oracle).
    with torch.no_grad():
        out = encoder(deterministic_input())
    assert out.shape == (1, 256, 64, 64) and out.dtype == torch.float32
    samples, projections = summarize(out)
    np.testing.assert_allclose(samples, GOLDEN_SAMPLES, rtol=0, atol=1e-4)
    # Each projection sums 256*64*64 signed outputs (magnitude ~1e3); float32 error ~2e-3.
    np.testing.assert_allclose(projections, GOLDEN_PROJECTIONS, rtol=0, atol=2e-2)
    assert float(out.pow(2).mean().sqrt()) == pytest.approx(GOLDEN_OUTPUT_RMS, rel=1e-5)


def _small_input(batch: int, h: int = 64, w: int = 64) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1)) * 4 - 2


def test_eval_mode_uses_running_statistics(encoder):
    x = _small_input(2)
    with torch.no_grad():
        out = encoder(x)
        assert out.shape == (2, 256, 4, 4)
        assert torch.equal(out, encoder(x))
        # Running stats: each image's output does not depend on the rest of the batch.
        torch.testing.assert_close(encoder(x[1:]), out[1:], rtol=1e-4, atol=1e-4)
        # Train mode would use batch statistics instead; check on a copy (stats get updated).
        assert (copy.deepcopy(encoder).train()(x) - out).abs().max() > 0.1
        # And the running statistics are what eval mode reads.
        eval_copy = copy.deepcopy(encoder)
        eval_copy.layers[2].blocks[3].local_conv.bn.running_var.mul_(4.0)
        assert (eval_copy(x) - out).abs().max() > 1e-2


def test_attention_biases_are_read_live_after_eval(encoder):
    # MobileSAM caches the indexed biases at .eval(); ours must see weights loaded afterwards.
    model = TinyViT().eval()
    model.load_state_dict(encoder.state_dict())
    x = _small_input(1)
    with torch.no_grad():
        expected = encoder(x)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        model.layers[1].blocks[0].attn.attention_biases.zero_()
        assert (model(x) - expected).abs().max() > 1e-3


def test_output_size_follows_input(encoder):
    with torch.no_grad():
        out = encoder(_small_input(1, 64, 96))
    assert out.shape == (1, 256, 4, 6)
    assert torch.isfinite(out).all()


def test_rejects_bad_arguments():
    model = TinyViT()
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="drop_path_rate"):
        TinyViT(drop_path_rate=0.1)
    with pytest.raises(ValueError, match="one entry per stage"):
        TinyViT(depths=(2, 2, 6))


def test_training_mode_still_backpropagates():
    # Eval mode folds BatchNorm, runs MBConv in strips and GELU in place; training mode
    # must keep plain autograd-friendly ops (batch statistics over the whole map).
    torch.manual_seed(3)
    model = TinyViT().train()
    x = _small_input(2)
    model(x).square().mean().backward()
    grad = model.layers[0].blocks[0].conv2.c.weight.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().max()) > 0


def test_mbconv_strips_and_folded_batchnorm_equal_plain_ops(monkeypatch):
    # Stage-0 map of 54 x 34: strips of 32 rows leave a partial last strip, and the strip
    # edges must see the neighbouring rows (not zero padding); eval mode folds BatchNorm.
    torch.manual_seed(4)
    block = MBConv(dim=8, expand_ratio=4.0).eval()
    with torch.no_grad():
        for mod in block.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_()
                mod.bias.normal_()

        def conv_bn(m, x):  # the unfolded conv + eval BatchNorm
            y = F.conv2d(x, m.c.weight, None, m.c.stride, m.c.padding, 1, m.c.groups)
            bn = m.bn
            return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False)

        x = torch.randn(2, 8, 54, 34)
        y = F.gelu(conv_bn(block.conv1, x))
        y = F.gelu(conv_bn(block.conv2, y))
        expected = F.gelu(x + conv_bn(block.conv3, y))
        got = block(x)
        assert tiny_vit._STRIP_ROWS < 54
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(tiny_vit, "_STRIP_ROWS", 1000)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
