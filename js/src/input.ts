/**
 * Wires DOM events of a view to its state: pointer gestures on the stage, wheel zoom,
 * keyboard commands on the (focusable) root, toolbar, object list and candidate chooser.
 * Every listener goes through the view's Disposer, so cleanup removes all of them.
 *
 * The handlers are pure: from an event (and a read-only snapshot of the view, `InputContext`)
 * they return a list of `ViewAction`s; only `perform` applies actions to the view. So what a
 * click, a drag or a key does is tested without a DOM (js/test/input.test.ts).
 */
import {
  clampToImage,
  insideImage,
  panBy,
  type ScreenRect,
  screenToImage,
  screenToStage,
  type View,
} from "./coords";
import { h, RADIUS_RANGE } from "./dom";
import {
  type Command,
  type Gesture,
  type GestureResult,
  type InputMode,
  keyCommand,
  pointerCancel,
  pointerDown,
  pointerMove,
  type PointerInput,
  pointerUp,
} from "./gesture";
import { type Action, MAX_RADIUS, MAX_STROKE_POINTS, orderBox, type Point, type Stroke } from "./state";
import type { SamView } from "./view";

const BUSY = new Set(["loading", "encoding"]);

/** One change of the view an input asks for; `perform` applies it. */
export type ViewAction =
  | { kind: "commit"; action: Action }
  | { kind: "send"; message: Record<string, unknown> }
  | { kind: "gesture"; gesture: Gesture }
  | { kind: "rubber"; rect: [number, number, number, number] | null }
  | { kind: "setView"; view: View }
  | { kind: "zoom"; factor: number; at?: [number, number] }
  | { kind: "mode"; mode: InputMode }
  | { kind: "spaceHeld"; held: boolean }
  | { kind: "toggleHover" }
  | { kind: "toggleExplain" }
  | { kind: "opacity"; value: number }
  | { kind: "hideEverything" }
  | { kind: "hover"; x: number; y: number }
  | { kind: "clearHover" }
  | { kind: "everythingHover"; label: number }
  | { kind: "dismissError" }
  | { kind: "toggleSettings" }
  /** The stroke being drawn (image px), or null when none is. */
  | { kind: "liveStroke"; stroke: Stroke | null }
  /** The brush radius (image px). */
  | { kind: "radius"; value: number };

/** The radius slider's range (image px); `[` / `]` step within it. */
export const RADIUS_MIN = RADIUS_RANGE[0];
export const RADIUS_MAX = Math.min(RADIUS_RANGE[1], MAX_RADIUS);
export const DEFAULT_RADIUS = 10;

/** The next brush radius for `[` (dir -1) or `]` (+1): about 25 % per step, at least 1 px. */
export function stepRadius(radius: number, dir: 1 | -1): number {
  const r = Number.isFinite(radius) ? radius : DEFAULT_RADIUS;
  const next = dir > 0 ? Math.max(r + 1, Math.round(r * 1.25)) : Math.min(r - 1, Math.round(r / 1.25));
  return Math.min(RADIUS_MAX, Math.max(RADIUS_MIN, next));
}

/** Stroke points (screen px) -> image px, clamped to the image, at most MAX_STROKE_POINTS. */
function strokeToImage(points: readonly [number, number][], view: View, rect: ScreenRect): Point[] {
  let pts = points.map((p) => clampToImage(view, ...screenToImage(view, rect, p[0], p[1])));
  if (pts.length > MAX_STROKE_POINTS) {
    const step = pts.length / MAX_STROKE_POINTS; // keep an even subset and the last point
    const kept = Array.from({ length: MAX_STROKE_POINTS - 1 }, (_, i) => pts[Math.floor(i * step)]);
    pts = [...kept, pts[pts.length - 1]];
  }
  return pts.map((p) => [Math.round(p[0] * 100) / 100, Math.round(p[1] * 100) / 100] as Point);
}

/** What the handlers may read of the view (a snapshot; they never write it). */
export interface InputContext {
  view: View;
  rect: ScreenRect;
  gesture: Gesture;
  /** Everything-mask label (1-based; 0 none) under an image point, 0 when none is shown. */
  everythingLabelAt: (x: number, y: number) => number;
  everythingShown: boolean;
  hoverOn: boolean;
  status: string;
  /** The input mode ("keep": clicks keep segment-everything masks). */
  mode: InputMode;
  /** The model could not be loaded: no prompt can get a mask. */
  failed: boolean;
  /** The brush / eraser radius (image px). */
  radius: number;
}

function toInput(e: PointerEvent): PointerInput {
  return {
    pointerId: e.pointerId,
    x: e.clientX,
    y: e.clientY,
    button: e.button,
    altKey: e.altKey,
    shiftKey: e.shiftKey,
    ctrlKey: e.ctrlKey,
    pointerType: e.pointerType,
  };
}

/** Actions for a key or toolbar command. */
export function commandActions(
  cmd: Command,
  ctx: Pick<InputContext, "gesture" | "view" | "rect"> & Partial<Pick<InputContext, "radius">>,
): ViewAction[] {
  switch (cmd) {
    case "undo":
    case "redo":
      return [{ kind: "send", message: { type: cmd } }];
    case "clearActive":
      // Esc during a drag cancels the drag; otherwise it clears the active object.
      if (ctx.gesture.kind !== "idle") return cancelActions(ctx);
      return [{ kind: "commit", action: { type: "clearActive" } }];
    case "newObject":
      return [{ kind: "commit", action: { type: "newObject" } }];
    case "deleteObject":
      return [{ kind: "commit", action: { type: "deleteObject" } }];
    case "zoomIn":
      return [{ kind: "zoom", factor: 1.5 }];
    case "zoomOut":
      return [{ kind: "zoom", factor: 1 / 1.5 }];
    case "zoomReset":
      return [{ kind: "setView", view: { ...ctx.view, zoom: 1, panX: 0, panY: 0 } }];
    case "radiusDown":
    case "radiusUp":
      return [{ kind: "radius", value: stepRadius(ctx.radius ?? DEFAULT_RADIUS, cmd === "radiusUp" ? 1 : -1) }];
  }
}

function cancelActions(ctx: Pick<InputContext, "gesture" | "view" | "rect">): ViewAction[] {
  const [g, r] = pointerCancel(ctx.gesture);
  return [{ kind: "gesture", gesture: g }, ...gestureActions(r, { ...ctx, everythingLabelAt: () => 0 })];
}

/** Actions for a finished or ongoing gesture (`r`, screen px). */
export function gestureActions(
  r: GestureResult,
  ctx: Pick<InputContext, "view" | "rect" | "everythingLabelAt"> &
    Partial<Pick<InputContext, "mode" | "failed" | "radius">>,
): ViewAction[] {
  const { view, rect } = ctx;
  switch (r.kind) {
    case "stroke": {
      const stroke: Stroke = {
        points: strokeToImage(r.points, view, rect),
        radius: ctx.radius ?? DEFAULT_RADIUS,
        erase: r.erase,
      };
      if (!r.done) return [{ kind: "liveStroke", stroke }];
      const out: ViewAction[] = [{ kind: "liveStroke", stroke: null }];
      if (ctx.failed) return out; // no model: the kernel shows no masks
      out.push({ kind: "commit", action: { type: "addStroke", ...stroke } });
      return out;
    }
    case "rubber": {
      const [x0, y0] = screenToStage(view, rect, r.x0, r.y0);
      const [x1, y1] = screenToStage(view, rect, r.x1, r.y1);
      return [{ kind: "rubber", rect: [x0, y0, x1, y1] }];
    }
    case "box": {
      const out: ViewAction[] = [{ kind: "rubber", rect: null }];
      if (ctx.failed) return out; // no model: a box would never get a mask
      const [ax, ay] = clampToImage(view, ...screenToImage(view, rect, r.x0, r.y0));
      const [bx, by] = clampToImage(view, ...screenToImage(view, rect, r.x1, r.y1));
      if (Math.abs(bx - ax) < 1 || Math.abs(by - ay) < 1) return out; // degenerate (off the image)
      out.push({ kind: "commit", action: { type: "setBox", box: orderBox([ax, ay, bx, by]) } });
      return out;
    }
    case "point": {
      const [x, y] = screenToImage(view, rect, r.x, r.y);
      if (!insideImage(view, x, y) || ctx.failed) return [];
      if (ctx.mode === "keep") {
        // Keep mode (visible in the toolbar and the status line): a left click on a
        // segment-everything mask makes it an object; elsewhere nothing happens.
        const label = r.label === 1 ? ctx.everythingLabelAt(x, y) : 0;
        return label > 0 ? [{ kind: "send", message: { type: "keep", index: label - 1 } }] : [];
      }
      return [{ kind: "commit", action: { type: "addPoint", x, y, label: r.label } }];
    }
    case "pan": {
      const kx = view.stageWidth > 0 && rect.width > 0 ? rect.width / view.stageWidth : 1;
      const ky = view.stageHeight > 0 && rect.height > 0 ? rect.height / view.stageHeight : 1;
      return [{ kind: "setView", view: panBy(view, r.dx / kx, r.dy / ky) }];
    }
    case "cancel":
      return [
        { kind: "rubber", rect: null },
        { kind: "liveStroke", stroke: null },
      ];
    case "none":
      return [];
  }
}

/** Actions for the pointer moving over the stage with no gesture going on. */
export function hoverActions(clientX: number, clientY: number, pointerType: string, ctx: InputContext): ViewAction[] {
  if (pointerType === "touch") return [];
  const [x, y] = screenToImage(ctx.view, ctx.rect, clientX, clientY);
  // Over segment-everything masks: highlight the one a click would keep (keep mode only).
  if (ctx.everythingShown) return [{ kind: "everythingHover", label: ctx.mode === "keep" ? ctx.everythingLabelAt(x, y) : 0 }];
  const painting = ctx.mode === "brush" || ctx.mode === "eraser"; // no SAM preview then
  if (!ctx.hoverOn || BUSY.has(ctx.status) || ctx.failed || ctx.mode === "keep" || painting || !insideImage(ctx.view, x, y)) {
    return [{ kind: "clearHover" }];
  }
  return [{ kind: "hover", x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100 }];
}

/** Actions for a toolbar button (`data-action`). */
export function toolbarActions(
  action: string,
  ctx: Pick<InputContext, "gesture" | "view" | "rect"> & Partial<Pick<InputContext, "mode">>,
): ViewAction[] {
  switch (action) {
    case "positive":
    case "negative":
    case "box":
    case "pan":
    case "brush":
    case "eraser":
      return [{ kind: "mode", mode: action }];
    case "keep":
      return [{ kind: "mode", mode: ctx.mode === "keep" ? "positive" : "keep" }];
    case "everything-settings":
      return [{ kind: "toggleSettings" }];
    case "new-object":
      return commandActions("newObject", ctx);
    case "delete-object":
      return commandActions("deleteObject", ctx);
    case "clear":
      return [{ kind: "commit", action: { type: "clearActive" } }];
    case "undo":
    case "redo":
      return commandActions(action, ctx);
    case "hover":
      return [{ kind: "toggleHover" }];
    case "explain":
      return [{ kind: "toggleExplain" }];
    case "segment-everything":
      return [{ kind: "send", message: { type: "segment_everything" } }];
    case "hide-everything":
      return [{ kind: "hideEverything" }];
    case "zoom-in":
      return commandActions("zoomIn", ctx);
    case "zoom-out":
      return commandActions("zoomOut", ctx);
    case "zoom-reset":
      return commandActions("zoomReset", ctx);
    default:
      return [];
  }
}

/** Apply actions to the view: the only place where input changes the view's fields. */
export function perform(v: SamView, actions: readonly ViewAction[]): void {
  for (const a of actions) {
    switch (a.kind) {
      case "commit":
        v.commit(a.action);
        break;
      case "send":
        v.send(a.message);
        break;
      case "gesture":
        v.gesture = a.gesture;
        if (a.gesture.kind === "idle") v.dom.stage.classList.remove("sam-panning");
        else if (a.gesture.kind === "pan") v.dom.stage.classList.add("sam-panning");
        break;
      case "rubber":
        v.rubber = a.rect;
        v.refresh("markers");
        break;
      case "setView":
        v.setView(a.view);
        break;
      case "zoom":
        if (a.at) v.zoomBy(a.factor, a.at[0], a.at[1]);
        else v.zoomBy(a.factor);
        break;
      case "mode":
        v.mode = a.mode;
        v.updatePanels();
        break;
      case "spaceHeld":
        if (v.spaceHeld !== a.held) {
          v.spaceHeld = a.held;
          v.updatePanels();
        }
        break;
      case "toggleHover":
        v.model.set("hover", !v.model.get("hover"));
        v.model.save_changes();
        v.updatePanels();
        break;
      case "toggleExplain":
        v.model.set("explain", !v.model.get("explain"));
        v.model.save_changes();
        v.updatePanels();
        break;
      case "opacity":
        v.model.set("opacity", a.value);
        v.model.save_changes();
        v.refresh("overlay", "hover");
        break;
      case "hideEverything":
        v.hideEverything();
        break;
      case "hover":
        v.throttle.request(a.x, a.y);
        break;
      case "clearHover":
        v.clearHover();
        break;
      case "everythingHover":
        v.setEverythingHover(a.label);
        break;
      case "dismissError":
        v.dismissError();
        break;
      case "toggleSettings":
        if (v.settings.el.hidden) v.settings.open();
        else v.settings.close();
        break;
      case "liveStroke":
        v.liveStroke = a.stroke;
        v.refresh("markers");
        break;
      case "radius":
        v.radius = Math.min(RADIUS_MAX, Math.max(RADIUS_MIN, a.value));
        v.updatePanels();
        break;
    }
  }
}

/** The read-only snapshot handlers get. */
function context(v: SamView): InputContext {
  return {
    view: v.view,
    rect: v.dom.stage.getBoundingClientRect(),
    gesture: v.gesture,
    everythingLabelAt: (x, y) => v.layers.everythingLabelAt(v.view, x, y),
    everythingShown: v.layers.everything !== null,
    hoverOn: !!v.model.get("hover"),
    status: String(v.model.get("status") ?? ""),
    mode: v.mode,
    failed: v.failed(),
    radius: v.radius,
  };
}

/** Run a command (keys, toolbar) on a view. */
export function runCommand(v: SamView, cmd: Command): void {
  perform(v, commandActions(cmd, context(v)));
}

/** Actions for a pointer event of a gesture: the new gesture state, then its result. */
function step(v: SamView, [g, r]: [Gesture, GestureResult]): ViewAction[] {
  return [{ kind: "gesture", gesture: g }, ...gestureActions(r, context(v))];
}

function bindStage(v: SamView): void {
  const { dom, disposer } = v;
  const stage = dom.stage;
  disposer.listen(stage, "pointerdown", (e: PointerEvent) => {
    if (!v.hasImage()) return;
    if (!dom.root.contains(document.activeElement)) dom.root.focus({ preventScroll: true });
    const [g, r] = pointerDown(v.gesture, toInput(e), { mode: v.mode, spaceHeld: v.spaceHeld });
    if (g === v.gesture) return;
    e.preventDefault(); // no text selection, no middle-click autoscroll
    try {
      stage.setPointerCapture(e.pointerId);
    } catch {
      // synthetic events have no active pointer to capture
    }
    const actions: ViewAction[] = [{ kind: "gesture", gesture: g }];
    if (g.kind !== "pan") actions.push({ kind: "clearHover" });
    actions.push(...gestureActions(r, context(v))); // a stroke shows from its first dab
    perform(v, actions);
  });
  disposer.listen(stage, "pointermove", (e: PointerEvent) => {
    if (v.gesture.kind === "idle") {
      if (v.hasImage()) perform(v, hoverActions(e.clientX, e.clientY, e.pointerType, context(v)));
      return;
    }
    perform(v, step(v, pointerMove(v.gesture, toInput(e))));
  });
  disposer.listen(stage, "pointerup", (e: PointerEvent) => {
    perform(v, step(v, pointerUp(v.gesture, toInput(e))));
  });
  const cancel = (e: PointerEvent) => {
    if (v.gesture.kind !== "idle" && "pointerId" in v.gesture && v.gesture.pointerId === e.pointerId) {
      perform(v, cancelActions(context(v)));
    }
  };
  disposer.listen(stage, "pointercancel", cancel);
  disposer.listen(stage, "lostpointercapture", cancel);
  disposer.listen(stage, "pointerleave", () => {
    if (v.gesture.kind !== "idle") return;
    perform(v, [{ kind: "clearHover" }, { kind: "everythingHover", label: 0 }]);
  });
  // Right click is a negative point here, never a context menu.
  disposer.listen(stage, "contextmenu", (e: MouseEvent) => e.preventDefault());
  disposer.listen(
    stage,
    "wheel",
    (e: WheelEvent) => {
      if (!(e.ctrlKey || e.metaKey) || !v.hasImage()) return; // plain wheel scrolls the page
      e.preventDefault();
      perform(v, wheelActions(e, context(v)));
    },
    { passive: false },
  );
}

/** Ctrl/Cmd + wheel zooms about the pointer. */
export function wheelActions(
  e: Pick<WheelEvent, "deltaY" | "deltaMode" | "clientX" | "clientY">,
  ctx: Pick<InputContext, "view" | "rect">,
): ViewAction[] {
  const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? ctx.view.stageHeight : 1;
  const at = screenToStage(ctx.view, ctx.rect, e.clientX, e.clientY);
  return [{ kind: "zoom", factor: Math.exp(-e.deltaY * unit * 0.002), at }];
}

function bindKeys(v: SamView): void {
  const { dom, disposer } = v;
  disposer.listen(dom.root, "keydown", (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (target.closest("input, textarea, select")) return;
    if (e.key === " " && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (target.closest("button")) return; // Space presses buttons
      e.preventDefault(); // no page scroll
      perform(v, [{ kind: "spaceHeld", held: true }]);
      return;
    }
    const cmd = keyCommand(e);
    if (!cmd) return;
    e.preventDefault();
    e.stopPropagation();
    runCommand(v, cmd);
  });
  const release: ViewAction[] = [{ kind: "spaceHeld", held: false }];
  disposer.listen(dom.root, "keyup", (e: KeyboardEvent) => {
    if (e.key === " ") perform(v, release);
  });
  disposer.listen(dom.root, "focusout", (e: FocusEvent) => {
    if (!dom.root.contains(e.relatedTarget as Node | null)) perform(v, release);
  });
}

function bindControls(v: SamView): void {
  const { dom, disposer } = v;
  disposer.listen(dom.toolbar, "click", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
    if (!b || b.disabled) return;
    // After a mouse/touch click, keys (Space to pan, Esc, N, Ctrl+Z) should go to the stage
    // again, not press the button once more. Keyboard activation (detail 0) keeps focus.
    if (e.detail > 0) dom.root.focus({ preventScroll: true });
    perform(v, toolbarActions(b.dataset.action ?? "", context(v)));
  });
  disposer.listen(dom.opacity, "input", () => {
    const value = Number(dom.opacity.value);
    if (Number.isFinite(value)) perform(v, [{ kind: "opacity", value }]);
  });
  disposer.listen(dom.radius, "input", () => {
    const value = Number(dom.radius.value);
    if (Number.isFinite(value)) perform(v, [{ kind: "radius", value }]);
  });
  disposer.listen(dom.candidates, "click", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-candidate]");
    if (b) perform(v, [{ kind: "commit", action: { type: "pickCandidate", candidate: Number(b.dataset.candidate) } }]);
  });
  disposer.listen(dom.objects, "click", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-object-id]");
    if (b) perform(v, [{ kind: "commit", action: { type: "selectObject", id: Number(b.dataset.objectId) } }]);
  });
  disposer.listen(dom.objects, "dblclick", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-object-id]");
    if (b) startRename(v, b, Number(b.dataset.objectId));
  });
  disposer.listen(dom.errorDismiss, "click", () => perform(v, [{ kind: "dismissError" }]));
}

function startRename(v: SamView, chip: HTMLButtonElement, id: number): void {
  const obj = v.state.objects.find((o) => o.id === id);
  if (!obj) return;
  const input = h("input", { type: "text", "aria-label": "Object name", value: obj.name });
  let done = false;
  const finish = (save: boolean) => {
    if (done) return;
    done = true;
    const name = input.value;
    input.remove();
    v.dom.objects.dataset.key = ""; // force a rebuild of the chips
    if (save) perform(v, [{ kind: "commit", action: { type: "rename", id, name } }]);
    v.updatePanels();
  };
  input.addEventListener("keydown", (e) => {
    e.stopPropagation();
    if (e.key === "Enter") finish(true);
    else if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  chip.replaceWith(input);
  input.focus();
  input.select();
}

export function bindInput(v: SamView): void {
  bindStage(v);
  bindKeys(v);
  bindControls(v);
}
