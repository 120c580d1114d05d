"""SamWidget in the Jupyter Notebook 7 UI (issue: "Works in JupyterLab 4 and Notebook 7").

The same private server as the JupyterLab tests also serves Notebook 7 (``/notebooks/...``);
the notebook is opened there, its cells run with Notebook 7's own "Run All Cells" command,
and the checks of ``test_sam_widget.py`` (kernel-side ``w.objects``/``w.masks`` against the
overlay canvas, clicks in image coordinates) are repeated in that UI.
"""

from __future__ import annotations

import pytest

from .sam_page import SamPage
from .test_sam_widget import (
    HELPERS,
    IMAGE_H,
    IMAGE_W,
    SETUP,
    assert_overlay_matches_kernel,
    click_and_wait,
    kernel_objects,
    nearest_color,
    point_inside_mask_away_from,
    report,
)


@pytest.mark.timeout(300)
def test_notebook7_click_and_right_click(open_notebook):
    nb = open_notebook([SETUP], ui="notebook")
    page = nb.page

    # This is the Notebook 7 application, not JupyterLab.
    ui = page.evaluate(
        """() => ({name: window.jupyterapp.name, path: location.pathname,
                   lab: !!document.querySelector('#jp-main-dock-panel')})"""
    )
    assert ui["name"] == "Jupyter Notebook", ui
    assert ui["path"].endswith(f"/notebooks/{nb.path}"), ui
    assert not ui["lab"], ui

    sam = SamPage(page, IMAGE_W, IMAGE_H).wait_visible()
    nb.kernel("w.wait(120)", timeout=180)
    nb.kernel(HELPERS, timeout=180)
    page.wait_for_function(
        "() => document.querySelector('div.sam-widget .sam-status')?.textContent.includes('Ready')"
    )
    assert nb.kernel_json("w.objects") == []
    notice = sam.root.locator(".sam-notice")
    assert notice.is_visible() and "untrained" in notice.inner_text().lower()

    # Left click: one object with a positive point where we clicked, its mask covers the
    # place in the kernel and on the overlay canvas, and the overlay is the kernel's mask.
    x, y = nb.kernel_json("_pick(60, 40, 540, 360, seed=1)")
    latency = click_and_wait(sam, x, y)
    (obj,) = kernel_objects(nb)
    assert obj["labels"] == [1]
    ((px, py),) = obj["points"]
    assert abs(px - x) <= 1.0 and abs(py - y) <= 1.0, (obj["points"], x, y)
    assert nb.kernel_json(f"bool(w.masks[0][{int(y)}, {int(x)}])") is True
    r, g, b, a = sam.pixel(x, y)
    assert a > 0, "no overlay pixel at the clicked place"
    assert nearest_color([r, g, b], {obj["id"]: obj["color"], -1: "#000000"}) == obj["id"]
    assert_overlay_matches_kernel(nb, sam, "w.masks[0]")
    assert sam.drawn_seq() == f"{obj['id']}:{obj['seq']}"

    # Right click inside the mask, away from the positive point: a negative point (label 0).
    nx, ny = point_inside_mask_away_from(nb, x, y)
    click_and_wait(sam, nx, ny, button="right")
    (obj,) = kernel_objects(nb)
    assert obj["labels"] == [1, 0]
    assert abs(obj["points"][1][0] - nx) <= 1 and abs(obj["points"][1][1] - ny) <= 1
    sam.wait_drawn(obj["id"], obj["seq"])
    assert_overlay_matches_kernel(nb, sam, "w.masks[0]")
    assert not sam.root.locator(".sam-error").is_visible()
    # The right click was the widget's, not the browser's/Notebook's context menu.
    assert page.locator(".lm-Menu").count() == 0 or not page.locator(".lm-Menu").first.is_visible()
    report("notebook 7 single click", [latency])
