// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import {
  acceptExplain,
  ExplainPanel,
  explainCaptions,
  parseExplain,
  parseExplainEverything,
  pngDataUrl,
  stageLabel,
} from "../src/explain";
import { parseMessage } from "../src/messages";
import { type PromptState, reduce } from "../src/state";

const empty: PromptState = { objects: [], active: -1, nextId: 0 };

function message(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "explain",
    image_id: 3,
    object_id: 0,
    seq: 1,
    ious: [0.5, 0.61, 0.9, 0.2],
    shown: 2,
    multimask: true,
    why: "One point is ambiguous",
    refined: false,
    token: "positive",
    token_xy: [10, 20],
    images: ["mask0", "mask1", "mask2", "mask3", "attention", "pe", "pe_similarity", "pca"],
    ...over,
  };
}

const bytes = (...v: number[]) => new Uint8Array(v);

describe("explain messages", () => {
  it("parses through the message dispatcher and rejects malformed content", () => {
    const msg = parseMessage(message());
    expect(msg?.type).toBe("explain");
    expect(parseMessage(message({ ious: [0.1, 0.2] }))).toBeNull();
    expect(parseMessage(message({ shown: 4 }))).toBeNull();
    expect(parseMessage(message({ seq: 1.5 }))).toBeNull();
    expect(parseMessage(message({ images: [1] }))).toBeNull();
  });

  it("accepts only the active object's current seq on the current image", () => {
    const state = reduce(reduce(empty, { type: "newObject" }), { type: "addPoint", x: 5, y: 5, label: 1 });
    const obj = state.objects[0];
    const msg = parseExplain(message({ object_id: obj.id, seq: obj.seq }))!;
    expect(acceptExplain(msg, 3, state)).toBe(true);
    expect(acceptExplain(msg, 4, state)).toBe(false); // another image
    expect(acceptExplain({ ...msg, seq: obj.seq - 1 }, 3, state)).toBe(false); // an older click
    const other = reduce(state, { type: "newObject" }); // another object is active now
    expect(acceptExplain(msg, 3, other)).toBe(false);
  });

  it("captions the 4 masks with their IoU and marks the shown one", () => {
    const caps = explainCaptions(parseExplain(message())!);
    expect(caps.map((c) => c.iou)).toEqual(["IoU 0.500", "IoU 0.610", "IoU 0.900", "IoU 0.200"]);
    expect(caps.map((c) => c.shown)).toEqual([false, false, true, false]);
    expect(caps[0].title).toContain("single");
    expect(caps[3].title).toContain("multi");
  });

  it("encodes PNG bytes as a data URL", () => {
    expect(pngDataUrl(bytes(0x89, 0x50, 0x4e, 0x47))).toBe(`data:image/png;base64,${btoa("\x89PNG")}`);
  });
});

describe("ExplainPanel", () => {
  it("shows the tiles from the buffers and keeps the PCA of the image", () => {
    const panel = new ExplainPanel();
    expect(panel.el.classList.contains("sam-explain")).toBe(true);
    expect(panel.el.hidden).toBe(true);
    panel.setVisible(true);
    const buffers = [1, 2, 3, 4, 5, 6, 7, 8].map((v) => bytes(v));
    panel.show(parseExplain(message())!, buffers);
    const tiles = panel.el.querySelectorAll("[data-mask]");
    expect(tiles.length).toBe(4);
    expect(tiles[2].classList.contains("sam-explain-shown")).toBe(true);
    expect(tiles[2].textContent).toContain("shown");
    expect(panel.el.querySelector("[data-mask='1'] img")?.getAttribute("src")).toBe(pngDataUrl(bytes(2)));
    expect(panel.el.querySelector("[data-map=pca] img")?.getAttribute("src")).toBe(pngDataUrl(bytes(8)));
    expect(panel.el.querySelector(".sam-explain-why")?.textContent).toBe("One point is ambiguous");
    expect(panel.el.dataset.key).toBe("3:0:1");
    // the next click's explanation has no PCA: the image's PCA stays
    const next = message({ seq: 2, shown: 0, images: ["mask0", "mask1", "mask2", "mask3", "attention", "pe", "pe_similarity"] });
    panel.show(parseExplain(next)!, buffers.slice(0, 7));
    expect(panel.el.querySelector("[data-mask='0']")?.classList.contains("sam-explain-shown")).toBe(true);
    expect(panel.el.querySelector("[data-map=pca] img")?.getAttribute("src")).toBe(pngDataUrl(bytes(8)));
    // another image: its PCA is not the old one
    panel.show(parseExplain({ ...next, image_id: 4 })!, buffers.slice(0, 7));
    expect(panel.el.querySelector("[data-map=pca] img")).toBeNull();
    panel.clear();
    expect(panel.el.querySelectorAll("[data-mask]").length).toBe(0);
  });
});

function stagesMessage(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "explain_everything",
    image_id: 3,
    width: 8,
    height: 4,
    grid: [
      [1.5, 1],
      [6.5, 3],
    ],
    decoded: 6,
    stages: [
      { name: "candidates", description: "3 masks per grid point", count: 6, removed: 0 },
      { name: "box_nms", description: "duplicates within a crop", count: 2, removed: 4 },
    ],
    ...over,
  };
}

describe("segment-everything stages", () => {
  it("parses the stages and the grid, and rejects malformed ones", () => {
    const msg = parseMessage(stagesMessage());
    expect(msg?.type).toBe("explain_everything");
    if (msg?.type !== "explain_everything") throw new Error("unreachable");
    expect(msg.grid).toEqual([
      [1.5, 1],
      [6.5, 3],
    ]);
    expect(msg.stages.map((s) => s.count)).toEqual([6, 2]);
    expect(parseMessage(stagesMessage({ grid: [[1, "x"]] }))).toBeNull();
    expect(parseMessage(stagesMessage({ stages: [{ name: "a", count: 1.5 }] }))).toBeNull();
    expect(parseMessage(stagesMessage({ width: -1 }))).toBeNull();
  });

  it("labels a stage with its count and what it removed", () => {
    expect(stageLabel({ name: "box_nms", description: "", count: 2, removed: 4 })).toBe("box nms: 2 (\u22124)");
    expect(stageLabel({ name: "candidates", description: "", count: 6, removed: 0 })).toBe("candidates: 6");
  });

  it("shows a stage selector whose buttons call onStage", () => {
    const panel = new ExplainPanel();
    expect(panel.el.querySelector("button[data-action=explain-everything]")).not.toBeNull();
    const chosen: number[] = [];
    panel.onStage = (k) => chosen.push(k);
    let asked = 0;
    panel.onRequest = () => asked++;
    panel.el.querySelector<HTMLButtonElement>("button[data-action=explain-everything]")!.click();
    expect(asked).toBe(1);
    panel.showStages(parseExplainEverything(stagesMessage())!, 1);
    const buttons = [...panel.el.querySelectorAll<HTMLButtonElement>("button[data-stage]")];
    expect(buttons.map((b) => b.getAttribute("aria-pressed"))).toEqual(["false", "true"]);
    expect(buttons[1].title).toBe("duplicates within a crop");
    buttons[0].click();
    expect(chosen).toEqual([0]);
    // a decode's explanation does not wipe the stage selector
    panel.show(parseExplain(message())!, []);
    expect(panel.el.querySelectorAll("button[data-stage]").length).toBe(2);
  });
});
