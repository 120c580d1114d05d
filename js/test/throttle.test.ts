import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HoverThrottle } from "../src/throttle";

type Sent = [number, number | null, number | null];

function setup(intervalMs = 100, timeoutMs = 1000) {
  const sent: Sent[] = [];
  const t = new HoverThrottle({
    send: (seq, x, y) => sent.push([seq, x, y]),
    sendClear: (seq) => sent.push([seq, null, null]),
    intervalMs,
    timeoutMs,
    clock: { now: () => Date.now(), setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as number) },
  });
  return { t, sent };
}

describe("HoverThrottle", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  it("sends the first request at once and keeps one in flight", () => {
    const { t, sent } = setup();
    t.request(1, 1);
    expect(sent).toEqual([[1, 1, 1]]);
    t.request(2, 2);
    t.request(3, 3);
    vi.advanceTimersByTime(500);
    expect(sent).toHaveLength(1); // still waiting for the reply
    expect(t.reply(1)).toBe(true);
    expect(sent).toEqual([
      [1, 1, 1],
      [2, 3, 3], // only the newest position, never the stale (2, 2)
    ]);
  });

  it("respects the minimum interval even when replies are fast", () => {
    const { t, sent } = setup(100);
    t.request(1, 1);
    vi.advanceTimersByTime(10);
    t.reply(1);
    t.request(2, 2);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(89);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([
      [1, 1, 1],
      [2, 2, 2],
    ]);
  });

  it("never exceeds the rate under continuous movement with instant replies", () => {
    const { t, sent } = setup(1000 / 15);
    for (let ms = 0; ms < 3000; ms += 4) {
      t.request(ms, ms);
      if (sent.length) t.reply(sent[sent.length - 1][0]);
      vi.advanceTimersByTime(4);
    }
    expect(sent.length).toBeLessThanOrEqual(46); // 15/s over 3 s, plus the first
    expect(sent.length).toBeGreaterThanOrEqual(40);
  });

  it("moves on after the timeout when no reply comes", () => {
    const { t, sent } = setup(100, 1000);
    t.request(1, 1);
    t.request(2, 2);
    vi.advanceTimersByTime(999);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent.slice(-1)[0]).toEqual([2, 2, 2]);
    // the late reply to request 1 is stale and does not free request 2's slot
    expect(t.reply(1)).toBe(false);
    t.request(3, 3);
    vi.advanceTimersByTime(500);
    expect(sent).toHaveLength(2);
    expect(t.reply(2)).toBe(true);
    expect(sent.slice(-1)[0]).toEqual([3, 3, 3]);
  });

  it("a reply for the latest request is current even if the pointer moved on", () => {
    const { t } = setup();
    t.request(1, 1);
    t.request(2, 2); // pending, not sent yet
    expect(t.reply(1)).toBe(true);
  });

  it("clear sends a clear once, drops pending positions and makes older replies stale", () => {
    const { t, sent } = setup();
    t.clear();
    expect(sent).toHaveLength(0); // nothing requested yet: nothing to clear
    t.request(1, 1);
    t.request(2, 2);
    t.clear();
    t.clear();
    expect(sent).toEqual([
      [1, 1, 1],
      [2, null, null],
    ]);
    expect(t.reply(1)).toBe(false); // superseded by the clear
    vi.advanceTimersByTime(5000);
    expect(sent).toHaveLength(2); // the pending (2, 2) was dropped
    t.request(4, 4);
    expect(sent.slice(-1)[0]).toEqual([3, 4, 4]);
    expect(t.reply(3)).toBe(true);
  });

  it("dispose stops timers", () => {
    const { t, sent } = setup();
    t.request(1, 1);
    t.request(2, 2);
    t.dispose();
    vi.advanceTimersByTime(5000);
    expect(sent).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("HoverThrottle.hold (a click pre-empts hover)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  it("sends nothing while held, then only the newest position on release", () => {
    const { t, sent } = setup(10);
    t.hold(1000);
    expect(t.held).toBe(true);
    t.request(1, 1);
    t.request(2, 2);
    vi.advanceTimersByTime(500);
    expect(sent).toEqual([]);
    t.release();
    expect(t.held).toBe(false);
    expect(sent).toEqual([[1, 2, 2]]);
  });

  it("ends a hold by itself when no mask comes", () => {
    const { t, sent } = setup(10);
    t.hold(300);
    t.request(5, 5);
    vi.advanceTimersByTime(299);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([[1, 5, 5]]);
  });

  it("after a clear the next request goes out without waiting for the stale one's timeout", () => {
    const { t, sent } = setup(10, 1500);
    t.request(1, 1); // in flight; the kernel will drop it unanswered
    vi.advanceTimersByTime(20);
    t.clear();
    t.request(2, 2);
    expect(sent.filter((s) => s[1] !== null).map((s) => s[1])).toEqual([1, 2]);
  });

  it("a reply to a request cleared by the click is stale", () => {
    const { t, sent } = setup(10);
    t.request(1, 1); // in flight
    t.clear(); // the click
    t.hold(1000);
    expect(t.reply(1)).toBe(false); // dropped before any decoding or drawing
    t.request(2, 2);
    expect(sent.filter((s) => s[1] !== null)).toHaveLength(1);
  });
});
