/**
 * Pointer and keyboard input as pure functions.
 *
 * Pointer: down/move/up in screen (client) px -> a gesture result:
 * - press and release within `DRAG_THRESHOLD` px: a click -> point. Negative (label 0) with
 *   the right button, Alt, Shift or Ctrl held, or the "negative" mode; positive otherwise;
 * - press and move beyond the threshold: a box (rubber band while dragging);
 * - middle button, Space held, or the "pan" (hand) mode: pan by the pointer's motion;
 * - "brush" / "eraser" mode, left button: a stroke through every position the pointer
 *   passes (drawn while dragging), finished on release as one stroke (a click: one dab).
 * Only the pointer that started a gesture moves it; a second pointer is ignored.
 *
 * Keyboard: `keyCommand` maps a key press to a widget command (undo/redo are messages to
 * the kernel, which owns the history).
 */

export type InputMode = "positive" | "negative" | "box" | "pan" | "keep" | "brush" | "eraser";

export const DRAG_THRESHOLD = 4; // screen px (mouse, pen)
export const TOUCH_DRAG_THRESHOLD = 10; // screen px (fingers are less precise)

export interface PointerInput {
  pointerId: number;
  x: number; // clientX
  y: number; // clientY
  button: number; // 0 left, 1 middle, 2 right
  altKey?: boolean;
  shiftKey?: boolean;
  /** Ctrl+click is the right click of one-button Macs. */
  ctrlKey?: boolean;
  pointerType?: string;
}

export interface GestureContext {
  mode: InputMode;
  spaceHeld: boolean;
}

export type Gesture =
  | { kind: "idle" }
  | {
      kind: "press";
      pointerId: number;
      startX: number;
      startY: number;
      label: 0 | 1;
      threshold: number;
    }
  | { kind: "box"; pointerId: number; startX: number; startY: number; x: number; y: number }
  | { kind: "pan"; pointerId: number; lastX: number; lastY: number }
  | { kind: "stroke"; pointerId: number; points: [number, number][]; erase: boolean };

export type GestureResult =
  | { kind: "none" }
  | { kind: "point"; x: number; y: number; label: 0 | 1 }
  | { kind: "rubber"; x0: number; y0: number; x1: number; y1: number }
  | { kind: "box"; x0: number; y0: number; x1: number; y1: number }
  | { kind: "pan"; dx: number; dy: number }
  /** A stroke being drawn (`done` false) or finished (true); screen px. */
  | { kind: "stroke"; points: [number, number][]; erase: boolean; done: boolean }
  | { kind: "cancel" };

export const IDLE: Gesture = { kind: "idle" };
const NONE: GestureResult = { kind: "none" };

/** Label a click gets from the button, modifiers and mode. */
export function clickLabel(input: PointerInput, mode: InputMode): 0 | 1 {
  if (input.button === 2 || input.altKey || input.shiftKey || input.ctrlKey || mode === "negative") return 0;
  return 1;
}

export function pointerDown(
  g: Gesture,
  input: PointerInput,
  ctx: GestureContext,
): [Gesture, GestureResult] {
  if (g.kind !== "idle") return [g, NONE]; // one gesture at a time
  if (input.button === 1 || ctx.spaceHeld || (ctx.mode === "pan" && input.button === 0)) {
    return [{ kind: "pan", pointerId: input.pointerId, lastX: input.x, lastY: input.y }, NONE];
  }
  if (input.button !== 0 && input.button !== 2) return [g, NONE];
  if ((ctx.mode === "brush" || ctx.mode === "eraser") && input.button === 0) {
    const points: [number, number][] = [[input.x, input.y]];
    const erase = ctx.mode === "eraser";
    return [
      { kind: "stroke", pointerId: input.pointerId, points, erase },
      { kind: "stroke", points, erase, done: false },
    ];
  }
  return [
    {
      kind: "press",
      pointerId: input.pointerId,
      startX: input.x,
      startY: input.y,
      label: clickLabel(input, ctx.mode),
      threshold: input.pointerType === "touch" ? TOUCH_DRAG_THRESHOLD : DRAG_THRESHOLD,
    },
    NONE,
  ];
}

export function pointerMove(g: Gesture, input: PointerInput): [Gesture, GestureResult] {
  if (g.kind === "idle" || g.pointerId !== input.pointerId) return [g, NONE];
  if (g.kind === "pan") {
    const result: GestureResult = { kind: "pan", dx: input.x - g.lastX, dy: input.y - g.lastY };
    return [{ ...g, lastX: input.x, lastY: input.y }, result];
  }
  if (g.kind === "stroke") {
    const last = g.points[g.points.length - 1];
    if (last[0] === input.x && last[1] === input.y) return [g, NONE];
    const points: [number, number][] = [...g.points, [input.x, input.y]];
    return [{ ...g, points }, { kind: "stroke", points, erase: g.erase, done: false }];
  }
  if (g.kind === "press") {
    if (Math.hypot(input.x - g.startX, input.y - g.startY) <= g.threshold) return [g, NONE];
    g = { kind: "box", pointerId: g.pointerId, startX: g.startX, startY: g.startY, x: input.x, y: input.y };
  } else {
    g = { ...g, x: input.x, y: input.y };
  }
  return [g, { kind: "rubber", x0: g.startX, y0: g.startY, x1: g.x, y1: g.y }];
}

export function pointerUp(g: Gesture, input: PointerInput): [Gesture, GestureResult] {
  if (g.kind === "idle" || g.pointerId !== input.pointerId) return [g, NONE];
  if (g.kind === "press") {
    // A release beyond the threshold without a move event in between still makes a box.
    if (Math.hypot(input.x - g.startX, input.y - g.startY) > g.threshold) {
      return [IDLE, { kind: "box", x0: g.startX, y0: g.startY, x1: input.x, y1: input.y }];
    }
    return [IDLE, { kind: "point", x: g.startX, y: g.startY, label: g.label }];
  }
  if (g.kind === "box") {
    return [IDLE, { kind: "box", x0: g.startX, y0: g.startY, x1: input.x, y1: input.y }];
  }
  if (g.kind === "stroke") {
    const last = g.points[g.points.length - 1];
    const points: [number, number][] =
      last[0] === input.x && last[1] === input.y ? g.points : [...g.points, [input.x, input.y]];
    return [IDLE, { kind: "stroke", points, erase: g.erase, done: true }];
  }
  return [IDLE, { kind: "pan", dx: input.x - g.lastX, dy: input.y - g.lastY }];
}

/** Pointer lost (pointercancel, lost capture, Escape): drop the gesture. */
export function pointerCancel(g: Gesture): [Gesture, GestureResult] {
  return g.kind === "idle" ? [g, NONE] : [IDLE, { kind: "cancel" }];
}

export type Command =
  | "undo"
  | "redo"
  | "clearActive"
  | "newObject"
  | "deleteObject"
  | "zoomIn"
  | "zoomOut"
  | "zoomReset"
  | "radiusDown"
  | "radiusUp";

export interface KeyInput {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  shiftKey?: boolean;
  altKey?: boolean;
}

/** The widget command for a key press, or null if the widget does not handle it. */
export function keyCommand(e: KeyInput): Command | null {
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const accel = !!(e.ctrlKey || e.metaKey);
  if (accel && !e.altKey) {
    if (key === "z") return e.shiftKey ? "redo" : "undo";
    if (key === "y" && e.ctrlKey && !e.shiftKey) return "redo";
    return null;
  }
  if (e.altKey) return null;
  switch (key) {
    case "Escape":
      return "clearActive";
    case "n":
      return "newObject";
    case "Delete":
      return "deleteObject";
    case "+":
    case "=":
      return "zoomIn";
    case "-":
    case "_":
      return "zoomOut";
    case "0":
      return "zoomReset";
    case "[":
      return "radiusDown";
    case "]":
      return "radiusUp";
    default:
      return null;
  }
}
