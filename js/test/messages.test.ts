import { describe, expect, it } from "vitest";
import { encodeLabels, encodeMask } from "../src/codec";
import {
  acceptMask,
  decodeEverything,
  decodeHover,
  type MaskEntry,
  type MaskMessage,
  parseMessage,
  pruneMasks,
} from "../src/messages";
import { emptyState, type PromptState, reduce } from "../src/state";

function stateWithObject(): PromptState {
  return reduce(emptyState(), { type: "addPoint", x: 1, y: 1, label: 1 }); // id 1, seq 1
}

const maskMsg = (over: Partial<MaskMessage> = {}): MaskMessage => ({
  type: "mask",
  image_id: 3,
  object_id: 1,
  seq: 1,
  width: 4,
  height: 2,
  scores: [0.9, 0.5, 0.7],
  candidate: 0,
  ...over,
});

describe("parseMessage", () => {
  it("accepts the protocol's messages and normalises optional fields", () => {
    expect(parseMessage({ ...maskMsg(), candidate: null, scores: [0.5, "x"] })).toMatchObject({
      candidate: null,
      scores: [0.5, Number.NaN],
    });
    expect(parseMessage({ type: "hover_mask", image_id: 1, seq: 2, width: 0, height: 0 })?.type).toBe("hover_mask");
    expect(parseMessage({ type: "everything", image_id: 1, count: 4, width: 2, height: 2 })?.type).toBe("everything");
    const everything = { type: "everything", image_id: 1, count: 4, width: 2, height: 2 };
    expect(parseMessage(everything)).toMatchObject({ source: "everything" }); // older kernels
    expect(parseMessage({ ...everything, source: "overlay" })).toMatchObject({ source: "overlay" });
    expect(parseMessage({ ...everything, source: "other" })).toMatchObject({ source: "everything" });
    expect(parseMessage({ type: "clear_everything" })).toEqual({ type: "clear_everything" });
  });

  it("rejects unknown and malformed messages", () => {
    expect(parseMessage(null)).toBeNull();
    expect(parseMessage({ type: "nope" })).toBeNull();
    expect(parseMessage({ ...maskMsg(), seq: "1" })).toBeNull();
    expect(parseMessage({ ...maskMsg(), width: -1 })).toBeNull();
    expect(parseMessage({ ...maskMsg(), height: 1.5 })).toBeNull();
    expect(parseMessage({ type: "hover_mask", image_id: 1, width: 1, height: 1 })).toBeNull();
  });
});

describe("acceptMask", () => {
  const bits = [1, 1, 0, 0, 0, 0, 1, 1];
  const buf = encodeMask(bits, 4, 2);

  it("decodes a current mask", () => {
    const v = acceptMask(maskMsg(), [buf], 3, stateWithObject());
    expect(v.accept).toBe(true);
    if (v.accept) {
      expect(Array.from(v.entry.mask!)).toEqual(bits);
      expect(v.entry).toMatchObject({ objectId: 1, seq: 1, width: 4, height: 2, scores: [0.9, 0.5, 0.7], candidate: 0 });
    }
  });

  it("drops results for another image, a gone object or an outdated seq", () => {
    const s = stateWithObject();
    expect(acceptMask(maskMsg({ image_id: 2 }), [buf], 3, s)).toEqual({ accept: false, reason: "image" });
    expect(acceptMask(maskMsg({ object_id: 9 }), [buf], 3, s)).toEqual({ accept: false, reason: "object" });
    expect(acceptMask(maskMsg({ seq: 0 }), [buf], 3, s)).toEqual({ accept: false, reason: "seq" });
    const newer = reduce(s, { type: "addPoint", x: 2, y: 2, label: 0 });
    expect(acceptMask(maskMsg(), [buf], 3, newer)).toEqual({ accept: false, reason: "seq" });
  });

  it("an empty or missing buffer means the object has no mask", () => {
    const v = acceptMask(maskMsg(), [], 3, stateWithObject());
    expect(v.accept && v.entry.mask).toBeNull();
  });

  it("throws on a current message with a malformed buffer", () => {
    expect(() => acceptMask(maskMsg({ width: 5 }), [buf], 3, stateWithObject())).toThrow(/packed bytes/);
  });
});

describe("pruneMasks", () => {
  it("drops masks of deleted and cleared objects, keeps outdated ones until replaced", () => {
    let s = stateWithObject();
    s = reduce(reduce(s, { type: "newObject" }), { type: "addPoint", x: 3, y: 3, label: 1 }); // id 2
    const entry = (id: number): MaskEntry => ({ objectId: id, seq: 1, width: 1, height: 1, mask: new Uint8Array(1), scores: [], candidate: null });
    const masks = new Map([
      [1, entry(1)],
      [2, entry(2)],
      [3, entry(3)],
    ]);
    s = reduce(s, { type: "addPoint", x: 4, y: 4, label: 1 }); // id 2 at seq 2: outdated mask stays
    expect(pruneMasks(masks, s)).toBe(true);
    expect([...masks.keys()]).toEqual([1, 2]);
    s = reduce(s, { type: "clearActive" });
    pruneMasks(masks, s);
    expect([...masks.keys()]).toEqual([1]);
    expect(pruneMasks(masks, s)).toBe(false);
  });
});

describe("hover and everything payloads", () => {
  it("decodes a hover mask; empty buffer clears", () => {
    const msg = { type: "hover_mask" as const, image_id: 1, seq: 1, width: 3, height: 1 };
    expect(Array.from(decodeHover(msg, [encodeMask([0, 1, 0], 3, 1)])!)).toEqual([0, 1, 0]);
    expect(decodeHover(msg, [new Uint8Array(0)])).toBeNull();
  });

  it("decodes a label map; empty buffer is all background", () => {
    const msg = { type: "everything" as const, image_id: 1, count: 2, width: 2, height: 2, source: "everything" as const };
    expect(Array.from(decodeEverything(msg, [encodeLabels([0, 1, 2, 2], 2, 2)]))).toEqual([0, 1, 2, 2]);
    expect(Array.from(decodeEverything(msg, []))).toEqual([0, 0, 0, 0]);
  });
});
