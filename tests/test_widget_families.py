"""The widget, segment-everything and the annotator work with every model family through
the model interface alone (SAM 2.1 here: square input frame, its own upscaling), and their
masks equal the predictor's and the automatic mask generator's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam_widget import SamPredictor, SamWidget, build_sam
from sam_widget.widget.updates import display_size


@pytest.fixture(scope="module")
def sam2_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained on purpose
        return build_sam("sam2.1_hiera_t", pretrained=False)


def test_sam2_widget_masks_equal_the_predictor(sam2_model) -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((90, 150, 3)) * 255).astype(np.uint8)
    w = SamWidget(image, model=sam2_model)
    try:
        w.wait(timeout=600)
        # The browser's masks keep the image's aspect ratio, whatever the model's frame.
        assert (w.mask_height, w.mask_width) == display_size((90, 150)) == (614, 1024)
        w.add_point(100, 40)
        mask = w.masks[0]
        update = w.mask_update(w.objects[0]["id"])
        assert update.display.shape == (614, 1024)
        assert "untrained" in w.notice.lower()
    finally:
        w.close()

    predictor = SamPredictor(sam2_model)
    predictor.set_image(image)
    masks, scores, low_res = predictor.predict(point_coords=[[100, 40]], point_labels=[1])
    best = int(np.argmax(scores))
    assert mask.shape == (90, 150)
    assert np.array_equal(mask, masks[best])
    # SAM 2 squashes the image into its square frame, so its 256 x 256 logits map onto any
    # frame of the image by one bilinear resize (the published postprocess_masks does this
    # for the original size): the display mask is that resize at the display size.
    logits = torch.as_tensor(low_res[best])[None, None]
    display = F.interpolate(logits, (614, 1024), mode="bilinear", align_corners=False)[0, 0] > 0
    assert np.array_equal(update.display, display.numpy())


def _sorted_masks(records: list[dict]) -> list[np.ndarray]:
    """The records' masks in a fixed order (largest first, then by prompt point)."""
    key = [(-int(r["area"]), tuple(r["point_coords"][0])) for r in records]
    return [records[k]["segmentation"] for k in sorted(range(len(records)), key=key.__getitem__)]


def test_sam2_segment_everything_equals_the_generator_and_keeps(sam2_model) -> None:
    """Segment-everything in the widget gives the automatic mask generator's records on a
    SAM 2.1 model (same parameters, SAM 2's defaults for the rest), and ``keep`` turns one
    into an editable object with (nearly) that mask."""
    from sam_widget import SamAutomaticMaskGenerator

    rng = np.random.default_rng(1)
    image = (rng.random((72, 96, 3)) * 255).astype(np.uint8)
    params = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                  box_nms_thresh=1.0)  # fmt: skip
    w = SamWidget(image, model=sam2_model)
    try:
        records = w.segment_everything(**params).result(timeout=600)
        predictor = SamPredictor(sam2_model)
        want = SamAutomaticMaskGenerator(predictor, **params).generate(image)
        assert len(records) == len(want) >= 3
        for got, ref in zip(_sorted_masks(records), _sorted_masks(want), strict=True):
            assert np.array_equal(got, ref)
        k = len(records) // 2
        oid = w.keep(k)
        w.wait(timeout=600)
        assert w.objects[-1]["id"] == oid
        assert w.objects[-1]["points"] == [list(map(float, records[k]["point_coords"][0]))]
        kept, target = w.masks[-1], records[k]["segmentation"]
        assert (kept & target).sum() / max((kept | target).sum(), 1) > 0.98
    finally:
        w.close()


def test_sam2_annotator_saves_prefetches_and_reopens(sam2_model, tmp_path) -> None:
    """The annotator on a SAM 2.1 model: a click's stored mask is the predictor's, the next
    image is prefetched (no encoding when going there, its SAM 2 high-resolution features
    included), and a reopened project draws the same masks."""
    from PIL import Image

    from sam_widget.annotator import SamAnnotator

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    images = [(rng.random((64, 80, 3)) * 255).astype(np.uint8) for _ in range(2)]
    for k, img in enumerate(images):
        Image.fromarray(img).save(folder / f"im{k}.png")
    project = tmp_path / "labels.sqlite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SamAnnotator(folder, project=project, model=sam2_model, categories=["thing"])
    try:
        a.widget.wait(600)
        assert a.wait_prefetch(600) and a.prefetched(1)
        a.set_category("thing")
        a.widget.add_point(30, 20)
        a.widget.wait(600)
        a.sync.flush()
        (obj,) = a.objects(0)
        assert obj.category == "thing" and obj.weights_id == str(sam2_model.weights_id)
        stored0 = a.masks(0)[0]

        encodes: list[int] = []
        hook = sam2_model.image_encoder.register_forward_hook(lambda *_: encodes.append(1))
        try:
            a.next()
            a.widget.wait(600)
            assert encodes == [], "the prefetched image was encoded again"
            a.widget.add_point(50, 40)
            a.widget.wait(600)
            a.sync.flush()
        finally:
            hook.remove()
        stored1 = a.masks(1)[0]
    finally:
        a.close()

    predictor = SamPredictor(sam2_model)
    for img, point, stored in ((images[0], [30, 20], stored0), (images[1], [50, 40], stored1)):
        predictor.set_image(img)
        masks, scores, _ = predictor.predict(point_coords=[point], point_labels=[1])
        assert np.array_equal(stored, masks[int(np.argmax(scores))])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = SamAnnotator(folder, project=project, model=sam2_model, prefetch=False)
    try:
        again.widget.wait(600)
        assert again.index == 1  # the position is restored
        assert np.array_equal(again.widget.masks[0], stored1)
        again.prev()
        again.widget.wait(600)
        assert np.array_equal(again.widget.masks[0], stored0)
    finally:
        again.close()
