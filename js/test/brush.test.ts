/**
 * Brush and eraser: the pointer gesture of a stroke, its actions (a live stroke while
 * dragging, one `addStroke` on release), the radius keys and slider steps, the preview shape.
 */
import { describe, expect, it } from "vitest";
import type { View } from "../src/coords";
import { strokeShape } from "../src/draw";
import {
  type Gesture,
  type GestureContext,
  type GestureResult,
  IDLE,
  keyCommand,
  pointerCancel,
  pointerDown,
  pointerMove,
  type PointerInput,
  pointerUp,
} from "../src/gesture";
import {
  commandActions,
  gestureActions,
  hoverActions,
  type InputContext,
  RADIUS_MAX,
  RADIUS_MIN,
  stepRadius,
  toolbarActions,
} from "../src/input";
import { activeObject, emptyState, MAX_STROKE_POINTS, reduce } from "../src/state";

// A 100 x 50 image on a 200 x 100 stage at the screen's origin: 2 screen px per image px.
const VIEW: View = { imageWidth: 100, imageHeight: 50, stageWidth: 200, stageHeight: 100, zoom: 1, panX: 0, panY: 0 };
const RECT = { left: 0, top: 0, width: 200, height: 100 };
const gctx = (mode: GestureContext["mode"]): GestureContext => ({ mode, spaceHeld: false });
const p = (x: number, y: number, over: Partial<PointerInput> = {}): PointerInput => ({ pointerId: 1, x, y, button: 0, ...over });

function ctx(over: Partial<InputContext> = {}): InputContext {
  return {
    view: VIEW,
    rect: RECT,
    gesture: IDLE,
    everythingLabelAt: () => 0,
    everythingShown: false,
    hoverOn: true,
    status: "ready",
    mode: "brush",
    failed: false,
    radius: 6,
    ...over,
  };
}

const last = <T>(xs: readonly T[]): T => xs[xs.length - 1];

/** Run down, moves, up in `mode`; the results in order (none dropped). */
function drag(mode: GestureContext["mode"], pts: [number, number][]): GestureResult[] {
  const out: GestureResult[] = [];
  let g: Gesture = IDLE;
  let r: GestureResult;
  [g, r] = pointerDown(g, p(...pts[0]), gctx(mode));
  out.push(r);
  for (const q of pts.slice(1, -1)) {
    [g, r] = pointerMove(g, p(...q));
    out.push(r);
  }
  [g, r] = pointerUp(g, p(...pts[pts.length - 1]));
  out.push(r);
  expect(g).toEqual(IDLE);
  return out;
}

describe("stroke gesture", () => {
  it("grows a live stroke on every move and finishes it on release", () => {
    const out = drag("brush", [
      [10, 10],
      [20, 10],
      [20, 10], // no motion: no new point
      [30, 16],
      [40, 20],
    ]);
    expect(out.map((r) => r.kind)).toEqual(["stroke", "stroke", "none", "stroke", "stroke"]);
    expect(out[out.length - 1]).toEqual({
      kind: "stroke",
      points: [
        [10, 10],
        [20, 10],
        [30, 16],
        [40, 20],
      ],
      erase: false,
      done: true,
    });
    expect(out.slice(0, -1).every((r) => r.kind !== "stroke" || !r.done)).toBe(true);
  });

  it("a click in eraser mode is one erasing dab; other modes make no stroke", () => {
    expect(last(drag("eraser", [[5, 5], [5, 5]]))).toEqual({ kind: "stroke", points: [[5, 5]], erase: true, done: true });
    expect(last(drag("positive", [[5, 5], [40, 40]])).kind).toBe("box");
    // the right button in brush mode is no stroke (a negative point, as in every mode)
    const [g] = pointerDown(IDLE, p(5, 5, { button: 2 }), gctx("brush"));
    expect(g.kind).toBe("press");
  });

  it("another pointer does not move the stroke, and cancel drops it", () => {
    let [g] = pointerDown(IDLE, p(1, 1), gctx("brush"));
    [g] = pointerMove(g, p(9, 9, { pointerId: 2 }));
    expect(g.kind === "stroke" && g.points).toEqual([[1, 1]]);
    const [after, r] = pointerCancel(g);
    expect(after).toEqual(IDLE);
    expect(gestureActions(r, ctx())).toContainEqual({ kind: "liveStroke", stroke: null });
  });
});

describe("stroke -> actions", () => {
  it("shows the live stroke in image px while dragging", () => {
    const r: GestureResult = { kind: "stroke", points: [[20, 20], [60, 40]], erase: false, done: false };
    expect(gestureActions(r, ctx())).toEqual([
      { kind: "liveStroke", stroke: { points: [[10, 10], [30, 20]], radius: 6, erase: false } },
    ]);
  });

  it("commits one addStroke on release, clamped to the image", () => {
    const r: GestureResult = { kind: "stroke", points: [[20, 20], [260, -10]], erase: true, done: true };
    expect(gestureActions(r, ctx({ radius: 3 }))).toEqual([
      { kind: "liveStroke", stroke: null },
      { kind: "commit", action: { type: "addStroke", points: [[10, 10], [100, 0]], radius: 3, erase: true } },
    ]);
    // without a model there is no mask to paint on
    expect(gestureActions(r, ctx({ failed: true }))).toEqual([{ kind: "liveStroke", stroke: null }]);
  });

  it("keeps at most MAX_STROKE_POINTS points, ending where the pointer did", () => {
    const pts: [number, number][] = Array.from({ length: MAX_STROKE_POINTS + 500 }, (_, i) => [i % 200, 50]);
    const r: GestureResult = { kind: "stroke", points: pts, erase: false, done: true };
    const commit = gestureActions(r, ctx())[1];
    expect(commit.kind).toBe("commit");
    if (commit.kind !== "commit" || commit.action.type !== "addStroke") throw new Error("no stroke");
    expect(commit.action.points.length).toBe(MAX_STROKE_POINTS);
    expect(last(commit.action.points)).toEqual([((MAX_STROKE_POINTS + 499) % 200) / 2, 25]);
    // the committed action is one the reducer takes: one history step
    const s = reduce(emptyState(), commit.action);
    expect(activeObject(s)!.strokes.length).toBe(1);
  });
});

describe("radius and modes", () => {
  it("[ and ] step the radius within the slider's range", () => {
    expect(keyCommand({ key: "[" })).toBe("radiusDown");
    expect(keyCommand({ key: "]" })).toBe("radiusUp");
    const c = { gesture: IDLE, view: VIEW, rect: RECT };
    expect(commandActions("radiusUp", { ...c, radius: 10 })).toEqual([{ kind: "radius", value: 13 }]);
    expect(commandActions("radiusDown", { ...c, radius: 10 })).toEqual([{ kind: "radius", value: 8 }]);
    expect(stepRadius(1, 1)).toBe(2); // at least one pixel per step
    expect(stepRadius(2, -1)).toBe(1);
    expect(stepRadius(RADIUS_MIN, -1)).toBe(RADIUS_MIN);
    expect(stepRadius(RADIUS_MAX, 1)).toBe(RADIUS_MAX);
  });

  it("toolbar buttons switch to brush and eraser; no SAM hover preview while painting", () => {
    const c = { gesture: IDLE, view: VIEW, rect: RECT };
    expect(toolbarActions("brush", c)).toEqual([{ kind: "mode", mode: "brush" }]);
    expect(toolbarActions("eraser", c)).toEqual([{ kind: "mode", mode: "eraser" }]);
    expect(hoverActions(50, 50, "mouse", ctx({ mode: "brush" }))).toEqual([{ kind: "clearHover" }]);
    expect(hoverActions(50, 50, "mouse", ctx({ mode: "positive" }))[0].kind).toBe("hover");
  });

  it("previews a stroke as a line 2 x radius wide in stage px", () => {
    const shape = strokeShape({ points: [[10, 10], [30, 20]], radius: 5, erase: false }, VIEW);
    expect(shape).toEqual({ points: [[20, 20], [60, 40]], width: 20 });
  });
});

describe("masks of brush-only objects", () => {
  it("stay on screen: an object with strokes and no SAM prompt has a mask", async () => {
    const { pruneMasks } = await import("../src/messages");
    const s = reduce(emptyState(), { type: "addStroke", points: [[1, 1]], radius: 2, erase: false });
    const id = s.active;
    const masks = new Map([[id, { seq: 1 } as never]]);
    expect(pruneMasks(masks, s)).toBe(false);
    expect(masks.has(id)).toBe(true);
    expect(pruneMasks(masks, reduce(s, { type: "clearActive" }))).toBe(true);
  });
});
