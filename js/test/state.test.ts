import { describe, expect, it } from "vitest";
import {
  type Action,
  activeObject,
  changedPrompt,
  emptyState,
  fromTraits,
  nextColor,
  PALETTE,
  type PromptState,
  reduce,
  toTraits,
} from "../src/state";

const run = (actions: Action[], s: PromptState = emptyState()) => actions.reduce(reduce, s);

describe("prompt reducer", () => {
  it("creates an object on the first point and increments seq per prompt change", () => {
    const s1 = reduce(emptyState(), { type: "addPoint", x: 10.123, y: 20.987, label: 1 });
    expect(s1.objects).toHaveLength(1);
    const o = s1.objects[0];
    expect(s1.active).toBe(o.id);
    expect(o.points).toEqual([[10.12, 20.99]]);
    expect(o.labels).toEqual([1]);
    expect(o.seq).toBe(1);
    const s2 = run(
      [
        { type: "addPoint", x: 5, y: 6, label: 0 },
        { type: "setBox", box: [10, 5, 30, 40] },
      ],
      s1,
    );
    const o2 = activeObject(s2)!;
    expect(o2.points).toEqual([
      [10.12, 20.99],
      [5, 6],
    ]);
    expect(o2.labels).toEqual([1, 0]);
    expect(o2.box).toEqual([10, 5, 30, 40]);
    // corners out of order are refused (as by the kernel); input.ts orders dragged corners
    expect(reduce(s2, { type: "setBox", box: [30, 40, 10, 5] })).toBe(s2);
    expect(o2.seq).toBe(3);
    expect(s1.objects[0].points).toHaveLength(1); // no mutation of the old state
  });

  it("ignores non-finite coordinates", () => {
    const s = emptyState();
    expect(reduce(s, { type: "addPoint", x: Number.NaN, y: 1, label: 1 })).toBe(s);
    expect(reduce(s, { type: "setBox", box: [0, 0, Infinity, 1] })).toBe(s);
  });

  it("gives new objects distinct ids and palette colours, never reusing ids", () => {
    let s = run([{ type: "addPoint", x: 1, y: 1, label: 1 }]);
    for (let i = 0; i < 3; i++) s = run([{ type: "newObject" }, { type: "addPoint", x: 1, y: 1, label: 1 }], s);
    const ids = s.objects.map((o) => o.id);
    expect(new Set(ids).size).toBe(4);
    expect(new Set(s.objects.map((o) => o.color)).size).toBe(4);
    expect(s.objects.map((o) => o.color)).toEqual(PALETTE.slice(0, 4));
    const last = ids[3];
    s = reduce(s, { type: "deleteObject" });
    s = run([{ type: "newObject" }], s);
    expect(s.active).toBeGreaterThan(last);
  });

  it("does not stack empty objects on newObject", () => {
    const s = run([{ type: "newObject" }]);
    expect(s.objects).toHaveLength(1);
    expect(reduce(s, { type: "newObject" })).toBe(s);
  });

  it("reuses a colour freed by deletion before cycling", () => {
    let s = run([{ type: "newObject" }, { type: "addPoint", x: 1, y: 1, label: 1 }, { type: "newObject" }, { type: "addPoint", x: 1, y: 1, label: 1 }]);
    const firstColor = s.objects[0].color;
    s = reduce(s, { type: "deleteObject", id: s.objects[0].id });
    s = reduce(s, { type: "newObject" });
    expect(activeObject(s)!.color).toBe(firstColor);
  });

  it("cycles the palette when every colour is taken", () => {
    const objs = PALETTE.map((color, i) => ({ id: i + 1, name: "", color, points: [], labels: [], box: null, candidate: null, strokes: [], seq: 0 }));
    expect(PALETTE).toContain(nextColor(objs));
  });

  it("deletes the active object and activates its neighbour", () => {
    let s = run([
      { type: "addPoint", x: 1, y: 1, label: 1 },
      { type: "newObject" },
      { type: "addPoint", x: 2, y: 2, label: 1 },
      { type: "newObject" },
      { type: "addPoint", x: 3, y: 3, label: 1 },
    ]);
    const [a, b, c] = s.objects.map((o) => o.id);
    s = reduce(s, { type: "selectObject", id: b });
    s = reduce(s, { type: "deleteObject" });
    expect(s.objects.map((o) => o.id)).toEqual([a, c]);
    expect(s.active).toBe(a);
    s = reduce(s, { type: "deleteObject", id: c });
    expect(s.active).toBe(a); // deleting another object keeps the active one
    s = reduce(s, { type: "deleteObject" });
    expect(s.active).toBe(-1);
    expect(reduce(s, { type: "deleteObject" })).toBe(s);
  });

  it("selects only existing objects (or none)", () => {
    const s = run([{ type: "addPoint", x: 1, y: 1, label: 1 }]);
    expect(reduce(s, { type: "selectObject", id: 999 })).toBe(s);
    expect(reduce(s, { type: "selectObject", id: -1 }).active).toBe(-1);
    // with nothing active, the next point starts a new object
    const s2 = run([{ type: "selectObject", id: -1 }, { type: "addPoint", x: 4, y: 4, label: 1 }], s);
    expect(s2.objects).toHaveLength(2);
  });

  it("clears the active object's prompts with one seq step, and only if there were any", () => {
    let s = run([
      { type: "addPoint", x: 1, y: 1, label: 1 },
      { type: "setBox", box: [0, 0, 5, 5] },
      { type: "pickCandidate", candidate: 2 },
    ]);
    const seq = activeObject(s)!.seq;
    s = reduce(s, { type: "clearActive" });
    expect(activeObject(s)).toMatchObject({ points: [], labels: [], box: null, candidate: null, seq: seq + 1 });
    expect(reduce(s, { type: "clearActive" })).toBe(s);
    expect(reduce(emptyState(), { type: "clearActive" }).objects).toHaveLength(0);
  });

  it("picks a candidate (seq + 1), keeps it when points are added, resets it on a new box", () => {
    let s = run([{ type: "addPoint", x: 1, y: 1, label: 1 }]);
    s = reduce(s, { type: "pickCandidate", candidate: 1 });
    expect(activeObject(s)).toMatchObject({ candidate: 1, seq: 2 });
    expect(reduce(s, { type: "pickCandidate", candidate: 1 })).toBe(s);
    s = reduce(s, { type: "addPoint", x: 2, y: 2, label: 0 });
    expect(activeObject(s)).toMatchObject({ candidate: 1, seq: 3 });
    s = reduce(s, { type: "setBox", box: [0, 0, 3, 3] });
    expect(activeObject(s)).toMatchObject({ candidate: null, seq: 4 });
  });

  it("renames without touching seq; ignores blank names", () => {
    const s = run([{ type: "addPoint", x: 1, y: 1, label: 1 }]);
    const id = s.active;
    const r = reduce(s, { type: "rename", id, name: "  cat " });
    expect(activeObject(r)).toMatchObject({ name: "cat", seq: 1 });
    expect(reduce(r, { type: "rename", id, name: "   " })).toBe(r);
    expect(reduce(r, { type: "rename", id: 12345, name: "dog" })).toBe(r);
  });
});

describe("changedPrompt", () => {
  it("names the object whose prompts changed, not a new empty one", () => {
    const s1 = run([{ type: "addPoint", x: 1, y: 1, label: 1 }]);
    expect(changedPrompt(emptyState(), s1)?.id).toBe(s1.active);
    const s2 = reduce(s1, { type: "newObject" });
    expect(changedPrompt(s1, s2)).toBeUndefined();
    const s3 = reduce(s2, { type: "selectObject", id: s1.active });
    expect(changedPrompt(s2, s3)).toBeUndefined();
  });
});

describe("traits", () => {
  it("round-trips through the synced form", () => {
    const s = run([
      { type: "addPoint", x: 1, y: 2, label: 1 },
      { type: "setBox", box: [1, 2, 3, 4] },
      { type: "newObject" },
      { type: "addPoint", x: 5, y: 6, label: 0 },
    ]);
    const t = toTraits(s);
    const back = fromTraits(JSON.parse(JSON.stringify(t.objects)), t.active, s);
    expect(back).toEqual(s);
  });

  it("repairs malformed input instead of throwing", () => {
    const s = fromTraits(
      [
        null,
        { id: "x" },
        { id: 3, points: [[1, 2], [Number.NaN, 1], "bad"], labels: [0, 1, 1], box: [1, 2, 3], seq: 4 },
        { id: 3, points: [] }, // duplicate id
        { id: 7, color: "#123456", box: [0, 0, 1, 1], candidate: 1.5 },
      ],
      42,
    );
    expect(s.objects.map((o) => o.id)).toEqual([3, 7]);
    expect(s.objects[0]).toMatchObject({ points: [[1, 2]], labels: [0], box: null, seq: 4 });
    expect(s.objects[1]).toMatchObject({ color: "#123456", box: [0, 0, 1, 1], candidate: null, seq: 0 });
    expect(s.active).toBe(-1); // 42 does not exist
    expect(s.nextId).toBe(8);
    expect(fromTraits(undefined, undefined)).toEqual(emptyState());
  });

  it("keeps ids of deleted objects retired across a model update", () => {
    let s = run([{ type: "addPoint", x: 1, y: 1, label: 1 }, { type: "newObject" }, { type: "addPoint", x: 1, y: 1, label: 1 }]);
    s = reduce(s, { type: "deleteObject" }); // deletes id 2
    const synced = fromTraits(toTraits(s).objects, s.active, s);
    expect(reduce(reduce(synced, { type: "newObject" }), { type: "addPoint", x: 0, y: 0, label: 1 }).active).toBe(3);
  });

  it("keeps strokes through the synced traits and drops malformed ones", () => {
    let s = reduce(emptyState(), { type: "addStroke", points: [[1.234, 2], [3, 4]], radius: 5, erase: false });
    s = reduce(s, { type: "addStroke", points: [[2, 2]], radius: 2, erase: true });
    expect(activeObject(s)!.strokes).toEqual([
      { points: [[1.23, 2], [3, 4]], radius: 5, erase: false },
      { points: [[2, 2]], radius: 2, erase: true },
    ]);
    const t = toTraits(s);
    const back = fromTraits(JSON.parse(JSON.stringify(t.objects)), t.active, s);
    expect(back).toEqual(s);
    const bad = fromTraits(
      [{ id: 1, strokes: [{ points: [], radius: 2 }, { points: [[1, "x"]], radius: 1 }, { points: [[1, 1]], radius: -1 }, { points: [[1, 1]], radius: 1 }] }],
      1,
    );
    expect(bad.objects[0].strokes).toEqual([{ points: [[1, 1]], radius: 1, erase: false }]);
  });
});
