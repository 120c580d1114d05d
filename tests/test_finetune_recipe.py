"""The training recipe's pieces: prompt simulation, losses, and one step's rounds (SAM paper,
appendix A). Fast: no model runs here except a fake decoder."""

from __future__ import annotations

import types
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from sam_widget.engine.transforms import ResizeLongestSide
from sam_widget.finetune import losses, prompts
from sam_widget.finetune.prepare import Prepared, low_res_target
from sam_widget.finetune.step import train_step


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # Small tensor ops on a loaded 2-core machine: a second intra-op thread only waits.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _regions(
    h: int = 40, w: int = 50
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground truth: a rectangle; prediction: the rectangle shifted right, so there is a
    false-negative strip (left) and a false-positive strip (right) of known cells."""
    gt = torch.zeros(h, w, dtype=torch.bool)
    gt[10:30, 10:30] = True
    pred = torch.zeros(h, w, dtype=torch.bool)
    pred[10:30, 16:36] = True
    fn = gt & ~pred
    fp = pred & ~gt
    logits = torch.where(pred, 3.0, -3.0)
    return gt, logits, fn, fp


def test_corrective_points_fall_in_the_error_region_with_the_right_label() -> None:
    gt, logits, fn, fp = _regions()
    b = 400
    coords, labels = prompts.corrective_points(
        logits.expand(b, -1, -1), gt.expand(b, -1, -1), torch.Generator().manual_seed(0), cell=4
    )
    assert coords.shape == (b, 2) and labels.shape == (b,)
    # input-frame XY -> the low-res cell it lies in
    cols = torch.div(coords[:, 0], 4, rounding_mode="floor").long()
    rows = torch.div(coords[:, 1], 4, rounding_mode="floor").long()
    in_fn, in_fp = fn[rows, cols], fp[rows, cols]
    assert bool((in_fn | in_fp).all()), "every corrective point must be in the error region"
    assert torch.equal(labels[in_fn], torch.ones(int(in_fn.sum())))  # missed -> foreground
    assert torch.equal(labels[in_fp], torch.zeros(int(in_fp.sum())))  # extra -> background
    # Uniform over the error region: both strips have 20 x 6 cells, so about half each.
    share = float(in_fn.float().mean())
    assert 0.4 < share < 0.6, share
    # No error left: an ignored point (label -1).
    _, none = prompts.corrective_points(
        torch.where(gt, 5.0, -5.0)[None], gt[None], torch.Generator().manual_seed(0)
    )
    assert none.tolist() == [-1.0]


def test_corrective_point_proportions_follow_the_areas() -> None:
    gt = torch.zeros(30, 30, dtype=torch.bool)
    gt[0:30, 0:10] = True  # 300 cells of object
    logits = torch.full((30, 30), -1.0)
    logits[0:30, 5:10] = 1.0  # finds 150, misses 150 (false negatives)
    logits[0:5, 10:20] = 1.0  # 50 false-positive cells
    b = 2000
    _, labels = prompts.corrective_points(
        logits.expand(b, -1, -1), gt.expand(b, -1, -1), torch.Generator().manual_seed(1)
    )
    assert abs(float((labels == 1).float().mean()) - 150 / 200) < 0.05


def test_random_points_are_uniform_inside_the_mask() -> None:
    mask = np.zeros((1, 50, 60), dtype=bool)
    mask[0, 10:40, 5:25] = True
    mask[0, 10:40, 35:55] = True  # two equal parts
    rng = np.random.default_rng(0)
    pts = np.concatenate([prompts.random_points(mask, rng) for _ in range(600)])
    xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert mask[0, ys, xs].all()
    assert 0.42 < float((xs < 30).mean()) < 0.58


def test_box_noise_is_ten_percent_of_the_side_capped_at_20_pixels() -> None:
    rng = np.random.default_rng(0)
    small = np.array([[100.0, 100.0, 149.0, 199.0]])  # 50 wide, 100 high
    off = np.concatenate([prompts.box_noise(small, (1000, 1000), rng) - small for _ in range(3000)])
    assert np.std(off[:, 0]) == pytest.approx(5.0, rel=0.1)
    assert np.std(off[:, 1]) == pytest.approx(10.0, rel=0.1)
    big = np.array([[100.0, 100.0, 899.0, 899.0]])  # sigma would be 80: clipped at 20
    off = np.concatenate([prompts.box_noise(big, (1000, 1000), rng) - big for _ in range(500)])
    assert np.abs(off).max() <= 20.0 + 1e-9 and np.abs(off).max() > 19.0
    edge = np.array([[0.0, 0.0, 9.0, 9.0]])
    for _ in range(200):
        b = prompts.box_noise(edge, (10, 10), rng)[0]
        assert 0 <= b[0] <= b[2] <= 9 and 0 <= b[1] <= b[3] <= 9


def test_deepest_points_pick_the_centre_and_label_validation_clicks() -> None:
    region = torch.zeros(1, 21, 31, dtype=torch.bool)
    region[0, 2:19, 3:28] = True  # centre cell (10, 15)
    cells, found = prompts.deepest_points(region)
    assert cells.tolist() == [[10, 15]] and found.tolist() == [True]
    gt, logits, fn, fp = _regions()
    coords, labels = prompts.deepest_corrective_points(logits[None], gt[None])
    col, row = int(coords[0, 0]) // 4, int(coords[0, 1]) // 4
    assert bool(fn[row, col]) == (labels[0] == 1) and bool(fn[row, col] | fp[row, col])


def test_low_res_target_matches_the_decoder_grid() -> None:
    # A 100 x 200 image: input frame 512 x 1024, low-res cells cover 128 x 256 of the grid.
    masks = np.zeros((1, 100, 200), dtype=bool)
    masks[0, 50:, :100] = True  # bottom-left quarter
    t = low_res_target(masks, (512, 1024), 1024, 256)
    assert t.shape == (1, 128, 256)
    assert (
        bool(t[0, 64:, :128].all()) and not bool(t[0, :64].any()) and not bool(t[0, :, 128:].any())
    )


def test_prompt_loss_back_propagates_only_the_best_candidate() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.bool)
    target[:, 2:6, 2:6] = True
    good = torch.where(target, 4.0, -4.0)
    logits = torch.stack([-good, good, torch.zeros_like(good)], dim=1).requires_grad_(True)
    iou_pred = torch.full((2, 3), 0.5, requires_grad=True)
    loss, best = losses.prompt_loss(logits, iou_pred, target)
    assert best.tolist() == [1, 1]
    loss.backward()
    assert logits.grad is not None
    assert float(logits.grad[:, [0, 2]].abs().sum()) == 0.0
    assert float(logits.grad[:, 1].abs().sum()) > 0.0
    # IoU head: trained towards the actual IoU of every candidate (0, 1 and 0 here).
    assert iou_pred.grad is not None
    assert (iou_pred.grad[:, 1] < 0).all() and (iou_pred.grad[:, [0, 2]] > 0).all()


def test_prompt_loss_weighs_focal_and_dice_20_to_1() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 1, 6, 6))
    t = rng.random((1, 6, 6)) > 0.5
    # Independent NumPy focal (alpha 0.25, gamma 2) and dice (smooth 1).
    p = 1 / (1 + np.exp(-x[0, 0]))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = np.where(t, p, 1 - p)
    a_t = np.where(t, 0.25, 0.75)
    focal = float(np.mean(a_t * (1 - p_t) ** 2 * ce))
    dice = 1 - (2 * float((p * t).sum()) + 1) / (float(p.sum()) + float(t.sum()) + 1)
    logits = torch.tensor(x, dtype=torch.float32)
    actual = float(losses.mask_iou(logits, torch.from_numpy(t))[0, 0])
    loss, _ = losses.prompt_loss(logits, torch.tensor([[actual]]), torch.from_numpy(t))
    assert float(loss) == pytest.approx(20 * focal + dice, rel=1e-4)


class _FakeDecoder:
    """A family stand-in: records the prompts of every round and predicts the left half of
    the ground-truth rectangle plus a false strip, so the error region is known."""

    def __init__(self, pred: torch.Tensor) -> None:
        self.calls: list[dict] = []
        self.pred = pred  # 256 x 256 logits
        self.w = torch.nn.Parameter(torch.zeros(()))

    def decode(self, model, features, coords, labels, boxes, mask_input, multimask):  # noqa: ANN001
        b = (coords if coords is not None else boxes).shape[0]
        c = 3 if multimask else 1
        self.calls.append(
            {
                "coords": None if coords is None else coords.clone(),
                "labels": None if labels is None else labels.clone(),
                "boxes": boxes,
                "mask_input": mask_input,
                "multimask": multimask,
            }
        )
        low = self.pred.expand(b, c, -1, -1) + self.w
        return low, torch.full((b, c), 0.5) + self.w


def test_train_step_follows_the_interactive_recipe() -> None:
    gt_low = torch.zeros(256, 256, dtype=torch.bool)
    gt_low[40:120, 40:120] = True
    pred = torch.full((256, 256), -2.0)
    pred[40:120, 40:80] = 2.0  # left half found: right half missed
    pred[130:140, 40:120] = 2.0  # a false strip below
    fake = _FakeDecoder(pred)
    fam = types.SimpleNamespace(decode=fake.decode)
    # Original image 256 x 256 -> input frame 1024 x 1024; the mask matches gt_low.
    mask = np.zeros((1, 256, 256), dtype=bool)
    mask[0, 40:120, 40:120] = True
    prep = Prepared(
        features=torch.zeros(1, 256, 64, 64),
        original_size=(256, 256),
        input_size=(1024, 1024),
        masks=mask,
        target=gt_low[None],
        cell=4,
        name="fake",
    )
    saw_point = saw_box = False
    for seed in range(12):
        fake.calls.clear()
        loss = train_step(
            fam,
            None,
            prep,
            rounds=4,
            masks_per_step=4,
            rng=np.random.default_rng(seed),
            generator=torch.Generator().manual_seed(seed),
            transform=ResizeLongestSide(1024),
        )
        assert np.isfinite(loss)
        first = fake.calls[0]
        assert first["mask_input"] is None
        if first["boxes"] is None:  # a single point: inside the mask, ambiguous -> 3 masks
            saw_point = True
            x, y = first["coords"][0, 0].tolist()
            assert mask[0, int(y) // 4, int(x) // 4] and first["multimask"]
        else:  # a noisy box around the mask, one mask out
            saw_box = True
            assert not first["multimask"] and first["coords"] is None
        for r in range(1, 4):
            call = fake.calls[r]
            assert not call["multimask"]
            # previous logits as mask prompt
            assert torch.equal(call["mask_input"][0, 0], pred)
            xy, lab = call["coords"][0, -1], float(call["labels"][0, -1])
            row, col = int(xy[1]) // 4, int(xy[0]) // 4
            missed = bool(gt_low[row, col]) and pred[row, col] < 0
            extra = (not gt_low[row, col]) and pred[row, col] > 0
            assert missed or extra
            assert lab == (1.0 if missed else 0.0)
            assert call["coords"].shape[1] == r + (0 if first["boxes"] is not None else 1)
    assert saw_point and saw_box


def test_set_trainable_freezes_the_encoder_and_decode_is_differentiable() -> None:
    import warnings

    from sam_widget.models.build import build_sam
    from sam_widget.models.sam import training

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = build_sam("tiny", pretrained=False)
    names = {id(p): n for n, p in model.named_parameters()}
    for train, parts in (
        ("decoder", {"mask_decoder"}),
        ("decoder+prompt", {"mask_decoder", "prompt_encoder"}),
    ):
        params = training.set_trainable(model, train)
        assert {names[id(p)].split(".")[0] for p in params} == parts
        trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == parts
    features = torch.randn(1, 256, 64, 64)
    coords, labels = torch.tensor([[[300.0, 200.0]]]), torch.ones(1, 1)
    low, iou = training.decode(
        model, features, coords, labels, None, torch.zeros(1, 1, 256, 256), True
    )
    assert low.shape == (1, 3, 256, 256) and iou.shape == (1, 3)
    (low.mean() + iou.mean()).backward()
    grads = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {"mask_decoder", "prompt_encoder"}
    with pytest.raises(ValueError, match="train must be one of"):
        training.set_trainable(model, "everything")
