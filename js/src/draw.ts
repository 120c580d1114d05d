/**
 * Canvas drawing for the four stacked layers. Masks are drawn in image px through
 * `backingTransform`; markers are drawn in stage px so they keep their on-screen size at
 * any zoom. `markerShapes` (pure) decides what the marker layer shows.
 */
import { backingSize, backingTransform, imageToStage, type View, viewScale } from "./coords";
import { maskOutline, paintMask, type RGB } from "./paint";
import type { PromptState, Stroke as BrushStroke } from "./state";

export const POSITIVE_COLOR = "#1a9850"; // green "+"
export const NEGATIVE_COLOR = "#d73027"; // red "-"

export type MarkerShape =
  | { kind: "point"; x: number; y: number; label: number; active: boolean; color: string }
  | { kind: "box"; x0: number; y0: number; x1: number; y1: number; active: boolean; color: string };

/** Marker layer content in stage px: every object's boxes and points, active one last. */
export function markerShapes(state: PromptState, view: View): MarkerShape[] {
  const ordered = [
    ...state.objects.filter((o) => o.id !== state.active),
    ...state.objects.filter((o) => o.id === state.active),
  ];
  const out: MarkerShape[] = [];
  for (const o of ordered) {
    const active = o.id === state.active;
    if (o.box) {
      const [x0, y0] = imageToStage(view, o.box[0], o.box[1]);
      const [x1, y1] = imageToStage(view, o.box[2], o.box[3]);
      out.push({ kind: "box", x0, y0, x1, y1, active, color: o.color });
    }
    o.points.forEach((p, i) => {
      const [x, y] = imageToStage(view, p[0], p[1]);
      out.push({ kind: "point", x, y, label: o.labels[i] ?? 1, active, color: o.color });
    });
  }
  return out;
}

/**
 * Size a canvas to cover the stage crisply (backing store = CSS size x DPR) and return its
 * context reset to identity, or null where canvas is unavailable (e.g. jsdom).
 */
export function prepareCanvas(
  canvas: HTMLCanvasElement,
  view: View,
  dpr: number,
): CanvasRenderingContext2D | null {
  const [bw, bh] = backingSize(view, dpr);
  if (canvas.width !== bw) canvas.width = bw;
  if (canvas.height !== bh) canvas.height = bh;
  canvas.style.width = `${view.stageWidth}px`;
  canvas.style.height = `${view.stageHeight}px`;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = canvas.getContext("2d");
  } catch {
    ctx = null;
  }
  if (!ctx) return null;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, bw, bh);
  return ctx;
}

/** Switch `ctx` to image-px coordinates. */
export function useImageSpace(ctx: CanvasRenderingContext2D, view: View): void {
  const t = backingTransform(view, ctx.canvas.width, ctx.canvas.height);
  ctx.setTransform(t.a, 0, 0, t.d, t.e, t.f);
}

/** Switch `ctx` to stage-px coordinates. */
export function useStageSpace(ctx: CanvasRenderingContext2D, view: View): void {
  const bx = view.stageWidth > 0 ? ctx.canvas.width / view.stageWidth : 1;
  const by = view.stageHeight > 0 ? ctx.canvas.height / view.stageHeight : 1;
  ctx.setTransform(bx, 0, 0, by, 0, 0);
}

/** Draw `source` (mask-resolution canvas or the image) stretched over the whole image. */
export function drawOverImage(
  ctx: CanvasRenderingContext2D,
  source: CanvasImageSource,
  view: View,
  alpha = 1,
  smooth = true,
): void {
  useImageSpace(ctx, view);
  ctx.globalAlpha = alpha;
  ctx.imageSmoothingEnabled = smooth;
  ctx.drawImage(source, 0, 0, view.imageWidth, view.imageHeight);
  ctx.globalAlpha = 1;
}

/** A canvas of the mask's own size holding RGBA pixels, or null without canvas support. */
export function rgbaCanvas(width: number, height: number, fill: (rgba: Uint8ClampedArray) => void): HTMLCanvasElement | null {
  if (width <= 0 || height <= 0) return null;
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = c.getContext("2d");
  } catch {
    ctx = null;
  }
  if (!ctx) return null;
  const img = ctx.createImageData(width, height);
  fill(img.data);
  ctx.putImageData(img, 0, 0);
  return c;
}

/** Opaque fill of a mask in `color` (alpha is applied when compositing). */
export function maskFillCanvas(mask: Uint8Array, width: number, height: number, color: RGB): HTMLCanvasElement | null {
  return rgbaCanvas(width, height, (rgba) => paintMask(rgba, mask, color, 1));
}

/** The mask's boundary pixels, opaque, in `color`. */
export function maskOutlineCanvas(mask: Uint8Array, width: number, height: number, color: RGB): HTMLCanvasElement | null {
  const edge = maskOutline(mask, width, height);
  return rgbaCanvas(width, height, (rgba) => paintMask(rgba, edge, color, 1));
}

function drawPoint(ctx: CanvasRenderingContext2D, m: Extract<MarkerShape, { kind: "point" }>): void {
  const r = m.active ? 7 : 5;
  ctx.globalAlpha = m.active ? 1 : 0.7;
  ctx.beginPath();
  ctx.arc(m.x, m.y, r, 0, 2 * Math.PI);
  ctx.fillStyle = m.label ? POSITIVE_COLOR : NEGATIVE_COLOR;
  ctx.fill();
  ctx.lineWidth = m.active ? 2 : 1.5;
  ctx.strokeStyle = "#ffffff";
  ctx.stroke();
  // The sign keeps positive/negative apart without relying on colour.
  const a = r * 0.55;
  ctx.beginPath();
  ctx.moveTo(m.x - a, m.y);
  ctx.lineTo(m.x + a, m.y);
  if (m.label) {
    ctx.moveTo(m.x, m.y - a);
    ctx.lineTo(m.x, m.y + a);
  }
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.globalAlpha = 1;
}

export interface Stroke {
  color: string;
  width: number;
  dash: number[];
}

/**
 * The strokes of a box outline, drawn in order: a dark and a light halo under the line in
 * the object's colour, like the white ring around the point markers, so the box stays
 * visible over any image and over the mask overlay (whatever the object's colour).
 */
export function boxStrokes(color: string, width: number, dash: number[]): Stroke[] {
  return [
    { color: "rgba(0,0,0,0.7)", width: width + 4, dash: [] },
    { color: "rgba(255,255,255,0.95)", width: width + 2, dash: [] },
    { color, width, dash },
  ];
}

function strokeRect(
  ctx: CanvasRenderingContext2D,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  color: string,
  width: number,
  dash: number[],
): void {
  const x = Math.min(x0, x1);
  const y = Math.min(y0, y1);
  const w = Math.abs(x1 - x0);
  const hgt = Math.abs(y1 - y0);
  for (const st of boxStrokes(color, width, dash)) {
    ctx.setLineDash(st.dash);
    ctx.lineWidth = st.width;
    ctx.strokeStyle = st.color;
    ctx.strokeRect(x, y, w, hgt);
  }
  ctx.setLineDash([]);
}

/**
 * A stroke being drawn, in stage px: the polyline and its line width (2 x radius), for a
 * round-capped canvas line, which covers what the kernel's rasteriser paints
 * (sam_widget/widget/strokes.py: pixels within the radius of the polyline). Only a preview:
 * the kernel sends the composed mask once the stroke is committed.
 */
export function strokeShape(stroke: BrushStroke, view: View): { points: [number, number][]; width: number } {
  return {
    points: stroke.points.map((p) => imageToStage(view, p[0], p[1])),
    width: 2 * stroke.radius * viewScale(view),
  };
}

function drawStroke(ctx: CanvasRenderingContext2D, view: View, stroke: BrushStroke, color: string): void {
  const { points, width } = strokeShape(stroke, view);
  if (!points.length) return;
  ctx.save();
  ctx.globalAlpha = 0.5;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = width;
  ctx.strokeStyle = stroke.erase ? "#ffffff" : color;
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  // one point: a zero-length segment, drawn as a disc thanks to the round cap
  for (const p of points.length > 1 ? points.slice(1) : points) ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  ctx.restore();
}

/** Draw markers (stage px), the rubber band (stage px) and the stroke being drawn. */
export function drawMarkers(
  ctx: CanvasRenderingContext2D,
  view: View,
  shapes: MarkerShape[],
  rubber: [number, number, number, number] | null,
  stroke: BrushStroke | null = null,
  strokeColor = "#ffffff",
): void {
  useStageSpace(ctx, view);
  if (stroke) drawStroke(ctx, view, stroke, strokeColor);
  for (const m of shapes) {
    if (m.kind === "box") strokeRect(ctx, m.x0, m.y0, m.x1, m.y1, m.color, m.active ? 2.5 : 1.5, m.active ? [] : [5, 4]);
    else drawPoint(ctx, m);
  }
  if (rubber) strokeRect(ctx, rubber[0], rubber[1], rubber[2], rubber[3], "#ffffff", 1.5, [6, 4]);
}

