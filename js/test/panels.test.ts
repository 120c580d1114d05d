import { describe, expect, it } from "vitest";
import { boxStrokes } from "../src/draw";
import { PALETTE } from "../src/state";
import { scoreLabel, statusNote } from "../src/panels";

/** Relative luminance of "#rrggbb" or "rgba(r,g,b,a)" (alpha ignored), 0..1. */
function luminance(color: string): number {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  const rgb = hex
    ? [hex[1], hex[2], hex[3]].map((c) => parseInt(c, 16))
    : (/rgba?\(([^)]*)\)/.exec(color)?.[1].split(",").slice(0, 3).map(Number) ?? [0, 0, 0]);
  const lin = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

const contrast = (a: number, b: number) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);

describe("candidate scores", () => {
  it("shows the predicted IoU clamped to 0..1, with the raw value and a reason in the tooltip", () => {
    const neg = scoreLabel(-0.12);
    expect(neg.text).toBe("0.00");
    expect(neg.title).toContain("-0.120");
    expect(neg.title).toContain("predicted IoU");
    expect(neg.title).toMatch(/clamped/);
    const high = scoreLabel(1.034);
    expect(high.text).toBe("1.00");
    expect(high.title).toContain("1.034");
    const ok = scoreLabel(0.874);
    expect(ok.text).toBe("0.87");
    expect(ok.title).not.toMatch(/clamped/);
    expect(scoreLabel(Number.NaN).text).toBe("?");
  });
});

describe("status note", () => {
  it("says what segment-everything found, the keep-mode hint and the failed state's way out", () => {
    expect(statusNote({ status: "ready", mode: "positive", everythingCount: null })).toBe("");
    expect(statusNote({ status: "ready", mode: "keep", everythingCount: 23 })).toMatch(/23 masks.*Keep mode: click a shown mask to keep it as an object/);
    expect(statusNote({ status: "ready", mode: "positive", everythingCount: 1 })).toMatch(/1 mask(?!s)/);
    expect(statusNote({ status: "ready", mode: "positive", everythingCount: 0 })).toMatch(
      /no masks found: lower pred_iou_thresh \/ stability_score_thresh/,
    );
    expect(statusNote({ status: "error", mode: "positive", everythingCount: 3 })).toMatch(/Prompt tools are off/);
    // Masks the kernel offered (the annotator's proposals) are not called segment-everything's.
    const offered = statusNote({ status: "ready", mode: "keep", everythingCount: 2, overlay: true });
    expect(offered).toMatch(/Shown: 2 masks to pick.*Keep mode: click a shown mask/);
    expect(offered).not.toMatch(/Everything/);
  });
});

describe("box outline", () => {
  it("has a halo wider than the line, contrasting both dark and light, for every palette colour", () => {
    for (const color of PALETTE) {
      const strokes = boxStrokes(color, 2.5, []);
      const line = strokes[strokes.length - 1];
      expect(line.color).toBe(color);
      const halos = strokes.slice(0, -1);
      expect(halos.every((s) => s.width > line.width)).toBe(true);
      const lum = luminance(color);
      // some halo contrasts with the line by at least 3:1 (WCAG's figure for graphics)
      expect(Math.max(...halos.map((s) => contrast(luminance(s.color), lum)))).toBeGreaterThanOrEqual(3);
      // and the halos contrast with each other, so one of them stands out on any image
      expect(contrast(luminance(halos[0].color), luminance(halos[1].color))).toBeGreaterThanOrEqual(7);
    }
  });
});
