import { describe, expect, it } from "vitest";
import { PARAMS, parseParam, shownValue } from "../src/settings";

const spec = (name: string) => PARAMS.find((p) => p.name === name)!;

describe("segment-everything settings", () => {
  it("parses field values, naming the parameter on bad input", () => {
    expect(parseParam(spec("pred_iou_thresh"), " 0.5 ")).toBe(0.5);
    expect(parseParam(spec("pred_iou_thresh"), "1.5")).toMatch(/pred_iou_thresh must lie in 0..1/);
    expect(parseParam(spec("points_per_side"), "8.5")).toMatch(/points_per_side must be a whole number/);
    expect(parseParam(spec("points_per_side"), "0")).toMatch(/points_per_side/);
    expect(parseParam(spec("stability_score_thresh"), "")).toMatch(/stability_score_thresh must be a number/);
    expect(parseParam(spec("min_mask_region_area"), "abc")).toMatch(/min_mask_region_area/);
  });

  it("shows stored values, else the published defaults", () => {
    expect(shownValue(spec("points_per_side"), { points_per_side: 16 })).toBe(16);
    expect(shownValue(spec("points_per_side"), {})).toBe(32);
    expect(shownValue(spec("pred_iou_thresh"), null)).toBe(0.88);
    expect(shownValue(spec("stability_score_thresh"), { stability_score_thresh: "x" })).toBe(0.95);
  });
});
