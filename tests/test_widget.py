"""SamWidget kernel side with the real "tiny" model (random weights): traits -> masks.

Browser messages are driven by calling the widget's custom-message handler with the
protocol's dicts; outgoing messages are captured by replacing ``send``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
import torch

from sam_widget.engine import model_cache as registry
from sam_widget.engine.predictor import SamPredictor
from sam_widget.widget.codec import decode_label_map, decode_mask
from sam_widget.widget.widget import SamWidget

TIMEOUT = 60


def make_image(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:] = rng.integers(0, 256, 3)
    img[h // 4 : h // 2, w // 4 : w // 2] = rng.integers(0, 256, 3)
    return img + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)


IMG = make_image(0)
IMG2 = make_image(1, 80, 60)


class Recorder:
    """Replaces ``widget.send``; collects (content, buffers) from any thread."""

    def __init__(self, widget: SamWidget) -> None:
        self.lock = threading.Lock()
        self.msgs: list[tuple[dict[str, Any], list[bytes]]] = []
        widget.send = self.send  # type: ignore[method-assign]

    def send(self, content: dict[str, Any], buffers: Any = None) -> None:
        with self.lock:
            self.msgs.append((content, list(buffers or [])))

    def of(self, kind: str, **match: Any) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self.lock:
            return [
                (c, b)
                for c, b in self.msgs
                if c["type"] == kind and all(c.get(k) == v for k, v in match.items())
            ]

    def clear(self) -> None:
        with self.lock:
            self.msgs.clear()


@pytest.fixture(scope="module")
def model() -> Any:
    # Held for the module so that the registry (weak references) keeps model and cache.
    return registry.get_model("tiny")


@pytest.fixture(scope="module")
def ref(model: Any) -> SamPredictor:
    p = SamPredictor(model)
    p.set_image(IMG)
    return p


def new_widget(model: Any, image: np.ndarray = IMG, **kw: Any) -> tuple[SamWidget, Recorder]:
    w = SamWidget(image, model="tiny", **kw)
    rec = Recorder(w)
    w.wait(TIMEOUT)
    return w, rec


def shown(msg: tuple[dict[str, Any], list[bytes]]) -> np.ndarray:
    content, buffers = msg
    return decode_mask(buffers[0], content["width"], content["height"])


def ref_single_point(ref: SamPredictor, x: float, y: float, label: int = 1):
    logits, iou = ref.decode(np.array([[x, y]]), np.array([label]), multimask_output=True)
    return logits, iou, int(torch.argmax(iou))


def display(ref: SamPredictor, logits: torch.Tensor) -> np.ndarray:
    return (ref.upscale(logits, "input")[0] > 0).numpy()


def original(ref: SamPredictor, logits: torch.Tensor) -> np.ndarray:
    return (ref.upscale(logits, "original")[0] > 0).numpy()


# ---------------------------------------------------------------------------- basics


def test_traits_image_and_untrained_notice(model: Any) -> None:
    w, _ = new_widget(model)
    assert (w.image_width, w.image_height) == (128, 96)
    assert (w.mask_width, w.mask_height) == (1024, 768)  # the model's resized frame
    assert w.image_mime == "image/png" and w.image_data[:8] == b"\x89PNG\r\n\x1a\n"
    assert w.image_id == 1 and w.status == "ready" and w.progress == 1.0
    assert w.objects == [] and w.active == -1 and not w.can_undo and not w.can_redo
    assert "random weights" in w.notice and w.error == ""
    assert w.predictor.model is model


def test_point_sends_mask_matching_predictor(model: Any, ref: SamPredictor) -> None:
    w, rec = new_widget(model)
    oid = w.add_point(40, 30)
    w.wait(TIMEOUT)
    (msg,) = rec.of("mask", object_id=oid)
    content = msg[0]
    logits, iou, best = ref_single_point(ref, 40, 30)
    assert content["image_id"] == w.image_id and content["seq"] == w.objects[0]["seq"]
    assert (content["width"], content["height"]) == (w.mask_width, w.mask_height)
    assert content["scores"] == pytest.approx(iou.tolist(), abs=1e-6)
    assert content["candidate"] == best
    np.testing.assert_array_equal(shown(msg), display(ref, logits[best : best + 1]))
    # results at full resolution from the stored logits
    np.testing.assert_array_equal(w.masks[0], original(ref, logits[best : best + 1]))
    np.testing.assert_array_equal(w.mask, w.masks[0])
    assert w.scores == [pytest.approx(float(iou[best]))]

    # a second (negative) point: single mask refined from the chosen candidate's logits
    rec.clear()
    w.add_point(100, 80, label=0)
    w.wait(TIMEOUT)
    (msg2,) = rec.of("mask", object_id=oid)
    l2, iou2 = ref.decode(
        np.array([[40, 30], [100, 80]]),
        np.array([1, 0]),
        mask_input=logits[best : best + 1],
        multimask_output=False,
    )
    assert msg2[0]["candidate"] is None and msg2[0]["scores"] == pytest.approx(iou2.tolist())
    np.testing.assert_array_equal(shown(msg2), display(ref, l2))
    np.testing.assert_array_equal(w.masks[0], original(ref, l2))


def test_pick_candidate_and_box(model: Any, ref: SamPredictor) -> None:
    w, rec = new_widget(model)
    oid = w.add_point(40, 30)
    logits, _, best = ref_single_point(ref, 40, 30)
    k = (best + 1) % 3
    w.pick_candidate(k)
    w.wait(TIMEOUT)
    last = rec.of("mask", object_id=oid)[-1]
    assert last[0]["candidate"] == k and w.objects[0]["candidate"] == k
    np.testing.assert_array_equal(shown(last), display(ref, logits[k : k + 1]))
    # a box with no points: one mask, no candidates
    b = w.new_object(name="boxed", box=[10, 10, 90, 70])
    w.wait(TIMEOUT)
    lb, _ = ref.decode(box=np.array([10, 10, 90, 70]), multimask_output=False)
    (mb,) = rec.of("mask", object_id=b)
    assert mb[0]["candidate"] is None and len(mb[0]["scores"]) == 1
    np.testing.assert_array_equal(shown(mb), display(ref, lb))


def test_refine_false_decodes_all_prompts_at_once(model: Any, ref: SamPredictor) -> None:
    w, _ = new_widget(model, refine=False)
    w.new_object(points=[[40, 30], [90, 60]], labels=[1, 1])
    lg, _ = ref.decode(np.array([[40, 30], [90, 60]]), np.array([1, 1]), multimask_output=False)
    np.testing.assert_array_equal(w.masks[0], original(ref, lg))


def test_browser_trait_update_goes_through_the_same_path(model: Any, ref: SamPredictor) -> None:
    w, rec = new_widget(model)
    obj = {
        "id": 7,
        "name": "cat",
        "color": "#112233",
        "points": [[40, 30]],
        "labels": [1],
        "box": None,
        "candidate": None,
        "seq": 1,
    }
    w.set_state({"objects": [obj], "active": 7})
    w.wait(TIMEOUT)
    assert w.objects[0]["seq"] == 1 and w.active == 7
    assert len(w.history) == 2 and w.can_undo  # objects + active: one entry
    (msg,) = rec.of("mask", object_id=7, seq=1)
    logits, _, best = ref_single_point(ref, 40, 30)
    np.testing.assert_array_equal(shown(msg), display(ref, logits[best : best + 1]))
    # a view asking for "sync" gets every current mask again
    rec.clear()
    w._on_custom_message(w, {"type": "sync"}, [])
    w.wait(TIMEOUT)
    (again,) = rec.of("mask", object_id=7, seq=1)
    np.testing.assert_array_equal(shown(again), shown(msg))


def test_label_map_later_objects_win(model: Any) -> None:
    w, _ = new_widget(model)
    w.new_object(box=[0, 0, 128, 96])
    w.new_object(points=[[40, 30]])
    m1, m2 = w.masks
    lm = w.label_map()
    assert lm.dtype == np.int32 and lm.shape == (96, 128)
    np.testing.assert_array_equal(lm == 2, m2)
    np.testing.assert_array_equal(lm == 1, m1 & ~m2)
    m1[:] = ~m1  # masks handed out are the caller's own copies
    np.testing.assert_array_equal(w.masks[0], ~m1)


def test_object_management_matches_the_toolbar_rules(model: Any) -> None:
    from sam_widget.widget.objects import PALETTE

    w, rec = new_widget(model)
    ids = [w.new_object(points=[[20 + 30 * i, 40]]) for i in range(3)]
    assert ids == [1, 2, 3] and w.active == 3
    assert [o["color"] for o in w.objects] == list(PALETTE[:3])
    w.delete_object()  # the active (last) one: the previous becomes active
    assert w.object_ids == [1, 2] and w.active == 2
    w.select(1)
    w.delete_object()  # the first one: the next first one becomes active
    assert w.object_ids == [2] and w.active == 2
    assert w.new_object() == 4 and w.objects[-1]["color"] == PALETTE[0]  # first free colour
    # the browser removing the active object: the kernel moves "active" the same way
    w.set_state({"objects": [w.objects[0]]})
    assert w.active == 2
    # clear: the active object's prompts go, the object stays; its mask becomes empty
    w.wait(TIMEOUT)
    rec.clear()
    w.clear()
    w.wait(TIMEOUT)
    assert w.objects[0]["points"] == [] and w.objects[0]["box"] is None
    (msg,) = rec.of("mask", object_id=2)
    assert msg[0]["scores"] == [] and msg[0]["candidate"] is None and not shown(msg).any()
    assert not w.masks[0].any() and w.scores == [None]
    w.clear_all()
    assert w.objects == [] and w.active == -1
    w.undo()
    assert w.object_ids == [2] and w.active == 2


# ------------------------------------------------------------------- validation


def test_bad_prompts_refused_and_state_unchanged(model: Any) -> None:
    w, rec = new_widget(model)
    w.add_point(40, 30)
    w.wait(TIMEOUT)
    before, hist, active = w.objects, w.history, w.active
    rec.clear()
    with pytest.raises(ValueError, match="outside the image"):
        w.add_point(500, 10)
    with pytest.raises(ValueError, match="1 \\(positive\\) or 0"):
        w.add_point(10, 10, label=2)
    with pytest.raises(ValueError, match="x0 < x1"):
        w.set_box([50, 10, 20, 40])
    with pytest.raises(ValueError, match="candidate"):
        w.pick_candidate(5)
    with pytest.raises(ValueError, match="unknown key"):
        w.objects = [{"id": 3, "points": [], "labels": [], "colour": "#000000"}]
    with pytest.raises(TypeError, match="list of dicts"):
        w.objects = "nope"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="active must be"):
        w.select(99)
    with pytest.raises(ValueError, match="no object with id"):
        w.delete_object(42)
    # objects + active in one change: a bad active rolls the objects back too
    with pytest.raises(ValueError, match="active must be"):
        w._commit([{"id": 5, "points": [], "labels": []}], 6)
    assert w.objects == before and w.history == hist and w.active == active
    w.wait(TIMEOUT)
    assert rec.of("mask") == []


def test_browser_sending_bad_objects_is_reported_and_resynced(model: Any, caplog) -> None:
    w, _ = new_widget(model)
    resent: list[Any] = []
    w.send_state = lambda key=None: resent.append(key)  # type: ignore[method-assign]
    bad = {"id": 1, "points": [[1000, 5]], "labels": [1]}
    with caplog.at_level("ERROR", logger="sam_widget"):
        w.set_state({"objects": [bad], "status": "ready"})
    assert w.objects == [] and "outside the image" in w.error
    assert resent and set(resent[-1]) == {"objects", "status"}
    assert any("outside the image" in r.getMessage() for r in caplog.records)
    # The browser may dismiss the error line (set it to ""), but not write any other text.
    resent.clear()
    w.set_state({"error": "made up"})
    assert "outside the image" in w.error and resent[-1] == ["error"]
    w.set_state({"error": ""})
    assert w.error == ""


def test_unknown_kwargs_and_bad_models() -> None:
    with pytest.raises(TypeError):
        SamWidget(IMG, model="tiny", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        SamWidget(IMG, model="tiny", layout_=None)  # type: ignore[call-arg]
    known = "unknown model variant .vit_zz.; known variants: .*sam2.1_hiera_t"
    with pytest.raises(ValueError, match=known):
        SamWidget(IMG, model="vit_zz")
    with pytest.raises(TypeError, match="model must be"):
        SamWidget(IMG, model=3.5)
    with pytest.raises(ValueError, match="image"):
        SamWidget(np.zeros((0, 4, 3), np.uint8), model="tiny")


# ------------------------------------------------------------ sharing and images


def test_two_widgets_share_model_and_cache_not_predictor(model: Any, ref: SamPredictor) -> None:
    calls = []
    hook = model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        w1, rec1 = new_widget(model)
        w2, _ = new_widget(model, IMG2)
        assert w1.predictor.model is w2.predictor.model is model
        assert w1.predictor is not w2.predictor
        assert w1.predictor.cache is w2.predictor.cache is registry.cache_for(model)
        n = len(calls)
        w3 = SamWidget(IMG2, model=model)  # a built Sam; same cache -> no encoder run
        w3.wait(TIMEOUT)
        assert len(calls) == n and w3.predictor.model is model
        # w1 is still on its own image
        oid = w1.add_point(40, 30)
        w1.wait(TIMEOUT)
        logits, _, best = ref_single_point(ref, 40, 30)
        np.testing.assert_array_equal(
            shown(rec1.of("mask", object_id=oid)[-1]), display(ref, logits[best : best + 1])
        )
    finally:
        hook.remove()


def test_predictor_given_is_left_alone(model: Any) -> None:
    user = SamPredictor(model, cache=registry.cache_for(model))
    w = SamWidget(IMG, model=user)
    w.wait(TIMEOUT)
    assert not user.is_image_set and w.predictor is not user
    assert w.predictor.model is model and w.predictor.cache is user.cache
    with pytest.raises(ValueError, match="checkpoint and device"):
        SamWidget(IMG, model=user, device="cpu")


def test_set_image_resets_and_going_back_hits_the_cache(model: Any, ref: SamPredictor) -> None:
    w, rec = new_widget(model)
    w.add_point(40, 30)
    w.set_image(IMG2)
    w.wait(TIMEOUT)
    assert w.image_id == 2 and (w.image_width, w.image_height) == (60, 80)
    assert (w.mask_width, w.mask_height) == (768, 1024)
    assert w.objects == [] and w.history == [{"objects": [], "active": -1}] and not w.can_undo
    assert rec.of("clear_everything")
    calls = []
    hook = model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        w.set_image(IMG)
        assert w.status in ("encoding", "ready")
        oid = w.add_point(40, 30)
        w.wait(TIMEOUT)
    finally:
        hook.remove()
    assert calls == [] and w.image_id == 3
    logits, _, best = ref_single_point(ref, 40, 30)
    assert [m[0]["image_id"] for m in rec.of("mask", object_id=oid)] == [3]
    np.testing.assert_array_equal(w.masks[0], original(ref, logits[best : best + 1]))


# --------------------------------------------------------------- history, data


def test_undo_redo_history_and_replay(model: Any) -> None:
    w, rec = new_widget(model)
    w.add_point(40, 30)
    # Refinement feeds back the previous *decoded* state's logits (one decode per change,
    # issue 16): wait, so that the one-point state is decoded and not coalesced away.
    w.wait(TIMEOUT)
    w.add_point(90, 60, label=0)
    w.new_object(name="second", box=[10, 10, 60, 50])
    m_final = w.masks
    w.select(1)
    # Selecting is not a history step: it updates the current entry (issue 15).
    assert len(w.history) == 4 and w.history_index == 3 and w.history[3]["active"] == 1
    assert w.history[2]["objects"][0]["points"] == [[40.0, 30.0], [90.0, 60.0]]
    w.rename("first")  # a rename is one step
    assert len(w.history) == 5 and w.history_index == 4
    w.undo()
    assert w.objects[0]["name"] == "object 1" and w.active == 1
    w._on_custom_message(w, {"type": "undo"}, [])  # the browser's undo: second object gone
    w.wait(TIMEOUT)
    assert [o["id"] for o in w.objects] == [1] and w.can_redo and w.can_undo
    seq_after_undo = w.objects[0]["seq"]
    w.undo()  # one point left: the mask is re-sent under a new, larger seq
    w.wait(TIMEOUT)
    assert w.objects[0]["points"] == [[40.0, 30.0]] and w.objects[0]["seq"] > seq_after_undo
    single = rec.of("mask", object_id=1, seq=w.objects[0]["seq"])
    assert len(single) == 1 and single[0][0]["candidate"] is not None
    m_single = w.masks
    data = json.loads(json.dumps(w.to_dict()))
    assert data["version"] == 1 and data["history"]["index"] == 1
    w.redo()
    w._on_custom_message(w, {"type": "redo"}, [])
    w.redo()
    for a, b in zip(w.masks, m_final, strict=True):
        np.testing.assert_array_equal(a, b)

    w2 = SamWidget.from_dict(data, IMG, model="tiny")
    w2.wait(TIMEOUT)
    assert w2.history == w.history and w2.history_index == 1
    np.testing.assert_array_equal(w2.masks[0], m_single[0])
    w2.redo()
    w2.redo()
    for a, b in zip(w2.masks, m_final, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [o["name"] for o in w2.objects] == ["object 1", "second"]


def test_load_dict_validates_everything_first(model: Any) -> None:
    w, _ = new_widget(model)
    w.add_point(40, 30)
    data = w.to_dict()
    other, _ = new_widget(model, IMG2)
    other.add_point(5, 5)
    before, hist = other.objects, other.history
    with pytest.raises(ValueError, match="made for a 128 x 96 image"):
        other.load_dict(data)
    bad = json.loads(json.dumps(data))
    bad["image"] = {"width": 60, "height": 80}
    bad["history"]["states"][1]["objects"][0]["points"] = [[100, 5]]
    with pytest.raises(ValueError, match=r"history.states\[1\]"):
        other.load_dict(bad)
    with pytest.raises(ValueError, match="version"):
        other.load_dict({**data, "version": 99})
    assert other.objects == before and other.history == hist


def test_on_mask_callbacks_and_unsubscribe(model: Any) -> None:
    w, _ = new_widget(model)
    got: list[tuple[int, Any]] = []
    unsubscribe = w.on_mask(lambda oid, update: got.append((oid, update)))
    oid = w.add_point(40, 30)
    w.wait(TIMEOUT)
    assert [g[0] for g in got] == [oid]
    update = got[0][1]
    assert update.seq == w.objects[0]["seq"] and update.image_id == w.image_id
    np.testing.assert_array_equal(update.mask, w.masks[0])
    assert update.display.shape == (w.mask_height, w.mask_width)
    unsubscribe()
    w.add_point(60, 40)
    w.wait(TIMEOUT)
    assert len(got) == 1
    # a failing callback is logged and shown, the widget goes on
    w.on_mask(lambda oid, update: 1 / 0)
    w.add_point(70, 40)
    w.wait(TIMEOUT)
    assert "ZeroDivisionError" in w.error
    with pytest.raises(TypeError):
        w.on_mask("not callable")  # type: ignore[arg-type]


# ------------------------------------------------------------------ everything


def test_segment_everything_keep_and_exports(model: Any, tmp_path) -> None:
    from sam_widget.data import io as samio

    w, rec = new_widget(model)
    w.add_point(40, 30)
    params = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    with pytest.raises(TypeError):
        w.segment_everything(points_per_sid=4)
    records = w.segment_everything(**params).result(TIMEOUT)
    assert records and [r["area"] for r in records] == sorted(
        (r["area"] for r in records), reverse=True
    )
    (msg,) = rec.of("everything")
    c = msg[0]
    assert c["count"] == len(records) and c["image_id"] == w.image_id
    labels = decode_label_map(msg[1][0], c["width"], c["height"])
    assert labels.shape == (w.mask_height, w.mask_width) and labels.max() <= len(records)
    assert w.status == "ready"

    k = 0
    oid = w.keep(k)
    w.wait(TIMEOUT)
    obj = w.objects[-1]
    assert obj["id"] == oid and w.active == oid and obj["candidate"] is not None
    assert obj["points"] == [list(map(float, records[k]["point_coords"][0]))]
    kept, target = w.masks[-1], records[k]["segmentation"]
    iou = (kept & target).sum() / max((kept | target).sum(), 1)
    assert iou > 0.98
    with pytest.raises(ValueError, match="index"):
        w.keep(len(records))

    # exports read back to the same masks
    coco = samio.read_coco_json(w.export_coco(tmp_path / "m.json"))
    np.testing.assert_array_equal(coco.masks, np.stack(w.masks))
    with np.load(w.save_masks(tmp_path / "m.npz"), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["masks"], np.stack(w.masks))
        assert z["names"].tolist() == [o["name"] for o in w.objects]
    png = samio.read_label_png(w.save_masks(tmp_path / "m.png"))
    np.testing.assert_array_equal(png, samio.label_map_to_masks(w.label_map(), len(w.objects)))
    with pytest.raises(ValueError, match=".npz or .png"):
        w.save_masks(tmp_path / "m.tif")
