/**
 * What the kernel sent that is on screen: decoded object masks, the hover preview and the
 * "segment everything" label map, with their canvases cached, so redraws (resize, zoom,
 * opacity, active object) need no kernel round trip.
 */
import { type View, viewScale } from "./coords";
import { drawOverImage, maskFillCanvas, maskOutlineCanvas, rgbaCanvas } from "./draw";
import { type MaskEntry, pruneMasks } from "./messages";
import { labelMask, mapIndexAt, maskOutline, paintLabels, paintMask, paintSize, parseColor, resampleMask } from "./paint";
import type { PromptState } from "./state";

interface MaskPaint {
  entry: MaskEntry;
  color: string;
  size: [number, number]; // painted at (<= the mask's size, ~ the displayed size)
  fill: HTMLCanvasElement | null;
  outline?: HTMLCanvasElement | null;
}

interface HoverMask {
  mask: Uint8Array;
  width: number;
  height: number;
  color: string;
  canvas?: HTMLCanvasElement | null;
  size?: [number, number];
}

/** The image's size on `ctx`'s backing store (device px) at the current view. */
function displayedSize(ctx: CanvasRenderingContext2D, view: View): [number, number] {
  const bx = view.stageWidth > 0 ? ctx.canvas.width / view.stageWidth : 1;
  const by = view.stageHeight > 0 ? ctx.canvas.height / view.stageHeight : 1;
  const s = viewScale(view);
  return [view.imageWidth * s * bx, view.imageHeight * s * by];
}

export interface Everything {
  labels: Uint16Array;
  width: number;
  height: number;
  count: number;
  canvas: HTMLCanvasElement | null;
  hovered: number; // label under the pointer (0: none)
  highlight: HTMLCanvasElement | null;
}

const INACTIVE_ALPHA = 0.6; // inactive objects, relative to the opacity trait
const EVERYTHING_ALPHA = 0.8;

export class MaskLayers {
  readonly masks = new Map<number, MaskEntry>();
  everything: Everything | null = null;
  private hover: HoverMask | null = null;
  private paints = new Map<number, MaskPaint>();

  /** Forget everything (a new image). */
  reset(): void {
    this.masks.clear();
    this.paints.clear();
    this.everything = null;
    this.hover = null;
  }

  setMask(entry: MaskEntry): void {
    this.masks.set(entry.objectId, entry);
  }

  /** Drop masks whose objects are gone or empty; true if any went. */
  prune(state: PromptState): boolean {
    return pruneMasks(this.masks, state);
  }

  /** Set (or with null, drop) the hover preview; true if the hover layer changed. */
  setHover(mask: Uint8Array | null, width: number, height: number, color: string): boolean {
    const had = this.hover !== null;
    this.hover = mask ? { mask, width, height, color } : null;
    return had || mask !== null;
  }

  setEverything(labels: Uint16Array, width: number, height: number, count: number): void {
    const canvas = rgbaCanvas(width, height, (rgba) => paintLabels(rgba, labels, 1));
    this.everything = { labels, width, height, count, canvas, hovered: 0, highlight: null };
  }

  /** The everything-mask label (0: none) under an image-px point. */
  everythingLabelAt(view: View, x: number, y: number): number {
    const ev = this.everything;
    if (!ev) return 0;
    const i = mapIndexAt(ev.width, ev.height, view.imageWidth, view.imageHeight, x, y);
    return i >= 0 ? ev.labels[i] : 0;
  }

  /** Highlight the everything-mask under the pointer (0: none); true if that changed. */
  setEverythingHover(label: number): boolean {
    const ev = this.everything;
    if (!ev || ev.hovered === label) return false;
    ev.hovered = label;
    ev.highlight = null;
    if (label > 0) {
      const mask = labelMask(ev.labels, label);
      const edge = maskOutline(mask, ev.width, ev.height);
      ev.highlight = rgbaCanvas(ev.width, ev.height, (rgba) => {
        paintMask(rgba, mask, [255, 255, 255], 0.35);
        paintMask(rgba, edge, [255, 255, 255], 1, false);
      });
    }
    return true;
  }

  /**
   * All objects' masks over the everything map. Inactive objects are dimmer; the active one
   * is drawn last, at the full `opacity`, with an opaque outline in its colour.
   */
  drawOverlay(ctx: CanvasRenderingContext2D, view: View, state: PromptState, opacity: number): void {
    if (this.everything?.canvas) drawOverImage(ctx, this.everything.canvas, view, opacity * EVERYTHING_ALPHA);
    const ordered = [
      ...state.objects.filter((o) => o.id !== state.active),
      ...state.objects.filter((o) => o.id === state.active),
    ];
    const shown = displayedSize(ctx, view);
    for (const o of ordered) {
      const active = o.id === state.active;
      const p = this.paintFor(o.id, o.color, active, shown);
      if (!p?.fill) continue;
      drawOverImage(ctx, p.fill, view, active ? opacity : opacity * INACTIVE_ALPHA);
      if (active && p.outline) drawOverImage(ctx, p.outline, view, 1);
    }
  }

  /** The hover preview, or the highlighted everything-mask while those are shown. */
  drawHover(ctx: CanvasRenderingContext2D, view: View, opacity: number): void {
    if (this.everything) {
      if (this.everything.highlight) drawOverImage(ctx, this.everything.highlight, view, 1);
      return;
    }
    const hm = this.hover;
    if (!hm) return;
    const [tw, th] = paintSize(hm.width, hm.height, ...displayedSize(ctx, view));
    if (hm.canvas === undefined || hm.size?.[0] !== tw || hm.size?.[1] !== th) {
      const rgb = parseColor(hm.color);
      const mask = resampleMask(hm.mask, hm.width, hm.height, tw, th);
      hm.size = [tw, th];
      hm.canvas = rgbaCanvas(tw, th, (rgba) => {
        paintMask(rgba, mask, rgb, 0.45);
        paintMask(rgba, maskOutline(mask, tw, th), [255, 255, 255], 0.9, false);
      });
    }
    if (hm.canvas) drawOverImage(ctx, hm.canvas, view, Math.max(0.4, opacity));
  }

  /**
   * Cached canvases of an object's mask, painted at about the displayed size (never more
   * than the mask's own): rebuilt when the mask, colour or displayed size step changes.
   */
  private paintFor(id: number, color: string, withOutline: boolean, shown: [number, number]): MaskPaint | null {
    const entry = this.masks.get(id);
    if (!entry?.mask) {
      this.paints.delete(id);
      return null;
    }
    const [tw, th] = paintSize(entry.width, entry.height, shown[0], shown[1]);
    let p = this.paints.get(id);
    if (!p || p.entry !== entry || p.color !== color || p.size[0] !== tw || p.size[1] !== th) {
      const mask = resampleMask(entry.mask, entry.width, entry.height, tw, th);
      p = { entry, color, size: [tw, th], fill: maskFillCanvas(mask, tw, th, parseColor(color)) };
      this.paints.set(id, p);
    }
    if (withOutline && p.outline === undefined) {
      // In the object's own colour, so every overlay pixel keeps telling which object it is.
      const mask = resampleMask(entry.mask, entry.width, entry.height, tw, th);
      p.outline = maskOutlineCanvas(mask, tw, th, parseColor(color));
    }
    return p;
  }
}
