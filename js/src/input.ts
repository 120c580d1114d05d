/**
 * Wires DOM events of a view to its state: pointer gestures on the stage, wheel zoom,
 * keyboard commands on the (focusable) root, toolbar, object list and candidate chooser.
 * Every listener goes through the view's Disposer, so cleanup removes all of them.
 */
import { clampToImage, insideImage, panBy, screenToImage, screenToStage } from "./coords";
import { h } from "./dom";
import {
  type Command,
  type GestureResult,
  keyCommand,
  pointerCancel,
  pointerDown,
  pointerMove,
  type PointerInput,
  pointerUp,
} from "./gesture";
import type { SamView } from "./view";

const BUSY = new Set(["loading", "encoding"]);

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

export function runCommand(v: SamView, cmd: Command): void {
  switch (cmd) {
    case "undo":
    case "redo":
      v.send({ type: cmd });
      break;
    case "clearActive":
      if (v.gesture.kind !== "idle") cancelGesture(v);
      else v.commit({ type: "clearActive" });
      break;
    case "newObject":
      v.commit({ type: "newObject" });
      break;
    case "deleteObject":
      v.commit({ type: "deleteObject" });
      break;
    case "zoomIn":
      v.zoomBy(1.5);
      break;
    case "zoomOut":
      v.zoomBy(1 / 1.5);
      break;
    case "zoomReset":
      v.setView({ ...v.view, zoom: 1, panX: 0, panY: 0 });
      break;
  }
}

function cancelGesture(v: SamView): void {
  const [g, r] = pointerCancel(v.gesture);
  v.gesture = g;
  apply(v, r);
}

/** Act on a finished or ongoing gesture. */
function apply(v: SamView, r: GestureResult): void {
  const rect = v.dom.stage.getBoundingClientRect();
  switch (r.kind) {
    case "rubber": {
      const [x0, y0] = screenToStage(v.view, rect, r.x0, r.y0);
      const [x1, y1] = screenToStage(v.view, rect, r.x1, r.y1);
      v.rubber = [x0, y0, x1, y1];
      v.refresh("markers");
      break;
    }
    case "box": {
      v.rubber = null;
      v.refresh("markers");
      if (v.failed()) break; // no model: a box would never get a mask
      const [ax, ay] = clampToImage(v.view, ...screenToImage(v.view, rect, r.x0, r.y0));
      const [bx, by] = clampToImage(v.view, ...screenToImage(v.view, rect, r.x1, r.y1));
      if (Math.abs(bx - ax) < 1 || Math.abs(by - ay) < 1) break; // degenerate (off the image)
      v.commit({ type: "setBox", box: [ax, ay, bx, by] });
      break;
    }
    case "point": {
      const [x, y] = screenToImage(v.view, rect, r.x, r.y);
      if (!insideImage(v.view, x, y) || v.failed()) break;
      if (v.mode === "keep") {
        // Keep mode (visible in the toolbar and the status line): a left click on a
        // segment-everything mask makes it an object; elsewhere nothing happens.
        const label = r.label === 1 ? v.layers.everythingLabelAt(v.view, x, y) : 0;
        if (label > 0) v.send({ type: "keep", index: label - 1 });
        break;
      }
      v.commit({ type: "addPoint", x, y, label: r.label });
      break;
    }
    case "pan": {
      const kx = v.view.stageWidth > 0 && rect.width > 0 ? rect.width / v.view.stageWidth : 1;
      const ky = v.view.stageHeight > 0 && rect.height > 0 ? rect.height / v.view.stageHeight : 1;
      v.setView(panBy(v.view, r.dx / kx, r.dy / ky));
      break;
    }
    case "cancel":
      v.rubber = null;
      v.refresh("markers");
      break;
    case "none":
      break;
  }
  if (v.gesture.kind === "idle") v.dom.stage.classList.remove("sam-panning");
}

function hoverAt(v: SamView, e: PointerEvent): void {
  if (e.pointerType === "touch") return;
  const [x, y] = screenToImage(v.view, v.dom.stage.getBoundingClientRect(), e.clientX, e.clientY);
  if (v.layers.everything) {
    // Highlight the mask a click would keep (keep mode only); no previews over the masks.
    v.setEverythingHover(v.mode === "keep" ? v.layers.everythingLabelAt(v.view, x, y) : 0);
    return;
  }
  const status = String(v.model.get("status") ?? "");
  if (!v.model.get("hover") || BUSY.has(status) || v.failed() || v.mode === "keep" || !insideImage(v.view, x, y)) {
    v.clearHover();
    return;
  }
  v.throttle.request(Math.round(x * 100) / 100, Math.round(y * 100) / 100);
}

function bindStage(v: SamView): void {
  const { dom, disposer } = v;
  const stage = dom.stage;
  disposer.listen(stage, "pointerdown", (e: PointerEvent) => {
    if (!v.hasImage()) return;
    if (!dom.root.contains(document.activeElement)) dom.root.focus({ preventScroll: true });
    const [g] = pointerDown(v.gesture, toInput(e), { mode: v.mode, spaceHeld: v.spaceHeld });
    if (g === v.gesture) return;
    v.gesture = g;
    e.preventDefault(); // no text selection, no middle-click autoscroll
    try {
      stage.setPointerCapture(e.pointerId);
    } catch {
      // synthetic events have no active pointer to capture
    }
    if (g.kind === "pan") stage.classList.add("sam-panning");
    else v.clearHover();
  });
  disposer.listen(stage, "pointermove", (e: PointerEvent) => {
    if (v.gesture.kind === "idle") {
      if (v.hasImage()) hoverAt(v, e);
      return;
    }
    const [g, r] = pointerMove(v.gesture, toInput(e));
    v.gesture = g;
    apply(v, r);
  });
  disposer.listen(stage, "pointerup", (e: PointerEvent) => {
    const [g, r] = pointerUp(v.gesture, toInput(e));
    v.gesture = g;
    apply(v, r);
  });
  const cancel = (e: PointerEvent) => {
    if (v.gesture.kind !== "idle" && "pointerId" in v.gesture && v.gesture.pointerId === e.pointerId) {
      cancelGesture(v);
    }
  };
  disposer.listen(stage, "pointercancel", cancel);
  disposer.listen(stage, "lostpointercapture", cancel);
  disposer.listen(stage, "pointerleave", () => {
    if (v.gesture.kind !== "idle") return;
    v.clearHover();
    v.setEverythingHover(0);
  });
  // Right click is a negative point here, never a context menu.
  disposer.listen(stage, "contextmenu", (e: MouseEvent) => e.preventDefault());
  disposer.listen(
    stage,
    "wheel",
    (e: WheelEvent) => {
      if (!(e.ctrlKey || e.metaKey) || !v.hasImage()) return; // plain wheel scrolls the page
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? v.view.stageHeight : 1;
      const [sx, sy] = screenToStage(v.view, stage.getBoundingClientRect(), e.clientX, e.clientY);
      v.zoomBy(Math.exp(-e.deltaY * unit * 0.002), sx, sy);
    },
    { passive: false },
  );
}

function bindKeys(v: SamView): void {
  const { dom, disposer } = v;
  disposer.listen(dom.root, "keydown", (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (target.closest("input, textarea, select")) return;
    if (e.key === " " && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (target.closest("button")) return; // Space presses buttons
      e.preventDefault(); // no page scroll
      if (!v.spaceHeld) {
        v.spaceHeld = true;
        v.updatePanels();
      }
      return;
    }
    const cmd = keyCommand(e);
    if (!cmd) return;
    e.preventDefault();
    e.stopPropagation();
    runCommand(v, cmd);
  });
  const release = () => {
    if (!v.spaceHeld) return;
    v.spaceHeld = false;
    v.updatePanels();
  };
  disposer.listen(dom.root, "keyup", (e: KeyboardEvent) => {
    if (e.key === " ") release();
  });
  disposer.listen(dom.root, "focusout", (e: FocusEvent) => {
    if (!dom.root.contains(e.relatedTarget as Node | null)) release();
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
    const action = b.dataset.action;
    switch (action) {
      case "positive":
      case "negative":
      case "box":
      case "pan":
        v.setMode(action);
        break;
      case "keep":
        v.setMode(v.mode === "keep" ? "positive" : "keep");
        break;
      case "new-object":
        return runCommand(v, "newObject");
      case "delete-object":
        return runCommand(v, "deleteObject");
      case "clear":
        return v.commit({ type: "clearActive" });
      case "undo":
      case "redo":
        return runCommand(v, action);
      case "hover":
        v.model.set("hover", !v.model.get("hover"));
        v.model.save_changes();
        v.updatePanels();
        break;
      case "segment-everything":
        v.send({ type: "segment_everything" });
        break;
      case "everything-settings":
        if (v.settings.el.hidden) v.settings.open();
        else v.settings.close();
        break;
      case "hide-everything":
        v.hideEverything();
        break;
      case "zoom-in":
        return runCommand(v, "zoomIn");
      case "zoom-out":
        return runCommand(v, "zoomOut");
      case "zoom-reset":
        return runCommand(v, "zoomReset");
    }
  });
  disposer.listen(dom.opacity, "input", () => {
    const value = Number(dom.opacity.value);
    if (!Number.isFinite(value)) return;
    v.model.set("opacity", value);
    v.model.save_changes();
    v.refresh("overlay", "hover");
  });
  disposer.listen(dom.candidates, "click", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-candidate]");
    if (b) v.commit({ type: "pickCandidate", candidate: Number(b.dataset.candidate) });
  });
  disposer.listen(dom.objects, "click", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-object-id]");
    if (b) v.commit({ type: "selectObject", id: Number(b.dataset.objectId) });
  });
  disposer.listen(dom.objects, "dblclick", (e: MouseEvent) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-object-id]");
    if (b) startRename(v, b, Number(b.dataset.objectId));
  });
  disposer.listen(dom.errorDismiss, "click", () => v.dismissError());
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
    if (save) v.commit({ type: "rename", id, name });
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
