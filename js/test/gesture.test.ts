import { describe, expect, it } from "vitest";
import {
  DRAG_THRESHOLD,
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
  TOUCH_DRAG_THRESHOLD,
} from "../src/gesture";

const ctx = (over: Partial<GestureContext> = {}): GestureContext => ({ mode: "positive", spaceHeld: false, ...over });
const p = (x: number, y: number, over: Partial<PointerInput> = {}): PointerInput => ({ pointerId: 1, x, y, button: 0, ...over });

/** Run down, moves, up; collect the non-"none" results. */
function gesture(down: PointerInput, moves: PointerInput[], up: PointerInput, c = ctx()): GestureResult[] {
  const out: GestureResult[] = [];
  let g: Gesture = IDLE;
  let r: GestureResult;
  [g, r] = pointerDown(g, down, c);
  out.push(r);
  for (const m of moves) {
    [g, r] = pointerMove(g, m);
    out.push(r);
  }
  [g, r] = pointerUp(g, up);
  out.push(r);
  expect(g).toEqual(IDLE);
  return out.filter((x) => x.kind !== "none");
}

describe("clicks", () => {
  it("left click is a positive point at the press position", () => {
    expect(gesture(p(10, 20), [p(11, 21)], p(12, 21))).toEqual([{ kind: "point", x: 10, y: 20, label: 1 }]);
  });

  it("right button, Alt, Shift or the negative mode make it negative", () => {
    const neg = { kind: "point", x: 5, y: 5, label: 0 };
    expect(gesture(p(5, 5, { button: 2 }), [], p(5, 5, { button: 2 }))).toEqual([neg]);
    expect(gesture(p(5, 5, { altKey: true }), [], p(5, 5))).toEqual([neg]);
    expect(gesture(p(5, 5, { shiftKey: true }), [], p(5, 5))).toEqual([neg]);
    expect(gesture(p(5, 5, { ctrlKey: true }), [], p(5, 5))).toEqual([neg]);
    expect(gesture(p(5, 5), [], p(5, 5), ctx({ mode: "negative" }))).toEqual([neg]);
    // box mode: a tap still adds a (positive) point
    expect(gesture(p(5, 5), [], p(5, 5), ctx({ mode: "box" }))).toEqual([{ kind: "point", x: 5, y: 5, label: 1 }]);
  });

  it("stays a click within the drag threshold", () => {
    const d = DRAG_THRESHOLD - 0.5;
    expect(gesture(p(0, 0), [p(d, 0)], p(0, d))[0].kind).toBe("point");
  });
});

describe("drags", () => {
  it("become a box with a live rubber band beyond the threshold", () => {
    const results = gesture(p(10, 10), [p(12, 11), p(40, 30), p(60, 50)], p(61, 52));
    expect(results).toEqual([
      { kind: "rubber", x0: 10, y0: 10, x1: 40, y1: 30 },
      { kind: "rubber", x0: 10, y0: 10, x1: 60, y1: 50 },
      { kind: "box", x0: 10, y0: 10, x1: 61, y1: 52 },
    ]);
  });

  it("make a box even when the release comes without a move event", () => {
    expect(gesture(p(0, 0), [], p(30, 30))).toEqual([{ kind: "box", x0: 0, y0: 0, x1: 30, y1: 30 }]);
  });

  it("use a larger threshold for touch", () => {
    const d = (DRAG_THRESHOLD + TOUCH_DRAG_THRESHOLD) / 2;
    const touch = { pointerType: "touch" };
    expect(gesture(p(0, 0, touch), [p(d, 0, touch)], p(d, 0, touch))[0].kind).toBe("point");
    expect(gesture(p(0, 0), [p(d, 0)], p(d, 0)).slice(-1)[0].kind).toBe("box");
  });

  it("pan with the middle button, Space held, or the pan mode", () => {
    const pans = [
      gesture(p(0, 0, { button: 1 }), [p(5, 2, { button: 1 })], p(7, 3, { button: 1 })),
      gesture(p(0, 0), [p(5, 2)], p(7, 3), ctx({ spaceHeld: true })),
      gesture(p(0, 0), [p(5, 2)], p(7, 3), ctx({ mode: "pan" })),
    ];
    for (const r of pans) {
      expect(r).toEqual([
        { kind: "pan", dx: 5, dy: 2 },
        { kind: "pan", dx: 2, dy: 1 },
      ]);
    }
  });

  it("ignores other pointers and unknown buttons", () => {
    let g: Gesture;
    [g] = pointerDown(IDLE, p(0, 0), ctx());
    const [g2, r2] = pointerDown(g, p(50, 50, { pointerId: 2 }), ctx());
    expect(g2).toBe(g);
    expect(r2.kind).toBe("none");
    expect(pointerMove(g, p(90, 90, { pointerId: 2 }))[1].kind).toBe("none");
    expect(pointerUp(g, p(90, 90, { pointerId: 2 }))[0]).toBe(g);
    expect(pointerDown(IDLE, p(0, 0, { button: 3 }), ctx())[0]).toBe(IDLE);
    expect(pointerMove(IDLE, p(1, 1))[1].kind).toBe("none");
  });

  it("cancel drops the gesture", () => {
    const [g] = pointerMove(pointerDown(IDLE, p(0, 0), ctx())[0], p(50, 50));
    expect(g.kind).toBe("box");
    expect(pointerCancel(g)).toEqual([IDLE, { kind: "cancel" }]);
    expect(pointerCancel(IDLE)).toEqual([IDLE, { kind: "none" }]);
  });
});

describe("keyCommand", () => {
  it("maps the documented keys", () => {
    expect(keyCommand({ key: "Escape" })).toBe("clearActive");
    expect(keyCommand({ key: "n" })).toBe("newObject");
    expect(keyCommand({ key: "N", shiftKey: true })).toBe("newObject");
    expect(keyCommand({ key: "z", ctrlKey: true })).toBe("undo");
    expect(keyCommand({ key: "z", metaKey: true })).toBe("undo");
    expect(keyCommand({ key: "Z", ctrlKey: true, shiftKey: true })).toBe("redo");
    expect(keyCommand({ key: "z", metaKey: true, shiftKey: true })).toBe("redo");
    expect(keyCommand({ key: "y", ctrlKey: true })).toBe("redo");
    expect(keyCommand({ key: "Delete" })).toBe("deleteObject");
    expect(keyCommand({ key: "+" })).toBe("zoomIn");
    expect(keyCommand({ key: "-" })).toBe("zoomOut");
    expect(keyCommand({ key: "0" })).toBe("zoomReset");
  });

  it("leaves other keys (and modified letters) to the page", () => {
    expect(keyCommand({ key: "a" })).toBeNull();
    expect(keyCommand({ key: "n", ctrlKey: true })).toBeNull();
    expect(keyCommand({ key: "n", altKey: true })).toBeNull();
    expect(keyCommand({ key: "z" })).toBeNull();
    expect(keyCommand({ key: "z", ctrlKey: true, altKey: true })).toBeNull();
    expect(keyCommand({ key: "c", ctrlKey: true })).toBeNull();
    expect(keyCommand({ key: "Enter" })).toBeNull();
  });
});
