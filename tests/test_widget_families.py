"""The widget works with every model family through the model interface alone (SAM 2.1
here: square input frame, its own upscaling), and its masks equal the predictor's."""

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
