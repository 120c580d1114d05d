/** A stand-in for the anywidget model (Backbone-like get/set/on/off) and a 2D context. */
type Handler = (...args: unknown[]) => void;

export class FakeModel {
  attrs: Record<string, unknown>;
  handlers = new Map<string, Set<Handler>>();
  sent: Record<string, unknown>[] = [];
  saves = 0;
  widget_manager = { get_model: () => Promise.reject(new Error("no manager")) };

  constructor(attrs: Record<string, unknown>) {
    this.attrs = { ...attrs };
  }
  get(key: string): any {
    return this.attrs[key];
  }
  set(key: string, value: unknown): void {
    const old = this.attrs[key];
    this.attrs[key] = value;
    if (JSON.stringify(old) !== JSON.stringify(value)) this.trigger(`change:${key}`);
  }
  on(name: string, fn: Handler): void {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name)!.add(fn);
  }
  off(name?: string | null, fn?: Handler | null): void {
    if (!name) return this.handlers.clear();
    if (!fn) return void this.handlers.delete(name);
    this.handlers.get(name)?.delete(fn);
  }
  save_changes(): void {
    this.saves += 1;
  }
  send(content: Record<string, unknown>): void {
    this.sent.push(content);
  }
  trigger(name: string, ...args: unknown[]): void {
    for (const fn of [...(this.handlers.get(name) ?? [])]) fn(...args);
  }
  /** The kernel changes a trait (no echo into `sent`). */
  kernelSet(key: string, value: unknown): void {
    this.set(key, value);
  }
  /** The kernel sends a custom message. */
  kernelSend(content: Record<string, unknown>, buffers: DataView[] = []): void {
    this.trigger("msg:custom", content, buffers);
  }
  listenerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }
  sentOfType(type: string): Record<string, unknown>[] {
    return this.sent.filter((m) => m.type === type);
  }
}

/** Records draw calls; enough of CanvasRenderingContext2D for the widget. */
export function fakeContext(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const calls: string[] = [];
  const ctx: Record<string, unknown> = {
    canvas,
    calls,
    globalAlpha: 1,
    imageSmoothingEnabled: true,
    fillStyle: "",
    strokeStyle: "",
    lineWidth: 1,
    createImageData: (w: number, h: number) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) }),
  };
  ctx.drawImage = (src: { tagName?: string; id?: string }) => calls.push(`drawImage ${src.id ?? ""} alpha=${ctx.globalAlpha}`);
  for (const m of ["setTransform", "clearRect", "putImageData", "beginPath", "arc", "fill", "stroke", "moveTo", "lineTo", "strokeRect", "setLineDash"]) {
    ctx[m] = () => calls.push(m);
  }
  return ctx as unknown as CanvasRenderingContext2D;
}
