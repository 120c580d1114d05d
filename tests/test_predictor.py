"""SamPredictor: fidelity to the published predictor, bad input, cache, background split.

Fidelity: ours and the published ``SamPredictor`` run the "tiny" variant with identical,
perturbed random weights (``conftest.tiny_pair``; its prompt encoder and mask decoder are the
full-size ones). Low-res logits and IoU must agree within 1e-4 relative. Binary masks must be
identical except where the published logit at that pixel is within 1e-4 (relative to the
largest logit) of the threshold 0: our decoder runs the same math in a different order (a
per-image precomputation, fused attention), so logits differ by float rounding (~1e-6
relative) and only a pixel whose logit is that close to 0 can land on the other side.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_close_rel, assert_masks_match, make_model_pair
from PIL import Image

from sam_widget.engine.embedding_cache import EmbeddingCache, ImageEmbedding
from sam_widget.engine.predictor import SamPredictor

SIZES = [(200, 300), (251, 177)]  # (H, W): a 300 x 200 px image and one with odd sides


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """H x W x 3 uint8 with large structures (so masks have edges) plus pixel noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))
    noise = rng.integers(-10, 11, size=(h, w, 3))
    return np.clip(big.astype(np.int64) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def pair(request: pytest.FixtureRequest, tiny_pair, reference) -> tuple:  # type: ignore[no-untyped-def]
    """(ours, published) predictors with the same image set."""
    h, w = request.param
    model, ref_model = tiny_pair
    image = smooth_image(h, w, seed=h)
    ours = SamPredictor(model)
    ours.set_image(image)
    ref = reference.SamPredictor(ref_model)
    ref.set_image(image)
    return ours, ref


def _compare(ours: SamPredictor, ref, **prompts) -> tuple:  # type: ignore[no-untyped-def]
    m, s, low = ours.predict(**prompts)
    # The published masks are exactly its logits > 0 (mask_threshold): one call gives both.
    rlogits, rs, rlow = ref.predict(**prompts, return_logits=True)
    rm = rlogits > ref.model.mask_threshold
    assert m.dtype == np.bool_ and m.shape == rm.shape
    assert m.shape[1:] == ours.original_size
    assert s.dtype == np.float32 and low.dtype == np.float32
    assert low.shape == (m.shape[0], 256, 256)
    assert_close_rel(torch.from_numpy(low), torch.from_numpy(rlow))
    assert_close_rel(torch.from_numpy(s), torch.from_numpy(rs))
    assert_masks_match(torch.from_numpy(m), torch.from_numpy(rm), torch.from_numpy(rlogits))
    return m, s, low, rlow


def _points(ours: SamPredictor, fractions: list[tuple[float, float]]) -> np.ndarray:
    assert ours.original_size is not None
    h, w = ours.original_size
    return np.array([[fx * w, fy * h] for fx, fy in fractions])


def test_features_match(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    assert ours.is_image_set and ours.original_size == tuple(ref.original_size)
    assert ours.input_size == tuple(ref.input_size)
    assert_close_rel(ours.get_image_embedding(), ref.get_image_embedding())


@pytest.mark.parametrize("multimask", [True, False])
def test_single_point(pair, multimask: bool) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = _points(ours, [(0.4, 0.55)])
    m, s, _, _ = _compare(
        ours, ref, point_coords=pts, point_labels=np.array([1]), multimask_output=multimask
    )
    assert m.shape[0] == (3 if multimask else 1)
    # The comparison is only meaningful if the masks have both values somewhere.
    assert 0 < m.mean() < 1


@pytest.mark.parametrize("multimask", [True, False])
def test_several_points(pair, multimask: bool) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = _points(ours, [(0.2, 0.3), (0.7, 0.6), (0.5, 0.9), (1.0, 1.0)])
    _compare(
        ours,
        ref,
        point_coords=pts,
        point_labels=np.array([1, 0, 1, -1]),
        multimask_output=multimask,
    )


def test_box(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    h, w = ours.original_size
    _compare(ours, ref, box=np.array([0.1 * w, 0.2 * h, 0.8 * w, 0.9 * h]))


def test_points_and_box(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    h, w = ours.original_size
    pts = _points(ours, [(0.5, 0.5), (0.3, 0.35)])
    _compare(
        ours,
        ref,
        point_coords=pts,
        point_labels=np.array([1, 0]),
        box=np.array([0, 0, w, h]),
        multimask_output=False,
    )


def test_mask_input_feedback(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = _points(ours, [(0.4, 0.55)])
    _, scores, _, rlow = _compare(ours, ref, point_coords=pts, point_labels=np.array([1]))
    previous = rlow[int(np.argmax(scores))][None]  # 1 x 256 x 256
    more = _points(ours, [(0.4, 0.55), (0.8, 0.2)])
    _compare(
        ours,
        ref,
        point_coords=more,
        point_labels=np.array([1, 0]),
        mask_input=previous,
        multimask_output=False,
    )
    # A 256 x 256 mask is accepted as well (same as 1 x 256 x 256).
    a = ours.predict(more, np.array([1, 0]), mask_input=previous)[2]
    b = ours.predict(more, np.array([1, 0]), mask_input=previous[0])[2]
    np.testing.assert_array_equal(a, b)


def test_return_logits(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = _points(ours, [(0.6, 0.4)])
    logits, _, _ = ours.predict(pts, np.array([1]), return_logits=True)
    rlogits, _, _ = ref.predict(pts, np.array([1]), return_logits=True)
    assert logits.dtype == np.float32 and logits.shape == rlogits.shape
    assert_close_rel(torch.from_numpy(logits), torch.from_numpy(rlogits))
    masks, _, _ = ours.predict(pts, np.array([1]))
    np.testing.assert_array_equal(masks, logits > 0)


def test_predict_torch_batch_of_boxes(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    h, w = ours.original_size
    boxes = torch.tensor(
        [[0, 0, w / 2, h / 2], [w / 4, h / 4, w, h], [0.1 * w, 0.5 * h, 0.9 * w, 0.7 * h]]
    )
    tb = ours.transform.apply_boxes_torch(boxes, ours.original_size)
    torch.testing.assert_close(tb, ref.transform.apply_boxes_torch(boxes, ref.original_size))
    for multimask in (True,):
        m, iou, low = ours.predict_torch(None, None, boxes=tb, multimask_output=multimask)
        rlogits, riou, rlow = ref.predict_torch(
            None, None, boxes=tb, multimask_output=multimask, return_logits=True
        )
        rm = rlogits > 0
        assert m.shape == rm.shape == (3, 3 if multimask else 1, h, w)
        assert_close_rel(low, rlow)
        assert_close_rel(iou, riou)
        assert_masks_match(m, rm, rlogits)


def test_predict_torch_batch_of_points(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = torch.tensor(
        [[[10.0, 20.0], [300.0, 500.0]], [[600.0, 100.0], [50.0, 50.0]]], dtype=torch.float32
    )
    labels = torch.tensor([[1, 0], [1, 1]])
    m, iou, low = ours.predict_torch(pts, labels)
    rlogits, riou, rlow = ref.predict_torch(pts, labels, return_logits=True)
    rm = rlogits > 0
    assert_close_rel(low, rlow)
    assert_close_rel(iou, riou)
    assert_masks_match(m, rm, rlogits)


def test_set_torch_image(pair) -> None:  # type: ignore[no-untyped-def]
    ours, _ = pair
    model = ours.model
    image = smooth_image(*ours.original_size, seed=ours.original_size[0])
    resized = torch.from_numpy(ours.transform.apply_image(image)).permute(2, 0, 1)[None]
    q = SamPredictor(model)
    q.set_torch_image(resized, ours.original_size)
    torch.testing.assert_close(q.get_image_embedding(), ours.get_image_embedding())
    assert q.input_size == ours.input_size and q.original_size == ours.original_size
    with pytest.raises(ValueError, match="transformed_image must be 1 x 3"):
        q.set_torch_image(resized[:, :, :10], ours.original_size)


def test_decode_and_upscale(pair) -> None:  # type: ignore[no-untyped-def]
    ours, ref = pair
    pts = _points(ours, [(0.3, 0.3)])
    masks, scores, low = ours.predict(pts, np.array([1]))
    d_low, d_iou = ours.decode(pts, np.array([1]))
    assert isinstance(d_low, torch.Tensor) and d_low.shape == (3, 256, 256)
    np.testing.assert_array_equal(d_low.numpy(), low)
    np.testing.assert_array_equal(d_iou.numpy(), scores)
    full = ours.upscale(d_low, size="original")
    assert full.shape == (3, *ours.original_size) and full.dtype == torch.float32
    np.testing.assert_array_equal((full > 0).numpy(), masks)
    # "input": the resized, unpadded frame, equal to the published upscale-and-crop.
    inp = ours.upscale(d_low, size="input")
    assert inp.shape == (3, *ours.input_size)
    size = ref.model.image_encoder.img_size
    ref_inp = torch.nn.functional.interpolate(
        d_low[None], (size, size), mode="bilinear", align_corners=False
    )[0, :, : ours.input_size[0], : ours.input_size[1]]
    torch.testing.assert_close(inp, ref_inp, rtol=0, atol=0)
    # Batched input works too.
    assert ours.upscale(d_low[None], size="input").shape == (1, 3, *ours.input_size)
    with pytest.raises(ValueError, match="size"):
        ours.upscale(d_low, size="huge")


@pytest.mark.parametrize("threads", [1, 2])
def test_postprocess_bit_exact_on_many_sizes(tiny_pair, threads: int) -> None:  # type: ignore[no-untyped-def]
    # Our cropped upsampling must give exactly the published postprocess_masks values. The
    # CPU kernel torch picks depends on the thread count (and channels), so check both.
    from sam_widget.engine.transforms import ResizeLongestSide, upscale_logits

    _, ref_model = tiny_pair
    gen = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for channels in (3, 1):
            low = torch.randn((2, channels, 256, 256), generator=gen) * 4
            for original in [(200, 300), (251, 177), (1023, 1024), (5, 7), (1, 2000), (777, 777)]:
                inp = ResizeLongestSide.get_preprocess_shape(*original, 1024)
                ours = upscale_logits(low, inp, original)
                ref = ref_model.postprocess_masks(low, inp, original)
                torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    finally:
        torch.set_num_threads(before)


# -- image input --------------------------------------------------------------------------


def test_image_sources_give_same_embedding(  # type: ignore[no-untyped-def]
    tiny_pair, tmp_path: Path, encoder_calls: list[int]
) -> None:
    model, _ = tiny_pair
    # With a cache, equal converted pixels give a hit: one encoder run for all sources.
    p = SamPredictor(model, cache=EmbeddingCache())
    image = smooth_image(40, 60, seed=3)
    base = p.compute_embedding(image)
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    for source, fmt in [
        (Image.fromarray(image), "RGB"),
        (path, "RGB"),
        (str(path), "RGB"),
        (np.ascontiguousarray(image[:, :, ::-1]), "BGR"),
        (image.astype(np.float64) / 255.0, "RGB"),
        (np.dstack([image, np.zeros((40, 60), np.uint8)])[::1, ::1], "RGB"),
    ]:
        emb = p.compute_embedding(source, image_format=fmt)
        assert emb.key == base.key
        torch.testing.assert_close(emb.features, base.features, rtol=0, atol=0)
    assert len(encoder_calls) == 1
    gray = image[:, :, 0]
    assert p.compute_embedding(gray).key == p.compute_embedding(np.dstack([gray] * 3)).key
    assert len(encoder_calls) == 2


def test_bad_image_refused(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    p = SamPredictor(model)
    with pytest.raises(ValueError, match="image"):
        p.set_image(np.zeros((3, 40, 60), np.uint8))
    with pytest.raises(ValueError, match="image_format"):
        p.set_image(np.zeros((4, 4, 3), np.uint8), image_format="RGBA")
    assert not p.is_image_set


# -- bad prompts --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p300(tiny_pair) -> SamPredictor:  # type: ignore[no-untyped-def]
    """A predictor with a 300 x 200 px image set (shared; tests only read it)."""
    p = SamPredictor(tiny_pair[0])
    p.set_image(smooth_image(200, 300, seed=1))
    return p


def test_predict_before_set_image(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    p = SamPredictor(tiny_pair[0])
    assert not p.is_image_set and p.features is None and p.original_size is None
    for call in (
        lambda: p.predict(np.array([[1.0, 1.0]]), np.array([1])),
        lambda: p.decode(np.array([[1.0, 1.0]]), np.array([1])),
        lambda: p.predict_torch(None, None),
        lambda: p.get_image_embedding(),
        lambda: p.upscale(torch.zeros(1, 256, 256)),
    ):
        with pytest.raises(RuntimeError, match="set_image"):
            call()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"point_coords": [[10, 10]]}, "point_labels must be given"),
        ({"point_labels": [1]}, "point_coords must be given"),
        ({"point_coords": [[10, 10], [20, 20]], "point_labels": [1]}, "point_labels must have"),
        ({"point_coords": [10, 10], "point_labels": [1]}, r"point_coords must have shape \(N, 2\)"),
        ({"point_coords": [[np.nan, 10]], "point_labels": [1]}, "point_coords contains NaN"),
        ({"point_coords": [[10, np.inf]], "point_labels": [1]}, "point_coords contains NaN"),
        ({"point_coords": [[-1, 10]], "point_labels": [1]}, "point_coords .* outside"),
        ({"point_coords": [[10, 10], [301, 10]], "point_labels": [1, 1]}, "outside the image"),
        ({"point_coords": [[10, 201]], "point_labels": [1]}, "outside the image"),
        ({"point_coords": [[10, 10]], "point_labels": [2]}, r"point_labels must be 1.*\[2.0\]"),
        ({"point_coords": [[10, 10]], "point_labels": [0.5]}, "point_labels must be"),
        ({"point_coords": [["a", "b"]], "point_labels": [1]}, "point_coords must be numeric"),
        ({"box": [1, 2, 3]}, "box must be 4 numbers"),
        ({"box": [[1, 2], [3, 4], [5, 6]]}, "box must be 4 numbers"),
        ({"box": [50, 10, 40, 20]}, "x0 < x1"),
        ({"box": [10, 50, 40, 20]}, "y0 < y1"),
        ({"box": [10, 10, 10, 10]}, "x0 < x1 and y0 < y1"),  # zero area: refused
        ({"box": [10, 10, 40, 10]}, "x0 < x1 and y0 < y1"),
        ({"box": [10, 10, np.nan, 20]}, "box contains NaN"),
        ({"box": [10, 10, 400, 20]}, "box .* outside the image"),
        ({"mask_input": np.zeros((1, 64, 64))}, r"mask_input must have shape \(1, 256, 256\)"),
        ({"mask_input": np.zeros((2, 256, 256))}, "mask_input must have shape"),
        ({"mask_input": np.full((1, 256, 256), np.nan)}, "mask_input contains NaN"),
    ],
)
def test_bad_prompts(p300: SamPredictor, kwargs: dict, pattern: str) -> None:
    p = p300
    with pytest.raises((ValueError, TypeError), match=pattern):
        p.predict(**kwargs)
    with pytest.raises((ValueError, TypeError), match=pattern):
        p.decode(**kwargs)


def test_edge_prompts_accepted(p300: SamPredictor) -> None:
    p = p300
    # Points on the border, a whole-image box, no prompt at all, and empty point lists
    # (= no points) with a box.
    p.predict([[0, 0], [300, 200]], [1, 0])
    p.predict(box=np.array([[0, 0, 300, 200]]))
    m, s, low = p.predict()
    assert m.shape == (3, 200, 300)
    a = p.predict(np.zeros((0, 2)), np.zeros(0), box=[5, 5, 100, 100])[2]
    b = p.predict(box=[5, 5, 100, 100])[2]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "args, pattern",
    [
        ((torch.zeros(2, 3), torch.ones(2, 3)), r"point_coords must be B x N x 2"),
        ((torch.zeros(2, 3, 2), torch.ones(2, 2)), r"point_labels must be B x N"),
        ((torch.zeros(1, 1, 2), None), "point_labels must be given"),
        ((torch.full((1, 1, 2), float("nan")), torch.ones(1, 1)), "point_coords contains NaN"),
        ((torch.zeros(1, 1, 2), torch.full((1, 1), 3)), "point_labels must be 1"),
        ((None, None, torch.zeros(2, 3)), "boxes must be B x 4"),
        ((None, None, torch.tensor([[5.0, 5.0, 1.0, 9.0]])), "x0 < x1"),
        ((None, None, torch.tensor([[1.0, 1.0, 9.0, 9.0], [5.0, 5.0, 9.0, 5.0]])), r"boxes\[1\]"),
        (
            (torch.zeros(2, 1, 2), torch.ones(2, 1), torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3)),
            "batch sizes differ",
        ),
        ((None, None, None, torch.zeros(1, 256, 256)), r"mask_input must be B x 1 x 256 x 256"),
        (([[1.0, 2.0]], [1]), "point_coords must be a torch tensor"),
    ],
)
def test_bad_predict_torch(p300: SamPredictor, args: tuple, pattern: str) -> None:
    p = p300
    with pytest.raises((ValueError, TypeError), match=pattern):
        p.predict_torch(*args)


# -- state, device, background split ------------------------------------------------------


def test_state_and_reset(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    p = SamPredictor(model)
    assert p.device == model.device == torch.device("cpu")
    assert p.model is model and p.transform.target_length == 1024
    p.set_image(smooth_image(30, 50, seed=2))
    assert p.original_size == (30, 50) and p.input_size == (614, 1024)
    assert p.features is not None and p.features.shape == (1, 256, 64, 64)
    p.reset_image()
    assert not p.is_image_set and p.features is None and p.input_size is None


def test_compute_embedding_is_pure_and_reports_progress(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    p = SamPredictor(model)
    seen: list[float] = []
    emb = p.compute_embedding(smooth_image(30, 50, seed=2), progress=seen.append)
    assert not p.is_image_set
    assert isinstance(emb, ImageEmbedding) and emb.original_size == (30, 50)
    # tiny has 2 encoder blocks: 1/3, 2/3 after them, 1.0 at the end.
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    p.set_embedding(emb)
    assert p.is_image_set and p.original_size == (30, 50)
    # No progress reported when the encoder runs outside compute_embedding.
    p.compute_embedding(smooth_image(30, 50, seed=3))
    assert len(seen) == 3


def test_progress_exception_cancels(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    p = SamPredictor(tiny_pair[0])
    p.set_image(smooth_image(30, 50, seed=2))
    before = p.get_image_embedding()

    def cancel(fraction: float) -> None:
        raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        p.compute_embedding(smooth_image(30, 50, seed=4), progress=cancel)
    assert p.get_image_embedding() is before
    seen: list[float] = []
    p.compute_embedding(smooth_image(30, 50, seed=4), progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) == 3


def test_concurrent_compute_embedding(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    p = SamPredictor(model)
    images = [smooth_image(30, 40 + 10 * i, seed=10 + i) for i in range(2)]
    expected = [p.compute_embedding(img).features for img in images]
    progress: list[list[float]] = [[], []]
    results: list[torch.Tensor | None] = [None, None]
    threads_seen: list[set[int]] = [set(), set()]

    def run(i: int) -> None:
        def report(f: float) -> None:
            progress[i].append(f)
            threads_seen[i].add(threading.get_ident())

        results[i] = p.compute_embedding(images[i], progress=report).features

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert progress[i] == pytest.approx([1 / 3, 2 / 3, 1.0])
        assert threads_seen[i] == {threads[i].ident}
        torch.testing.assert_close(results[i], expected[i], rtol=0, atol=0)


def test_set_embedding_checks(tiny_pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    p = SamPredictor(model)
    emb = p.compute_embedding(smooth_image(30, 50, seed=2))
    other, _ = make_model_pair("tiny", seed=5)
    with pytest.raises(ValueError, match="different model"):
        SamPredictor(other).set_embedding(emb)
    bad = ImageEmbedding(emb.features[:, :8], emb.original_size, emb.input_size, emb.weights_id, "")
    with pytest.raises(ValueError, match="shape"):
        p.set_embedding(bad)
    bad = ImageEmbedding(emb.features, emb.original_size, (10, 10), emb.weights_id, "")
    with pytest.raises(ValueError, match="input_size"):
        p.set_embedding(bad)
    with pytest.raises(TypeError, match="ImageEmbedding"):
        p.set_embedding(emb.features)  # type: ignore[arg-type]
    assert not p.is_image_set


# -- cache --------------------------------------------------------------------------------


@pytest.fixture
def encoder_calls(tiny_pair):  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    calls: list[int] = []
    handle = model.image_encoder.register_forward_hook(lambda m, i, o: calls.append(1))
    yield calls
    handle.remove()


def test_cache_skips_encoder(tiny_pair, encoder_calls: list[int], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    cache = EmbeddingCache(directory=tmp_path)
    p = SamPredictor(model, cache=cache)
    image = smooth_image(60, 40, seed=7)
    p.set_image(image)
    first = p.get_image_embedding().clone()
    masks = p.predict([[20, 30]], [1])[0]
    assert len(encoder_calls) == 1
    p.set_image(image.copy())
    p.set_image(Image.fromarray(image))  # same pixels through another source
    p.set_image(image[:, :, ::-1].copy(), image_format="BGR")
    assert len(encoder_calls) == 1
    torch.testing.assert_close(p.get_image_embedding(), first, rtol=0, atol=0)
    np.testing.assert_array_equal(p.predict([[20, 30]], [1])[0], masks)
    progress: list[float] = []
    p.compute_embedding(image, progress=progress.append)
    assert progress == [1.0] and len(encoder_calls) == 1
    # Mutating what the predictor holds does not change the cache.
    p.get_image_embedding().fill_(0.0)
    p.set_image(image)
    torch.testing.assert_close(p.get_image_embedding(), first, rtol=0, atol=0)
    # A different image runs the encoder.
    p.set_image(smooth_image(60, 40, seed=8))
    assert len(encoder_calls) == 2
    # A new process (fresh cache object) finds the embedding on disk.
    q = SamPredictor(model, cache=EmbeddingCache(directory=tmp_path))
    q.set_image(image)
    assert len(encoder_calls) == 2
    torch.testing.assert_close(q.get_image_embedding(), first, rtol=0, atol=0)


def test_cache_key_depends_on_weights(tiny_pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny_pair
    other, _ = make_model_pair("tiny", seed=3)
    assert other.weights_id != model.weights_id
    cache = EmbeddingCache(directory=tmp_path)
    image = smooth_image(30, 30, seed=1)
    a = SamPredictor(model, cache=cache).compute_embedding(image)
    calls: list[int] = []
    handle = other.image_encoder.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        b = SamPredictor(other, cache=cache).compute_embedding(image)
    finally:
        handle.remove()
    assert calls == [1] and a.key != b.key and len(cache) == 2
    assert not torch.equal(a.features, b.features)


def test_chunked_thresholding_matches(p300: SamPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    # Large batches are thresholded chunk by chunk; the result must not depend on it.
    from sam_widget.engine import predictor as predictor_module

    boxes = torch.tensor([[0.0, 0.0, 500.0, 400.0], [100.0, 50.0, 900.0, 600.0]] * 2)
    whole, _, _ = p300.predict_torch(None, None, boxes=boxes)
    logits, _, _ = p300.predict_torch(None, None, boxes=boxes, return_logits=True)
    monkeypatch.setattr(predictor_module, "_CHUNK_VALUES", 3 * 200 * 300)  # 1 prompt per chunk
    chunked, _, _ = p300.predict_torch(None, None, boxes=boxes)
    assert chunked.dtype == torch.bool and chunked.shape == (4, 3, 200, 300)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
    torch.testing.assert_close(chunked, logits > 0, rtol=0, atol=0)


@pytest.mark.parametrize(
    "box", [[10, 10, 10, 10], [10, 10, 40, 10], [10, 10, 10, 40], [40, 10, 10, 20], [5, 5, 60, 70]]
)
def test_one_box_rule_for_predictor_and_widget(p300: SamPredictor, box: list[int]) -> None:
    """The predictor refuses exactly the boxes the widget refuses (one function decides)."""
    from sam_widget.widget.objects import normalize_objects

    def outcome(call: Any) -> str | None:
        try:
            call()
        except ValueError as err:
            return str(err).split(" must be ", 1)[1]
        return None

    widget = outcome(lambda: normalize_objects([{"box": box}], 300, 200, 0))
    predictor = outcome(lambda: p300.decode(box=box))
    assert widget == predictor
    assert (widget is None) == (box == [5, 5, 60, 70])
