/**
 * Latest-wins throttle for hover requests.
 *
 * - At most one request in flight: the next one goes out when the reply to the one in flight
 *   arrives (`reply(seq)`), or after `timeoutMs` if no reply comes.
 * - At most one request per `intervalMs` (default ~15/s).
 * - Never a queue: while waiting, only the newest position is kept.
 * - Every request carries a new `seq`; `reply(seq)` says whether a reply is current, i.e. for
 *   the latest request sent and not superseded by `clear()`. Older replies are to be ignored.
 *   (A reply for the latest request is current even if the pointer has moved on since: it is
 *   the freshest preview there is, and the next request is already on its way.)
 * - `hold(ms)`: a click's prompt is on its way; no request goes out (the newest position is
 *   kept) until `release()` (its mask was drawn) or `ms` pass, so hover previews never
 *   compete with the click for the kernel or the browser.
 */

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const defaultClock: Clock = {
  now: () => (typeof performance !== "undefined" ? performance.now() : Date.now()),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface HoverThrottleOptions {
  /** Send a request. */
  send: (seq: number, x: number, y: number) => void;
  /** Tell the other side the hover ended (pointer left); not a request, gets no reply. */
  sendClear: (seq: number) => void;
  intervalMs?: number;
  timeoutMs?: number;
  clock?: Clock;
}

export class HoverThrottle {
  private readonly opts: Required<HoverThrottleOptions>;
  private seq = 0;
  /** seq of the newest request sent (a clear also moves it, so its replies are stale). */
  private latest = 0;
  private inFlight: number | null = null;
  private pending: [number, number] | null = null;
  private lastSent = -Infinity;
  /** True until the first request and after a clear with no request since. */
  private cleared = true;
  private waitTimer: unknown = null;
  private timeoutTimer: unknown = null;
  private holdTimer: unknown = null;

  constructor(options: HoverThrottleOptions) {
    this.opts = {
      intervalMs: 1000 / 15,
      timeoutMs: 1500,
      clock: defaultClock,
      ...options,
    };
  }

  /** The pointer is at (x, y): request a preview there, as soon as the rules allow. */
  request(x: number, y: number): void {
    this.pending = [x, y];
    this.pump();
  }

  /**
   * A reply for `seq` arrived. Returns true if it is current (should be drawn); stale
   * replies return false. Frees the in-flight slot when it answers the request in flight.
   */
  reply(seq: number): boolean {
    const current = seq === this.latest && !this.cleared;
    if (this.inFlight !== null && seq === this.inFlight) {
      this.inFlight = null;
      this.cancel("timeout");
      this.pump();
    }
    return current;
  }

  /** The hover ended: forget any pending position, invalidate replies, tell the other side. */
  clear(): void {
    this.pending = null;
    this.cancel("wait");
    // The request in flight is stale now (the kernel drops it without a reply): free its
    // slot, so the next request does not wait for the timeout.
    this.inFlight = null;
    this.cancel("timeout");
    if (this.cleared) return; // nothing was requested since the last clear
    this.cleared = true;
    this.seq += 1;
    this.latest = this.seq;
    this.opts.sendClear(this.seq);
  }

  /** Send nothing until `release()` or for at most `ms` (a click's mask is on its way). */
  hold(ms = 1000): void {
    this.cancel("wait");
    this.cancel("hold");
    this.holdTimer = this.opts.clock.setTimeout(() => {
      this.holdTimer = null;
      this.pump();
    }, ms);
  }

  /** End a `hold` (the click's mask arrived); a kept position is requested now. */
  release(): void {
    if (this.holdTimer === null) return;
    this.cancel("hold");
    this.pump();
  }

  /** Whether requests are held back for a click. */
  get held(): boolean {
    return this.holdTimer !== null;
  }

  /** Whether a request is awaiting its reply. */
  get busy(): boolean {
    return this.inFlight !== null;
  }

  /** Stop all timers (the view is going away). */
  dispose(): void {
    this.pending = null;
    this.cancel("wait");
    this.cancel("timeout");
    this.cancel("hold");
  }

  private cancel(which: "wait" | "timeout" | "hold"): void {
    const key = which === "wait" ? "waitTimer" : which === "timeout" ? "timeoutTimer" : "holdTimer";
    if (this[key] !== null) {
      this.opts.clock.clearTimeout(this[key]);
      this[key] = null;
    }
  }

  private pump(): void {
    if (this.pending === null || this.inFlight !== null || this.waitTimer !== null || this.holdTimer !== null) return;
    const { clock, intervalMs } = this.opts;
    const wait = this.lastSent + intervalMs - clock.now();
    if (wait > 0) {
      this.waitTimer = clock.setTimeout(() => {
        this.waitTimer = null;
        this.pump();
      }, wait);
      return;
    }
    const [x, y] = this.pending;
    this.pending = null;
    this.seq += 1;
    this.latest = this.seq;
    this.inFlight = this.seq;
    this.cleared = false;
    this.lastSent = clock.now();
    this.timeoutTimer = clock.setTimeout(() => {
      this.timeoutTimer = null;
      this.inFlight = null;
      this.pump();
    }, this.opts.timeoutMs);
    this.opts.send(this.seq, x, y);
  }
}
