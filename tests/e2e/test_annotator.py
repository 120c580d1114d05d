"""SamAnnotator end to end: JupyterLab + headless Chromium + the kernel, tiny random model.

Annotate two images of a folder with real pointer events, toolbar buttons and keys: a click,
a category key, a brush and an eraser stroke on the object, a proposal (run from the kernel)
accepted by a click on the canvas, ``n`` for next, a click on the second image. That click is
in the project file, read by this process, within 1 s of its pointer event. Then the kernel
is killed (SIGKILL): the file is intact and holds everything; JupyterLab restarts the kernel,
the cell runs again, and the annotator comes back on the same image, drawing the stored masks
(with the strokes) on both images. A screenshot goes to test-artifacts/annotator.png.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

from sam_widget.data.store import Project

from .harness import _FIND_PANEL_JS, ARTIFACTS, SUMMARY, Notebook
from .sam_page import SamPage
from .test_sam_widget import STABLE_SAMPLES, assert_overlay_matches_kernel

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

HELPERS = (
    STABLE_SAMPLES
    + """
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

def _proposal_spot():
    '''[k, x, y]: a pixel centre inside proposal k where the drawn label map (later
    proposals over earlier ones) is k + 1 over the largest square (9 .. 3 px) found, so a
    click there picks k.'''
    from sam_widget.widget.everything import label_map_display
    masks = [p["segmentation"] for p in a.proposals]
    H, W = masks[0].shape
    lm = label_map_display(masks, H, W)  # at full size: exact
    for side in (9, 7, 5, 3):
        for k in range(len(masks), 0, -1):
            m = np.pad((lm == k).astype(np.int64), ((1, 0), (1, 0)))
            sat = m.cumsum(0).cumsum(1)  # summed-area table
            full = (sat[side:, side:] - sat[:-side, side:] - sat[side:, :-side]
                    + sat[:-side, :-side]) == side * side
            ys, xs = np.nonzero(full)
            if len(ys):
                j = len(ys) // 2
                return [k - 1, float(xs[j] + side // 2) + 0.5, float(ys[j] + side // 2) + 0.5]
    raise AssertionError("no proposal has a 3 x 3 square of its own")
"""
)


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


def _ro(path: Path) -> sqlite3.Connection:
    """A read-only connection to the project file (this process never writes it)."""
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _wait_overlay(nb: Notebook, sam: SamPage, union_expr: str, timeout: float = 30.0) -> None:
    """Retry the overlay comparison until the browser has drawn the kernel's masks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert_overlay_matches_kernel(nb, sam, union_expr)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _kill_kernel_and_wait_for_its_restart(nb: Notebook, pid: int) -> None:
    """SIGKILL the kernel process; JupyterLab's server notices and restarts it. Waits until
    the page's session has a connected, idle kernel again (a new process), and closes the
    dialog that tells the user."""
    nb.page.evaluate(
        """({path, findPanel}) => {
            const ctx = eval(findPanel)(path).sessionContext;
            window.__e2eStatuses = [];
            ctx.statusChanged.connect((_, s) => window.__e2eStatuses.push(s));
        }""",
        {"path": nb.path, "findPanel": _FIND_PANEL_JS},
    )
    os.kill(pid, signal.SIGKILL)
    nb.page.wait_for_function(
        """({path, findPanel}) => {
            const k = eval(findPanel)(path)?.sessionContext.session?.kernel;
            const gone = window.__e2eStatuses.some((s) => s !== 'idle' && s !== 'busy');
            return gone && !!k && k.connectionStatus === 'connected' && k.status === 'idle';
        }""",
        arg={"path": nb.path, "findPanel": _FIND_PANEL_JS},
        timeout=120_000,
        polling=100,
    )
    assert nb.kernel_json("os.getpid()", setup="import os") != pid
    # JupyterLab says so in a dialog ("appears to have died. It will restart automatically").
    dialog = nb.page.locator(".jp-Dialog", has_text="restart automatically")
    dialog.wait_for(state="visible", timeout=30_000)
    dialog.locator("button.jp-mod-accept").click()
    dialog.wait_for(state="detached", timeout=30_000)


def test_annotate_brush_propose_kill_restart_and_see_the_same_masks(
    open_notebook: Any, jupyter_lab: Any
) -> None:
    shutil.rmtree(jupyter_lab.root / "annotator_e2e", ignore_errors=True)
    project_file = jupyter_lab.root / "annotator_e2e" / "labels.sqlite"
    nb = open_notebook([SETUP])
    sam = _page(nb)
    nb.kernel(HELPERS, timeout=180)
    nb.kernel("from sam_widget.widget.strokes import compose")
    assert nb.kernel_json("a.index") == 0

    _click(nb, sam, seed=1)
    nb.page.keyboard.press("2")  # category 2 ("cat") for the active object
    nb.wait_kernel_true("a.category == 'cat' and [o.category for o in a.objects(0)] == ['cat']")

    # Brush, then eraser (toolbar buttons, the ] key, pointer drags) on the clicked object.
    nb.kernel("_clicked = a.widget.masks[0].copy()")
    sam.action("brush")
    sam.drag(100, 60, 250, 60, steps=10)
    nb.wait_kernel_true("len(a.objects(0)[0].strokes) == 1", timeout=60)
    sam.action("eraser")
    sam.page.keyboard.press("]")  # radius 10 -> 13
    sam.drag(175, 30, 175, 90, steps=8)
    nb.wait_kernel_true("len(a.objects(0)[0].strokes) == 2", timeout=60)
    (obj,) = nb.kernel_json("[(o.strokes, o.extra['clicks'], o.extra['strokes']) "
                            "for o in a.objects(0)]")  # fmt: skip
    brush, eraser = obj[0]
    assert (brush["erase"], brush["radius"]) == (False, 10)
    assert (eraser["erase"], eraser["radius"]) == (True, 13)
    assert obj[1:] == [1, 2]  # one click, two strokes on this object
    # The stored mask is SAM's mask + brush - eraser, and it is what the widget shows.
    assert nb.kernel_json(
        "bool(np.array_equal(a.masks(0)[0], compose(_clicked, a.objects(0)[0].strokes, "
        "*_clicked.shape)) and a.masks(0)[0][60, 120] and not a.masks(0)[0][60, 175] "
        "and np.array_equal(a.masks(0)[0], a.widget.masks[0]))"
    )
    oid, seq = nb.kernel_json("[a.widget.objects[0]['id'], a.widget.objects[0]['seq']]")
    sam.wait_drawn(oid, seq)
    assert_overlay_matches_kernel(nb, sam, "a.masks(0).any(axis=0)")

    # Phase 2: proposals from the kernel, one accepted by a click on it in the browser.
    n = sam.event_count()
    count = nb.kernel_json(
        "len(a.propose(iou_threshold=1.0, points_per_side=2, pred_iou_thresh=0.0, "
        "stability_score_thresh=0.0).result(120))",
        timeout=180,
    )
    assert count >= 1
    nb.page.wait_for_function(
        """([n, count]) => window.__samEvents.slice(n).some(
            (e) => e.type === 'sam-drawn' && e.kind === 'everything' && e.count === count)""",
        arg=[n, count],
    )
    k, x, y = nb.kernel_json("_proposal_spot()")
    nb.kernel(f"_chosen = a.proposals[{k}]")
    sam.click(x, y)  # keep mode: the frontend switched to it when the proposals came
    nb.wait_kernel_true("len(a.objects(0)) == 2", timeout=60)
    assert nb.kernel_json(
        "[a.objects(0)[1].source, bool(np.array_equal(a.masks(0)[1], _chosen['segmentation'])),"
        f" len(a.proposals) == {count - 1}]"
    ) == ["assisted", True, True]

    nb.page.keyboard.press("n")  # next image
    nb.wait_kernel_true("a.index == 1")
    sam = _page(nb)
    stored0 = _stored(nb)[0]

    # Durability: the click on image 1 is in the file within 1 s of its pointer event.
    x, y = nb.kernel_json("_pick(2)")
    image_id, pid = nb.kernel_json("[a.images[1].id, os.getpid()]", setup="import os")
    db = _ro(project_file)
    try:
        cx, cy = sam.visible_client(x, y)
        sam.glide_to(cx, cy)
        sam.page.mouse.down()
        time.sleep(0.07)
        t_click = time.monotonic()  # just before the pointerup that makes the point
        sam.page.mouse.up()
        rows: list[Any] = []
        while not rows and time.monotonic() - t_click < 5:
            rows = db.execute(
                "SELECT prompts FROM objects WHERE image_id = ?", (image_id,)
            ).fetchall()
            if not rows:
                time.sleep(0.005)  # leave the CPUs to the browser and the kernel
        delay = time.monotonic() - t_click
        assert rows and json.loads(rows[0][0])["points"] == [[x, y]], rows
        assert delay <= 1.0, f"the click reached the project file after {delay:.2f} s"
        SUMMARY.append(f"annotator: click -> object in the project file: {delay * 1000:.0f} ms")
        while (
            time.monotonic() - t_click < 30
            and not db.execute(
                "SELECT area FROM objects WHERE image_id = ?", (image_id,)
            ).fetchone()[0]
        ):
            time.sleep(0.02)  # its mask follows from the writer thread
    finally:
        db.close()
    ARTIFACTS.mkdir(exist_ok=True)
    nb.page.locator(".sam-annotator").first.screenshot(path=str(ARTIFACTS / "annotator.png"))

    # SIGKILL the kernel: the file is intact and holds every object with prompts and strokes.
    _kill_kernel_and_wait_for_its_restart(nb, pid)
    with Project.open(project_file) as p:
        assert p.integrity_check() == "ok"
        images = p.images()
        after = [[(o.category, o.rle) for o in p.objects(im)] for im in images]
        (obj1,) = p.objects(images[1])
        assert obj1.prompts["points"] == [[x, y]] and obj1.area > 0
        assert [len(o.strokes) for o in p.objects(images[0])] == [2, 0]
        assert p.get_state("position") == 1
    after = json.loads(json.dumps(after))
    assert after[0] == stored0 and [c for c, _ in after[1]] == ["cat"]

    # Run the cell again: same image, same stored and drawn masks.
    nb.run_all()
    sam = _page(nb)
    nb.kernel(HELPERS, timeout=180)
    assert nb.kernel_json("a.index") == 1
    assert _stored(nb) == after
    assert nb.kernel_json("len(a.widget.objects)") == 1
    _wait_overlay(nb, sam, "a.masks(1).any(axis=0)")
    # The drawn mask is the replayed one, and it equals the stored one.
    assert nb.kernel_json("bool((a.widget.masks[0] == a.masks(1)[0]).all())")
    # Back on image 0: the stored masks (with the strokes, and the accepted proposal).
    nb.page.locator(".sam-annotator button", has_text="< Prev").first.click()
    nb.wait_kernel_true("a.index == 0 and len(a.widget.objects) == 2")
    sam = _page(nb)
    assert nb.kernel_json("[len(o['strokes']) for o in a.widget.objects]") == [2, 0]
    assert nb.kernel_json("bool(np.array_equal(np.stack(a.widget.masks), a.masks(0)))")
    _wait_overlay(nb, sam, "a.masks(0).any(axis=0)")
