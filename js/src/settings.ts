/**
 * The segment-everything settings popover: a few of the generator's parameters
 * (`SamAutomaticMaskGenerator`), edited in the browser and stored in the synced
 * `everything_params` trait (the kernel validates them again before a run).
 */
import { h } from "./dom";

export interface ParamSpec {
  name: string;
  label: string;
  kind: "int" | "float";
  min: number;
  max: number;
  step: number;
  /** The published generator's default. */
  default: number;
  help: string;
}

/** The parameters offered, with the published defaults (segment_anything's generator). */
export const PARAMS: readonly ParamSpec[] = [
  { name: "points_per_side", label: "Points per side", kind: "int", min: 1, max: 128, step: 1, default: 32, help: "Grid of point prompts: more finds smaller objects, and takes longer" },
  { name: "pred_iou_thresh", label: "Min. predicted IoU", kind: "float", min: 0, max: 1, step: 0.01, default: 0.88, help: "Keep masks the model rates at least this good (lower: more masks)" },
  { name: "stability_score_thresh", label: "Min. stability", kind: "float", min: 0, max: 1, step: 0.01, default: 0.95, help: "Keep masks that change little with the threshold (lower: more masks)" },
  { name: "box_nms_thresh", label: "Duplicate overlap", kind: "float", min: 0, max: 1, step: 0.01, default: 0.7, help: "Box IoU above which the weaker of two masks is dropped" },
  { name: "min_mask_region_area", label: "Min. region (px)", kind: "int", min: 0, max: 1e9, step: 1, default: 0, help: "Remove islands and fill holes smaller than this many pixels (0: off)" },
];

/** A value typed into a field: the number, or an error message naming the parameter. */
export function parseParam(spec: ParamSpec, raw: string): number | string {
  const text = raw.trim();
  const v = Number(text);
  if (text === "" || !Number.isFinite(v)) return `${spec.name} must be a number`;
  if (spec.kind === "int" && !Number.isInteger(v)) return `${spec.name} must be a whole number`;
  if (v < spec.min || v > spec.max) return `${spec.name} must lie in ${spec.min}..${spec.max}`;
  return v;
}

/** The value a field shows: the stored parameter if valid, else the default. */
export function shownValue(spec: ParamSpec, params: Record<string, unknown> | null | undefined): number {
  const v = params?.[spec.name];
  return typeof v === "number" && Number.isFinite(v) ? v : spec.default;
}

export interface SettingsCallbacks {
  params: () => Record<string, unknown>;
  /** Store new parameters (all fields valid). */
  save: (params: Record<string, unknown>) => void;
  /** Run segment-everything now. */
  run: () => void;
}

/** Build the (hidden) popover; `open()` refreshes it from the current parameters. */
export function buildSettings(cb: SettingsCallbacks): { el: HTMLDivElement; open: () => void; close: () => void } {
  const el = h("div", { class: "sam-settings", role: "dialog", "aria-label": "Segment everything settings" });
  el.hidden = true;
  const form = h("form", { novalidate: "" }); // our own messages name the parameter
  const inputs = new Map<string, HTMLInputElement>();
  for (const spec of PARAMS) {
    const row = h("label", { title: spec.help }, spec.label);
    const input = h("input", {
      type: "number",
      "data-param": spec.name,
      min: String(spec.min),
      max: String(spec.max),
      step: String(spec.step),
    });
    inputs.set(spec.name, input);
    row.appendChild(input);
    form.appendChild(row);
  }
  const message = h("div", { class: "sam-settings-error", role: "alert" });
  const buttons = h("div", { class: "sam-settings-buttons" });
  const reset = h("button", { type: "button", "data-settings": "defaults" }, "Defaults");
  const apply = h("button", { type: "submit", "data-settings": "run" }, "Run");
  const close = h("button", { type: "button", "data-settings": "close", "aria-label": "Close" }, "\u2715");
  buttons.append(reset, apply, close);
  form.append(message, buttons);
  el.appendChild(form);

  const fill = (params: Record<string, unknown>) => {
    for (const spec of PARAMS) inputs.get(spec.name)!.value = String(shownValue(spec, params));
    message.textContent = "";
  };
  const read = (): Record<string, unknown> | null => {
    const out: Record<string, unknown> = { ...cb.params() };
    for (const spec of PARAMS) {
      const v = parseParam(spec, inputs.get(spec.name)!.value);
      if (typeof v === "string") {
        message.textContent = v;
        inputs.get(spec.name)!.focus();
        return null;
      }
      out[spec.name] = v;
    }
    message.textContent = "";
    return out;
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = read();
    if (!params) return;
    cb.save(params);
    el.hidden = true;
    cb.run();
  });
  form.addEventListener("keydown", (e) => {
    e.stopPropagation(); // typing digits is not a widget shortcut
    if (e.key === "Escape") el.hidden = true;
  });
  reset.addEventListener("click", () => fill({}));
  close.addEventListener("click", () => {
    el.hidden = true;
  });
  return {
    el,
    open: () => {
      fill(cb.params());
      el.hidden = false;
      inputs.get(PARAMS[0].name)!.focus();
    },
    close: () => {
      el.hidden = true;
    },
  };
}
