/** Collects undo functions for everything a view adds (listeners, observers, timers). */
export class Disposer {
  private fns: (() => void)[] = [];

  add(fn: () => void): void {
    this.fns.push(fn);
  }

  listen<K extends keyof HTMLElementEventMap>(
    target: HTMLElement,
    type: K,
    handler: (ev: HTMLElementEventMap[K]) => void,
    options?: AddEventListenerOptions,
  ): void;
  listen(target: EventTarget, type: string, handler: (ev: Event) => void, options?: AddEventListenerOptions): void;
  listen(target: EventTarget, type: string, handler: (ev: never) => void, options?: AddEventListenerOptions): void {
    const fn = handler as unknown as EventListener;
    target.addEventListener(type, fn, options);
    this.add(() => target.removeEventListener(type, fn, options));
  }

  /** Run every undo function once, newest first. Errors in one do not stop the others. */
  dispose(): void {
    const fns = this.fns.reverse();
    this.fns = [];
    for (const fn of fns) {
      try {
        fn();
      } catch (err) {
        console.error("sam-widget: cleanup failed", err);
      }
    }
  }
}
