"""SamAnnotator end to end: JupyterLab + headless Chromium + the kernel, tiny random model.

Annotate two images of a folder with real clicks and keys (click, category key, ``n`` for
next), restart the kernel, run the cell again: the annotator comes back on the same image
and the browser draws the same masks, which equal the stored ones. A screenshot of the
annotator goes to test-artifacts/annotator.png.
"""

from __future__ import annotations

import shutil
from typing import Any

from .harness import ARTIFACTS, Notebook
from .sam_page import SamPage
from .test_sam_widget import assert_overlay_matches_kernel

SETUP = """
import warnings
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from skimage import data
from sam_widget import SamAnnotator, SamPredictor, build_sam

folder = Path("annotator_e2e/images")
folder.mkdir(parents=True, exist_ok=True)
for name in ("coffee", "chelsea"):
    if not (folder / f"{name}.png").exists():
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
torch.manual_seed(0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = build_sam("tiny")
a = SamAnnotator(folder, project="annotator_e2e/labels.sqlite", model=model,
                 categories=["cup", "cat"])
a
"""

HELPERS = """
def _pick(seed):
    '''A pixel centre whose single-click mask (best predicted IoU) covers the 3x3 pixels
    around it and 2-98 % of the image, so the overlay comparison is not degenerate.'''
    img = a.widget.image
    pred = SamPredictor(model)
    pred.set_image(img)
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    for _ in range(400):
        xi, yi = int(rng.integers(4, w - 4)), int(rng.integers(4, h - 4))
        ms, sc, _ = pred.predict(point_coords=np.array([[xi + 0.5, yi + 0.5]]),
                                 point_labels=np.array([1]))
        best = ms[int(np.argmax(sc))]
        if best[yi - 1:yi + 2, xi - 1:xi + 2].all() and 0.02 < best.mean() < 0.98:
            return [xi + 0.5, yi + 0.5]
    raise AssertionError("no click place found")

def _stable_samples(mask, n=40):
    '''Grid points (pixel centres) where mask is constant over a 3x3 square: (x, y, value).'''
    H, W = mask.shape
    out = []
    for yi in np.linspace(4, H - 5, n).astype(int):
        for xi in np.linspace(4, W - 5, n).astype(int):
            win = mask[yi - 1:yi + 2, xi - 1:xi + 2]
            if win.all() or not win.any():
                out.append([float(xi) + 0.5, float(yi) + 0.5, bool(mask[yi, xi])])
    return out
"""


def _page(nb: Notebook) -> SamPage:
    w, h = nb.kernel_json("[int(a.widget.image_width), int(a.widget.image_height)]")
    sam = SamPage(nb.page, w, h).wait_visible()
    nb.kernel("a.widget.wait(120)", timeout=180)
    nb.page.wait_for_function(
        "() => document.querySelector('div.sam-widget .sam-status')?.textContent.includes('Ready')"
    )
    return sam


def _click(nb: Notebook, sam: SamPage, seed: int) -> None:
    x, y = nb.kernel_json(f"_pick({seed})")
    n = sam.event_count()
    sam.click(x, y)
    sam.wait_prompt_drawn(n)


def _stored(nb: Notebook) -> Any:
    return nb.kernel_json("[[(o.category, o.rle) for o in a.objects(i)] for i in range(len(a))]")


def test_annotate_two_images_restart_and_see_the_same_masks(
    open_notebook: Any, jupyter_lab: Any
) -> None:
    shutil.rmtree(jupyter_lab.root / "annotator_e2e", ignore_errors=True)
    nb = open_notebook([SETUP])
    sam = _page(nb)
    nb.kernel(HELPERS, timeout=180)
    assert nb.kernel_json("a.index") == 0

    _click(nb, sam, seed=1)
    nb.page.keyboard.press("2")  # category 2 ("cat") for the active object
    nb.wait_kernel_true("a.category == 'cat' and [o.category for o in a.objects(0)] == ['cat']")
    nb.page.keyboard.press("n")  # next image
    nb.wait_kernel_true("a.index == 1")
    sam = _page(nb)
    _click(nb, sam, seed=2)
    nb.wait_kernel_true("len(a.objects(1)) == 1 and a.objects(1)[0].area > 0")
    compared = assert_overlay_matches_kernel(nb, sam, "a.masks(1).any(axis=0)")
    assert compared > 100
    before = _stored(nb)
    assert [[c for c, _ in objs] for objs in before] == [["cat"], ["cat"]]
    ARTIFACTS.mkdir(exist_ok=True)
    nb.page.locator(".sam-annotator").first.screenshot(path=str(ARTIFACTS / "annotator.png"))

    # Restart the kernel and run the cell again: same image, same stored and drawn masks.
    nb.page.evaluate(
        """(path) => {
            for (const w of window.jupyterapp.shell.widgets('main')) {
              if (w.context && w.context.path === path) return w.sessionContext.restartKernel();
            }
        }""",
        nb.path,
    )
    nb.wait_kernel_idle(180)
    nb.run_all()
    sam = _page(nb)
    nb.kernel(HELPERS, timeout=180)
    assert nb.kernel_json("a.index") == 1
    assert _stored(nb) == before
    assert nb.kernel_json("len(a.widget.objects)") == 1
    assert_overlay_matches_kernel(nb, sam, "a.masks(1).any(axis=0)")
    # The drawn mask is the replayed one, and it equals the stored one.
    assert nb.kernel_json("bool((a.widget.masks[0] == a.masks(1)[0]).all())")
