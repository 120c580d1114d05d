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
  canUndo: boolean;
  canRedo: boolean;
  hasImage: boolean;
  everythingShown: boolean;
  zoom: number;
  opacity: number;
  state: PromptState;
}

function setPressed(b: HTMLButtonElement, on: boolean): void {
  const v = on ? "true" : "false";
  if (b.getAttribute("aria-pressed") !== v) b.setAttribute("aria-pressed", v);
}

export function updateToolbar(dom: Dom, t: ToolbarState): void {
  const b = dom.buttons;
  for (const m of ["positive", "negative", "box", "pan"] as const) setPressed(b[m], t.mode === m);
  setPressed(b.hover, t.hover);
  b.undo.disabled = !t.canUndo;
  b.redo.disabled = !t.canRedo;
  const active = activeObject(t.state);
  b["delete-object"].disabled = !active;
  b.clear.disabled = !active || !hasPrompts(active);
  b["segment-everything"].disabled = !t.hasImage;
  b["hide-everything"].hidden = !t.everythingShown;
  b["zoom-in"].disabled = !t.hasImage;
  b["zoom-out"].disabled = t.zoom <= 1;
  b["zoom-reset"].disabled = t.zoom <= 1;
  // Do not fight the user's thumb while they drag the slider.
  if (document.activeElement !== dom.opacity) dom.opacity.value = String(t.opacity);
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
  dom.candidates.appendChild(h("span", { class: "sam-label" }, "Candidates:"));
  scores.forEach((score, k) => {
    const text = Number.isFinite(score) ? score.toFixed(2) : "?";
    dom.candidates.appendChild(
      h(
        "button",
        {
          type: "button",
          "data-candidate": String(k),
          "aria-pressed": k === shown ? "true" : "false",
          title: `Use candidate ${k + 1} (predicted IoU ${text})`,
        },
        `${k + 1}: IoU ${text}`,
      ),
    );
  });
}

export function updateStatus(dom: Dom, status: string, progress: number): void {
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
