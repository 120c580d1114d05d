import { describe, expect, it } from "vitest";
import {
  hslToRgb,
  labelColor,
  labelMask,
  mapIndexAt,
  maskOutline,
  paintLabels,
  paintMask,
  paintSize,
  parseColor,
  resampleMask,
} from "../src/paint";

describe("painting at the displayed size", () => {
  it("never paints more pixels than the mask has or much more than the screen shows", () => {
    expect(paintSize(1024, 1024, 512, 512)).toEqual([512, 512]);
    expect(paintSize(1024, 768, 300.2, 225.1)).toEqual([300, 225]); // lands 1:1 on screen
    expect(paintSize(1024, 1024, 5000, 5000)).toEqual([1024, 1024]); // zoomed in: the mask's own
    expect(paintSize(1024, 1024, 0.2, 0.2)).toEqual([1, 1]);
  });

  it("resamples a mask by the pixel under each target pixel's centre", () => {
    // 4 x 2 -> 2 x 1: target pixel centres fall on source (1, 0)... columns 1 and 3 of row 1
    const m = new Uint8Array([0, 1, 0, 0, 1, 0, 0, 1]);
    expect([...resampleMask(m, 4, 2, 2, 1)]).toEqual([0, 1]);
    expect(resampleMask(m, 4, 2, 4, 2)).toBe(m);
    // upsampling repeats pixels
    expect([...resampleMask(new Uint8Array([1, 0]), 2, 1, 4, 2)]).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
    // a half-filled 1024 x 1024 mask stays half filled at 256 x 256
    const big = new Uint8Array(1024 * 1024);
    for (let y = 0; y < 1024; y++) big.fill(1, y * 1024, y * 1024 + 512);
    const small = resampleMask(big, 1024, 1024, 256, 256);
    expect(small.reduce((a, b) => a + b, 0)).toBe(256 * 128);
    expect(() => resampleMask(big, 10, 10, 2, 2)).toThrow(RangeError);
  });
});

describe("colours", () => {
  it("parses #rrggbb and #rgb, falls back to grey", () => {
    expect(parseColor("#E69F00")).toEqual([230, 159, 0]);
    expect(parseColor("#0f8")).toEqual([0, 255, 136]);
    expect(parseColor("red")).toEqual([128, 128, 128]);
  });

  it("converts HSL primaries", () => {
    expect(hslToRgb(0, 1, 0.5)).toEqual([255, 0, 0]);
    expect(hslToRgb(120, 1, 0.5)).toEqual([0, 255, 0]);
    expect(hslToRgb(240, 1, 0.5)).toEqual([0, 0, 255]);
    expect(hslToRgb(-120, 1, 0.5)).toEqual([0, 0, 255]);
    expect(hslToRgb(0, 0, 1)).toEqual([255, 255, 255]);
  });

  it("gives neighbouring everything-labels distinct colours", () => {
    const seen = new Set<string>();
    for (let k = 1; k <= 64; k++) seen.add(labelColor(k).join(","));
    expect(seen.size).toBe(64);
  });
});

describe("paintMask", () => {
  it("colours set pixels with the alpha and clears the rest", () => {
    const rgba = new Uint8ClampedArray(3 * 4).fill(9);
    paintMask(rgba, [1, 0, 1], [10, 20, 30], 0.5);
    expect(Array.from(rgba)).toEqual([10, 20, 30, 128, 0, 0, 0, 0, 10, 20, 30, 128]);
  });

  it("can paint over existing pixels without clearing", () => {
    const rgba = new Uint8ClampedArray(2 * 4).fill(7);
    paintMask(rgba, [0, 1], [1, 2, 3], 1, false);
    expect(Array.from(rgba)).toEqual([7, 7, 7, 7, 1, 2, 3, 255]);
  });

  it("writes the same RGBA bytes whether or not the buffer is 4-byte aligned", () => {
    const n = 37;
    const mask = Array.from({ length: n }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
    for (const clear of [true, false]) {
      const aligned = new Uint8ClampedArray(4 * n).fill(5);
      const backing = new Uint8ClampedArray(4 * n + 1).fill(5);
      const unaligned = backing.subarray(1); // byte path
      paintMask(aligned, mask, [250, 128, 3], 1, clear);
      paintMask(unaligned, mask, [250, 128, 3], 1, clear);
      expect(Array.from(aligned)).toEqual(Array.from(unaligned));
      expect(Array.from(aligned.subarray(0, 4))).toEqual([250, 128, 3, 255]);
      expect(Array.from(aligned.subarray(4, 8))).toEqual(clear ? [0, 0, 0, 0] : [5, 5, 5, 5]);
    }
  });

  it("rejects a buffer of the wrong size", () => {
    expect(() => paintMask(new Uint8ClampedArray(8), [1, 0, 1], [0, 0, 0], 1)).toThrow(RangeError);
  });
});

describe("maskOutline", () => {
  it("keeps only boundary pixels of a filled square", () => {
    // 5 x 5 with a 3 x 3 square in the middle: its centre is interior, the ring is edge.
    const m = new Uint8Array(25);
    for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) m[y * 5 + x] = 1;
    const edge = maskOutline(m, 5, 5);
    const expected = new Uint8Array(25);
    for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) expected[y * 5 + x] = x === 2 && y === 2 ? 0 : 1;
    expect(Array.from(edge)).toEqual(Array.from(expected));
  });

  it("counts the image border as outside", () => {
    expect(Array.from(maskOutline([1, 1, 1, 1], 2, 2))).toEqual([1, 1, 1, 1]);
  });
});

describe("label maps", () => {
  it("paints each label in its colour, 0 transparent", () => {
    const rgba = new Uint8ClampedArray(3 * 4);
    paintLabels(rgba, [0, 2, 1], 1);
    expect(Array.from(rgba.slice(0, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(rgba.slice(4, 8))).toEqual([...labelColor(2), 255]);
    expect(Array.from(rgba.slice(8, 12))).toEqual([...labelColor(1), 255]);
  });

  it("selects one label", () => {
    expect(Array.from(labelMask([0, 3, 3, 1], 3))).toEqual([0, 1, 1, 0]);
  });

  it("finds the map pixel under an image point when the map is smaller than the image", () => {
    // 4 x 2 map over a 400 x 200 image: each map pixel covers 100 x 100 image px.
    expect(mapIndexAt(4, 2, 400, 200, 0, 0)).toBe(0);
    expect(mapIndexAt(4, 2, 400, 200, 99.9, 99.9)).toBe(0);
    expect(mapIndexAt(4, 2, 400, 200, 100, 0)).toBe(1);
    expect(mapIndexAt(4, 2, 400, 200, 350, 150)).toBe(7);
    expect(mapIndexAt(4, 2, 400, 200, 400, 200)).toBe(7); // the far edge belongs to the last pixel
    expect(mapIndexAt(4, 2, 400, 200, -1, 5)).toBe(-1);
    expect(mapIndexAt(4, 2, 400, 200, 401, 5)).toBe(-1);
  });
});
