/**
 * Input handlers are pure: an event plus a snapshot of the view in, a list of view actions
 * out (js/src/input.ts). No DOM needed.
 */
import { describe, expect, it } from "vitest";
import type { View } from "../src/coords";
import { IDLE, type Gesture } from "../src/gesture";
import {
  commandActions,
  gestureActions,
  hoverActions,
  type InputContext,
  toolbarActions,
  wheelActions,
} from "../src/input";

// A 100 x 50 image on a 200 x 100 stage at the screen's origin: 2 screen px per image px.
const VIEW: View = { imageWidth: 100, imageHeight: 50, stageWidth: 200, stageHeight: 100, zoom: 1, panX: 0, panY: 0 };
const RECT = { left: 0, top: 0, width: 200, height: 100 };

function ctx(over: Partial<InputContext> = {}): InputContext {
  return {
    view: VIEW,
    rect: RECT,
    gesture: IDLE,
    everythingLabelAt: () => 0,
    everythingShown: false,
    hoverOn: true,
    status: "ready",
    mode: "positive",
    failed: false,
    radius: 4,
    ...over,
  };
}

describe("gesture results -> actions", () => {
  it("a click on the image adds a point in image px with the gesture's label", () => {
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 1 }, ctx())).toEqual([
      { kind: "commit", action: { type: "addPoint", x: 10, y: 5, label: 1 } },
    ]);
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 0 }, ctx())).toEqual([
      { kind: "commit", action: { type: "addPoint", x: 10, y: 5, label: 0 } },
    ]);
  });

  it("a click off the image does nothing", () => {
    expect(gestureActions({ kind: "point", x: 250, y: 10, label: 1 }, ctx())).toEqual([]);
  });

  it("in keep mode a positive click on an everything-mask keeps it; nothing else happens", () => {
    const c = ctx({ mode: "keep", everythingLabelAt: (x, y) => (x === 10 && y === 5 ? 3 : 0) });
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 1 }, c)).toEqual([
      { kind: "send", message: { type: "keep", index: 2 } },
    ]);
    // a negative click is never a keep, and in keep mode no stray point either
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 0 }, c)).toEqual([]);
    expect(gestureActions({ kind: "point", x: 60, y: 60, label: 1 }, c)).toEqual([]);
  });

  it("outside keep mode a click on an everything-mask is an ordinary point (no silent keep)", () => {
    const c = ctx({ everythingShown: true, everythingLabelAt: () => 3 });
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 1 }, c)).toEqual([
      { kind: "commit", action: { type: "addPoint", x: 10, y: 5, label: 1 } },
    ]);
  });

  it("makes no prompt while the model could not be loaded", () => {
    const c = ctx({ failed: true });
    expect(gestureActions({ kind: "point", x: 20, y: 10, label: 1 }, c)).toEqual([]);
    expect(gestureActions({ kind: "box", x0: 0, y0: 0, x1: 100, y1: 80 }, c)).toEqual([{ kind: "rubber", rect: null }]);
    expect(hoverActions(20, 10, "mouse", c)).toEqual([{ kind: "clearHover" }]);
  });

  it("the keep button toggles keep mode; the gear opens the settings", () => {
    expect(toolbarActions("keep", ctx())).toEqual([{ kind: "mode", mode: "keep" }]);
    expect(toolbarActions("keep", ctx({ mode: "keep" }))).toEqual([{ kind: "mode", mode: "positive" }]);
    expect(toolbarActions("everything-settings", ctx())).toEqual([{ kind: "toggleSettings" }]);
  });

  it("a box dragged in any direction is committed with ordered, clamped corners", () => {
    const acts = gestureActions({ kind: "box", x0: 300, y0: 80, x1: 20, y1: 10 }, ctx());
    expect(acts).toEqual([
      { kind: "rubber", rect: null },
      { kind: "commit", action: { type: "setBox", box: [10, 5, 100, 40] } },
    ]);
  });

  it("a degenerate box only removes the rubber band", () => {
    expect(gestureActions({ kind: "box", x0: 20, y0: 10, x1: 21, y1: 60 }, ctx())).toEqual([{ kind: "rubber", rect: null }]);
  });

  it("dragging shows the rubber band in stage px; pan moves the view", () => {
    expect(gestureActions({ kind: "rubber", x0: 1, y0: 2, x1: 3, y1: 4 }, ctx())).toEqual([{ kind: "rubber", rect: [1, 2, 3, 4] }]);
    const zoomed = { ...VIEW, zoom: 2 };
    const [pan] = gestureActions({ kind: "pan", dx: 10, dy: -5 }, ctx({ view: zoomed }));
    expect(pan.kind).toBe("setView");
    if (pan.kind === "setView") expect([pan.view.panX, pan.view.panY]).toEqual([10, -5]);
  });
});

describe("commands and toolbar -> actions", () => {
  it("undo/redo are kernel messages; prompt commands are reducer actions", () => {
    expect(commandActions("undo", ctx())).toEqual([{ kind: "send", message: { type: "undo" } }]);
    expect(commandActions("newObject", ctx())).toEqual([{ kind: "commit", action: { type: "newObject" } }]);
    expect(commandActions("clearActive", ctx())).toEqual([{ kind: "commit", action: { type: "clearActive" } }]);
    expect(commandActions("zoomIn", ctx())).toEqual([{ kind: "zoom", factor: 1.5 }]);
  });

  it("Esc during a drag cancels the drag instead of clearing the object", () => {
    const dragging: Gesture = { kind: "box", pointerId: 1, startX: 0, startY: 0, x: 30, y: 30 };
    const acts = commandActions("clearActive", ctx({ gesture: dragging }));
    expect(acts).toEqual([
      { kind: "gesture", gesture: IDLE },
      { kind: "rubber", rect: null },
      { kind: "liveStroke", stroke: null },
    ]);
  });

  it("zoom reset keeps the stage and drops zoom and pan", () => {
    const [a] = commandActions("zoomReset", ctx({ view: { ...VIEW, zoom: 4, panX: 3, panY: 2 } }));
    expect(a).toEqual({ kind: "setView", view: VIEW });
  });

  it("toolbar buttons map to modes, commands and messages", () => {
    expect(toolbarActions("box", ctx())).toEqual([{ kind: "mode", mode: "box" }]);
    expect(toolbarActions("clear", ctx())).toEqual([{ kind: "commit", action: { type: "clearActive" } }]);
    expect(toolbarActions("segment-everything", ctx())).toEqual([{ kind: "send", message: { type: "segment_everything" } }]);
    expect(toolbarActions("hover", ctx())).toEqual([{ kind: "toggleHover" }]);
    expect(toolbarActions("no-such-button", ctx())).toEqual([]);
  });

  it("ctrl+wheel zooms about the pointer in stage px", () => {
    const [a] = wheelActions({ deltaY: -100, deltaMode: 0, clientX: 50, clientY: 20 }, ctx());
    expect(a.kind).toBe("zoom");
    if (a.kind === "zoom") {
      expect(a.factor).toBeCloseTo(Math.exp(0.2));
      expect(a.at).toEqual([50, 20]);
    }
  });
});

describe("hover -> actions", () => {
  it("asks for a preview at the image point (1/100 px)", () => {
    expect(hoverActions(20.123, 10, "mouse", ctx())).toEqual([{ kind: "hover", x: 10.06, y: 5 }]);
  });

  it("clears the preview when off, busy or off the image; touch has no hover", () => {
    expect(hoverActions(20, 10, "mouse", ctx({ hoverOn: false }))).toEqual([{ kind: "clearHover" }]);
    expect(hoverActions(20, 10, "mouse", ctx({ status: "encoding" }))).toEqual([{ kind: "clearHover" }]);
    expect(hoverActions(260, 10, "mouse", ctx())).toEqual([{ kind: "clearHover" }]);
    expect(hoverActions(20, 10, "touch", ctx())).toEqual([]);
  });

  it("highlights the everything-mask under the pointer in keep mode, no previews over them", () => {
    const c = ctx({ everythingShown: true, mode: "keep", everythingLabelAt: () => 4 });
    expect(hoverActions(20, 10, "mouse", c)).toEqual([{ kind: "everythingHover", label: 4 }]);
    expect(hoverActions(20, 10, "mouse", { ...c, mode: "positive" })).toEqual([{ kind: "everythingHover", label: 0 }]);
  });
});
