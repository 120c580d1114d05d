import { describe, expect, it } from "vitest";
import type { View } from "../src/coords";
import { markerShapes } from "../src/draw";
import { emptyState, reduce } from "../src/state";

describe("markerShapes", () => {
  it("places every object's points and box in stage px, the active object last", () => {
    // 200 x 100 image on a 100 x 50 stage: half scale.
    const view: View = { imageWidth: 200, imageHeight: 100, stageWidth: 100, stageHeight: 50, zoom: 1, panX: 0, panY: 0 };
    let s = reduce(emptyState(), { type: "addPoint", x: 20, y: 40, label: 1 });
    s = reduce(s, { type: "setBox", box: [0, 0, 100, 50] });
    s = reduce(s, { type: "newObject" });
    s = reduce(s, { type: "addPoint", x: 200, y: 100, label: 0 });
    s = reduce(s, { type: "selectObject", id: 1 });
    const shapes = markerShapes(s, view);
    expect(shapes).toEqual([
      { kind: "point", x: 100, y: 50, label: 0, active: false, color: s.objects[1].color },
      { kind: "box", x0: 0, y0: 0, x1: 50, y1: 25, active: true, color: s.objects[0].color },
      { kind: "point", x: 10, y: 20, label: 1, active: true, color: s.objects[0].color },
    ]);
  });

  it("follows zoom and pan", () => {
    const view: View = { imageWidth: 100, imageHeight: 100, stageWidth: 100, stageHeight: 100, zoom: 2, panX: 50, panY: 50 };
    const s = reduce(emptyState(), { type: "addPoint", x: 0, y: 0, label: 1 });
    expect(markerShapes(s, view)[0]).toMatchObject({ x: 0, y: 0 }); // top-left corner pinned
  });
});
