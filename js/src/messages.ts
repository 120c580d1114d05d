/**
 * Kernel -> browser custom messages (docs/ARCHITECTURE.md, "Widget protocol"): parsing,
 * decoding, and the stale-drop rule for object masks.
 */
import { type BufferLike, decodeLabels, decodeMask } from "./codec";
import {
  type ExplainEverythingMessage,
  type ExplainMessage,
  parseExplain,
  parseExplainEverything,
} from "./explain";
import { hasPrompts, type PromptState } from "./state";

export interface MaskMessage {
  type: "mask";
  image_id: number;
  object_id: number;
  seq: number;
  width: number;
  height: number;
  scores: number[];
  candidate: number | null;
}

export interface HoverMaskMessage {
  type: "hover_mask";
  image_id: number;
  seq: number;
  width: number;
  height: number;
}

export interface EverythingMessage {
  type: "everything";
  image_id: number;
  count: number;
  width: number;
  height: number;
  /** What the layer shows: segment-everything's masks, or masks the kernel offers to pick
   * (`SamWidget.show_overlay`, e.g. the annotator's proposals). */
  source: "everything" | "overlay";
}

export type KernelMessage =
  | MaskMessage
  | HoverMaskMessage
  | EverythingMessage
  | ExplainMessage
  | ExplainEverythingMessage
  | { type: "clear_everything" };

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

function sizeOk(r: Record<string, unknown>): boolean {
  return isInt(r.width) && isInt(r.height) && r.width >= 0 && r.height >= 0;
}

/** Validate a custom message's content; unknown or malformed messages give null. */
export function parseMessage(msg: unknown): KernelMessage | null {
  if (!msg || typeof msg !== "object") return null;
  const r = msg as Record<string, unknown>;
  switch (r.type) {
    case "mask":
      if (!isInt(r.image_id) || !isInt(r.object_id) || !isInt(r.seq) || !sizeOk(r)) return null;
      return {
        type: "mask",
        image_id: r.image_id,
        object_id: r.object_id,
        seq: r.seq,
        width: r.width as number,
        height: r.height as number,
        scores: Array.isArray(r.scores)
          ? r.scores.map((s) => (typeof s === "number" ? s : Number.NaN))
          : [],
        candidate: isInt(r.candidate) ? r.candidate : null,
      };
    case "hover_mask":
      if (!isInt(r.image_id) || !isInt(r.seq) || !sizeOk(r)) return null;
      return {
        type: "hover_mask",
        image_id: r.image_id,
        seq: r.seq,
        width: r.width as number,
        height: r.height as number,
      };
    case "everything":
      if (!isInt(r.image_id) || !sizeOk(r)) return null;
      return {
        type: "everything",
        image_id: r.image_id,
        count: isInt(r.count) ? r.count : 0,
        width: r.width as number,
        height: r.height as number,
        source: r.source === "overlay" ? "overlay" : "everything",
      };
    case "clear_everything":
      return { type: "clear_everything" };
    case "explain":
      return parseExplain(r);
    case "explain_everything":
      return parseExplainEverything(r);
    default:
      return null;
  }
}

/** A decoded object mask as kept by the view (so redraws need no kernel round trip). */
export interface MaskEntry {
  objectId: number;
  seq: number;
  width: number;
  height: number;
  /** One byte per pixel (0/1), or null: the kernel says the object has no mask. */
  mask: Uint8Array | null;
  scores: number[];
  candidate: number | null;
}

export type MaskVerdict =
  | { accept: true; entry: MaskEntry }
  | { accept: false; reason: "image" | "object" | "seq" };

/**
 * Decide whether a mask message is current and decode it. Stale results (another image,
 * an object that is gone, or a `seq` that is not the object's current one) are dropped.
 * Throws `CodecError` for a current message whose buffer is malformed.
 */
export function acceptMask(
  msg: MaskMessage,
  buffers: readonly BufferLike[],
  imageId: number,
  state: PromptState,
): MaskVerdict {
  if (msg.image_id !== imageId) return { accept: false, reason: "image" };
  const obj = state.objects.find((o) => o.id === msg.object_id);
  if (!obj) return { accept: false, reason: "object" };
  if (obj.seq !== msg.seq) return { accept: false, reason: "seq" };
  const buf = buffers[0] ?? new Uint8Array(0);
  return {
    accept: true,
    entry: {
      objectId: msg.object_id,
      seq: msg.seq,
      width: msg.width,
      height: msg.height,
      mask: decodeMask(buf, msg.width, msg.height),
      scores: msg.scores,
      candidate: msg.candidate,
    },
  };
}

/**
 * Which kept masks still belong on screen: entries for objects that are gone, or whose
 * prompts and strokes were all removed, go. (A mask whose object has a newer `seq` stays until the new
 * mask arrives, so the overlay does not flicker while the kernel works.)
 */
export function pruneMasks(masks: Map<number, MaskEntry>, state: PromptState): boolean {
  let changed = false;
  for (const id of [...masks.keys()]) {
    const obj = state.objects.find((o) => o.id === id);
    if (!obj || !hasPrompts(obj)) {
      masks.delete(id);
      changed = true;
    }
  }
  return changed;
}

export function decodeHover(msg: HoverMaskMessage, buffers: readonly BufferLike[]): Uint8Array | null {
  return decodeMask(buffers[0] ?? new Uint8Array(0), msg.width, msg.height);
}

/** The label map of an `everything` message; an empty buffer means no masks at all. */
export function decodeEverything(msg: EverythingMessage, buffers: readonly BufferLike[]): Uint16Array {
  const buf = buffers[0];
  if (!buf || buf.byteLength === 0) return new Uint16Array(msg.width * msg.height);
  return decodeLabels(buf, msg.width, msg.height);
}
