// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encodeLabels, encodeMask } from "../src/codec";
import widget from "../src/widget";
import { FakeModel, fakeContext } from "./fake-model";

const ACTIONS = [
  "positive",
  "negative",
  "box",
  "new-object",
  "delete-object",
  "undo",
  "redo",
  "clear",
  "hover",
  "segment-everything",
  "zoom-in",
  "zoom-out",
  "zoom-reset",
];

// 400 x 200 image; the stage is laid out 200 x 100 CSS px at (50, 30) on screen.
const IMAGE = { w: 400, h: 200 };
const RECT = { left: 50, top: 30, width: 200, height: 100 };

function traits(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image_data: new DataView(new Uint8Array([137, 80, 78, 71]).buffer),
    image_mime: "image/png",
    image_width: IMAGE.w,
    image_height: IMAGE.h,
    image_id: 1,
    mask_width: 4,
    mask_height: 2,
    objects: [],
    active: -1,
    opacity: 0.5,
    hover: false,
    status: "ready",
    progress: 0,
    error: "",
    notice: "",
    can_undo: false,
    can_redo: false,
    ...over,
  };
}

const contexts = new WeakMap<HTMLCanvasElement, CanvasRenderingContext2D>();
let model: FakeModel;
let el: HTMLElement;
let cleanup: () => void;

function mount(over: Record<string, unknown> = {}) {
  model = new FakeModel(traits(over));
  el = document.createElement("div");
  document.body.appendChild(el);
  cleanup = widget.render({ model: model as never, el }) as () => void;
  const stage = q<HTMLDivElement>(".sam-stage");
  stage.getBoundingClientRect = () => ({ ...RECT, right: RECT.left + RECT.width, bottom: RECT.top + RECT.height, x: RECT.left, y: RECT.top, toJSON: () => ({}) });
  // jsdom does no layout: make the root 202 px wide so the stage is 200 x 100
  Object.defineProperty(q(".sam-widget"), "clientWidth", { configurable: true, get: () => 202 });
  window.dispatchEvent(new Event("resize"));
}

function q<T extends Element = HTMLElement>(sel: string): T {
  const found = el.querySelector<T>(sel);
  if (!found) throw new Error(`no ${sel}`);
  return found;
}

function pointer(type: string, clientX: number, clientY: number, over: Record<string, unknown> = {}) {
  const ev = new MouseEvent(type, { clientX, clientY, bubbles: true, cancelable: true, button: 0, ...over });
  Object.defineProperty(ev, "pointerId", { value: over.pointerId ?? 1 });
  Object.defineProperty(ev, "pointerType", { value: over.pointerType ?? "mouse" });
  q(".sam-stage").dispatchEvent(ev);
  return ev;
}

function click(clientX: number, clientY: number, over: Record<string, unknown> = {}) {
  pointer("pointerdown", clientX, clientY, over);
  pointer("pointerup", clientX, clientY, over);
}

function key(k: string, over: KeyboardEventInit = {}) {
  const ev = new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true, ...over });
  q(".sam-widget").dispatchEvent(ev);
  return ev;
}

function dv(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function events(type: string): CustomEvent[] {
  const got: CustomEvent[] = [];
  el.addEventListener(type, (e) => got.push(e as CustomEvent));
  return got;
}

const flush = () => new Promise((r) => setTimeout(r, 0));

beforeEach(() => {
  vi.stubGlobal("createImageBitmap", async () => ({ width: IMAGE.w, height: IMAGE.h, close() {} }));
  vi.stubGlobal("requestAnimationFrame", (fn: FrameRequestCallback) => setTimeout(() => fn(0), 0));
  vi.stubGlobal("cancelAnimationFrame", (h: number) => clearTimeout(h));
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(function (this: HTMLCanvasElement) {
    if (!contexts.has(this)) contexts.set(this, fakeContext(this));
    return contexts.get(this)! as never;
  });
});

afterEach(() => {
  cleanup?.();
  el?.remove();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe("DOM contract", () => {
  it("builds the root, stacked canvases, toolbar, candidates, status, error and notice", () => {
    mount({ notice: "Untrained model: masks are meaningless", error: "" });
    const root = q(".sam-widget");
    const stage = q(".sam-widget .sam-stage");
    for (const cls of ["sam-image", "sam-overlay", "sam-hover", "sam-markers"]) {
      expect(stage.querySelector(`canvas.${cls}`)).not.toBeNull();
    }
    for (const a of ACTIONS) expect(root.querySelector(`button[data-action="${a}"]`), a).not.toBeNull();
    expect(root.querySelector('input[data-action="opacity"]')).not.toBeNull();
    expect(root.querySelector(".sam-candidates")).not.toBeNull();
    expect(q(".sam-status").textContent).toContain("Ready");
    expect(q(".sam-error").hidden).toBe(true);
    expect(q(".sam-notice").hidden).toBe(false);
    expect(q(".sam-notice").textContent).toContain("Untrained");
    expect(model.sentOfType("sync")).toHaveLength(1);
  });

  it("sizes the stage to the width, keeping the aspect ratio, with DPR backing stores", () => {
    vi.stubGlobal("devicePixelRatio", 2);
    mount();
    expect(q(".sam-stage").style.width).toBe("200px");
    expect(q(".sam-stage").style.height).toBe("100px");
    return flush().then(() => {
      const overlay = q<HTMLCanvasElement>("canvas.sam-overlay");
      expect([overlay.width, overlay.height]).toEqual([400, 200]);
      expect(overlay.style.width).toBe("200px");
    });
  });

  it("never enlarges a small image unless a size is given; follows the width/height traits", () => {
    mount({ image_width: 100, image_height: 50 });
    expect([q(".sam-stage").style.width, q(".sam-stage").style.height]).toEqual(["100px", "50px"]);
    model.kernelSet("width", 180);
    expect([q(".sam-stage").style.width, q(".sam-stage").style.height]).toEqual(["180px", "90px"]);
    model.kernelSet("width", 0);
    model.kernelSet("height", 40);
    expect([q(".sam-stage").style.width, q(".sam-stage").style.height]).toEqual(["80px", "40px"]);
  });

  it("shows the error line only while there is an error, and can dismiss it", () => {
    mount();
    model.kernelSet("error", "CUDA out of memory");
    expect(q(".sam-error").hidden).toBe(false);
    expect(q(".sam-error").textContent).toContain("CUDA out of memory");
    q<HTMLButtonElement>(".sam-error button").click();
    expect(model.get("error")).toBe("");
    expect(q(".sam-error").hidden).toBe(true);
  });

  it("reports an image that does not decode on the error line", async () => {
    vi.stubGlobal("createImageBitmap", async () => {
      throw new Error("bad PNG");
    });
    mount();
    await flush();
    expect(q(".sam-error").hidden).toBe(false);
    expect(q(".sam-error").textContent).toContain("bad PNG");
    expect(q(".sam-placeholder").hidden).toBe(false);
  });

  it("shows progress while encoding", () => {
    mount({ status: "encoding", progress: 0.25 });
    const bar = q<HTMLProgressElement>(".sam-status progress");
    expect(bar.hidden).toBe(false);
    expect(bar.value).toBe(0.25);
    model.kernelSet("status", "ready");
    expect(bar.hidden).toBe(true);
  });
});

describe("prompts", () => {
  it("a click adds a positive point in image px, saves, and dispatches sam-prompt", async () => {
    mount();
    await flush();
    const prompts = events("sam-prompt");
    click(50 + 100, 30 + 25); // stage (100, 25) -> image (200, 50)
    const objs = model.get("objects");
    expect(objs).toHaveLength(1);
    expect(objs[0]).toMatchObject({ points: [[200, 50]], labels: [1], box: null, seq: 1 });
    expect(model.get("active")).toBe(objs[0].id);
    expect(model.saves).toBeGreaterThan(0);
    expect(prompts).toHaveLength(1);
    expect(prompts[0].detail).toMatchObject({ objectId: objs[0].id, seq: 1 });
    expect(typeof prompts[0].detail.time).toBe("number");
  });

  it("right click adds a negative point and never opens the context menu", async () => {
    mount();
    await flush();
    click(60, 40, { button: 2 });
    expect(model.get("objects")[0].labels).toEqual([0]);
    const ev = new MouseEvent("contextmenu", { bubbles: true, cancelable: true });
    q(".sam-stage").dispatchEvent(ev);
    expect(ev.defaultPrevented).toBe(true);
    expect(q(".sam-stage").hasAttribute("data-jp-suppress-context-menu")).toBe(true);
  });

  it("the negative mode button makes clicks negative", async () => {
    mount();
    await flush();
    q<HTMLButtonElement>('button[data-action="negative"]').click();
    expect(q('button[data-action="negative"]').getAttribute("aria-pressed")).toBe("true");
    click(60, 40);
    expect(model.get("objects")[0].labels).toEqual([0]);
  });

  it("a drag draws a box in image px", async () => {
    mount();
    await flush();
    pointer("pointerdown", 60, 40);
    pointer("pointermove", 100, 60);
    pointer("pointermove", 150, 80);
    pointer("pointerup", 150, 80);
    const obj = model.get("objects")[0];
    expect(obj.points).toEqual([]);
    expect(obj.box).toEqual([20, 20, 200, 100]);
  });

  it("keyboard: Escape clears, N starts an object, Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y ask the kernel", async () => {
    mount();
    await flush();
    click(60, 40);
    const first = model.get("active");
    expect(key("Escape").defaultPrevented).toBe(true);
    expect(model.get("objects")[0]).toMatchObject({ points: [], seq: 2 });
    click(60, 40);
    key("n");
    expect(model.get("objects")).toHaveLength(2);
    expect(model.get("active")).not.toBe(first);
    key("z", { ctrlKey: true });
    key("Z", { ctrlKey: true, shiftKey: true });
    key("y", { ctrlKey: true });
    expect(model.sent.filter((m) => m.type === "undo" || m.type === "redo").map((m) => m.type)).toEqual(["undo", "redo", "redo"]);
    expect(q(".sam-widget").getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });

  it("Space + drag pans even right after a toolbar button was clicked with the mouse", async () => {
    mount();
    await flush();
    const zoomIn = q<HTMLButtonElement>('button[data-action="zoom-in"]');
    zoomIn.focus();
    zoomIn.dispatchEvent(new MouseEvent("click", { bubbles: true, detail: 1 }));
    expect(document.activeElement).toBe(q(".sam-widget"));
    const space = key(" ");
    expect(space.defaultPrevented).toBe(true); // no page scroll
    pointer("pointerdown", 150, 80);
    pointer("pointermove", 120, 60);
    pointer("pointerup", 120, 60);
    q(".sam-widget").dispatchEvent(new KeyboardEvent("keyup", { key: " ", bubbles: true }));
    expect(model.get("objects")).toHaveLength(0); // a pan, not a box
    click(50 + 100, 30 + 50); // stage centre: image centre (200, 100) moved by the pan
    const [x, y] = model.get("objects")[0].points[0];
    // zoom 1.5: 0.75 stage px per image px, so the (-30, -20) stage px drag is (+40, +26.67) image px
    expect(x).toBeCloseTo(240, 1);
    expect(y).toBeCloseTo(126.67, 1);
  });

  it("undo/redo buttons follow can_undo/can_redo and send messages", () => {
    mount();
    const undo = q<HTMLButtonElement>('button[data-action="undo"]');
    expect(undo.disabled).toBe(true);
    model.kernelSet("can_undo", true);
    expect(undo.disabled).toBe(false);
    undo.click();
    expect(model.sentOfType("undo")).toHaveLength(1);
  });

  it("follows objects changed by the kernel (e.g. undo)", async () => {
    mount();
    await flush();
    click(60, 40);
    click(70, 40);
    const obj = model.get("objects")[0];
    model.kernelSet("objects", [{ ...obj, points: [obj.points[0]], labels: [1], seq: obj.seq + 1 }]);
    click(80, 40);
    const after = model.get("objects")[0];
    expect(after.points).toHaveLength(2);
    expect(after.seq).toBe(obj.seq + 2);
  });
});

describe("object list", () => {
  it("selects an object by its chip and renames it by double click", async () => {
    mount();
    await flush();
    click(60, 40);
    key("n");
    click(70, 40);
    const [first, second] = model.get("objects");
    expect(model.get("active")).toBe(second.id);
    const chip = q<HTMLButtonElement>(`.sam-objects button[data-object-id="${first.id}"]`);
    chip.click();
    expect(model.get("active")).toBe(first.id);
    expect(chip.isConnected).toBe(true); // flipped in place, not rebuilt
    expect(chip.getAttribute("aria-selected")).toBe("true");
    chip.dispatchEvent(new MouseEvent("dblclick", { bubbles: true }));
    const input = q<HTMLInputElement>(".sam-objects input");
    input.value = "cat";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.get("objects")[0]).toMatchObject({ id: first.id, name: "cat", seq: first.seq });
    expect(q(".sam-objects").textContent).toContain("cat");
  });
});

describe("masks from the kernel", () => {
  async function withObject() {
    mount();
    await flush();
    click(60, 40);
    return model.get("objects")[0];
  }

  it("draws a current mask, sets data-drawn-seq and dispatches sam-drawn", async () => {
    const obj = await withObject();
    const drawn = events("sam-drawn");
    const overlay = q<HTMLCanvasElement>("canvas.sam-overlay");
    const calls = (contexts.get(overlay) as unknown as { calls: string[] }).calls;
    calls.length = 0;
    model.kernelSend(
      { type: "mask", image_id: 1, object_id: obj.id, seq: obj.seq, width: 4, height: 2, scores: [0.91, 0.42, 0.77], candidate: 0 },
      [dv(encodeMask([1, 1, 0, 0, 0, 0, 1, 1], 4, 2))],
    );
    expect(calls.some((c) => c.startsWith("drawImage"))).toBe(true);
    expect(q(".sam-widget").dataset.drawnSeq).toBe(`${obj.id}:${obj.seq}`);
    expect(drawn.map((e) => e.detail)).toMatchObject([{ kind: "mask", objectId: obj.id, seq: obj.seq }]);
    // candidate chooser with the predicted IoUs, the shown one pressed
    const buttons = el.querySelectorAll<HTMLButtonElement>(".sam-candidates button[data-candidate]");
    expect(buttons).toHaveLength(3);
    expect(buttons[1].textContent).toContain("0.42");
    expect(q(".sam-candidates").textContent).toContain("predicted IoU");
    expect(buttons[0].getAttribute("aria-pressed")).toBe("true");
    buttons[2].click();
    expect(model.get("objects")[0]).toMatchObject({ candidate: 2, seq: obj.seq + 1 });
  });

  it("drops stale masks (old seq, other image, unknown object)", async () => {
    const obj = await withObject();
    const drawn = events("sam-drawn");
    const buf = dv(encodeMask(new Uint8Array(8), 4, 2));
    const base = { type: "mask", image_id: 1, object_id: obj.id, seq: obj.seq, width: 4, height: 2, scores: [0.5], candidate: null };
    model.kernelSend({ ...base, seq: obj.seq - 1 }, [buf]);
    model.kernelSend({ ...base, image_id: 0 }, [buf]);
    model.kernelSend({ ...base, object_id: 99 }, [buf]);
    expect(drawn).toHaveLength(0);
    expect(q(".sam-widget").dataset.drawnSeq).toBeUndefined();
  });

  it("reports a malformed mask on the error line instead of throwing", async () => {
    const obj = await withObject();
    model.kernelSend(
      { type: "mask", image_id: 1, object_id: obj.id, seq: obj.seq, width: 5, height: 5, scores: [], candidate: null },
      [dv(encodeMask(new Uint8Array(8), 4, 2))],
    );
    expect(q(".sam-error").hidden).toBe(false);
    expect(q(".sam-error").textContent).toMatch(/mask/);
  });
});

describe("opacity", () => {
  it("the slider sets the opacity trait and redraws the overlay without the kernel", async () => {
    mount();
    await flush();
    click(60, 40);
    const obj = model.get("objects")[0];
    model.kernelSend(
      { type: "mask", image_id: 1, object_id: obj.id, seq: obj.seq, width: 4, height: 2, scores: [0.9], candidate: null },
      [dv(encodeMask([1, 1, 1, 1, 0, 0, 0, 0], 4, 2))],
    );
    const calls = (contexts.get(q<HTMLCanvasElement>("canvas.sam-overlay")) as unknown as { calls: string[] }).calls;
    calls.length = 0;
    const sent = model.sent.length;
    const slider = q<HTMLInputElement>('input[data-action="opacity"]');
    slider.value = "0.8";
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    expect(model.get("opacity")).toBe(0.8);
    await flush();
    expect(calls.filter((c) => c.startsWith("drawImage")).map((c) => c.split("alpha=")[1])).toContain("0.8");
    expect(model.sent.length).toBe(sent); // no custom message needed
  });
});

describe("hover", () => {
  it("sends throttled hover requests, draws the current reply, clears on leave", async () => {
    mount({ hover: true });
    await flush();
    const drawn = events("sam-drawn");
    pointer("pointermove", 150, 55);
    pointer("pointermove", 151, 55); // in flight: kept as the latest, not sent
    const hovers = model.sentOfType("hover");
    expect(hovers).toEqual([{ type: "hover", seq: 1, x: 200, y: 50 }]);
    model.kernelSend({ type: "hover_mask", image_id: 1, seq: 1, width: 4, height: 2 }, [dv(encodeMask([0, 1, 0, 0, 0, 0, 0, 0], 4, 2))]);
    expect(drawn.map((e) => e.detail.kind)).toEqual(["hover"]);
    pointer("pointerleave", 0, 0);
    expect(model.sentOfType("hover").slice(-1)[0]).toMatchObject({ x: null });
  });

  it("a click pre-empts hover: the in-flight preview is dropped, none is sent until its mask is drawn", async () => {
    mount({ hover: true });
    await flush();
    const drawn = events("sam-drawn");
    pointer("pointermove", 150, 55); // hover request 1 in flight
    // The person clicks where the pointer glided to.
    pointer("pointermove", 100, 50);
    click(100, 50);
    const obj = model.get("objects")[0];
    const requests = () => model.sentOfType("hover").filter((m) => m.x !== null);
    expect(requests()).toHaveLength(1);
    // The old preview arrives after the click: dropped, nothing drawn.
    model.kernelSend({ type: "hover_mask", image_id: 1, seq: 1, width: 4, height: 2 }, [dv(encodeMask([1, 1, 1, 1, 1, 1, 1, 1], 4, 2))]);
    pointer("pointermove", 101, 50); // gliding on: held back
    expect(requests()).toHaveLength(1);
    model.kernelSend(
      { type: "mask", image_id: 1, object_id: obj.id, seq: obj.seq, width: 4, height: 2, scores: [0.9], candidate: 0 },
      [dv(encodeMask([1, 0, 0, 0, 0, 0, 0, 0], 4, 2))],
    );
    expect(drawn.map((e) => e.detail.kind)).toEqual(["mask"]);
    await new Promise((r) => setTimeout(r, 100)); // the throttle's minimum interval
    expect(requests()).toHaveLength(2); // released: the newest position only
    expect(requests()[1]).toMatchObject({ x: 102, y: 40 });
  });

  it("does not send hover requests when hover is off", async () => {
    mount({ hover: false });
    await flush();
    pointer("pointermove", 150, 55);
    expect(model.sentOfType("hover")).toHaveLength(0);
    q<HTMLButtonElement>('button[data-action="hover"]').click();
    expect(model.get("hover")).toBe(true);
  });
});

describe("segment everything", () => {
  const EVERYTHING = { type: "everything", image_id: 1, count: 3, width: 4, height: 2 };
  const LABELS = () => [dv(encodeLabels([1, 1, 2, 2, 0, 0, 3, 3], 4, 2))];
  const keepButton = () => q<HTMLButtonElement>('button[data-action="keep"]');
  const hideButton = () => q<HTMLButtonElement>('button[data-action="hide-everything"]');

  it("says what it found, enters a visible keep mode, and keeps only in that mode", async () => {
    mount();
    await flush();
    // Before any result: the late controls hold their place, invisible and disabled.
    for (const b of [keepButton(), hideButton()]) {
      expect(b.hidden).toBe(false);
      expect(b.classList.contains("sam-reserved")).toBe(true);
      expect(b.classList.contains("sam-shown")).toBe(false);
      expect(b.disabled).toBe(true);
    }
    q<HTMLButtonElement>('button[data-action="segment-everything"]').click();
    expect(model.sentOfType("segment_everything")).toHaveLength(1);
    const drawn = events("sam-drawn");
    // 4 x 2 map over the 400 x 200 image: label 3 on the right half of the bottom row
    model.kernelSend(EVERYTHING, LABELS());
    expect(drawn.map((e) => e.detail.kind)).toEqual(["everything"]);
    expect(q(".sam-status").textContent).toContain("3 masks");
    expect(q(".sam-status").textContent).toContain("Keep mode");
    expect(keepButton().classList.contains("sam-shown")).toBe(true);
    expect(keepButton().getAttribute("aria-pressed")).toBe("true");
    expect(hideButton().classList.contains("sam-shown")).toBe(true);
    click(50 + 175, 30 + 75); // image (350, 150) -> label 3
    expect(model.sentOfType("keep")).toEqual([{ type: "keep", index: 2 }]);
    click(50 + 25, 30 + 75); // background: nothing in keep mode (no stray point, no object)
    expect(model.get("objects")).toHaveLength(0);
    // Back to prompts: the same click on a mask is an ordinary point.
    q<HTMLButtonElement>('button[data-action="positive"]').click();
    expect(keepButton().getAttribute("aria-pressed")).toBe("false");
    expect(q(".sam-status").textContent).not.toContain("Keep mode");
    click(50 + 175, 30 + 75);
    expect(model.sentOfType("keep")).toHaveLength(1);
    expect(model.get("objects")[0].points).toEqual([[350, 150]]);
    hideButton().click();
    expect(hideButton().classList.contains("sam-shown")).toBe(false);
    expect(q(".sam-status").textContent).not.toContain("masks");
  });

  it("offers the kernel's overlay (proposals) in keep mode and sends the picked index", async () => {
    mount();
    await flush();
    model.kernelSend({ ...EVERYTHING, count: 3, source: "overlay" }, LABELS());
    const text = q(".sam-status").textContent ?? "";
    expect(text).toContain("Shown: 3 masks to pick");
    expect(text).not.toContain("Everything:");
    expect(keepButton().getAttribute("aria-pressed")).toBe("true");
    expect(keepButton().title).toMatch(/click a shown mask \(segment everything, proposals\)/);
    click(50 + 25, 30 + 25); // image (50, 50) -> label 1
    expect(model.sentOfType("keep")).toEqual([{ type: "keep", index: 0 }]);
    model.kernelSend({ type: "clear_everything" }, []);
    expect(q(".sam-status").textContent).not.toContain("Shown");
    expect(keepButton().getAttribute("aria-pressed")).toBe("false");
  });

  it("says when nothing was found and how to find more", async () => {
    mount();
    await flush();
    model.kernelSend({ ...EVERYTHING, count: 0 }, [dv(encodeLabels([0, 0, 0, 0, 0, 0, 0, 0], 4, 2))]);
    const text = q(".sam-status").textContent ?? "";
    expect(text).toContain("no masks found");
    expect(text).toContain("pred_iou_thresh");
    expect(text).toContain("stability_score_thresh");
    expect(keepButton().classList.contains("sam-shown")).toBe(false);
    click(50 + 175, 30 + 75); // an ordinary point: not in keep mode
    expect(model.get("objects")).toHaveLength(1);
  });

  it("clear_everything from the kernel leaves keep mode", async () => {
    mount();
    await flush();
    model.kernelSend(EVERYTHING, LABELS());
    model.kernelSend({ type: "clear_everything" });
    expect(keepButton().classList.contains("sam-shown")).toBe(false);
    click(50 + 175, 30 + 75);
    expect(model.sentOfType("keep")).toHaveLength(0);
    expect(model.get("objects")[0].points).toHaveLength(1);
  });
});

describe("segment-everything settings popover", () => {
  it("edits the generator's parameters into everything_params and runs", async () => {
    mount({ everything_params: { points_per_side: 16 } });
    await flush();
    const pop = q(".sam-settings");
    expect(pop.hidden).toBe(true);
    q<HTMLButtonElement>('button[data-action="everything-settings"]').click();
    expect(pop.hidden).toBe(false);
    const field = (n: string) => q<HTMLInputElement>(`.sam-settings input[data-param="${n}"]`);
    expect(field("points_per_side").value).toBe("16");
    expect(field("pred_iou_thresh").value).toBe("0.88");
    field("pred_iou_thresh").value = "2";
    q<HTMLFormElement>(".sam-settings form").requestSubmit();
    expect(q(".sam-settings-error").textContent).toMatch(/pred_iou_thresh/);
    expect(model.sentOfType("segment_everything")).toHaveLength(0);
    field("pred_iou_thresh").value = "0.5";
    q<HTMLFormElement>(".sam-settings form").requestSubmit();
    expect(model.get("everything_params")).toMatchObject({ points_per_side: 16, pred_iou_thresh: 0.5, stability_score_thresh: 0.95 });
    expect(model.saves).toBeGreaterThan(0);
    expect(model.sentOfType("segment_everything")).toHaveLength(1);
    expect(pop.hidden).toBe(true);
  });
});

describe("failed model", () => {
  it("turns the prompt tools off and says what to do", async () => {
    mount({ status: "error", error: "The model could not be loaded: download https://x/mobile_sam.pt ..." });
    await flush();
    for (const a of ["positive", "negative", "box", "new-object", "hover", "segment-everything"]) {
      expect(q<HTMLButtonElement>(`button[data-action="${a}"]`).disabled, a).toBe(true);
    }
    expect(q(".sam-status").textContent).toContain("Not ready");
    expect(q(".sam-status").textContent).toContain("Prompt tools are off");
    expect(q(".sam-error").hidden).toBe(false);
    click(60, 40);
    pointer("pointerdown", 60, 40);
    pointer("pointermove", 120, 90);
    pointer("pointerup", 120, 90);
    expect(model.get("objects")).toEqual([]); // no point or box that could never get a mask
    // Zoom still works: the image can be looked at.
    expect(q<HTMLButtonElement>('button[data-action="zoom-in"]').disabled).toBe(false);
    model.kernelSet("status", "ready");
    expect(q<HTMLButtonElement>('button[data-action="positive"]').disabled).toBe(false);
  });
});

describe("zoom", () => {
  it("zooms with the buttons and keeps clicks mapped to image px", async () => {
    mount();
    await flush();
    q<HTMLButtonElement>('button[data-action="zoom-in"]').click(); // x1.5 around the centre
    click(50 + 100, 30 + 50); // the centre stays the image centre
    expect(model.get("objects")[0].points[0]).toEqual([200, 100]);
    const wheel = new WheelEvent("wheel", { deltaY: -100, ctrlKey: true, clientX: 50, clientY: 30, bubbles: true, cancelable: true });
    q(".sam-stage").dispatchEvent(wheel);
    expect(wheel.defaultPrevented).toBe(true);
    q<HTMLButtonElement>('button[data-action="zoom-reset"]').click();
    click(50 + 200, 30 + 100);
    expect(model.get("objects")[0].points[1]).toEqual([400, 200]);
  });
});

describe("cleanup", () => {
  it("removes the DOM, model listeners, observers and timers", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const observers: { observed: number; disconnected: boolean }[] = [];
    vi.stubGlobal(
      "ResizeObserver",
      class {
        rec = { observed: 0, disconnected: false };
        constructor() {
          observers.push(this.rec);
        }
        observe() {
          this.rec.observed += 1;
        }
        disconnect() {
          this.rec.disconnected = true;
        }
      },
    );
    mount({ hover: true });
    await vi.advanceTimersByTimeAsync(1);
    pointer("pointermove", 150, 55); // a hover request in flight: its timeout timer runs
    expect(model.sentOfType("hover")).toHaveLength(1);
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    const stage = q(".sam-stage");
    const root = q(".sam-widget");
    cleanup();
    cleanup = () => {};
    expect(el.querySelector(".sam-widget")).toBeNull();
    expect(model.listenerCount()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(observers).toEqual([{ observed: 1, disconnected: true }]);
    const before = model.sent.length;
    stage.dispatchEvent(new MouseEvent("pointermove", { clientX: 100, clientY: 50 }));
    root.dispatchEvent(new KeyboardEvent("keydown", { key: "z", ctrlKey: true }));
    expect(model.sent.length).toBe(before);
    vi.useRealTimers();
  });
});
