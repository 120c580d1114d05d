"""What a first-use trial of the widget stumbled on (issue 15), one test per point: the model
that cannot load (one message with the next step, said once; checked at construction where
possible; no traceback printed into unrelated cells), the untrained notice, history without
selection steps, everything parameters, size options, persistence records, error words."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_widget import IMG, TIMEOUT, new_widget
from test_widget import model as model  # noqa: F401  (fixture)

from sam_widget.engine.checkpoints import OFFICIAL
from sam_widget.widget.widget import SamWidget

REPO = Path(__file__).resolve().parents[1]


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


# ---------------------------------------------------------------------------- loading


def test_missing_checkpoint_is_refused_at_construction(tmp_path: Path) -> None:
    before = _threads()
    with pytest.raises(FileNotFoundError, match=r"checkpoint '/no/such/file\.pt' does not exist"):
        SamWidget(IMG, model="vit_t", checkpoint="/no/such/file.pt")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        SamWidget(IMG, model="vit_t", checkpoint=tmp_path)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        SamWidget(IMG, model="vit_t", checkpoint=3)
    assert _threads() <= before  # nothing was started in the background


def test_failed_download_is_one_message_with_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline: name resolution fails, as on a machine without network.
    monkeypatch.setenv("SAM_WIDGET_CACHE", str(tmp_path / "cache"))

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    w = SamWidget(IMG, model="vit_t")
    try:
        with pytest.raises(RuntimeError) as info:
            w.wait(TIMEOUT)
        message = w.error
        assert str(info.value) == message  # w.wait() says the same, not a stacked variant
        assert w.status == "error"
        assert message.startswith("The model could not be loaded: Could not download ")
        assert message.count("could not be loaded") == 1 and message.count("Could not") == 1
        assert "?." not in message and ".." not in message
        info_t = OFFICIAL["vit_t"]
        assert info_t.url in message
        assert str(tmp_path / "cache" / info_t.filename) in message  # the cache path
        assert 'SamWidget(image, checkpoint="/path/to/mobile_sam.pt")' in message
        assert "\n" not in message
    finally:
        w.close()


def test_background_failure_prints_nothing_into_the_running_cell(tmp_path: Path) -> None:
    # A plain script (as a notebook kernel runs cells): the load fails on the worker thread.
    # The widget and the "sam_widget" logger get the failure; stderr gets no traceback.
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from sam_widget import SamWidget
        w = SamWidget(np.zeros((32, 48, 3), np.uint8), model="tiny", checkpoint={str(bad)!r})
        try:
            w.wait(60)
        except RuntimeError:
            pass
        assert w.status == "error" and "could not be loaded" in w.error, w.error
        w.close()
        print("done")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert "Traceback" not in out.stderr and "could not be loaded" not in out.stderr, out.stderr


def test_untrained_notice_once_pointing_to_checkpoint(tmp_path: Path) -> None:
    import torch

    from sam_widget.models.build import assemble_sam
    from sam_widget.widget.loading import untrained_notice

    text = untrained_notice("vit_t")
    assert "random weights" in text and "meaningless" in text
    assert 'checkpoint="/path/to/mobile_sam.pt"' in text and OFFICIAL["vit_t"].url in text
    assert "model='vit_t'" not in text  # not "use vit_t" right after vit_t failed
    # A widget on an untrained model shows it once, and warns nothing on its own.
    torch.manual_seed(0)
    sam = assemble_sam("tiny").eval()
    sam.pretrained = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = SamWidget(IMG, model=sam)
        w.wait(TIMEOUT)
    try:
        assert w.notice.count("random weights") == 1
    finally:
        w.close()


# ---------------------------------------------------------------------------- history


def test_selection_is_not_a_history_step(model: Any) -> None:
    w, _ = new_widget(model)
    w.add_point(40, 30)
    w.new_object()
    w.add_point(90, 60)
    steps = len(w.history)
    w.select(w.object_ids[0])
    w.select(w.object_ids[1])
    w.select(w.object_ids[0])
    assert len(w.history) == steps
    # The browser selects by setting `active`: no step either.
    w.set_state({"active": w.object_ids[1]})
    assert len(w.history) == steps
    w.rename("cup")
    assert len(w.history) == steps + 1  # a rename is one step
    w.undo()
    assert [o["name"] for o in w.objects] == ["object 1", "object 2"]
    w.undo()  # one Ctrl+Z undoes the last click
    assert [len(o["points"]) for o in w.objects] == [1, 0]
    w.close()


# ---------------------------------------------------------------------------- everything


def test_everything_params_from_python_and_browser(model: Any) -> None:
    w, rec = new_widget(model, everything={"points_per_side": 2, "pred_iou_thresh": 0.0})
    try:
        assert w.everything_params == {"points_per_side": 2, "pred_iou_thresh": 0.0}
        w.everything_params = {**w.everything_params, "stability_score_thresh": 0.0}
        # The browser's popover: JSON numbers, 2.0 for an integer is fine.
        w.set_state({"everything_params": {"points_per_side": 3.0}})
        assert w.everything_params == {"points_per_side": 3}
        assert isinstance(w.everything_params["points_per_side"], int)
        w.everything_params = {"points_per_side": 2, "pred_iou_thresh": 0.0}
        w.set_state(
            {
                "everything_params": {
                    "points_per_side": 2.0,
                    "pred_iou_thresh": 0.0,
                    "stability_score_thresh": 0.0,
                }
            }
        )
        records = w.segment_everything().result(TIMEOUT)
        # points_per_side=2 (the widget's parameters were used): at most 4 prompts' masks
        assert 0 < len(records) <= 4 * 3
        assert {tuple(r["point_coords"][0]) for r in records} <= {
            (x, y) for x in (32.0, 96.0) for y in (24.0, 72.0)
        }
        # A call's own keywords win over the stored ones.
        more = w.segment_everything(points_per_side=3).result(TIMEOUT)
        assert {tuple(r["point_coords"][0]) for r in more} - {
            (x, y) for x in (32.0, 96.0) for y in (24.0, 72.0)
        }
        # Bad values fail where they are set, naming the parameter; nothing changes.
        before = dict(w.everything_params)
        with pytest.raises(ValueError, match="pred_iou_thresh"):
            w.everything_params = {"pred_iou_thresh": 1.5}
        with pytest.raises(ValueError, match="unknown or unsupported parameter 'points'"):
            w.everything_params = {"points": 3}
        with pytest.raises(TypeError, match="points_per_side must be an int"):
            w.everything_params = {"points_per_side": "many"}
        assert w.everything_params == before
        # From the browser: reported on the error line and sent back corrected.
        w.set_state({"everything_params": {"box_nms_thresh": -1}})
        assert "box_nms_thresh" in w.error and w.everything_params == before
    finally:
        w.close()
    with pytest.raises(ValueError, match=r"everything: .*crop_overlap_ratio"):
        SamWidget(IMG, model="tiny", everything={"crop_overlap_ratio": 2})
    with pytest.raises(TypeError, match="everything must be a dict"):
        SamWidget(IMG, model="tiny", everything=[("points_per_side", 4)])


def test_keep_after_new_leaves_no_empty_object(model: Any) -> None:
    w, _ = new_widget(
        model,
        everything={"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
    )
    try:
        assert w.segment_everything().result(TIMEOUT)
        w.add_point(10, 10)
        w.new_object()  # "New", then a click on an everything-mask in keep mode
        w._on_custom_message(w, {"type": "keep", "index": 0}, [])
        assert len(w.objects) == 2
        assert all(o["points"] for o in w.objects), w.objects  # nothing empty left behind
    finally:
        w.close()


def test_size_options(model: Any) -> None:
    w, _ = new_widget(model, width=300)
    try:
        assert (w.width, w.height) == (300, 0)
        w.height = 200
        assert w.get_state()["height"] == 200  # synced to the browser
    finally:
        w.close()
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="width must be a number of CSS pixels"):
            SamWidget(IMG, model="tiny", width=bad)


# ---------------------------------------------------------------------------- persistence


def test_to_dict_records_what_was_used_and_from_dict_restores(model: Any, tmp_path: Path) -> None:
    from PIL import Image

    from sam_widget.models.build import assemble_sam

    path = tmp_path / "photo.png"
    Image.fromarray(IMG).save(path)
    import torch

    torch.manual_seed(5)
    ckpt = tmp_path / "tiny.pth"
    torch.save(assemble_sam("tiny").state_dict(), ckpt)
    w = SamWidget(str(path), model="tiny", checkpoint=ckpt)
    w.wait(TIMEOUT)
    w.add_point(40, 30)
    masks = w.masks
    data = json.loads(json.dumps(w.to_dict()))
    w.close()
    rec = data["model"]
    assert rec["variant"] == "tiny" and rec["checkpoint"] == str(ckpt.resolve())
    assert rec["pretrained"] is False  # "tiny" never has trained weights
    assert isinstance(rec["weights_id"], str) and rec["weights_id"]
    assert data["image"]["path"] == str(path.resolve())
    # No image, no model: both come from the record.
    w2 = SamWidget.from_dict(data)
    try:
        w2.wait(TIMEOUT)
        assert w2.objects[0]["points"] == [[40.0, 30.0]]
        assert w2.predictor.model.variant == "tiny"
        np.testing.assert_array_equal(w2.image, IMG)
        # the same weights (the recorded checkpoint) on the same image: the same mask
        assert w2.predictor.model.weights_id == rec["weights_id"]
        np.testing.assert_array_equal(w2.masks[0], masks[0])
    finally:
        w2.close()
    # Made from an array: no image is recorded, and from_dict says what it needs.
    w3, _ = new_widget(model)
    w3.add_point(40, 30)
    data3 = w3.to_dict()
    w3.close()
    assert data3["image"]["path"] is None
    with pytest.raises(TypeError, match=r"from_dict\(data, image\): the image is needed"):
        SamWidget.from_dict(data3)


def test_untrained_record_is_rebuilt_untrained_not_downloaded(tmp_path: Path) -> None:
    from sam_widget.widget.loading import model_from_record

    model, checkpoint = model_from_record(
        {"variant": "vit_t", "pretrained": False, "checkpoint": None, "weights_id": "x"}
    )
    assert checkpoint is None and model.variant == "vit_t" and model.pretrained is False
    assert model_from_record("vit_b") == ("vit_b", None)  # older files: a name only
    assert model_from_record({"variant": "vit_b", "pretrained": True, "checkpoint": "/w.pth"}) == (
        "vit_b",
        "/w.pth",
    )
    with pytest.raises(ValueError, match="Pass model= explicitly"):
        model_from_record({"pretrained": True})


def test_export_coco_one_category_with_instances(model: Any, tmp_path: Path) -> None:
    w, _ = new_widget(model)
    try:
        w.add_point(40, 30)
        w.new_object()
        w.add_point(90, 60)
        out = json.loads(w.export_coco(tmp_path / "coco.json").read_text())
    finally:
        w.close()
    assert out["categories"] == [{"id": 1, "name": "object"}]
    assert [a["category_id"] for a in out["annotations"]] == [1, 1]
    assert [a["name"] for a in out["annotations"]] == ["object 1", "object 2"]


# ---------------------------------------------------------------------------- words


def test_objects_error_names_the_object_and_point_as_the_user_sees_them(model: Any) -> None:
    from sam_widget.widget.widget import ObjectsError

    w, _ = new_widget(model)
    try:
        w.add_point(10, 10)
        w.new_object("cup")
        w.add_point(20, 20)
        objs = [dict(o) for o in w.objects]
        objs[1]["points"] = [[20, 20], [-5, 10]]
        objs[1]["labels"] = [1, 1]
        with pytest.raises(ObjectsError) as info:
            w.objects = objs
        text = str(info.value)
        oid = objs[1]["id"]
        assert text.startswith(f"object 2 'cup' (id {oid}), point 2: x=-5 is outside the image")
        assert "objects[" not in text and "points[" not in text
    finally:
        w.close()


# ---------------------------------------------------------------------------- latency


def test_a_click_pre_empts_pending_hover_work(model: Any) -> None:
    from test_widget_async import Gate

    w, rec = new_widget(model)
    try:
        oid = w.add_point(40, 30)
        w.wait(TIMEOUT)
        gate = Gate(w.predictor, "decode")
        w.new_object()
        other = w.add_point(100, 70)  # the worker is held inside this decode ...
        gate.wait_entered()
        w.select(oid)
        # ... while the pointer glides: a hover preview for object `oid` is queued ...
        w._on_custom_message(w, {"type": "hover", "seq": 7, "x": 60.0, "y": 40.0}, [])
        # ... and the click lands: the queued preview is dropped, never decoded.
        w.add_point(60, 40)
        calls_before = len(gate.calls)
        gate.release()
        w.wait(TIMEOUT)
        assert rec.of("hover_mask", seq=7) == []
        assert rec.of("mask", object_id=oid, seq=w.objects[0]["seq"])
        assert rec.of("mask", object_id=other)
        # the decodes after the gate: the click's own (refinement stages), no hover
        assert len(gate.calls) - calls_before >= 1
    finally:
        w.close()
