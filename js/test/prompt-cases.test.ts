/**
 * The prompt-edit rules shared with the kernel: every case of
 * tests/shared/prompt_edit_cases.json (pytest runs the same file against
 * sam_widget/widget/prompts.py) through the frontend's reducer.
 */
import { describe, expect, it } from "vitest";
import shared from "../../tests/shared/prompt_edit_cases.json";
import {
  type Action,
  MAX_NAME_LENGTH,
  MAX_OBJECTS,
  MAX_POINTS,
  MAX_RADIUS,
  MAX_STROKE_POINTS,
  MAX_STROKES,
  type Point,
  type PromptState,
  reduce,
  type SamObject,
} from "../src/state";

interface RawObject {
  id: number;
  color: string;
  name?: string;
  points?: number[][];
  labels?: number[];
  box?: number[] | null;
  candidate?: number | null;
  seq?: number;
  strokes?: { points: number[][]; radius: number; erase: boolean }[];
  repeatPoints?: number;
  repeatStrokes?: number;
}

interface RawState {
  objects?: RawObject[];
  fillObjects?: number;
  active: number;
  nextId: number;
}

interface Case {
  name: string;
  before: RawState;
  action: Record<string, unknown>;
  after: RawState | "refused";
}

/** A case's state with the defaults filled in (see the file's "about"). */
function expand(raw: RawState): PromptState {
  const objects: SamObject[] = [];
  for (let i = 1; i <= (raw.fillObjects ?? 0); i++) {
    objects.push({ id: i, name: `object ${i}`, color: "#000000", points: [[1, 1]], labels: [1], box: null, candidate: null, strokes: [], seq: 1 });
  }
  for (const o of raw.objects ?? []) {
    const n = o.repeatPoints;
    const points: Point[] = n !== undefined ? Array.from({ length: n }, () => [1, 1] as Point) : ((o.points ?? []) as Point[]);
    const labels = n !== undefined ? Array.from({ length: n }, () => 1) : (o.labels ?? []);
    objects.push({
      id: o.id,
      name: o.name ?? `object ${o.id}`,
      color: o.color,
      points,
      labels,
      box: (o.box ?? null) as SamObject["box"],
      candidate: o.candidate ?? null,
      strokes: (o.repeatStrokes !== undefined
        ? Array.from({ length: o.repeatStrokes }, () => ({ points: [[1, 1]], radius: 1, erase: false }))
        : (o.strokes ?? [])) as SamObject["strokes"],
      seq: o.seq ?? 0,
    });
  }
  return { objects, active: raw.active, nextId: raw.nextId };
}

const cases = shared.cases as unknown as Case[];

describe("shared prompt-edit cases", () => {
  it("uses the shared limits", () => {
    expect(shared.limits).toEqual({
      maxObjects: MAX_OBJECTS,
      maxPoints: MAX_POINTS,
      maxNameLength: MAX_NAME_LENGTH,
      maxStrokes: MAX_STROKES,
      maxStrokePoints: MAX_STROKE_POINTS,
      maxRadius: MAX_RADIUS,
    });
  });

  it("has cases", () => {
    expect(cases.length).toBeGreaterThan(30);
  });

  for (const c of cases) {
    it(c.name, () => {
      const before = expand(c.before);
      const next = reduce(before, c.action as unknown as Action);
      if (c.after === "refused") {
        expect(next).toBe(before); // the kernel raises; the frontend changes nothing
      } else {
        expect(next).toEqual(expand(c.after));
      }
    });
  }
});
