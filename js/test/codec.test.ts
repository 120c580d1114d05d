import { describe, expect, it } from "vitest";
import { zlibSync } from "fflate";
import { CodecError, decodeLabels, decodeMask, encodeLabels, encodeMask } from "../src/codec";

const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

describe("bits-zlib masks", () => {
  it("decodes MSB-first packed bits (hand-made byte patterns)", () => {
    // 0xA1 = 1010 0001: pixels 0, 2 and 7 are set; 0x80 sets the 9th pixel only.
    const packed = zlibSync(new Uint8Array([0xa1, 0x80]));
    const mask = decodeMask(packed, 4, 4);
    expect(Array.from(mask!)).toEqual([1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("decodes numpy's packbits(bitorder='big') + zlib.compress output", () => {
    // Made with numpy + Python's zlib: a 3 x 5 mask with (0,0), (1,2), (2,3), (2,4) set.
    const mask = decodeMask(b64("eJxrZAMAAQoAiA=="), 5, 3);
    expect(Array.from(mask!)).toEqual([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1]);
  });

  it("round-trips sizes that are not a multiple of 8", () => {
    for (const [w, h] of [
      [1, 1],
      [3, 3],
      [7, 5],
      [13, 11],
      [1024, 683],
    ]) {
      const src = new Uint8Array(w * h);
      for (let i = 0; i < src.length; i++) src[i] = (i * 7919) % 5 < 2 ? 1 : 0;
      const out = decodeMask(encodeMask(src, w, h), w, h)!;
      expect(out.length).toBe(w * h);
      expect(out.every((v, i) => v === src[i])).toBe(true);
    }
  });

  it("treats an empty buffer as no mask", () => {
    expect(decodeMask(new Uint8Array(0), 10, 10)).toBeNull();
    expect(decodeMask(new DataView(new ArrayBuffer(0)), 10, 10)).toBeNull();
  });

  it("accepts a DataView into a larger buffer (as the comm layer gives)", () => {
    const enc = encodeMask([1, 1, 0], 3, 1);
    const big = new Uint8Array(enc.length + 10);
    big.set(enc, 5);
    const dv = new DataView(big.buffer, 5, enc.length);
    expect(Array.from(decodeMask(dv, 3, 1)!)).toEqual([1, 1, 0]);
  });

  it("rejects a wrong decoded length and corrupt data", () => {
    const enc = encodeMask(new Uint8Array(16), 4, 4); // 2 packed bytes
    expect(() => decodeMask(enc, 4, 5)).toThrow(CodecError); // needs 3
    expect(() => decodeMask(enc, 2, 4)).toThrow(/needs 1 packed bytes, got 2/);
    expect(() => decodeMask(new Uint8Array([1, 2, 3, 4]), 4, 4)).toThrow(/zlib/);
    expect(() => decodeMask(enc, -1, 4)).toThrow(CodecError);
    expect(() => encodeMask([1, 0], 3, 1)).toThrow(CodecError);
  });
});

describe("uint16 label maps", () => {
  it("decodes little-endian uint16 made by numpy", () => {
    // np.array([[0, 1, 2], [300, 65535, 0]], dtype="<u2") -> zlib.compress
    const labels = decodeLabels(b64("eJxjYGBkYGLQYfz/n4EBAAgsAi8="), 3, 2);
    expect(Array.from(labels)).toEqual([0, 1, 2, 300, 65535, 0]);
  });

  it("round-trips and checks lengths and values", () => {
    const src = [0, 5, 258, 0, 1, 65535];
    expect(Array.from(decodeLabels(encodeLabels(src, 2, 3), 2, 3))).toEqual(src);
    expect(() => decodeLabels(encodeLabels(src, 2, 3), 3, 3)).toThrow(CodecError);
    expect(() => encodeLabels([70000], 1, 1)).toThrow(/uint16/);
  });
});
