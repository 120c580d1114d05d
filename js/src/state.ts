/**
 * The prompt state as a pure reducer over the synced `objects` / `active` traits
 * (docs/ARCHITECTURE.md, "Widget protocol"). Coordinates are image px.
 *
 * The edit rules are the kernel's (sam_widget/widget/prompts.py, which documents them); both
 * test suites run the shared cases in tests/shared/prompt_edit_cases.json. In short:
 * - every change of an object's prompts (points, labels, box) or candidate increments its
 *   `seq`; adding a point keeps `candidate` (the kernel refines from the candidate the
 *   user picked at the first click); setting or removing a box, or clearing, resets it;
 * - a prompt added with no active object first creates one;
 * - strokes (brush / eraser, `addStroke`) are prompts too: they bump `seq`, keep
 *   `candidate`, go with "clear", and an object with only strokes is not empty;
 * - "new object" reuses the active object while it is empty and keeps its default name;
 * - limits (the kernel's too): MAX_OBJECTS objects, MAX_POINTS points per object, names of
 *   MAX_NAME_LENGTH characters; an action beyond them changes nothing;
 * - new objects get the first palette colour not in use (Okabe-Ito, then Paul Tol's muted
 *   scheme: both designed to stay distinguishable with colour-vision deficiencies);
 * - ids are never reused within a view (`nextId`), so a late mask for a deleted object can
 *   never be taken for a new one.
 * Actions that change nothing, or that the kernel refuses (it raises), return the same state
 * object (callers compare by identity).
 */

export const MAX_OBJECTS = 256;
export const MAX_POINTS = 1000;
export const MAX_NAME_LENGTH = 200;
export const MAX_STROKES = 1000;
export const MAX_STROKE_POINTS = 10000;
export const MAX_RADIUS = 1000;

export type Point = [number, number];
export type Box = [number, number, number, number];

/** A brush (erase false) or eraser stroke: a round brush of `radius` px along `points`. */
export interface Stroke {
  points: Point[];
  radius: number;
  erase: boolean;
}

export interface SamObject {
  id: number;
  name: string;
  color: string;
  points: Point[];
  labels: number[];
  box: Box | null;
  candidate: number | null;
  strokes: Stroke[];
  seq: number;
}

export interface PromptState {
  objects: SamObject[];
  active: number;
  /** Smallest id a new object may take (not synced). */
  nextId: number;
}

export type Action =
  | { type: "addPoint"; x: number; y: number; label: 0 | 1 }
  | { type: "addStroke"; points: Point[]; radius: number; erase: boolean; id?: number }
  | { type: "removePoint"; index?: number }
  | { type: "setBox"; box: Box | null }
  | { type: "newObject" }
  | { type: "deleteObject"; id?: number }
  | { type: "selectObject"; id: number }
  | { type: "clearActive" }
  | { type: "pickCandidate"; candidate: number | null }
  | { type: "rename"; id: number; name: string }
  | { type: "clearAll" };

/** Okabe & Ito (2008) without black, then Tol's "muted" colours. */
export const PALETTE: readonly string[] = [
  "#e69f00",
  "#56b4e9",
  "#009e73",
  "#f0e442",
  "#0072b2",
  "#d55e00",
  "#cc79a7",
  "#332288",
  "#88ccee",
  "#44aa99",
  "#117733",
  "#999933",
  "#ddcc77",
  "#cc6677",
  "#882255",
  "#aa4499",
];

/** Digits kept for coordinates sent to the kernel (1/100 image px is plenty). */
function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

export function emptyState(): PromptState {
  return { objects: [], active: -1, nextId: 1 };
}

export function hasPrompts(obj: SamObject): boolean {
  return obj.points.length > 0 || obj.box !== null || obj.strokes.length > 0;
}

export function activeObject(state: PromptState): SamObject | undefined {
  return state.objects.find((o) => o.id === state.active);
}

/** First palette colour no object uses; cycles by count when all are taken. */
export function nextColor(objects: readonly SamObject[]): string {
  const used = new Set(objects.map((o) => o.color.toLowerCase()));
  const free = PALETTE.find((c) => !used.has(c));
  return free ?? PALETTE[objects.length % PALETTE.length];
}

function createObject(state: PromptState): PromptState {
  if (state.objects.length >= MAX_OBJECTS) return state;
  const id = Math.max(state.nextId, ...state.objects.map((o) => o.id + 1));
  const obj: SamObject = {
    id,
    name: `object ${id}`,
    color: nextColor(state.objects),
    points: [],
    labels: [],
    box: null,
    candidate: null,
    strokes: [],
    seq: 0,
  };
  return { objects: [...state.objects, obj], active: id, nextId: id + 1 };
}

/** Replace the active object (creating one if needed) with `change(obj)`. */
function editActive(state: PromptState, change: (obj: SamObject) => SamObject): PromptState {
  const base = activeObject(state) ? state : createObject(state);
  if (base === state && !activeObject(state)) return state; // no room for a new object
  return {
    ...base,
    objects: base.objects.map((o) => (o.id === base.active ? change(o) : o)),
  };
}

/** A box from two dragged corners in any order: XYXY with x0 <= x1, y0 <= y1. */
export function orderBox(box: Box): Box {
  const [x0, y0, x1, y1] = box;
  return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
}

export function reduce(state: PromptState, action: Action): PromptState {
  switch (action.type) {
    case "addPoint": {
      if (!Number.isFinite(action.x) || !Number.isFinite(action.y)) return state;
      if ((activeObject(state)?.points.length ?? 0) >= MAX_POINTS) return state;
      return editActive(state, (o) => ({
        ...o,
        points: [...o.points, [round2(action.x), round2(action.y)]],
        labels: [...o.labels, action.label === 1 ? 1 : 0],
        seq: o.seq + 1,
      }));
    }
    case "addStroke": {
      const { points, radius, erase } = action;
      if (!Array.isArray(points) || points.length === 0 || points.length > MAX_STROKE_POINTS) return state;
      if (!points.every((p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite))) return state;
      if (!Number.isFinite(radius) || radius <= 0 || radius > MAX_RADIUS) return state;
      if (typeof erase !== "boolean") return state;
      let base = state;
      if (action.id !== undefined) {
        if (!state.objects.some((o) => o.id === action.id)) return state;
        base = { ...state, active: action.id };
      }
      if ((activeObject(base)?.strokes.length ?? 0) >= MAX_STROKES) return state;
      const stroke: Stroke = { points: points.map((p) => [round2(p[0]), round2(p[1])] as Point), radius, erase };
      const next = editActive(base, (o) => ({ ...o, strokes: [...o.strokes, stroke], seq: o.seq + 1 }));
      return next === base ? state : next;
    }
    case "removePoint": {
      const obj = activeObject(state);
      const n = obj?.points.length ?? 0;
      const index = action.index ?? -1;
      if (!obj || !Number.isInteger(index) || index < -n || index >= n) return state;
      const at = index < 0 ? n + index : index;
      return editActive(state, (o) => ({
        ...o,
        points: o.points.filter((_, i) => i !== at),
        labels: o.labels.filter((_, i) => i !== at),
        seq: o.seq + 1,
      }));
    }
    case "setBox": {
      if (action.box === null) {
        if (!activeObject(state)) return state;
        return editActive(state, (o) => ({ ...o, box: null, candidate: null, seq: o.seq + 1 }));
      }
      if (!action.box.every(Number.isFinite)) return state;
      const box = action.box.map(round2) as Box;
      if (!(box[0] < box[2] && box[1] < box[3])) return state; // the kernel refuses it too
      return editActive(state, (o) => ({ ...o, box, candidate: null, seq: o.seq + 1 }));
    }
    case "newObject": {
      const obj = activeObject(state);
      // The active object is still empty and unnamed: use it rather than stack empties.
      if (obj && !hasPrompts(obj) && obj.name === `object ${obj.id}`) return state;
      return createObject(state);
    }
    case "deleteObject": {
      const id = action.id ?? state.active;
      const index = state.objects.findIndex((o) => o.id === id);
      if (index < 0) return state;
      const objects = state.objects.filter((o) => o.id !== id);
      let active = state.active;
      if (active === id) {
        active = objects.length ? objects[Math.max(0, index - 1)].id : -1;
      }
      return { objects, active, nextId: Math.max(state.nextId, id + 1) };
    }
    case "selectObject": {
      if (action.id === state.active) return state;
      if (action.id !== -1 && !state.objects.some((o) => o.id === action.id)) return state;
      return { ...state, active: action.id };
    }
    case "clearActive": {
      const obj = activeObject(state);
      if (!obj || (!hasPrompts(obj) && obj.candidate === null)) return state;
      return editActive(state, (o) => ({
        ...o,
        points: [],
        labels: [],
        box: null,
        candidate: null,
        strokes: [],
        seq: o.seq + 1,
      }));
    }
    case "pickCandidate": {
      const obj = activeObject(state);
      if (!obj || obj.candidate === action.candidate) return state;
      return editActive(state, (o) => ({ ...o, candidate: action.candidate, seq: o.seq + 1 }));
    }
    case "rename": {
      const name = action.name.trim();
      const obj = state.objects.find((o) => o.id === action.id);
      if (!obj || !name || name.length > MAX_NAME_LENGTH || obj.name === name) return state;
      return {
        ...state,
        objects: state.objects.map((o) => (o.id === action.id ? { ...o, name } : o)),
      };
    }
    case "clearAll": {
      if (!state.objects.length && state.active === -1) return state;
      const nextId = Math.max(state.nextId, ...state.objects.map((o) => o.id + 1));
      return { objects: [], active: -1, nextId };
    }
  }
}

/** The object whose prompts differ between two states (for the `sam-prompt` event). */
export function changedPrompt(before: PromptState, after: PromptState): SamObject | undefined {
  const old = new Map(before.objects.map((o) => [o.id, o.seq]));
  return after.objects.find((o) => old.get(o.id) !== o.seq && (old.has(o.id) || o.seq > 0));
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

/**
 * Read the synced traits into a state, tolerating malformed entries (they are dropped or
 * repaired, never thrown on: the traits come from another process).
 */
export function fromTraits(objects: unknown, active: unknown, previous?: PromptState): PromptState {
  const list: SamObject[] = [];
  const seen = new Set<number>();
  for (const raw of Array.isArray(objects) ? objects : []) {
    if (!raw || typeof raw !== "object") continue;
    const r = raw as Record<string, unknown>;
    const id = r.id;
    if (typeof id !== "number" || !Number.isInteger(id) || seen.has(id)) continue;
    seen.add(id);
    const points: Point[] = [];
    const labels: number[] = [];
    const rawPoints = Array.isArray(r.points) ? r.points : [];
    const rawLabels = Array.isArray(r.labels) ? r.labels : [];
    rawPoints.forEach((p, i) => {
      if (Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1])) {
        points.push([p[0], p[1]]);
        labels.push(rawLabels[i] === 0 ? 0 : 1);
      }
    });
    const strokes: Stroke[] = [];
    for (const rs of Array.isArray(r.strokes) ? r.strokes : []) {
      if (!rs || typeof rs !== "object") continue;
      const st = rs as Record<string, unknown>;
      const pts = (Array.isArray(st.points) ? st.points : []).filter(
        (p): p is Point => Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]),
      );
      const radius = num(st.radius, 0);
      if (pts.length && radius > 0) strokes.push({ points: pts.map((p) => [p[0], p[1]]), radius, erase: st.erase === true });
    }
    const b = r.box;
    const box =
      Array.isArray(b) && b.length === 4 && b.every((v) => Number.isFinite(v))
        ? (b.slice() as Box)
        : null;
    list.push({
      id,
      name: typeof r.name === "string" ? r.name : `object ${id}`,
      color: typeof r.color === "string" ? r.color : PALETTE[(id - 1 + PALETTE.length) % PALETTE.length],
      points,
      labels,
      box,
      candidate: typeof r.candidate === "number" && Number.isInteger(r.candidate) ? r.candidate : null,
      strokes,
      seq: num(r.seq, 0),
    });
  }
  const a = num(active, -1);
  const maxId = list.reduce((m, o) => Math.max(m, o.id), 0);
  return {
    objects: list,
    active: list.some((o) => o.id === a) ? a : -1,
    nextId: Math.max(previous?.nextId ?? 1, maxId + 1),
  };
}

/** The synced form of the objects (plain JSON, fresh arrays so Backbone sees a change). */
export function toTraits(state: PromptState): { objects: SamObject[]; active: number } {
  return {
    objects: state.objects.map((o) => ({
      id: o.id,
      name: o.name,
      color: o.color,
      points: o.points.map((p) => [p[0], p[1]] as Point),
      labels: o.labels.slice(),
      box: o.box ? (o.box.slice() as Box) : null,
      candidate: o.candidate,
      strokes: o.strokes.map((s) => ({ points: s.points.map((p) => [p[0], p[1]] as Point), radius: s.radius, erase: s.erase })),
      seq: o.seq,
    })),
    active: state.active,
  };
}
