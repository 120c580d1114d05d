"""The Explain panel end to end: the toolbar toggle, then clicks; the panel inside the widget
shows the kernel's explanation of each decode (docs/ARCHITECTURE.md, `.sam-explain`)."""

from __future__ import annotations

from typing import Any

from .harness import ARTIFACTS
from .test_sam_widget import click_and_wait, kernel_objects, open_sam

PANEL = "div.sam-widget .sam-explain"


def wait_explained(nb: Any, sam: Any) -> dict[str, Any]:
    """Wait until the panel shows the explanation of the active object's current seq."""
    (obj,) = kernel_objects(nb)
    key = f"{nb.kernel_json('w.image_id')}:{obj['id']}:{obj['seq']}"
    sam.page.wait_for_function(
        "([sel, key]) => document.querySelector(sel)?.dataset.key === key",
        arg=[PANEL, key],
        timeout=60_000,
    )
    return obj


def loaded_images(sam: Any) -> int:
    """How many of the panel's images decoded to a picture."""
    return int(
        sam.page.evaluate(
            "(sel) => [...document.querySelectorAll(sel + ' img')]"
            ".filter((i) => i.complete && i.naturalWidth > 0).length",
            PANEL,
        )
    )


def test_explain_panel_appears_and_follows_clicks(open_notebook):
    nb, sam = open_sam(open_notebook)
    panel = sam.root.locator(".sam-explain")
    assert not panel.is_visible()  # off by default
    sam.action("explain")
    nb.wait_kernel_true("w.explain is True", timeout=30)
    assert sam.root.locator("button[data-action=explain]").get_attribute("aria-pressed") == "true"
    assert panel.is_visible()

    x, y = nb.kernel_json("_pick(60, 40, 540, 360, seed=1)")
    click_and_wait(sam, x, y)
    obj = wait_explained(nb, sam)
    # 4 masks + attention + PE similarity + PCA + the PE strip, all decoded
    sam.page.wait_for_function(
        "(sel) => [...document.querySelectorAll(sel + ' img')]"
        ".filter((i) => i.complete && i.naturalWidth > 0).length === 8",
        arg=PANEL,
        timeout=30_000,
    )
    # One point: the tile marked shown is the widget's candidate (kernel's choice).
    candidate = nb.kernel_json(f"w.mask_update({obj['id']}).candidate")
    shown = panel.locator(".sam-explain-shown")
    assert shown.count() == 1 and shown.get_attribute("data-mask") == str(1 + candidate)
    assert "ambiguous" in panel.locator(".sam-explain-why").inner_text()

    # A second point: unambiguous, refined; the panel follows with mask 0 shown.
    x2, y2 = nb.kernel_json("_pick(60, 40, 540, 360, seed=4)")
    click_and_wait(sam, x2, y2)
    obj2 = wait_explained(nb, sam)
    assert obj2["seq"] > obj["seq"]
    assert panel.locator(".sam-explain-shown").get_attribute("data-mask") == "0"
    assert "single-mask" in panel.locator(".sam-explain-why").inner_text()
    assert loaded_images(sam) == 8  # the PCA of the image stays
    ARTIFACTS.mkdir(exist_ok=True)
    sam.root.screenshot(path=str(ARTIFACTS / "explain_panel.png"))

    # Segment-everything, stage by stage: the grid over the image, a stage selector.
    nb.kernel(
        "w.everything_params = {'points_per_side': 6, 'pred_iou_thresh': 0.0,"
        " 'stability_score_thresh': 0.0}"
    )
    n = sam.event_count()
    panel.locator("button[data-action=explain-everything]").click()
    sam.page.wait_for_function(
        "(n) => window.__samEvents.slice(n)"
        ".some((e) => e.type === 'sam-drawn' && e.kind === 'stage')",
        arg=n,
        timeout=120_000,
    )
    buttons = panel.locator("button[data-stage]")
    assert buttons.count() == 6
    # each stage's count is the one explain_amg gives in the kernel (computed here again)
    counts = nb.kernel_json(
        "list(explain_amg(SamAutomaticMaskGenerator(w.predictor, **w.everything_params), img)"
        ".counts().values())[1:]",
        setup="from sam_widget.explain import explain_amg\n"
        "from sam_widget.engine.amg import SamAutomaticMaskGenerator",
    )
    texts = [buttons.nth(k).inner_text() for k in range(6)]
    assert [int(t.split(":")[1].split("(")[0]) for t in texts] == counts, texts
    assert buttons.nth(5).get_attribute("aria-pressed") == "true"  # the final stage first
    # a grid point (6 x 6 grid: the first at 1/12 of the image) has a dot on the markers
    assert sam.pixel(600 / 12, 400 / 12, layer="markers")[3] > 0
    n = sam.event_count()
    buttons.nth(0).click()  # all 3 x 36 candidates
    sam.page.wait_for_function(
        "(n) => window.__samEvents.slice(n).some((e) => e.type === 'sam-drawn'"
        " && e.kind === 'stage' && e.stage === 'candidates' && e.count === 108)",
        arg=n,
        timeout=30_000,
    )
    assert buttons.nth(0).get_attribute("aria-pressed") == "true"
    assert not sam.root.locator("button[data-action=keep]").is_enabled()  # not keepable
    sam.root.screenshot(path=str(ARTIFACTS / "explain_stages.png"))

    # Off: the panel hides and the kernel stops explaining.
    sam.action("explain")
    nb.wait_kernel_true("w.explain is False", timeout=30)
    assert not panel.is_visible()
