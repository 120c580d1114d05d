"""Browser-side helpers for a SamWidget in a JupyterLab page (docs/ARCHITECTURE.md,
"Frontend DOM contract"). Shared by the e2e tests and ``benchmarks/bench_widget.py``.

Geometry (the widget's documented view at zoom 1, no pan): the image is fitted into the
stage, centred; the canvases cover the stage; canvas backing stores are stage size x
devicePixelRatio. Image px are continuous, the centre of pixel column i is x = i + 0.5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = "div.sam-widget"
#: A person's click: the pointer glides to the spot over this long, then presses this long.
GLIDE_S = 0.24
PRESS_S = 0.07

# Records the widget's measurement events (bubbling CustomEvents on the root) in
# window.__samEvents, with the page's clock.
_RECORDER_JS = """
() => {
  if (window.__samEvents) return;
  window.__samEvents = [];
  for (const type of ['sam-prompt', 'sam-drawn']) {
    document.addEventListener(type, (e) => {
      window.__samEvents.push(Object.assign({type, received: performance.now()}, e.detail));
    }, true);
  }
}
"""


@dataclass
class Geometry:
    left: float  # client px of the image canvas' top-left corner
    top: float
    css_width: float  # canvas CSS size (= stage)
    css_height: float
    backing_width: int  # canvas backing store size
    backing_height: int
    image_width: int
    image_height: int

    @property
    def scale(self) -> float:
        """Image px -> CSS px (fit, zoom 1)."""
        return min(self.css_width / self.image_width, self.css_height / self.image_height)

    def to_client(self, x: float, y: float) -> tuple[float, float]:
        s = self.scale
        ox = (self.css_width - self.image_width * s) / 2
        oy = (self.css_height - self.image_height * s) / 2
        return self.left + ox + x * s, self.top + oy + y * s

    def to_backing(self, x: float, y: float) -> tuple[int, int]:
        cx, cy = self.to_client(x, y)
        bx = (cx - self.left) * self.backing_width / self.css_width
        by = (cy - self.top) * self.backing_height / self.css_height
        return int(bx), int(by)


class SamPage:
    """The first ``div.sam-widget`` on a page."""

    def __init__(self, page: Any, image_width: int, image_height: int) -> None:
        self.page = page
        self.image_width = image_width
        self.image_height = image_height
        self.root = page.locator(ROOT).first
        self._pointer: tuple[float, float] | None = None  # last client position we moved to

    # -- setup
    def wait_visible(self, timeout: float = 120.0) -> SamPage:
        self.page.locator(f"{ROOT} canvas.sam-image").first.wait_for(
            state="visible", timeout=timeout * 1000
        )
        self.page.evaluate(_RECORDER_JS)
        self.root.scroll_into_view_if_needed()
        return self

    def geometry(self) -> Geometry:
        g = self.page.evaluate(
            """(root) => {
                const c = document.querySelector(root + ' canvas.sam-image');
                const r = c.getBoundingClientRect();
                return {left: r.left, top: r.top, w: r.width, h: r.height,
                        bw: c.width, bh: c.height};
            }""",
            ROOT,
        )
        return Geometry(
            g["left"], g["top"], g["w"], g["h"], g["bw"], g["bh"],
            self.image_width, self.image_height,
        )  # fmt: skip

    # -- input
    def visible_client(self, x: float, y: float) -> tuple[float, float]:
        """Client px of image px (x, y), scrolling the stage into view when that place is not
        on screen (the notebook scrolls; JupyterLab's toolbars cover its top)."""
        for _ in range(4):
            cx, cy = self.geometry().to_client(x, y)
            on_stage = self.page.evaluate(
                """([x, y, root]) => {
                    const e = document.elementFromPoint(x, y);
                    return !!e && !!e.closest(root + ' .sam-stage');
                }""",
                [cx, cy, ROOT],
            )
            if on_stage:
                return cx, cy
            self.page.evaluate(
                """(root) => document.querySelector(root + ' .sam-stage')
                                  .scrollIntoView({block: 'center', inline: 'center'})""",
                ROOT,
            )
            time.sleep(0.2)
        raise AssertionError(f"image point ({x}, {y}) cannot be brought on screen")

    def click(
        self,
        x: float,
        y: float,
        button: str = "left",
        *,
        glide_s: float = GLIDE_S,
        press_s: float = PRESS_S,
    ) -> None:
        """Click at image px (x, y) the way a person does: the pointer glides there from where
        it was over ``glide_s`` seconds (pointermove events on the way, so the hover preview
        runs), then the button goes down and, ``press_s`` later, up. ``glide_s=0``: jump."""
        cx, cy = self.visible_client(x, y)
        self.glide_to(cx, cy, glide_s)
        self.page.mouse.down(button=button)
        time.sleep(press_s)
        self.page.mouse.up(button=button)

    def glide_to(self, cx: float, cy: float, seconds: float = GLIDE_S) -> None:
        """Move the pointer to client px (cx, cy) in ~60 Hz steps over ``seconds``."""
        start = self._pointer
        steps = max(1, round(seconds * 60))
        if start is None or seconds <= 0:
            self.page.mouse.move(cx, cy)
        else:
            x0, y0 = start
            t0 = time.monotonic()
            for k in range(1, steps + 1):
                f = k / steps
                # ease-out: fast at first, slowing down onto the target, as a hand does
                e = 1 - (1 - f) ** 2
                self.page.mouse.move(x0 + (cx - x0) * e, y0 + (cy - y0) * e)
                wait = t0 + seconds * f - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        self._pointer = (cx, cy)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8) -> None:
        self.visible_client(x0, y0)
        bx, by = self.visible_client(x1, y1)
        ax, ay = self.visible_client(x0, y0)
        if (bx, by) != self.geometry().to_client(x1, y1):
            raise AssertionError("the box corners are not on screen together")
        self.glide_to(ax, ay)
        self.page.mouse.down()
        self.page.mouse.move(bx, by, steps=steps)
        self.page.mouse.up()
        self._pointer = (bx, by)

    def action(self, name: str) -> None:
        self.root.locator(f"button[data-action={name}]").click()

    # -- events
    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.page.evaluate("(n) => window.__samEvents.slice(n)", since))

    def event_count(self) -> int:
        return int(self.page.evaluate("() => window.__samEvents.length"))

    def drawn_seq(self) -> str | None:
        value = self.root.get_attribute("data-drawn-seq")
        return None if value is None else str(value)

    def wait_drawn(self, object_id: int, seq: int, timeout: float = 60.0) -> None:
        """Wait until the mask of ``object_id`` at ``seq`` (or later) has been drawn."""
        self.page.wait_for_function(
            """([root, id, seq]) => {
                const v = document.querySelector(root)?.getAttribute('data-drawn-seq');
                if (!v) return false;
                const [i, s] = v.split(':').map(Number);
                return i === id && s >= seq;
            }""",
            arg=[ROOT, object_id, seq],
            timeout=timeout * 1000,
            polling="raf",
        )

    def last_prompt(self, since: int = 0) -> dict[str, Any]:
        prompts = [e for e in self.events(since) if e["type"] == "sam-prompt"]
        if not prompts:
            raise AssertionError("no sam-prompt event was dispatched")
        return prompts[-1]

    def wait_prompt_drawn(self, since: int, timeout: float = 60.0) -> tuple[dict, dict]:
        """The last sam-prompt event after ``since`` and the sam-drawn mask event answering it
        (same object, seq at least as new). Returns (prompt, drawn)."""
        # Waits inside the page (checked once per animation frame) rather than polling from
        # here: a page.evaluate every few ms costs CPU in three processes (this one, the
        # Playwright driver, the renderer) that the kernel being measured would otherwise get.
        found = """(since) => {
            const evs = window.__samEvents.slice(since);
            const prompts = evs.filter((e) => e.type === 'sam-prompt');
            if (!prompts.length) return null;
            const p = prompts[prompts.length - 1];
            const d = evs.find((e) => e.type === 'sam-drawn' && e.kind === 'mask'
                && e.objectId === p.objectId && (e.seq ?? -1) >= p.seq);
            return d ? [p, d] : null;
        }"""
        try:
            handle = self.page.wait_for_function(found, arg=since, timeout=timeout * 1000)
        except PlaywrightTimeout as err:
            raise AssertionError(
                f"no mask drawn for the prompt within {timeout}s: {self.events(since)}"
            ) from err
        p, e = handle.json_value()
        return p, e

    # -- pixels
    def pixel(self, x: float, y: float, layer: str = "overlay") -> tuple[int, int, int, int]:
        """RGBA of ``canvas.sam-<layer>`` at image px (x, y)."""
        bx, by = self.geometry().to_backing(x, y)
        rgba = self.page.evaluate(
            """([root, layer, bx, by]) => {
                const src = document.querySelector(root + ' canvas.sam-' + layer);
                const c = document.createElement('canvas');
                c.width = src.width; c.height = src.height;
                const ctx = c.getContext('2d');
                ctx.drawImage(src, 0, 0);
                return Array.from(ctx.getImageData(bx, by, 1, 1).data);
            }""",
            [ROOT, layer, bx, by],
        )
        return (int(rgba[0]), int(rgba[1]), int(rgba[2]), int(rgba[3]))

    def pixels(self, points: list[tuple[float, float]], layer: str = "overlay") -> list[list[int]]:
        """RGBA of ``canvas.sam-<layer>`` at each image px point."""
        g = self.geometry()
        coords = [g.to_backing(x, y) for x, y in points]
        return list(
            self.page.evaluate(
                """([root, layer, coords]) => {
                    const src = document.querySelector(root + ' canvas.sam-' + layer);
                    const c = document.createElement('canvas');
                    c.width = src.width; c.height = src.height;
                    const ctx = c.getContext('2d');
                    ctx.drawImage(src, 0, 0);
                    const d = ctx.getImageData(0, 0, c.width, c.height).data;
                    return coords.map(([x, y]) => Array.from(d.slice((y * c.width + x) * 4,
                                                                     (y * c.width + x) * 4 + 4)));
                }""",
                [ROOT, layer, coords],
            )
        )
