"""explain(): the traced decode equals predict, and its intermediates mean what they claim.

The model is the "tiny" variant with perturbed random weights (``conftest.tiny_pair``; its
prompt encoder and mask decoder are full size). The reference for the intermediates is the
model's own modules run the ordinary way (``prompt_encoder(...)``, ``get_dense_pe()``),
which the tracer does not call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close_rel, assert_masks_match
from test_predictor import smooth_image

from sam_widget.engine.predictor import SamPredictor
from sam_widget.explain import embedding_pca, explain

H, W = 120, 160


@pytest.fixture(scope="module")
def predictor(tiny_pair) -> SamPredictor:  # type: ignore[no-untyped-def]
    p = SamPredictor(tiny_pair[0])
    p.set_image(smooth_image(H, W, seed=5))
    return p


def _previous_logits(predictor: SamPredictor) -> np.ndarray:
    _, scores, low = predictor.predict(np.array([[50.0, 60.0]]), np.array([1]))
    return low[int(np.argmax(scores))][None]


PROMPTS = {
    "one point": {"point_coords": [[50.0, 60.0]], "point_labels": [1]},
    "points": {
        "point_coords": [[50.0, 60.0], [120.0, 30.0], [10, 100]],
        "point_labels": [1, 0, -1],
    },
    "box": {"box": [20.0, 15.0, 140.0, 100.0]},
    "box and points": {
        "point_coords": [[60.0, 50.0], [130.0, 90.0]],
        "point_labels": [1, 0],
        "box": [20.0, 15.0, 140.0, 100.0],
    },
    "mask input": {"point_coords": [[70.0, 40.0]], "point_labels": [1], "mask_input": "prev"},
}


def _prompts(name: str, predictor: SamPredictor) -> dict:
    out = dict(PROMPTS[name])
    if out.get("mask_input") == "prev":
        out["mask_input"] = _previous_logits(predictor)
    return out


@pytest.mark.parametrize("name", list(PROMPTS))
def test_explain_equals_predict(predictor: SamPredictor, name: str) -> None:
    prompts = _prompts(name, predictor)
    e = explain(predictor, **prompts)
    multi = predictor.predict(**prompts, multimask_output=True, return_logits=True)
    single = predictor.predict(**prompts, multimask_output=False, return_logits=True)
    for sl, (logits, scores, low) in ((slice(1, 4), multi), (slice(0, 1), single)):
        assert_close_rel(torch.from_numpy(e.low_res_logits[sl]), torch.from_numpy(low))
        assert_close_rel(torch.from_numpy(e.iou_predictions[sl]), torch.from_numpy(scores))
        assert_masks_match(
            torch.from_numpy(e.masks[sl]), torch.from_numpy(logits > 0), torch.from_numpy(logits)
        )
    assert e.masks.shape == (4, H, W) and e.masks.dtype == np.bool_
    assert e.chosen == 1 + int(np.argmax(multi[1]))


def test_sparse_tokens_are_the_prompt_encoders(predictor: SamPredictor, tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model = tiny_pair[0]
    pe = model.prompt_encoder
    for name in PROMPTS:
        prompts = _prompts(name, predictor)
        e = explain(predictor, **prompts)
        size = predictor.original_size
        points = None
        if "point_coords" in prompts:
            c = predictor.transform.apply_coords(np.asarray(prompts["point_coords"], float), size)
            points = (
                torch.tensor(c, dtype=torch.float32)[None],
                torch.tensor([prompts["point_labels"]]),
            )
        box = None
        if "box" in prompts:
            b = predictor.transform.apply_boxes(np.asarray([prompts["box"]], float), size)
            box = torch.tensor(b, dtype=torch.float32)
        mask = None
        if "mask_input" in prompts:
            mask = torch.from_numpy(prompts["mask_input"])[None]
        with torch.no_grad():
            sparse, dense = pe(points, box, mask)
        np.testing.assert_allclose(
            e.sparse_tokens, sparse[0].detach().numpy(), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            e.dense_embedding, dense[0].detach().numpy(), rtol=1e-5, atol=1e-5
        )
        assert e.has_mask_input == (mask is not None)
    with torch.no_grad():
        dense_pe = pe.get_dense_pe()[0].numpy()
    np.testing.assert_allclose(e.dense_pe, dense_pe, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        e.gaussian_matrix, pe.pe_layer.positional_encoding_gaussian_matrix.detach().numpy()
    )


def test_token_kinds_and_learned_embeddings(predictor: SamPredictor, tiny_pair) -> None:  # type: ignore[no-untyped-def]
    pe = tiny_pair[0].prompt_encoder
    learned = [pe.point_embeddings[i].weight[0].detach().numpy() for i in range(4)]
    not_a_point = pe.not_a_point_embed.weight[0].detach().numpy()

    e = explain(predictor, **PROMPTS["points"])
    # No box: a padding point is appended; its token is not_a_point_embed alone.
    assert e.token_kinds == ["positive", "negative", "ignored", "padding"]
    np.testing.assert_array_equal(e.token_learned[0], learned[1])
    np.testing.assert_array_equal(e.token_learned[1], learned[0])
    np.testing.assert_array_equal(e.sparse_tokens[2], not_a_point)
    np.testing.assert_array_equal(e.sparse_tokens[3], not_a_point)
    np.testing.assert_allclose(e.sparse_tokens[0], e.token_pe[0] + learned[1], atol=1e-6)
    # Positions come back in original pixels; the padding point sits at the origin.
    np.testing.assert_allclose(e.token_xy[:3], PROMPTS["points"]["point_coords"], atol=1e-3)
    np.testing.assert_array_equal(e.token_xy[3], [0, 0])
    # A PE of a point in [-1, 1]-scaled Fourier features: sin² + cos² = 1 per frequency.
    half = e.token_pe.shape[1] // 2
    np.testing.assert_allclose(e.token_pe[:, :half] ** 2 + e.token_pe[:, half:] ** 2, 1, atol=1e-5)

    e = explain(predictor, **PROMPTS["box"])
    assert e.token_kinds == ["box top-left", "box bottom-right"]  # no padding with a box
    np.testing.assert_array_equal(e.token_learned, np.stack(learned[2:4]))
    np.testing.assert_allclose(e.token_xy, [[20, 15], [140, 100]], atol=1e-3)


def test_attention_maps_are_distributions(predictor: SamPredictor, tiny_pair) -> None:  # type: ignore[no-untyped-def]
    transformer = tiny_pair[0].mask_decoder.transformer
    e = explain(predictor, **PROMPTS["box and points"])
    t = 5 + 2 + 2  # IoU token, 4 mask tokens, 2 points, 2 corners
    layers, heads = transformer.depth, transformer.num_heads
    assert e.token_to_image.shape == (layers + 1, heads, t, 64, 64)
    assert e.image_to_token.shape == (layers, heads, t, 64, 64)
    # token -> image: each token's weights over the 64 x 64 cells sum to 1;
    # image -> token: each cell's weights over the tokens sum to 1.
    np.testing.assert_allclose(e.token_to_image.sum(axis=(-2, -1)), 1, atol=1e-4)
    np.testing.assert_allclose(e.image_to_token.sum(axis=2), 1, atol=1e-4)
    assert (e.token_to_image >= 0).all() and (e.image_to_token >= 0).all()
    fa = e.final_attention(2)
    np.testing.assert_allclose(fa, e.token_to_image[-1, :, 3].mean(axis=0))
    with pytest.raises(ValueError, match="mask_index"):
        e.final_attention(4)


def test_hypernetworks_make_the_masks(predictor: SamPredictor) -> None:
    e = explain(predictor, **PROMPTS["one point"])
    c8 = e.upscaled_embedding.shape[0]
    assert e.hypernetwork_weights.shape == (4, c8)
    assert e.output_tokens_in.shape == e.output_tokens_out.shape == (5, 256)
    assert not np.allclose(e.output_tokens_in, e.output_tokens_out)
    # mask k = its hypernetwork weights . the upscaled image features at each pixel
    recon = np.einsum("kc,chw->khw", e.hypernetwork_weights, e.upscaled_embedding)
    np.testing.assert_allclose(recon, e.low_res_logits, rtol=1e-4, atol=1e-4)


def test_bad_input(predictor: SamPredictor, tiny_pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="give a prompt"):
        explain(predictor)
    with pytest.raises(TypeError, match="predictor"):
        explain(object(), point_coords=[[1, 1]], point_labels=[1])
    with pytest.raises(ValueError, match="point_coords"):
        explain(predictor, point_coords=[[1000, 1]], point_labels=[1])
    with pytest.raises(ValueError, match="mask_input"):
        explain(predictor, mask_input=np.zeros((64, 64)))
    with pytest.raises(RuntimeError, match="set_image"):
        explain(SamPredictor(tiny_pair[0]), point_coords=[[1, 1]], point_labels=[1])
    monkeypatch.setattr(tiny_pair[0], "family", "unknown", raising=False)
    with pytest.raises(ValueError, match="family"):
        explain(predictor, point_coords=[[1, 1]], point_labels=[1])


def test_embedding_pca_groups_similar_cells() -> None:
    rng = np.random.default_rng(0)
    # Four regions (their centres span 3 dimensions), each with its own random 256-d
    # vector plus a little noise.
    regions = np.zeros((64, 64), int)
    regions[:, 20:40] = 1
    regions[40:, :] = 2
    regions[50:, 50:] = 3
    centres = rng.normal(size=(4, 256))
    # H x W x C -> C x H x W
    emb = (centres[regions] + 0.01 * rng.normal(size=(64, 64, 256))).transpose(2, 0, 1)
    rgb = embedding_pca(emb)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    colours = [rgb[regions == k].astype(float) for k in range(4)]
    for c in colours:
        assert c.std(axis=0).max() < 8  # one region, one colour
    means = [c.mean(axis=0) for c in colours]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(means[a] - means[b]).max() > 60  # regions tell apart
    np.testing.assert_array_equal(embedding_pca(torch.from_numpy(emb)[None]), rgb)


def test_embedding_pca_of_a_predictor(predictor: SamPredictor) -> None:
    rgb = embedding_pca(predictor)
    np.testing.assert_array_equal(rgb, embedding_pca(predictor.get_image_embedding()))
    assert rgb.shape == (64, 64, 3) and rgb.std() > 10
    with pytest.raises(ValueError, match="C x H x W"):
        embedding_pca(np.zeros((64, 64)))
    with pytest.raises(ValueError, match="NaN"):
        embedding_pca(np.full((8, 4, 4), np.nan))
