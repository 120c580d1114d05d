/**
 * The widget's DOM, exactly as docs/ARCHITECTURE.md "Frontend DOM contract" fixes it:
 * `div.sam-widget` > toolbar of `button[data-action=NAME]` + `input[data-action=opacity]` +
 * `input[data-action=radius]` (brush / eraser radius, image px),
 * `div.sam-stage` with `canvas.sam-image|sam-overlay|sam-hover|sam-markers`,
 * `.sam-candidates`, `.sam-explain` (views.ts appends it: explain.ts), `.sam-status`, `.sam-error`, `.sam-notice`.
 */
import { CSS } from "./style";

/** The radius slider's range (image px); input.ts clamps to the same numbers. */
export const RADIUS_RANGE: readonly [number, number] = [1, 200];

export type ActionName =
  | "positive"
  | "negative"
  | "box"
  | "pan"
  | "brush"
  | "eraser"
  | "new-object"
  | "delete-object"
  | "undo"
  | "redo"
  | "clear"
  | "hover"
  | "explain"
  | "segment-everything"
  | "everything-settings"
  | "keep"
  | "hide-everything"
  | "zoom-in"
  | "zoom-out"
  | "zoom-reset";

export interface Dom {
  root: HTMLDivElement;
  toolbar: HTMLDivElement;
  buttons: Record<ActionName, HTMLButtonElement>;
  opacity: HTMLInputElement;
  radius: HTMLInputElement;
  objects: HTMLDivElement;
  stage: HTMLDivElement;
  image: HTMLCanvasElement;
  overlay: HTMLCanvasElement;
  hover: HTMLCanvasElement;
  markers: HTMLCanvasElement;
  placeholder: HTMLDivElement;
  candidates: HTMLDivElement;
  status: HTMLDivElement;
  statusText: HTMLSpanElement;
  statusNote: HTMLSpanElement;
  progress: HTMLProgressElement;
  notice: HTMLDivElement;
  error: HTMLDivElement;
  errorText: HTMLSpanElement;
  errorDismiss: HTMLButtonElement;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

/** [action, label, tooltip] per toolbar group. */
const GROUPS: [ActionName, string, string][][] = [
  [
    ["positive", "+ Point", "Add positive points (click). Right click, Alt or Shift click: negative"],
    ["negative", "\u2212 Point", "Add negative points (click)"],
    ["box", "\u25ad Box", "Draw a box (drag; works in every mode)"],
    ["pan", "Pan", "Drag to pan (also: middle button or Space + drag)"],
    ["brush", "Brush", "Paint onto the active object's mask (drag; radius: slider, [ and ])"],
    ["eraser", "Eraser", "Erase from the active object's mask (drag; radius: slider, [ and ])"],
  ],
  [
    ["new-object", "New", "New object (N)"],
    ["delete-object", "Delete", "Delete the active object (Delete)"],
    ["clear", "Clear", "Clear the active object's prompts (Esc)"],
  ],
  [
    ["undo", "\u21b6 Undo", "Undo (Ctrl/Cmd+Z)"],
    ["redo", "\u21b7 Redo", "Redo (Ctrl/Cmd+Shift+Z, Ctrl+Y)"],
  ],
  [
    ["hover", "Hover", "Preview the mask under the pointer"],
    ["explain", "Explain", "Explain the active object's mask: the 4 candidate masks, attention, positional encoding, embedding PCA"],
    ["segment-everything", "Everything", "Segment everything (then keep masks as objects)"],
    ["everything-settings", "\u2699", "Segment-everything settings (points per side, thresholds)"],
    ["keep", "Keep", "Keep mode: click a shown mask (segment everything, proposals) to keep it as an object"],
    ["hide-everything", "Hide all", "Hide the segment-everything masks"],
  ],
  [
    ["zoom-in", "+", "Zoom in (Ctrl+wheel, +)"],
    ["zoom-out", "\u2212", "Zoom out (Ctrl+wheel, -)"],
    ["zoom-reset", "Fit", "Fit the image (0)"],
  ],
];

const TOGGLES = new Set<ActionName>(["positive", "negative", "box", "pan", "brush", "eraser", "hover", "explain", "keep"]);

/** Controls that only apply sometimes: their space is always reserved (no reflow). */
export const RESERVED = new Set<ActionName>(["keep", "hide-everything"]);

export function buildDom(): Dom {
  const root = h("div", {
    class: "sam-widget",
    tabindex: "0",
    // Keep JupyterLab's command-mode shortcuts (A, B, D D, Z...) off keys meant for us.
    "data-lm-suppress-shortcuts": "true",
    "aria-label": "Segment Anything widget",
  });
  root.appendChild(h("style", {}, CSS));

  const toolbar = h("div", { class: "sam-toolbar", role: "toolbar" });
  const buttons = {} as Record<ActionName, HTMLButtonElement>;
  for (const group of GROUPS) {
    const g = h("div", { class: "sam-group" });
    for (const [action, label, title] of group) {
      const b = h("button", { type: "button", "data-action": action, title, "aria-label": title }, label);
      if (TOGGLES.has(action)) b.setAttribute("aria-pressed", "false");
      if (RESERVED.has(action)) b.classList.add("sam-reserved");
      buttons[action] = b;
      g.appendChild(b);
    }
    toolbar.appendChild(g);
  }
  const opacityLabel = h("label", { class: "sam-opacity sam-group", title: "Mask opacity" }, "Opacity");
  const opacity = h("input", {
    type: "range",
    min: "0",
    max: "1",
    step: "0.05",
    "data-action": "opacity",
    "aria-label": "Mask opacity",
  });
  opacityLabel.appendChild(opacity);
  toolbar.appendChild(opacityLabel);
  const radiusLabel = h("label", { class: "sam-opacity sam-group", title: "Brush / eraser radius (image px)" }, "Radius");
  const radius = h("input", {
    type: "range",
    min: String(RADIUS_RANGE[0]),
    max: String(RADIUS_RANGE[1]),
    step: "1",
    "data-action": "radius",
    "aria-label": "Brush radius",
  });
  radiusLabel.appendChild(radius);
  toolbar.appendChild(radiusLabel);

  const notice = h("div", { class: "sam-notice", role: "note" });
  const error = h("div", { class: "sam-error", role: "alert" });
  const errorText = h("span", { class: "sam-error-text" });
  const errorDismiss = h("button", { type: "button", title: "Dismiss", "aria-label": "Dismiss error" }, "\u2715");
  error.append(errorText, errorDismiss);
  notice.hidden = true;
  error.hidden = true;

  const stage = h("div", { class: "sam-stage", "data-jp-suppress-context-menu": "" });
  const canvas = (cls: string) => h("canvas", { class: cls, "aria-hidden": "true" });
  const image = canvas("sam-image");
  const overlay = canvas("sam-overlay");
  const hover = canvas("sam-hover");
  const markers = canvas("sam-markers");
  const placeholder = h("div", { class: "sam-placeholder" }, "No image");
  stage.append(image, overlay, hover, markers, placeholder);

  const objects = h("div", { class: "sam-objects", role: "listbox", "aria-label": "Objects" });
  const candidates = h("div", { class: "sam-candidates", "aria-label": "Mask candidates" });

  const status = h("div", { class: "sam-status", role: "status" });
  const statusText = h("span", { class: "sam-status-text" });
  const progress = h("progress", { max: "1" });
  progress.hidden = true;
  const statusNote = h("span", { class: "sam-status-note" });
  status.append(statusText, progress, statusNote);

  root.append(toolbar, notice, error, stage, objects, candidates, status);
  return {
    root,
    toolbar,
    buttons,
    opacity,
    radius,
    objects,
    stage,
    image,
    overlay,
    hover,
    markers,
    placeholder,
    candidates,
    status,
    statusText,
    statusNote,
    progress,
    notice,
    error,
    errorText,
    errorDismiss,
  };
}

export const STATUS_TEXT: Record<string, string> = {
  loading: "Loading model\u2026",
  encoding: "Encoding image\u2026",
  ready: "Ready",
  // Masks being decoded (a click's takes a fraction of a second): the line stays "Ready"
  // rather than flicker on every click; Python's `w.status` says "decoding".
  decoding: "Ready",
  segmenting: "Segmenting\u2026",
  error: "Not ready",
};
