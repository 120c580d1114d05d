/**
 * The Explain panel (`div.sam-explain`, below the candidates): what the kernel computed from
 * the active object's last decode (docs/ARCHITECTURE.md, "Widget protocol", `explain`).
 *
 * Pure parts: `parseExplain` (content check), `acceptExplain` (stale-drop: image, object,
 * seq), `explainCaptions` (the text of the 4 mask tiles), `pngDataUrl`. The DOM part,
 * `ExplainPanel`, rewrites its children from one accepted message; the embedding PCA comes
 * once per image and is kept until the image changes.
 */
import { asBytes, type BufferLike } from "./codec";
import { h } from "./dom";
import type { PromptState } from "./state";

export interface ExplainMessage {
  type: "explain";
  image_id: number;
  object_id: number;
  seq: number;
  /** Predicted IoU of masks 0..3 (0: single-mask output, 1-3: multimask outputs). */
  ious: number[];
  /** Which of the 4 the widget shows. */
  shown: number;
  multimask: boolean;
  why: string;
  /** The decode got the previous mask as `mask_input`. */
  refined: boolean;
  /** Kind of the first prompt token ("positive", "box top-left", ...) and its XY. */
  token: string;
  token_xy: [number, number];
  /** Buffer names, in buffer order: mask0..mask3, attention, pe, pe_similarity[, pca]. */
  images: string[];
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/** Validate an `explain` message's content; malformed content gives null. */
export function parseExplain(r: Record<string, unknown>): ExplainMessage | null {
  if (r.type !== "explain" || !isInt(r.image_id) || !isInt(r.object_id) || !isInt(r.seq)) return null;
  if (!Array.isArray(r.ious) || r.ious.length !== 4 || !r.ious.every((v) => typeof v === "number")) return null;
  if (!isInt(r.shown) || r.shown < 0 || r.shown > 3) return null;
  if (!Array.isArray(r.images) || !r.images.every((n) => typeof n === "string")) return null;
  const xy = Array.isArray(r.token_xy) && r.token_xy.length === 2 ? r.token_xy.map(Number) : [Number.NaN, Number.NaN];
  return {
    type: "explain",
    image_id: r.image_id,
    object_id: r.object_id,
    seq: r.seq,
    ious: r.ious as number[],
    shown: r.shown,
    multimask: r.multimask === true,
    why: typeof r.why === "string" ? r.why : "",
    refined: r.refined === true,
    token: typeof r.token === "string" ? r.token : "",
    token_xy: [xy[0], xy[1]],
    images: r.images as string[],
  };
}

/**
 * Whether an explanation is for what is on screen: the current image, the active object,
 * and that object's current `seq` (an older click's explanation is dropped).
 */
export function acceptExplain(msg: ExplainMessage, imageId: number, state: PromptState): boolean {
  if (msg.image_id !== imageId || msg.object_id !== state.active) return false;
  const obj = state.objects.find((o) => o.id === msg.object_id);
  return !!obj && obj.seq === msg.seq;
}

export interface MaskCaption {
  title: string;
  iou: string;
  shown: boolean;
}

/** The caption of each of the 4 mask tiles. */
export function explainCaptions(msg: ExplainMessage): MaskCaption[] {
  return msg.ious.map((iou, k) => ({
    title: k === 0 ? "mask 0 (single)" : `mask ${k} (multi)`,
    iou: `IoU ${Number.isFinite(iou) ? iou.toFixed(3) : "?"}`,
    shown: k === msg.shown,
  }));
}

/** PNG bytes as a `data:` URL (small images: no object URLs to revoke). */
export function pngDataUrl(buf: BufferLike): string {
  const bytes = asBytes(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:image/png;base64,${btoa(bin)}`;
}

/** The panel's DOM: rebuilt from each accepted message. */
export class ExplainPanel {
  readonly el: HTMLDivElement;
  private pca: { imageId: number; url: string } | null = null;
  /** `image_id:object_id:seq` of the explanation on screen ("" before the first). */
  key = "";

  constructor() {
    this.el = h("div", { class: "sam-explain", "aria-label": "Explain panel" });
    this.el.hidden = true;
    this.clear();
  }

  setVisible(on: boolean): void {
    this.el.hidden = !on;
  }

  /** Forget what is shown (a new image). */
  clear(): void {
    this.pca = null;
    this.key = "";
    this.el.textContent = "";
    this.el.appendChild(h("div", { class: "sam-explain-title" }, "Explain: click an object"));
  }

  show(msg: ExplainMessage, buffers: readonly BufferLike[]): void {
    const url = (name: string): string | null => {
      const i = msg.images.indexOf(name);
      return i >= 0 && i < buffers.length ? pngDataUrl(buffers[i]) : null;
    };
    const pca = url("pca");
    if (pca) this.pca = { imageId: msg.image_id, url: pca };
    else if (this.pca && this.pca.imageId !== msg.image_id) this.pca = null;
    const title = h("div", { class: "sam-explain-title" });
    title.append(h("b", {}, "Explain"), document.createTextNode(` object #${msg.object_id}`));
    const masks = h("div", { class: "sam-explain-masks" });
    explainCaptions(msg).forEach((c, k) => {
      const fig = h("figure", { class: "sam-explain-tile", "data-mask": String(k) });
      if (c.shown) fig.classList.add("sam-explain-shown");
      const src = url(`mask${k}`);
      if (src) fig.appendChild(h("img", { src, alt: c.title }));
      const cap = h("figcaption", {}, `${c.title} \u00b7 ${c.iou}`);
      if (c.shown) cap.appendChild(h("b", {}, " \u25c0 shown"));
      fig.appendChild(cap);
      masks.appendChild(fig);
    });
    const why = h("div", { class: "sam-explain-why" }, msg.why);
    const maps = h("div", { class: "sam-explain-maps" });
    const figure = (name: string, src: string | null, caption: string) => {
      const fig = h("figure", { class: "sam-explain-tile", "data-map": name });
      if (src) fig.appendChild(h("img", { src, alt: caption }));
      fig.appendChild(h("figcaption", {}, caption));
      maps.appendChild(fig);
    };
    figure("attention", url("attention"), `final token\u2192image attention (mask ${msg.shown})`);
    figure("pe_similarity", url("pe_similarity"), `${msg.token} point PE \u00b7 dense PE`);
    figure("pca", this.pca?.url ?? null, "image embedding PCA");
    const pe = h("figure", { class: "sam-explain-pe", "data-map": "pe" });
    const peSrc = url("pe");
    if (peSrc) pe.appendChild(h("img", { src: peSrc, alt: "positional encoding" }));
    const [x, y] = msg.token_xy;
    pe.appendChild(
      h("figcaption", {}, `positional encoding of the ${msg.token} token at (${x.toFixed(0)}, ${y.toFixed(0)}): 256 values`),
    );
    this.el.textContent = "";
    this.el.append(title, masks, why, maps, pe);
    this.key = `${msg.image_id}:${msg.object_id}:${msg.seq}`;
    this.el.dataset.key = this.key;
  }
}
