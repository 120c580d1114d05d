/**
 * The Explain panel (`div.sam-explain`, below the candidates): what the kernel computed from
 * the active object's last decode (docs/ARCHITECTURE.md, "Widget protocol", `explain`).
 *
 * Pure parts: `parseExplain` (content check), `acceptExplain` (stale-drop: image, object,
 * seq), `explainCaptions` (the text of the 4 mask tiles), `pngDataUrl`; for
 * segment-everything `parseExplainEverything`, `stageLabel` and `drawGrid` (the point grid
 * over the image). The panel's stage selector (`button[data-stage=K]`) calls `onStage`. The DOM part,
 * `ExplainPanel`, rewrites its children from one accepted message; the embedding PCA comes
 * once per image and is kept until the image changes.
 */
import { asBytes, type BufferLike } from "./codec";
import { imageToStage, type View } from "./coords";
import { h } from "./dom";
import { useStageSpace } from "./draw";
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

export interface AmgStageInfo {
  name: string;
  description: string;
  count: number;
  removed: number;
}

export interface ExplainEverythingMessage {
  type: "explain_everything";
  image_id: number;
  width: number;
  height: number;
  /** Point prompts of every crop, XY image px. */
  grid: [number, number][];
  decoded: number;
  /** One label map buffer per stage, in this order. */
  stages: AmgStageInfo[];
}

/** Validate an `explain_everything` message's content; malformed content gives null. */
export function parseExplainEverything(r: Record<string, unknown>): ExplainEverythingMessage | null {
  if (r.type !== "explain_everything" || !isInt(r.image_id) || !isInt(r.decoded)) return null;
  if (!isInt(r.width) || !isInt(r.height) || r.width < 0 || r.height < 0) return null;
  if (!Array.isArray(r.grid) || !Array.isArray(r.stages)) return null;
  const grid = r.grid.filter(
    (p): p is [number, number] => Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === "number"),
  );
  const stages = r.stages.filter(
    (s): s is AmgStageInfo => !!s && typeof s === "object" && typeof s.name === "string" && isInt(s.count),
  );
  if (grid.length !== r.grid.length || stages.length !== r.stages.length) return null;
  return {
    type: "explain_everything",
    image_id: r.image_id,
    width: r.width,
    height: r.height,
    grid,
    decoded: r.decoded,
    stages: stages.map((s) => ({
      name: s.name,
      description: typeof s.description === "string" ? s.description : "",
      count: s.count,
      removed: isInt(s.removed) ? s.removed : 0,
    })),
  };
}

/** A stage button's text: "name: count (-removed)". */
export function stageLabel(s: AmgStageInfo): string {
  return `${s.name.replace(/_/g, " ")}: ${s.count}${s.removed > 0 ? ` (−${s.removed})` : ""}`;
}

/** Dots at the grid's points, over the markers (stage space). */
export function drawGrid(ctx: CanvasRenderingContext2D, view: View, grid: readonly [number, number][]): void {
  useStageSpace(ctx, view);
  ctx.fillStyle = "rgba(255,255,255,0.9)";
  ctx.strokeStyle = "rgba(0,0,0,0.8)";
  ctx.lineWidth = 1;
  for (const [x, y] of grid) {
    const [sx, sy] = imageToStage(view, x, y);
    ctx.beginPath();
    ctx.arc(sx, sy, 2.5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

/** The panel's DOM: rebuilt from each accepted message. */
export class ExplainPanel {
  readonly el: HTMLDivElement;
  /** Segment-everything part: the request button, then the stage selector. */
  readonly everything: HTMLDivElement;
  private readonly body: HTMLDivElement;
  /** Called with the stage index a stage button selects. */
  onStage: (index: number) => void = () => {};
  /** Called when the user asks for the segment-everything explanation. */
  onRequest: () => void = () => {};
  private pca: { imageId: number; url: string } | null = null;
  /** `image_id:object_id:seq` of the explanation on screen ("" before the first). */
  key = "";

  constructor() {
    this.el = h("div", { class: "sam-explain", "aria-label": "Explain panel" });
    this.el.hidden = true;
    this.body = h("div", { class: "sam-explain-body" });
    this.everything = h("div", { class: "sam-explain-everything" });
    this.el.append(this.body, this.everything);
    this.everything.addEventListener("click", (e) => {
      const t = e.target as HTMLElement;
      const b = t.closest<HTMLButtonElement>("button[data-stage]");
      if (b) this.onStage(Number(b.dataset.stage));
      else if (t.closest("button[data-action=explain-everything]")) this.onRequest();
    });
    this.clear();
  }

  /** Show the stage selector of an `explain_everything` message, `selected` pressed. */
  showStages(msg: ExplainEverythingMessage, selected: number): void {
    this.everything.textContent = "";
    this.everything.appendChild(this.requestButton("Explain again"));
    const row = h("div", { class: "sam-explain-stages", role: "group", "aria-label": "Filter stages" });
    row.appendChild(h("span", { class: "sam-label" }, `${msg.grid.length} grid points, ${msg.decoded} masks decoded →`));
    msg.stages.forEach((s, k) => {
      const b = h("button", { type: "button", "data-stage": String(k), title: s.description }, stageLabel(s));
      b.setAttribute("aria-pressed", k === selected ? "true" : "false");
      row.appendChild(b);
    });
    this.everything.appendChild(row);
    const current = msg.stages[selected];
    if (current) this.everything.appendChild(h("div", { class: "sam-explain-why" }, current.description));
  }

  private requestButton(label: string): HTMLButtonElement {
    return h(
      "button",
      {
        type: "button",
        "data-action": "explain-everything",
        title: "Segment everything stage by stage: the point grid and the masks left after each filter",
      },
      label,
    );
  }

  setVisible(on: boolean): void {
    this.el.hidden = !on;
  }

  /** Forget what is shown (a new image). */
  clear(): void {
    this.pca = null;
    this.key = "";
    this.body.textContent = "";
    this.body.appendChild(h("div", { class: "sam-explain-title" }, "Explain: click an object"));
    this.everything.textContent = "";
    this.everything.appendChild(this.requestButton("Explain segment-everything stages"));
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
    this.body.textContent = "";
    this.body.append(title, masks, why, maps, pe);
    this.key = `${msg.image_id}:${msg.object_id}:${msg.seq}`;
    this.el.dataset.key = this.key;
  }
}
