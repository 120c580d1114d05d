"""Pure parts of the widget: object validation, seq rules, history, the refinement chain."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sam_widget.widget import objects as objmod
from sam_widget.widget.chain import ObjectMemo, Prompt, run_chain
from sam_widget.widget.history import History

W, H = 200, 100


def _obj(**kw):
    base = {"id": 1, "points": [[10, 20]], "labels": [1]}
    base.update(kw)
    return base


def test_normalize_fills_defaults_and_converts_numbers() -> None:
    objs, nxt = objmod.normalize_objects(
        [{"points": np.array([[1, 2]]), "labels": np.array([True])}, _obj(id=5)], W, H, 1
    )
    assert [o["id"] for o in objs] == [6, 5] and nxt == 7
    first = objs[0]
    assert first["points"] == [[1.0, 2.0]] and type(first["points"][0][0]) is float
    assert first["labels"] == [1] and first["box"] is None and first["candidate"] is None
    assert first["name"] == "object 6" and first["color"].startswith("#")
    assert set(first) == set(objmod.KEYS)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        # the object and point as the user sees them: numbers from 1, name, id (issue 15)
        (
            _obj(points=[[1, 1], [W + 1, 5]]),
            r"^object 1 'object 1' \(id 1\), point 2: x=201 is outside",
        ),
        (_obj(points=[[5, -0.5]]), "y=-0.5 is outside"),
        (_obj(points=[[float("nan"), 5]]), "finite"),
        (_obj(labels=[2]), r"labels\[0\] must be 1 \(positive\) or 0"),
        (_obj(labels=[1, 0]), "2 labels for 1 points"),
        (_obj(box=[10, 10, 5, 20]), "x0 < x1"),
        (_obj(box=[0, 0, W, H + 1]), r"box corner \(x1, y1\): y=101"),
        (_obj(box=[1, 2, 3]), "None or"),
        (_obj(candidate=3), "candidate"),
        (_obj(color="red"), "#rrggbb"),
        (_obj(id=-2), "id must be an integer"),
        (_obj(seq=-1), "seq"),
        (_obj(extra=1), "unknown key"),
    ],
)
def test_bad_objects_are_refused_with_clear_messages(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        objmod.normalize_objects([bad], W, H, 1)


def test_type_errors_and_duplicate_ids() -> None:
    with pytest.raises(TypeError, match="list of dicts"):
        objmod.normalize_objects({"id": 1}, W, H, 1)
    with pytest.raises(TypeError, match="must be a dict"):
        objmod.normalize_objects([3], W, H, 1)
    with pytest.raises(TypeError, match="number"):
        objmod.normalize_objects([_obj(points=[["a", 1]])], W, H, 1)
    with pytest.raises(ValueError, match="used by another"):
        objmod.normalize_objects([_obj(), _obj()], W, H, 1)


def test_seq_only_grows_and_follows_prompt_changes() -> None:
    objs, _ = objmod.normalize_objects([_obj()], W, H, 1)
    (a,) = objmod.assign_seqs(objs, {}, {})
    assert a["seq"] == 0
    # unchanged prompts (name change only): same seq
    (b,) = objmod.assign_seqs([{**a, "name": "x", "seq": None}], {1: a}, {1: 0})
    assert b["seq"] == 0
    # changed prompts: bumped
    (c,) = objmod.assign_seqs([{**a, "candidate": 1, "seq": None}], {1: a}, {1: 0})
    assert c["seq"] == 1
    # a re-created id continues above the high-water mark
    (d,) = objmod.assign_seqs([{**a, "seq": 0}], {}, {1: 7})
    assert d["seq"] == 8
    # a browser that already bumped seq keeps its number; a stale seq never goes back
    (e,) = objmod.assign_seqs([{**a, "points": [[1, 1]], "seq": 12}], {1: a}, {1: 0})
    assert e["seq"] == 12
    (f,) = objmod.assign_seqs([{**c, "seq": 0}], {1: c}, {1: 1})
    assert f["seq"] == 1


def test_history_push_undo_redo_and_data_round_trip() -> None:
    h = History({"objects": [], "active": -1})
    assert not h.can_undo and h.undo() is None
    assert h.push({"objects": [], "active": -1}) is False  # equal state: no entry
    assert h.push({"objects": [1], "active": 1})
    assert h.push({"objects": [1, 2], "active": 2})
    assert h.undo() == {"objects": [1], "active": 1}
    assert h.can_redo
    data = h.to_data()
    h2 = History.from_data(data, lambda s, where: s)
    assert h2.states == h.states and h2.index == 1
    assert h.push({"objects": [3], "active": 3})  # drops the redo branch
    assert not h.can_redo and len(h.states) == 3
    with pytest.raises(ValueError, match="index"):
        History.from_data({"states": [{}], "index": 4}, lambda s, where: s)


def test_history_selection_updates_the_current_entry() -> None:
    h = History({"objects": [], "active": -1})
    h.push({"objects": [1, 2], "active": 2})
    assert h.push({"objects": [1, 2], "active": 1}) is False  # selecting: no entry ...
    assert len(h.states) == 2 and h.current == {"objects": [1, 2], "active": 1}  # ... updated
    assert h.undo() == {"objects": [], "active": -1}  # one undo: back before the change


def test_history_limit_drops_oldest() -> None:
    h = History({"n": 0}, limit=3)
    for i in range(1, 6):
        h.push({"n": i})
    assert [s["n"] for s in h.states] == [3, 4, 5] and h.index == 2


class FakeDecoder:
    """Stand-in for SamPredictor.decode whose logits depend only on its inputs."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, points, labels, box, mask_input, multimask):
        self.calls.append(
            (
                None if points is None else points.tolist(),
                box is not None,
                None if mask_input is None else float(mask_input.mean()),
                multimask,
            )
        )
        c = 3 if multimask else 1
        base = 0.0 if points is None else float(points.sum() + labels.sum())
        logits = torch.full((c, 256, 256), base) + torch.arange(c).view(c, 1, 1)
        if mask_input is not None:
            logits = logits + mask_input
        iou = torch.tensor([0.2, 0.9, 0.5][:c]) if multimask else torch.tensor([0.7])
        return logits, iou


def test_chain_rules_ambiguity_and_one_decode_per_change() -> None:
    dec = FakeDecoder()
    memo = ObjectMemo()
    assert run_chain(dec, Prompt(), memo=memo).empty and not dec.calls
    one = Prompt(((1.0, 2.0),), (1,))
    r1 = run_chain(dec, one, memo=memo)
    assert r1.multimask and r1.scores == pytest.approx((0.2, 0.9, 0.5)) and r1.index == 1
    assert dec.calls == [([[1.0, 2.0]], False, None, True)]
    # a second point: one decode of both points, the chosen logits (index 1) fed back
    two = one.with_point(5, 6, 0)
    r2 = run_chain(dec, two, memo=memo)
    assert len(dec.calls) == 2 and not r2.multimask and r2.index == 0
    assert dec.calls[-1] == ([[1.0, 2.0], [5.0, 6.0]], False, 4.0 + 1.0, False)
    # 500 points at once (a script, from_dict, a frontend): still exactly one decode, fed
    # the previous state's logits
    many = two
    for i in range(498):
        many = many.with_point(float(i % 90), 7.0, 1)
    run_chain(dec, many, memo=memo)
    assert len(dec.calls) == 3 and len(dec.calls[-1][0]) == 500
    assert dec.calls[-1][2] == pytest.approx(float(r2.logits.mean()))
    # back to a state decoded before (undo): no decode, and it is the previous state again
    assert torch.equal(run_chain(dec, two, memo=memo).logits, r2.logits) and len(dec.calls) == 3
    run_chain(dec, two.with_point(9, 9, 1), memo=memo)
    assert dec.calls[-1][2] == pytest.approx(float(r2.logits.mean()))
    # picking a candidate of the single point needs no decode and shapes the next refinement
    r1c = run_chain(dec, Prompt(one.points, one.labels, None, 2), memo=memo)
    assert r1c.index == 2 and len(dec.calls) == 4
    run_chain(dec, Prompt(one.points, one.labels, None, 2).with_point(3, 3, 1), memo=memo)
    assert dec.calls[-1][2] == 4.0 + 2.0
    # a box alone is unambiguous: one mask, refined from nothing on a fresh object
    fresh = FakeDecoder()
    rb = run_chain(fresh, Prompt((), (), (0.0, 0.0, 10.0, 10.0)), memo=ObjectMemo())
    assert not rb.multimask and len(rb.scores) == 1
    assert fresh.calls == [(None, True, None, False)]


def test_object_memo_is_bounded_and_reports_its_bytes() -> None:
    dec = FakeDecoder()
    memo = ObjectMemo(limit=2)
    assert memo.nbytes() == 0
    base = Prompt(((1.0, 1.0),), (1,))
    for i in range(5):
        run_chain(dec, base.with_point(2.0 + i, 3.0), memo=memo)
    assert len(memo) == 2
    # two 1 x 256 x 256 results, one 1 x 256 x 256 previous-state slice of them, floats
    assert memo.nbytes() == 3 * 256 * 256 * 4 + 2 * 4


def test_chain_without_refine_never_feeds_logits_back() -> None:
    dec = FakeDecoder()
    memo = ObjectMemo()
    run_chain(dec, Prompt(((1.0, 2.0),), (1,)), refine=False, memo=memo)
    two = Prompt(((1.0, 2.0), (3.0, 4.0)), (1, 1))
    r = run_chain(dec, two, refine=False, memo=memo)
    assert dec.calls[-1] == ([[1.0, 2.0], [3.0, 4.0]], False, None, False) and not r.multimask
    assert torch.equal(run_chain(FakeDecoder(), two, refine=False).logits, r.logits)


def test_hover_preview_is_not_stored_and_a_click_there_reuses_it() -> None:
    dec = FakeDecoder()
    memo = ObjectMemo(limit=2)
    base = Prompt(((1.0, 1.0),), (1,))
    run_chain(dec, base, memo=memo)
    last = memo.last
    for i in range(10):
        run_chain(dec, base.with_point(2.0 + i, 3.0), memo=memo, store_final=False)
    assert len(dec.calls) == 11 and len(memo) == 1  # only the real state was kept
    assert memo.last is last  # a preview is not the object's previous state
    # a click where the last preview was shown reuses it (no decoder run) and keeps it
    clicked = run_chain(dec, base.with_point(11.0, 3.0), memo=memo)
    assert len(dec.calls) == 11 and len(memo) == 2
    assert dec.calls[-1][2] == pytest.approx(float(last.mean()))  # it was refined from base
    assert torch.equal(memo.last, clicked.logits[:1])
    # a click elsewhere still decodes
    run_chain(dec, base.with_point(2.0, 3.0), memo=memo)
    assert len(dec.calls) == 12


def test_cancel_points_abandon_a_model_run_only_on_the_checking_thread() -> None:
    from sam_widget.widget.cancel import Cancelled, cancellable, install_cancel_points

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    install_cancel_points(model)
    install_cancel_points(model)  # once per model
    x = torch.ones(1, 2)
    calls = []

    def check() -> bool:
        calls.append(1)
        return len(calls) >= 3  # true from the third module call on

    with cancellable(check), pytest.raises(Cancelled):
        model(x)
    assert len(calls) == 3  # Sequential, Linear, then the ReLU's check raised
    # outside the block, and on other threads, runs are untouched
    assert model(x).shape == (1, 1)
    with cancellable(lambda: True):
        out: list[torch.Tensor] = []
        t = threading.Thread(target=lambda: out.append(model(x)))
        t.start()
        t.join()
    assert out and out[0].shape == (1, 1)
