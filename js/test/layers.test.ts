// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { View } from "../src/coords";
import { MaskLayers } from "../src/layers";
import type { MaskEntry } from "../src/messages";
import { emptyState, type PromptState, reduce } from "../src/state";
import { fakeContext } from "./fake-model";

const view: View = { imageWidth: 400, imageHeight: 200, stageWidth: 200, stageHeight: 100, zoom: 1, panX: 0, panY: 0 };

function twoObjects(): PromptState {
  let s = reduce(emptyState(), { type: "addPoint", x: 1, y: 1, label: 1 }); // id 1
  s = reduce(reduce(s, { type: "newObject" }), { type: "addPoint", x: 2, y: 2, label: 1 }); // id 2
  return reduce(s, { type: "selectObject", id: 1 });
}

const entry = (objectId: number, seq = 1): MaskEntry => ({
  objectId,
  seq,
  width: 2,
  height: 1,
  mask: new Uint8Array([1, 0]),
  scores: [],
  candidate: null,
});

let counter = 0;
const created = new Map<string, HTMLCanvasElement>();
beforeEach(() => {
  // Name every canvas the layers create so draw calls can be told apart.
  const create = document.createElement.bind(document);
  vi.spyOn(document, "createElement").mockImplementation(((tag: string) => {
    const el = create(tag);
    if (tag === "canvas") {
      el.id = `c${++counter}`;
      created.set(el.id, el as HTMLCanvasElement);
    }
    return el;
  }) as typeof document.createElement);
  const contexts = new WeakMap<HTMLCanvasElement, CanvasRenderingContext2D>();
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(function (this: HTMLCanvasElement) {
    if (!contexts.has(this)) contexts.set(this, fakeContext(this));
    return contexts.get(this)! as never;
  });
});
afterEach(() => vi.restoreAllMocks());

function target() {
  const c = document.createElement("canvas");
  const ctx = c.getContext("2d")!;
  return { ctx, calls: (ctx as unknown as { calls: string[] }).calls };
}

describe("MaskLayers", () => {
  it("draws inactive masks dimmer, then the active one with its outline on top", () => {
    const layers = new MaskLayers();
    layers.setMask(entry(1));
    layers.setMask(entry(2));
    const { ctx, calls } = target();
    layers.drawOverlay(ctx, view, twoObjects(), 0.5);
    const draws = calls.filter((c) => c.startsWith("drawImage"));
    expect(draws).toHaveLength(3);
    expect(draws[0]).toMatch(/alpha=0.3$/); // object 2, inactive: 0.5 x 0.6
    expect(draws[1]).toMatch(/alpha=0.5$/); // object 1, active fill
    expect(draws[2]).toMatch(/alpha=1$/); // its outline
  });

  it("reuses mask canvases across redraws until the mask changes", () => {
    const layers = new MaskLayers();
    layers.setMask(entry(1));
    const state = twoObjects();
    const { ctx, calls } = target();
    layers.drawOverlay(ctx, view, state, 0.5);
    layers.drawOverlay(ctx, view, state, 0.9);
    const sources = calls.filter((c) => c.startsWith("drawImage")).map((c) => c.split(" ")[1]);
    expect(sources[0]).toBe(sources[2]); // same fill canvas
    layers.setMask(entry(1, 2));
    calls.length = 0;
    layers.drawOverlay(ctx, view, state, 0.5);
    expect(calls.find((c) => c.startsWith("drawImage"))!.split(" ")[1]).not.toBe(sources[0]);
  });

  it("paints a large mask at about the displayed size, again larger when zoomed in", () => {
    const layers = new MaskLayers();
    const big: MaskEntry = { ...entry(1), width: 1024, height: 512, mask: new Uint8Array(1024 * 512).fill(1) };
    layers.setMask(big);
    const state = twoObjects();
    const { ctx, calls } = target();
    ctx.canvas.width = 200; // backing store = stage size (DPR 1): the image shows at 200 x 100
    ctx.canvas.height = 100;
    layers.drawOverlay(ctx, view, state, 0.5);
    const painted = () =>
      calls
        .filter((c) => c.startsWith("drawImage"))
        .map((c) => c.split(" ")[1])
        .map((id) => created.get(id)!);
    const first = painted();
    expect(first.length).toBeGreaterThan(0);
    for (const c of first) expect([c.width, c.height]).toEqual([200, 100]);
    calls.length = 0;
    layers.drawOverlay(ctx, { ...view, zoom: 8 }, state, 0.5);
    for (const c of painted()) expect([c.width, c.height]).toEqual([1024, 512]);
  });

  it("forgets masks of removed objects and everything on reset", () => {
    const layers = new MaskLayers();
    layers.setMask(entry(1));
    layers.setMask(entry(7));
    expect(layers.prune(twoObjects())).toBe(true);
    expect([...layers.masks.keys()]).toEqual([1]);
    layers.setEverything(new Uint16Array([0, 1]), 2, 1, 1);
    layers.reset();
    expect(layers.masks.size).toBe(0);
    expect(layers.everything).toBeNull();
  });

  it("reports hover changes only when something changes", () => {
    const layers = new MaskLayers();
    expect(layers.setHover(null, 0, 0, "")).toBe(false);
    expect(layers.setHover(new Uint8Array([1, 0]), 2, 1, "#ff0000")).toBe(true);
    expect(layers.setHover(null, 0, 0, "")).toBe(true);
  });

  it("finds and highlights the everything-mask under the pointer", () => {
    const layers = new MaskLayers();
    // 2 x 1 label map over the 400 x 200 image: left half label 1, right half label 2
    layers.setEverything(new Uint16Array([1, 2]), 2, 1, 2);
    expect(layers.everythingLabelAt(view, 100, 100)).toBe(1);
    expect(layers.everythingLabelAt(view, 300, 100)).toBe(2);
    expect(layers.everythingLabelAt(view, 500, 100)).toBe(0);
    expect(layers.setEverythingHover(2)).toBe(true);
    expect(layers.setEverythingHover(2)).toBe(false);
    const { ctx, calls } = target();
    layers.drawHover(ctx, view, 0.5);
    expect(calls.filter((c) => c.startsWith("drawImage"))).toHaveLength(1);
  });
});
