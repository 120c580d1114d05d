/**
 * Updating the non-canvas parts of the DOM from the current state: toolbar button states,
 * the object list, the candidate chooser, status/progress, notice and error lines.
 * Each function rewrites only what changed, so focus and hover states survive.
 */
import { type Dom, h, STATUS_TEXT } from "./dom";
import type { InputMode } from "./gesture";
import type { MaskEntry } from "./messages";
import { activeObject, hasPrompts, type PromptState } from "./state";

export interface ToolbarState {
  mode: InputMode;
  hover: boolean;
  /** The Explain panel is on. */
  explain?: boolean;
  canUndo: boolean;
  canRedo: boolean;
  hasImage: boolean;
  everythingShown: boolean;
  /** The everything layer shows an Explain filter stage (not keepable). */
  stagesShown?: boolean;
  /** The model could not be loaded (status "error"): prompt tools are off. */
  failed: boolean;
  zoom: number;
  opacity: number;
  /** Brush / eraser radius (image px). */
  radius: number;
  state: PromptState;
}

/** The buttons that make prompts (disabled while the model could not be loaded). */
export const PROMPT_TOOLS = ["positive", "negative", "box", "brush", "eraser", "new-object", "hover", "keep"] as const;

/** Show or hide a control whose space is reserved (`sam-reserved`): no layout change. */
function setShown(b: HTMLButtonElement, shown: boolean): void {
  b.classList.toggle("sam-shown", shown);
  b.disabled = !shown;
  if (shown) b.removeAttribute("aria-hidden");
  else b.setAttribute("aria-hidden", "true");
}

function setPressed(b: HTMLButtonElement, on: boolean): void {
  const v = on ? "true" : "false";
  if (b.getAttribute("aria-pressed") !== v) b.setAttribute("aria-pressed", v);
}

export function updateToolbar(dom: Dom, t: ToolbarState): void {
  const b = dom.buttons;
  for (const m of ["positive", "negative", "box", "pan", "brush", "eraser"] as const) setPressed(b[m], t.mode === m);
  setPressed(b.hover, t.hover);
  setPressed(b.explain, !!t.explain);
  b.undo.disabled = !t.canUndo;
  b.redo.disabled = !t.canRedo;
  const active = activeObject(t.state);
  b["delete-object"].disabled = !active;
  b.clear.disabled = !active || !hasPrompts(active);
  b["segment-everything"].disabled = !t.hasImage || t.failed;
  b["everything-settings"].disabled = t.failed;
  const keepable = t.everythingShown && !t.stagesShown;
  setShown(b.keep, keepable);
  setPressed(b.keep, t.mode === "keep");
  setShown(b["hide-everything"], t.everythingShown);
  // Without a model a prompt would never get a mask: the tools that make prompts are off.
  for (const name of PROMPT_TOOLS) b[name].disabled = t.failed || (name === "keep" && !keepable);
  b["zoom-in"].disabled = !t.hasImage;
  b["zoom-out"].disabled = t.zoom <= 1;
  b["zoom-reset"].disabled = t.zoom <= 1;
  // Do not fight the user's thumb while they drag the slider.
  if (document.activeElement !== dom.opacity) dom.opacity.value = String(t.opacity);
  if (document.activeElement !== dom.radius) dom.radius.value = String(t.radius);
  dom.radius.title = `Brush / eraser radius: ${t.radius} image px ([ and ])`;
  dom.radius.disabled = t.failed;
}

/**
 * Object chips: `button[data-object-id]` with colour swatch and name. Rebuilt only when the
 * list changes; a change of the active object only flips attributes (so a double click
 * on a chip that the first click selected still reaches the same element).
 */
export function updateObjects(dom: Dom, state: PromptState): void {
  const key = JSON.stringify(state.objects.map((o) => [o.id, o.name, o.color, hasPrompts(o)]));
  if (dom.objects.dataset.key !== key && !dom.objects.querySelector("input")) {
    dom.objects.dataset.key = key;
    dom.objects.textContent = "";
    for (const o of state.objects) {
      const b = h("button", {
        type: "button",
        role: "option",
        "data-object-id": String(o.id),
        title: "Select (click); rename (double click)",
      });
      const swatch = h("span", { class: "sam-swatch" });
      swatch.style.background = o.color;
      b.append(swatch, h("span", { class: "sam-name" }, o.name + (hasPrompts(o) ? "" : " (empty)")));
      dom.objects.appendChild(b);
    }
  }
  for (const b of Array.from(dom.objects.querySelectorAll<HTMLButtonElement>("button[data-object-id]"))) {
    const on = Number(b.dataset.objectId) === state.active ? "true" : "false";
    if (b.getAttribute("aria-selected") !== on) {
      b.setAttribute("aria-selected", on);
      b.setAttribute("aria-pressed", on);
    }
  }
}

/**
 * A candidate's predicted IoU for display: clamped to 0..1 (the model's estimate can fall
 * outside, e.g. with untrained weights); the tooltip gives the raw value and says why.
 */
export function scoreLabel(raw: number): { text: string; title: string } {
  if (!Number.isFinite(raw)) return { text: "?", title: "no predicted IoU" };
  const shown = Math.min(1, Math.max(0, raw));
  const text = shown.toFixed(2);
  let title = `predicted IoU ${text} (the model's own estimate of this mask's quality)`;
  if (shown !== raw) {
    title += `; raw value ${raw.toFixed(3)}, shown clamped to 0..1 (an estimate outside 0..1 means the model is unsure, e.g. untrained weights)`;
  }
  return { text, title };
}

/**
 * Candidate chooser for the active object's ambiguity candidates:
 * `button[data-candidate=K]` labelled with the predicted IoU; the candidate shown is pressed.
 */
export function updateCandidates(dom: Dom, entry: MaskEntry | undefined, chosen: number | null): void {
  const scores = entry?.scores ?? [];
  const shown = entry ? (chosen ?? entry.candidate) : null;
  const key = scores.length > 1 ? JSON.stringify([entry?.objectId, scores, shown]) : "";
  if (dom.candidates.dataset.key === key) return;
  dom.candidates.dataset.key = key;
  dom.candidates.textContent = "";
  if (!key) return;
  dom.candidates.appendChild(h("span", { class: "sam-label" }, "Candidates (predicted IoU):"));
  scores.forEach((score, k) => {
    const { text, title } = scoreLabel(score);
    dom.candidates.appendChild(
      h(
        "button",
        {
          type: "button",
          "data-candidate": String(k),
          "data-raw-score": String(score),
          "aria-pressed": k === shown ? "true" : "false",
          title: `Use candidate ${k + 1}: ${title}`,
        },
        `${k + 1}: ${text}`,
      ),
    );
  });
}

/**
 * The note after the status word: what the last "segment everything" found, the keep-mode
 * hint, or the way out of the failed state.
 */
export function statusNote(t: {
  status: string;
  mode: string;
  everythingCount: number | null;
  /** The masks shown were offered by the kernel (e.g. proposals), not segment-everything's. */
  overlay?: boolean;
}): string {
  // status "error": the model could not be loaded or the image not encoded; either way no
  // prompt can get a mask, and the error line says what to do.
  if (t.status === "error") return "Prompt tools are off: the message above says what to do.";
  const parts: string[] = [];
  if (t.overlay && t.everythingCount !== null) {
    parts.push(`Shown: ${t.everythingCount} mask${t.everythingCount === 1 ? "" : "s"} to pick`);
  } else if (t.everythingCount === 0) {
    parts.push("Everything: no masks found: lower pred_iou_thresh / stability_score_thresh (\u2699)");
  } else if (t.everythingCount !== null) {
    parts.push(`Everything: ${t.everythingCount} mask${t.everythingCount === 1 ? "" : "s"}`);
  }
  if (t.mode === "keep") parts.push("Keep mode: click a shown mask to keep it as an object (+ Point: back to prompts)");
  return parts.join(" \u00b7 ");
}

export function updateStatus(dom: Dom, status: string, progress: number, note = ""): void {
  if (dom.statusNote.textContent !== note) dom.statusNote.textContent = note;
  dom.root.dataset.status = status;
  dom.status.dataset.status = status;
  dom.statusText.textContent = STATUS_TEXT[status] ?? status;
  const busy = status === "loading" || status === "encoding" || status === "segmenting";
  dom.progress.hidden = !busy;
  if (busy && progress > 0) {
    dom.progress.value = Math.min(1, progress);
    dom.progress.textContent = `${Math.round(progress * 100)}%`;
  } else {
    dom.progress.removeAttribute("value"); // indeterminate
  }
}

export function updateMessages(dom: Dom, notice: string, error: string): void {
  dom.notice.textContent = notice;
  dom.notice.hidden = !notice;
  dom.errorText.textContent = error;
  dom.error.hidden = !error;
}
