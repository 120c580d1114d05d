/**
 * One rendered view of a SamWidget model: keeps the prompt state in step with the synced
 * traits, draws the canvases, and talks to the kernel (docs/ARCHITECTURE.md, "Widget
 * protocol"). Pointer/keyboard wiring lives in input.ts, DOM updates in panels.ts.
 */
import type { AnyModel } from "@anywidget/types";
import { asBytes, type BufferLike, decodeLabels } from "./codec";
import { clampView, resetView, stageSize, type View, zoomAt } from "./coords";
import { buildDom, type Dom } from "./dom";
import { Disposer } from "./disposer";
import { acceptExplain, drawGrid, type ExplainEverythingMessage, ExplainPanel } from "./explain";
import { drawMarkers, drawOverImage, markerShapes, prepareCanvas } from "./draw";
import { IDLE, type Gesture, type InputMode } from "./gesture";
import { bindInput, DEFAULT_RADIUS } from "./input";
import { MaskLayers } from "./layers";
import { acceptMask, decodeEverything, decodeHover, parseMessage } from "./messages";
import { statusNote, updateCandidates, updateMessages, updateObjects, updateStatus, updateToolbar } from "./panels";
import {
  type Action,
  activeObject,
  changedPrompt,
  emptyState,
  fromTraits,
  hasPrompts,
  nextColor,
  type PromptState,
  reduce,
  type Stroke,
  toTraits,
} from "./state";
import { buildSettings } from "./settings";
import { HoverThrottle } from "./throttle";

export type Layer = "image" | "overlay" | "hover" | "markers";

export class SamView {
  readonly dom: Dom;
  readonly model: AnyModel;
  readonly disposer = new Disposer();
  state: PromptState = emptyState();
  view: View = { imageWidth: 0, imageHeight: 0, stageWidth: 1, stageHeight: 1, zoom: 1, panX: 0, panY: 0 };
  dpr = 1;
  mode: InputMode = "positive";
  spaceHeld = false;
  gesture: Gesture = IDLE;
  /** Rubber band while dragging a box, stage px [x0, y0, x1, y1]. */
  rubber: [number, number, number, number] | null = null;
  /** The brush / eraser stroke being drawn (image px), null when none is. */
  liveStroke: Stroke | null = null;
  /** Brush / eraser radius (image px). */
  radius = DEFAULT_RADIUS;
  readonly layers = new MaskLayers();
  readonly throttle: HoverThrottle;
  readonly settings: ReturnType<typeof buildSettings>;
  /** The Explain panel below the candidates (shown while the `explain` trait is on). */
  readonly explain = new ExplainPanel();
  /** Segment-everything explained: its stages, and the one on the everything layer. */
  stages: { msg: ExplainEverythingMessage; buffers: BufferLike[]; selected: number } | null = null;
  private image: ImageBitmap | HTMLImageElement | null = null;
  private imageToken = 0;
  private localError = "";
  private dirty = new Set<Layer>();
  private raf: number | null = null;
  private disposed = false;
  private committing = false;
  /** Masks the last "segment everything" found (null: none run or hidden since). */
  everythingCount: number | null = null;
  /** The everything layer shows masks the kernel offered to pick (`show_overlay`). */
  everythingOverlay = false;

  constructor(model: AnyModel, el: HTMLElement) {
    this.model = model;
    this.dom = buildDom();
    el.appendChild(this.dom.root);
    this.settings = buildSettings({
      params: () => ({ ...((model.get("everything_params") as Record<string, unknown> | null) ?? {}) }),
      save: (params) => {
        model.set("everything_params", params);
        model.save_changes();
      },
      run: () => this.send({ type: "segment_everything" }),
    });
    this.dom.root.appendChild(this.settings.el);
    this.dom.candidates.after(this.explain.el);
    this.explain.setVisible(!!model.get("explain"));
    this.explain.onStage = (k) => this.showStage(k);
    this.explain.onRequest = () => this.send({ type: "explain_everything" });
    this.disposer.add(() => this.dom.root.remove());
    this.throttle = new HoverThrottle({
      send: (seq, x, y) => this.model.send({ type: "hover", seq, x, y }),
      sendClear: (seq) => this.model.send({ type: "hover", seq, x: null }),
    });
    this.disposer.add(() => this.throttle.dispose());
    this.disposer.add(() => {
      if (this.raf !== null) cancelAnimationFrame(this.raf);
      this.closeImage();
    });

    const on = (name: string, fn: (...args: never[]) => void) => {
      const cb = fn as (...args: unknown[]) => void;
      model.on(name, cb);
      this.disposer.add(() => model.off(name, cb));
    };
    on("change:objects", () => this.syncFromModel());
    on("change:active", () => this.syncFromModel());
    on("change:image_id", () => this.onNewImage());
    on("change:image_data", () => this.loadImage());
    on("change:image_width", () => this.layout());
    on("change:image_height", () => this.layout());
    on("change:width", () => this.layout());
    on("change:height", () => this.layout());
    on("change:opacity", () => this.refresh("overlay", "hover"));
    on("change:explain", () => {
      this.explain.setVisible(!!this.model.get("explain"));
      this.updatePanels();
    });
    on("change:hover", () => {
      if (!this.model.get("hover")) this.clearHover();
      this.updatePanels();
    });
    for (const t of ["status", "progress", "error", "notice", "can_undo", "can_redo"]) {
      on(`change:${t}`, () => this.updatePanels());
    }
    on("msg:custom", (msg: unknown, buffers: BufferLike[]) => this.onMessage(msg, buffers ?? []));

    bindInput(this);
    this.watchSize();
    this.syncFromModel();
    this.loadImage();
    this.model.send({ type: "sync" });
  }

  destroy(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.disposer.dispose();
  }

  // ---- state <-> traits -------------------------------------------------------------------

  syncFromModel(): void {
    if (this.committing) return; // our own model.set: the state is already up to date
    this.state = fromTraits(this.model.get("objects"), this.model.get("active"), this.state);
    this.layers.prune(this.state);
    this.refresh("overlay", "hover", "markers");
    this.updatePanels();
  }

  /** Apply a prompt action locally and send it to the kernel. */
  commit(action: Action): void {
    const next = reduce(this.state, action);
    if (next === this.state) return;
    const changed = changedPrompt(this.state, next);
    this.state = next;
    const t = toTraits(next);
    this.committing = true;
    try {
      this.model.set("objects", t.objects);
      this.model.set("active", t.active);
    } finally {
      this.committing = false;
    }
    this.model.save_changes();
    if (changed) {
      // The click's mask comes first: no hover request until it is drawn (or 1 s passed).
      this.throttle.clear();
      this.throttle.hold(1000);
      this.emit("sam-prompt", { objectId: changed.id, seq: changed.seq, time: performance.now() });
    }
    this.layers.prune(this.state);
    this.refresh("overlay", "hover", "markers");
    this.updatePanels();
  }

  send(content: Record<string, unknown>): void {
    this.model.send(content);
  }

  emit(type: string, detail: Record<string, unknown>): void {
    this.dom.root.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  setError(message: string): void {
    this.localError = message;
    this.updatePanels();
  }

  dismissError(): void {
    this.localError = "";
    if (this.model.get("error")) {
      this.model.set("error", "");
      this.model.save_changes();
    }
    this.updatePanels();
  }

  updatePanels(): void {
    const hasImage = this.view.imageWidth > 0;
    updateToolbar(this.dom, {
      mode: this.mode,
      hover: !!this.model.get("hover"),
      explain: !!this.model.get("explain"),
      canUndo: !!this.model.get("can_undo"),
      canRedo: !!this.model.get("can_redo"),
      hasImage,
      everythingShown: this.layers.everything !== null,
      stagesShown: this.stages !== null,
      failed: this.failed(),
      zoom: this.view.zoom,
      opacity: this.opacity(),
      radius: this.radius,
      state: this.state,
    });
    updateObjects(this.dom, this.state);
    const active = activeObject(this.state);
    const entry = active && hasPrompts(active) ? this.layers.masks.get(active.id) : undefined;
    updateCandidates(this.dom, entry, active?.candidate ?? null);
    const status = String(this.model.get("status") ?? "");
    const note = statusNote({
      status,
      mode: this.mode,
      everythingCount: this.everythingCount,
      overlay: this.everythingOverlay,
    });
    updateStatus(this.dom, status, Number(this.model.get("progress") ?? 0), note);
    updateMessages(this.dom, String(this.model.get("notice") ?? ""), this.localError || String(this.model.get("error") ?? ""));
    this.dom.placeholder.hidden = hasImage && this.image !== null;
    this.dom.stage.classList.toggle("sam-pan", this.mode === "pan" || this.spaceHeld);
  }

  /** The model could not be loaded: no prompt can get a mask. */
  failed(): boolean {
    return this.model.get("status") === "error";
  }

  /** Switch the input mode (toolbar, keys); leaving keep mode is always possible. */
  setMode(mode: InputMode): void {
    this.mode = mode;
    this.updatePanels();
  }

  opacity(): number {
    const v = Number(this.model.get("opacity"));
    return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0.5;
  }

  // ---- kernel messages ----------------------------------------------------------------------

  private onMessage(raw: unknown, buffers: BufferLike[]): void {
    const msg = parseMessage(raw);
    if (!msg) return;
    const imageId = this.model.get("image_id");
    try {
      if (msg.type === "mask") {
        const verdict = acceptMask(msg, buffers, imageId, this.state);
        if (!verdict.accept) return; // stale: another image or an older prompt
        this.layers.setMask(verdict.entry);
        this.drawNow("overlay");
        this.dom.root.dataset.drawnSeq = `${msg.object_id}:${msg.seq}`;
        this.emit("sam-drawn", { kind: "mask", objectId: msg.object_id, seq: msg.seq, time: performance.now() });
        if (msg.object_id === this.state.active) this.throttle.release();
        this.updatePanels();
      } else if (msg.type === "hover_mask") {
        const current = this.throttle.reply(msg.seq);
        if (!current || msg.image_id !== imageId || this.layers.everything) return;
        const mask = decodeHover(msg, buffers);
        const color = activeObject(this.state)?.color ?? nextColor(this.state.objects);
        this.layers.setHover(mask, msg.width, msg.height, color);
        this.drawNow("hover");
        this.emit("sam-drawn", { kind: "hover", objectId: this.state.active, seq: msg.seq, time: performance.now() });
      } else if (msg.type === "everything") {
        if (msg.image_id !== imageId) return;
        this.dropStages();
        this.everythingCount = msg.count;
        this.everythingOverlay = msg.source === "overlay";
        if (msg.count > 0) {
          this.layers.setEverything(decodeEverything(msg, buffers), msg.width, msg.height, msg.count);
          this.mode = "keep"; // what one does next; visible in the toolbar and the status line
        } else {
          this.layers.everything = null;
          if (this.mode === "keep") this.mode = "positive";
        }
        this.clearHover();
        this.drawNow("overlay");
        this.emit("sam-drawn", { kind: "everything", objectId: -1, seq: -1, count: msg.count, time: performance.now() });
        this.updatePanels();
      } else if (msg.type === "explain") {
        // Only the active object's current decode, and only while the panel is on.
        if (!this.model.get("explain") || !acceptExplain(msg, imageId, this.state)) return;
        this.explain.show(msg, buffers);
        this.emit("sam-drawn", { kind: "explain", objectId: msg.object_id, seq: msg.seq, time: performance.now() });
      } else if (msg.type === "explain_everything") {
        if (msg.image_id !== imageId || msg.stages.length === 0) return;
        this.stages = { msg, buffers: [...buffers], selected: msg.stages.length - 1 };
        this.showStage(this.stages.selected);
      } else if (msg.type === "clear_everything") {
        this.hideEverything();
      }
    } catch (err) {
      this.setError(`Could not read a ${msg.type} message from the kernel: ${(err as Error).message}`);
    }
  }

  /** Draw filter stage `k` of the explained segment-everything on the everything layer. */
  showStage(k: number): void {
    const st = this.stages;
    const info = st?.msg.stages[k];
    if (!st || !info) return;
    let labels: Uint16Array;
    try {
      labels = decodeLabels(st.buffers[k] ?? new Uint8Array(0), st.msg.width, st.msg.height);
    } catch (err) {
      this.setError(`Could not read stage ${info.name}: ${(err as Error).message}`);
      return;
    }
    st.selected = k;
    this.layers.setEverything(labels, st.msg.width, st.msg.height, info.count);
    this.everythingCount = info.count;
    this.everythingOverlay = false;
    if (this.mode === "keep") this.mode = "positive"; // stage masks are not keepable
    this.explain.showStages(st.msg, k);
    this.clearHover();
    this.refresh("overlay", "markers");
    this.updatePanels();
    this.emit("sam-drawn", { kind: "stage", objectId: -1, seq: -1, stage: info.name, count: info.count, time: performance.now() });
  }

  private dropStages(): void {
    if (!this.stages) return;
    this.stages = null;
    this.refresh("markers");
  }

  hideEverything(): void {
    this.dropStages();
    this.everythingCount = null;
    this.everythingOverlay = false;
    if (this.mode === "keep") this.mode = "positive";
    if (!this.layers.everything) {
      this.updatePanels();
      return;
    }
    this.layers.everything = null;
    this.refresh("overlay", "hover");
    this.updatePanels();
  }

  /** Highlight the everything-mask under the pointer (label 0: none). */
  setEverythingHover(label: number): void {
    if (this.layers.setEverythingHover(label)) this.refresh("hover");
  }

  /** Drop the hover preview (locally and, if one was asked for, in the kernel). */
  clearHover(): void {
    this.throttle.clear();
    if (this.layers.setHover(null, 0, 0, "")) this.refresh("hover");
  }

  // ---- image and layout ---------------------------------------------------------------------

  private onNewImage(): void {
    this.layers.reset();
    this.explain.clear();
    this.stages = null;
    this.everythingCount = null;
    this.everythingOverlay = false;
    if (this.mode === "keep") this.mode = "positive";
    this.throttle.clear();
    this.view = resetView(this.view);
    this.loadImage();
    this.layout();
  }

  private closeImage(): void {
    if (this.image && "close" in this.image) this.image.close();
    this.image = null;
  }

  async loadImage(): Promise<void> {
    const token = ++this.imageToken;
    const data = this.model.get("image_data") as BufferLike | null | undefined;
    const bytes = data ? asBytes(data) : new Uint8Array(0);
    if (bytes.byteLength === 0) {
      this.closeImage();
      this.layout();
      return;
    }
    const mime = String(this.model.get("image_mime") || "image/png");
    const blob = new Blob([bytes.slice()], { type: mime });
    try {
      const img = await decodeImage(blob);
      if (token !== this.imageToken || this.disposed) {
        if ("close" in img) img.close();
        return;
      }
      this.closeImage();
      this.image = img;
      if (this.localError.startsWith("Could not decode the image")) this.localError = "";
      this.layout();
    } catch (err) {
      if (token !== this.imageToken) return;
      this.closeImage(); // never leave the previous image under this image's masks
      this.refresh("image");
      this.setError(`Could not decode the image (${mime}): ${(err as Error).message}`);
    }
  }

  private watchSize(): void {
    const root = this.dom.root;
    if (typeof ResizeObserver !== "undefined") {
      let lastWidth = -1;
      const ro = new ResizeObserver(() => {
        if (root.clientWidth !== lastWidth) {
          lastWidth = root.clientWidth;
          this.layout();
        }
      });
      ro.observe(root);
      this.disposer.add(() => ro.disconnect());
    }
    // The window's height bounds the stage too (stageSize), so a resize relays out.
    this.disposer.listen(window, "resize", () => this.layout());
    // devicePixelRatio changes (browser zoom, moving to another screen) without a resize.
    let mql: MediaQueryList | null = null;
    const watchDpr = () => {
      mql?.removeEventListener("change", onDpr);
      mql = typeof matchMedia === "function" ? matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`) : null;
      mql?.addEventListener("change", onDpr);
    };
    const onDpr = () => {
      watchDpr();
      this.layout();
    };
    watchDpr();
    this.disposer.add(() => mql?.removeEventListener("change", onDpr));
  }

  /** Recompute the stage size from the available width and redraw everything. */
  layout(): void {
    const w = Number(this.model.get("image_width")) || (this.image ? imageSize(this.image)[0] : 0);
    const h = Number(this.model.get("image_height")) || (this.image ? imageSize(this.image)[1] : 0);
    const avail = Math.max(50, (this.dom.root.clientWidth || 640) - 2); // stage outline + margin
    const [sw, sh] = stageSize(w, h, {
      containerWidth: avail,
      viewportHeight: window.innerHeight || 800,
      width: Number(this.model.get("width")) || 0,
      height: Number(this.model.get("height")) || 0,
    });
    const old = this.view;
    const k = old.stageWidth > 0 ? sw / old.stageWidth : 1;
    this.view = clampView({ ...old, imageWidth: w, imageHeight: h, stageWidth: sw, stageHeight: sh, panX: old.panX * k, panY: old.panY * k });
    this.dpr = window.devicePixelRatio || 1;
    this.dom.stage.style.width = `${sw}px`;
    this.dom.stage.style.height = `${sh}px`;
    this.refresh("image", "overlay", "hover", "markers");
    this.updatePanels();
  }

  zoomBy(factor: number, sx = this.view.stageWidth / 2, sy = this.view.stageHeight / 2): void {
    this.setView(zoomAt(this.view, factor, sx, sy));
  }

  setView(v: View): void {
    this.view = v;
    this.refresh("image", "overlay", "hover", "markers");
    this.updatePanels();
  }

  // ---- drawing --------------------------------------------------------------------------------

  /** Redraw layers at the next animation frame (coalesced). */
  refresh(...layers: Layer[]): void {
    for (const l of layers) this.dirty.add(l);
    if (this.raf !== null || this.disposed) return;
    if (typeof requestAnimationFrame !== "function") {
      this.flush();
      return;
    }
    this.raf = requestAnimationFrame(() => {
      this.raf = null;
      this.flush();
    });
  }

  /** Redraw one layer now (a received mask: its `sam-drawn` event follows right after). */
  drawNow(layer: Layer): void {
    this.dirty.delete(layer);
    this.draw(layer);
  }

  private flush(): void {
    const layers = [...this.dirty];
    this.dirty.clear();
    for (const l of layers) this.draw(l);
  }

  private draw(layer: Layer): void {
    const canvas = this.dom[layer];
    const ctx = prepareCanvas(canvas, this.view, this.dpr);
    if (!ctx || this.view.imageWidth <= 0) return;
    if (layer === "image") {
      if (this.image) drawOverImage(ctx, this.image, this.view, 1, this.view.zoom < 4);
    } else if (layer === "overlay") {
      this.layers.drawOverlay(ctx, this.view, this.state, this.opacity());
    } else if (layer === "hover") {
      this.layers.drawHover(ctx, this.view, this.opacity());
    } else {
      if (this.stages) drawGrid(ctx, this.view, this.stages.msg.grid);
      const color = activeObject(this.state)?.color ?? nextColor(this.state.objects);
      drawMarkers(ctx, this.view, markerShapes(this.state, this.view), this.rubber, this.liveStroke, color);
    }
  }

  hasImage(): boolean {
    return this.view.imageWidth > 0 && this.view.imageHeight > 0;
  }
}

function imageSize(img: ImageBitmap | HTMLImageElement): [number, number] {
  return "naturalWidth" in img ? [img.naturalWidth, img.naturalHeight] : [img.width, img.height];
}

/** PNG/JPEG bytes -> something drawImage accepts. */
async function decodeImage(blob: Blob): Promise<ImageBitmap | HTMLImageElement> {
  if (typeof createImageBitmap === "function") return createImageBitmap(blob);
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } finally {
    URL.revokeObjectURL(url);
  }
}
