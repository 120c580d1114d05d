"""Pure parts of the widget: object validation, seq rules, history, the refinement chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_widget.widget import objects as objmod
from sam_widget.widget.chain import Prompt, StageCache, run_chain
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


def test_chain_rules_ambiguity_refinement_and_cache() -> None:
    dec = FakeDecoder()
    cache = StageCache()
    assert run_chain(dec, Prompt(), cache=cache).empty and not dec.calls
    one = Prompt(((1.0, 2.0),), (1,))
    r1 = run_chain(dec, one, cache=cache)
    assert r1.multimask and r1.scores == pytest.approx((0.2, 0.9, 0.5)) and r1.index == 1
    assert dec.calls == [([[1.0, 2.0]], False, None, True)]
    # picking a candidate of the single point needs no new decode
    r1c = run_chain(dec, Prompt(one.points, one.labels, None, 2), cache=cache)
    assert r1c.index == 2 and len(dec.calls) == 1
    # a second point: one more decode, single mask, the chosen logits (index 1) fed back
    two = one.with_point(5, 6, 0)
    r2 = run_chain(dec, two, cache=cache)
    assert len(dec.calls) == 2 and not r2.multimask and r2.index == 0
    assert dec.calls[-1] == ([[1.0, 2.0], [5.0, 6.0]], False, 4.0 + 1.0, False)
    # from scratch (no cache) the same prompts give the same logits: deterministic
    fresh = FakeDecoder()
    assert torch.equal(run_chain(fresh, two).logits, r2.logits) and len(fresh.calls) == 2
    # the candidate chosen for the first point shapes the refined mask
    r2c = run_chain(dec, Prompt(two.points, two.labels, None, 2), cache=cache)
    assert dec.calls[-1][2] == 4.0 + 2.0 and not torch.equal(r2c.logits, r2.logits)
    # a box makes the first stage unambiguous: box alone, then box + point
    boxed = Prompt(one.points, one.labels, (0.0, 0.0, 10.0, 10.0))
    rb = run_chain(fresh, boxed)
    assert not rb.multimask and len(rb.scores) == 1
    assert fresh.calls[-2] == (None, True, None, False)
    assert fresh.calls[-1][:2] == ([[1.0, 2.0]], True) and fresh.calls[-1][2] is not None


def test_stage_cache_is_bounded_lru() -> None:
    cache = StageCache(limit=2)
    t = (torch.zeros(1), torch.zeros(1))
    cache.put("a", t)
    cache.put("b", t)
    assert cache.get("a") is t  # "a" is now the most recent
    cache.put("c", t)
    assert cache.get("b") is None and cache.get("a") is t and len(cache) == 2


def test_chain_without_refine_decodes_all_prompts_at_once() -> None:
    dec = FakeDecoder()
    two = Prompt(((1.0, 2.0), (3.0, 4.0)), (1, 1))
    r = run_chain(dec, two, refine=False)
    assert dec.calls == [([[1.0, 2.0], [3.0, 4.0]], False, None, False)] and not r.multimask


def test_hover_stage_is_not_stored_and_long_chains_fit() -> None:
    dec = FakeDecoder()
    cache = StageCache(limit=2)
    base = Prompt(((1.0, 1.0),), (1,))
    run_chain(dec, base, cache=cache)
    for i in range(10):
        run_chain(dec, base.with_point(2.0 + i, 3.0), cache=cache, store_final=False)
    assert len(dec.calls) == 11 and len(cache) == 1  # only the real stage was kept
    # a click where the last preview was shown reuses it (no decoder run) and keeps it
    clicked = run_chain(dec, base.with_point(11.0, 3.0), cache=cache)
    assert len(dec.calls) == 11 and len(cache) == 2
    fresh = FakeDecoder()
    assert torch.equal(run_chain(fresh, base.with_point(11.0, 3.0)).logits, clicked.logits)
    # a click elsewhere still decodes
    run_chain(dec, base.with_point(2.0, 3.0), cache=cache)
    assert len(dec.calls) == 12
    # a 12-point object: the cache grows to hold the whole chain, so one more point costs
    # exactly one decode
    long = base
    for i in range(11):
        long = long.with_point(5.0 + i, 6.0)
    run_chain(dec, long, cache=cache)
    n = len(dec.calls)
    run_chain(dec, long.with_point(40.0, 41.0), cache=cache)
    assert len(dec.calls) == n + 1
