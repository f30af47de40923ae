// Simulated time for the deterministic simulator. Nothing here reads a real clock or waits on a
// real timer: time only moves when the driver calls step() / runUntil(), jumping straight to the
// next timer. A run is then a pure function of the seed and the code under test.
//
// Timers live in a binary heap ordered by (due time, insertion sequence): two timers due at the
// same millisecond fire in the order they were scheduled (an interval re-queued after its
// callback counts as scheduled then). As in Node, a delay below 1 ms (or not a number) is 1 ms,
// so a timer that re-arms itself always moves time forward. Fractional delays are kept exact.
//
// Driving async code: after each timer callback the driver waits for ONE real macrotask
// (setImmediate, ~1 µs). Node runs every queued microtask — and every microtask those queue — before
// the next macrotask, so all promise chains the callback set off (sim backend answers, keeper loops,
// awaits of sleep()) have run as far as they can before the next timer fires. This only holds for
// code whose promises settle through this clock or synchronously; real I/O (files, sockets,
// processes) completes at real times and must not be mixed in.
//
// `timers` ({ now, setTimeout, clearTimeout, setInterval, clearInterval }) is the shape injected
// into code that otherwise uses the global timers and performance.now() (e.g. OwnershipKeeper's
// `timers` option); sleep(ms, signal) replaces node:timers/promises' setTimeout (race.ts `sleep`).

/** What a callback scheduled with extra arguments receives. */
type Callback = (...args: unknown[]) => void;

interface Entry {
  at: number;
  seq: number;
  fn: Callback;
  args: unknown[];
  /** Interval period, or null for a one-shot timer. */
  repeat: number | null;
  /** Scheduled and not cleared (a one-shot stops being live when it fires). */
  live: boolean;
  clock: SimClock;
}

const ENTRIES = new WeakMap<SimTimer, Entry>();

/** Handle of a sim timer. ref/unref/hasRef exist so code written for Node's Timeout runs unchanged. */
export class SimTimer {
  readonly id: number;
  #ref = true;
  constructor(id: number) {
    this.id = id;
  }
  ref(): this {
    this.#ref = true;
    return this;
  }
  /** No effect on the simulation (nothing keeps a sim "process" alive); remembered for hasRef(). */
  unref(): this {
    this.#ref = false;
    return this;
  }
  hasRef(): boolean {
    return this.#ref;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

/** The injectable timer functions (structurally what OwnershipKeeper's `timers` option takes). */
export interface SimTimers {
  /** Simulated milliseconds (monotonic). */
  now(): number;
  setTimeout(fn: Callback, ms?: number, ...args: unknown[]): SimTimer;
  /** Accepts anything, as Node does: only a live timer of this clock is cleared. */
  clearTimeout(handle: unknown): void;
  setInterval(fn: Callback, ms?: number, ...args: unknown[]): SimTimer;
  clearInterval(handle: unknown): void;
}

export interface SimClockOptions {
  /** Time at construction, ms (default 0). */
  start?: number;
}

/** The error a sleep() rejects with when its signal aborts — shaped like node:timers/promises'. */
export class SimAbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(cause: unknown) {
    super('The operation was aborted', { cause });
    this.name = 'AbortError';
  }
}

function earlier(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Node's rule: a delay that is not a number >= 1 (and <= 2^31 - 1) becomes 1 ms. */
function delayOf(ms: unknown): number {
  const n = Number(ms);
  return n >= 1 && n <= 2 ** 31 - 1 ? n : 1;
}

export class SimClock {
  #now: number;
  #seq = 0;
  #ids = 0;
  #live = 0;
  #heap: Entry[] = [];
  /** Bound functions for injection; `this`-free, so they can be passed around one by one. */
  readonly timers: SimTimers;

  constructor(opts: SimClockOptions = {}) {
    const start = opts.start ?? 0;
    if (!Number.isFinite(start)) throw new RangeError(`SimClock: start must be a finite number, got ${String(start)}`);
    this.#now = start;
    this.timers = {
      now: () => this.now(),
      setTimeout: (fn, ms, ...args) => this.setTimeout(fn, ms, ...args),
      clearTimeout: (h) => this.clearTimeout(h),
      setInterval: (fn, ms, ...args) => this.setInterval(fn, ms, ...args),
      clearInterval: (h) => this.clearInterval(h),
    };
  }

  /** Simulated time, ms. */
  now(): number {
    return this.#now;
  }

  setTimeout(fn: Callback, ms?: number, ...args: unknown[]): SimTimer {
    return this.#schedule(fn, delayOf(ms), null, args);
  }

  setInterval(fn: Callback, ms?: number, ...args: unknown[]): SimTimer {
    const period = delayOf(ms);
    return this.#schedule(fn, period, period, args);
  }

  clearTimeout(handle: unknown): void {
    if (!(handle instanceof SimTimer)) return;
    const e = ENTRIES.get(handle);
    if (!e) return;
    if (e.clock !== this) throw new Error(`SimClock: timer ${handle.id} belongs to another clock`);
    if (!e.live) return;
    e.live = false; // stays in the heap until it surfaces (lazy deletion)
    this.#live--;
  }

  clearInterval(handle: unknown): void {
    this.clearTimeout(handle);
  }

  /** Resolves after `ms` simulated ms; rejects with an AbortError (code ABORT_ERR) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new SimAbortError(signal.reason));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.clearTimeout(timer);
        reject(new SimAbortError(signal?.reason));
      };
      const timer = this.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of live (scheduled, not cleared) timers; an interval counts once. */
  pending(): number {
    return this.#live;
  }

  /** Due time of the earliest live timer, or null when none is scheduled. */
  nextAt(): number | null {
    return this.#peek()?.at ?? null;
  }

  /** Lets every queued microtask (and those they queue) run, without moving time. */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * Fires the earliest timer: settles first (so work queued since the last step has scheduled its
   * timers), pops it, sets now to its due time, runs it, settles. False when no timer is left.
   * A callback that throws rejects step() (the simulation is broken, not the simulated code).
   */
  async step(): Promise<boolean> {
    await this.settle();
    const e = this.#peek();
    if (!e) return false;
    this.#fire(e);
    await this.settle();
    return true;
  }

  /**
   * step() without the settle before: for a driver that runs nothing asynchronous between two
   * calls (the simulator's loop), whose previous call already settled. Half the macrotask waits,
   * the largest cost of a simulated run.
   */
  async fireNext(): Promise<boolean> {
    const e = this.#peek();
    if (!e) return false;
    this.#fire(e);
    await this.settle();
    return true;
  }

  /** Fires every timer due at or before `t`, in order, then sets now = t. Returns how many fired. */
  async runUntil(t: number): Promise<number> {
    if (Number.isNaN(t)) throw new RangeError('SimClock.runUntil: time is NaN');
    let fired = 0;
    for (;;) {
      await this.settle();
      const e = this.#peek();
      if (!e || e.at > t) break;
      this.#fire(e);
      fired++;
    }
    if (t > this.#now) this.#now = t;
    return fired;
  }

  /** runUntil(now + ms). */
  async runFor(ms: number): Promise<number> {
    return this.runUntil(this.#now + ms);
  }

  /**
   * Fires timers in order until `cond()` holds (checked after settling, before each timer) or the
   * next timer lies beyond now + maxMs. True when the condition was met; now is then the time it
   * became true. False on timeout, with now = the deadline.
   */
  async runUntilTrue(cond: () => boolean, maxMs: number): Promise<boolean> {
    const deadline = this.#now + maxMs;
    for (;;) {
      await this.settle();
      if (cond()) return true;
      const e = this.#peek();
      if (!e || e.at > deadline) break;
      this.#fire(e);
    }
    if (deadline > this.#now) this.#now = deadline;
    return false;
  }

  #schedule(fn: Callback, ms: number, repeat: number | null, args: unknown[]): SimTimer {
    if (typeof fn !== 'function') throw new TypeError('SimClock: the callback must be a function');
    const handle = new SimTimer(++this.#ids);
    const e: Entry = { at: this.#now + ms, seq: this.#seq++, fn, args, repeat, live: true, clock: this };
    ENTRIES.set(handle, e);
    this.#live++;
    this.#push(e);
    return handle;
  }

  /** Pops `e` (the live top of the heap) and runs it at its due time. */
  #fire(e: Entry): void {
    this.#pop();
    if (e.at > this.#now) this.#now = e.at;
    if (e.repeat === null) {
      e.live = false;
      this.#live--;
    }
    try {
      e.fn(...e.args);
    } finally {
      if (e.repeat !== null && e.live) {
        e.at = this.#now + e.repeat;
        e.seq = this.#seq++;
        this.#push(e);
      }
    }
  }

  /** The earliest live entry, discarding cleared ones on top. */
  #peek(): Entry | undefined {
    while (this.#heap.length > 0 && !this.#heap[0]!.live) this.#pop();
    return this.#heap[0];
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(e, h[parent]!)) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  #pop(): Entry | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && earlier(h[r]!, h[l]!) ? r : l;
      if (!earlier(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}
