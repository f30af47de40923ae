// The holder's side of ownership: for every hierarchy this node owns, keep proving on disk that
// we are alive (refresh) and that the disks are still ours (check). The daemon reacts to 'lost'
// by stopping the hierarchy (or halting, per onLoss) at once.
//
// Refresh, every keyRefreshMs while contested: REGISTER rk=current sark=next generation on every
// disk. This is the disk acting as the last comm path: a challenger that cannot reach us over the
// network sees our key move and knows we are alive (race.ts: 'owner-alive-on-disk'). REGISTER is
// conditional on our current key, so a preempted holder gets `conflict` and never re-registers by
// accident. Contested (the daemon's `refreshNeeded`): a node that could race us for the hierarchy
// is not calm with us, i.e. we do not hear it or it says it does not hear us (heartbeat `doubts`,
// liveness.ts calm). A challenger watches our key only after it stopped hearing us, and it tells
// us so in its next heartbeat (sent at once) or we stop hearing it too; either way we refresh at
// once, well inside its liveness window. The refresh goes on for contestHoldMs after the last
// contest: a challenger's race begun just before it heard us again still watches our key for a
// whole liveness window (the simulator's one-way-cut found that). An idle cluster so writes
// nothing to its disks: the key refresh was the main idle cost of an owner, per owned disk.
//
// Check, every ownershipCheckMs: READ KEYS and READ RESERVATION on every disk; our key missing
// or another holder => lost, with the holder's key as `by`.
//
// Rules that keep it safe:
//  - refresh and check of one hierarchy run one at a time (a check must not race our own
//    key change); when both are due the more overdue runs first, so slow I/O delays both but
//    starves neither;
//  - a lost hierarchy is never touched again: no REGISTER, no RELEASE (release() of a lost
//    hierarchy only forgets it);
//  - I/O errors are logged and retried; ownership that cannot be proven is not ownership: after
//    LOST_AFTER_FAILED_CHECKS consecutive check rounds that failed or hung (≈ 3 × ownershipCheckMs
//    without one successful read) the hierarchy is declared lost with `by` = null. By then a
//    challenger may well have preempted us (livenessWindowMs is shorter);
//  - an answer lost in transit (the device applied our REGISTER but we saw an error) is recognised
//    afterwards: the disk shows our *next* key, which we then adopt instead of calling it a loss;
//  - markUnverified() (after the daemon detected that this process was frozen) makes every
//    hierarchy 'unverified' and checks it at once: while frozen, we may have been preempted.
import { DEFAULTS } from '../harness/defaults.ts';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DiskRef, Key, OwnershipBackend, OwnershipErrorCode } from './backend.ts';
import { OwnershipError } from './backend.ts';
import { formatKey, nextKey, nodeKey, nodePart, releasedKey } from './keys.ts';

export type Ownership =
  | { state: 'not-owned' }
  | { state: 'owned'; key: Key; since: number; lastVerified: number }
  | { state: 'lost'; by: Key | null; detail: string }
  | { state: 'unverified'; key: Key };

export interface OwnershipKeeperOptions {
  backend: OwnershipBackend;
  cluster: string;
  self: string;
  log: Logger;
  keyRefreshMs: number;
  ownershipCheckMs: number;
  /** Wall clock for `since` / `lastVerified`; default Date.now. */
  now?: () => number;
  /** Every timer and monotonic reading of the keeper (loops, watchdog, release retries); default
   *  the global timers and performance.now(). A simulated clock is injected here. */
  timers?: KeeperTimers;
  /** Whether a hierarchy's keys must keep moving now (see the file comment); default: always.
   *  Call reconsider() when its answer may have changed. */
  refreshNeeded?: (hierarchy: string) => boolean;
  /** Keys keep moving this long after refreshNeeded() last said so (see the file comment). */
  contestHoldMs?: number;
}

/** The timer functions the keeper uses; handles are opaque (whatever setTimeout returned). */
export interface KeeperTimers {
  /** Monotonic milliseconds (performance.now() by default). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const REAL_TIMERS: KeeperTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

/** Consecutive failed (or hung) check rounds after which ownership counts as lost. */
export const LOST_AFTER_FAILED_CHECKS = DEFAULTS.lostAfterFailedChecks;

interface Held {
  hierarchy: string;
  disks: DiskRef[];
  /** Key registered on each disk (they differ only while a refresh is half done). */
  diskKeys: Key[];
  /** Key every disk had after the last complete refresh. */
  key: Key;
  /** Target of a refresh round not yet complete on every disk. */
  pending: Key | null;
  since: number;
  lastVerified: number;
  status: 'owned' | 'unverified' | 'lost';
  lostBy: Key | null;
  lostDetail: string;
  failedChecks: number;
  /** Bumped by markUnverified(): a check that started before it proves nothing about after. */
  epoch: number;
  nextRefreshAt: number;
  nextCheckAt: number;
  /** timers.now() when refreshNeeded() last said yes (-Infinity: never). */
  contestedAt: number;
  /** timers.now() when the running operation started, or null when idle. */
  busySince: number | null;
  stopped: boolean;
  wake: () => void;
  loop: Promise<void>;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Errors a release is retried on: the disk (or the file backend's lock) was busy or not ready. */
const TRANSIENT: ReadonlySet<OwnershipErrorCode> = new Set(['io', 'not-ready', 'unit-attention']);
const RELEASE_ATTEMPTS = 3;

/**
 * One disk's hand-over, retried on transient errors: the reservation stays, under our released
 * marker (fencing/keys.ts RELEASED_GENERATION), for the next master to preempt at once. Never
 * RELEASE: an unreserved disk takes anyone's writes, also those of a copy preempted earlier that
 * has not noticed yet. A busy moment (a lock held through a machine-wide stall) is retried.
 */
async function releaseRetrying(backend: OwnershipBackend, disk: DiskRef, key: Key, timers: KeeperTimers): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await backend.reregister(disk, key, releasedKey(key));
    } catch (err) {
      if (attempt >= RELEASE_ATTEMPTS || !(err instanceof OwnershipError) || !TRANSIENT.has(err.code)) throw err;
      await new Promise<void>((r) => timers.setTimeout(r, 100 * attempt));
    }
  }
}

/** Stopped or lost: a function, not an inline test, because the state changes across awaits. */
function gone(h: Held): boolean {
  return h.stopped || h.status === 'lost';
}

export class OwnershipKeeper extends EventEmitter {
  readonly #backend: OwnershipBackend;
  readonly #log: Logger;
  readonly #refreshMs: number;
  readonly #checkMs: number;
  readonly #now: () => number;
  readonly #timers: KeeperTimers;
  readonly #ourPart: number;
  readonly #refreshNeeded: (hierarchy: string) => boolean;
  readonly #contestHoldMs: number;
  readonly #held = new Map<string, Held>();
  /** The watchdog's interval handle, or null when it is not running. */
  #watchdog: unknown = null;

  constructor(opts: OwnershipKeeperOptions) {
    super();
    if (!(opts.keyRefreshMs > 0) || !(opts.ownershipCheckMs > 0)) {
      throw new Error(`OwnershipKeeper: keyRefreshMs (${opts.keyRefreshMs}) and ownershipCheckMs (${opts.ownershipCheckMs}) must be > 0`);
    }
    this.#backend = opts.backend;
    this.#log = opts.log;
    this.#refreshMs = opts.keyRefreshMs;
    this.#checkMs = opts.ownershipCheckMs;
    this.#now = opts.now ?? Date.now;
    this.#timers = opts.timers ?? REAL_TIMERS;
    this.#ourPart = nodePart(nodeKey(opts.cluster, opts.self, 0));
    this.#refreshNeeded = opts.refreshNeeded ?? (() => true);
    this.#contestHoldMs = opts.contestHoldMs ?? 0;
  }

  /** refreshNeeded() may have changed: every loop looks again (a newly contested key moves at once). */
  reconsider(): void {
    for (const h of this.#held.values()) h.wake();
  }

  /** Start keeping a hierarchy whose disks acquire() just took with `key`. */
  adopt(hierarchy: string, disks: DiskRef[], key: Key): void {
    const existing = this.#held.get(hierarchy);
    if (existing && existing.status !== 'lost') throw new Error(`ownership of hierarchy ${hierarchy} is already kept (key ${formatKey(existing.key)})`);
    if (nodePart(key) !== this.#ourPart) throw new Error(`hierarchy ${hierarchy}: key ${formatKey(key)} is not this node's key`);
    if (disks.length === 0) throw new Error(`hierarchy ${hierarchy}: no disks to keep`);
    if (existing) this.#halt(existing);
    const t = this.#now();
    const m = this.#timers.now();
    const h: Held = {
      hierarchy,
      disks: [...disks],
      diskKeys: disks.map(() => key),
      key,
      pending: null,
      since: t,
      lastVerified: t,
      status: 'owned',
      lostBy: null,
      lostDetail: '',
      failedChecks: 0,
      epoch: 0,
      nextRefreshAt: m + this.#refreshMs,
      nextCheckAt: m + this.#checkMs,
      contestedAt: -Infinity,
      busySince: null,
      stopped: false,
      wake: () => undefined,
      loop: Promise.resolve(),
    };
    this.#held.set(hierarchy, h);
    h.loop = this.#run(h).catch((err: unknown) => {
      // #run handles its own errors; this is a last resort so the daemon never crashes.
      this.#declareLost(h, null, `ownership loop failed: ${describe(err)}`);
    });
  }

  /** Hand the disks over (our key becomes the released marker on every disk) and stop keeping the hierarchy. */
  async release(hierarchy: string): Promise<void> {
    const h = this.#held.get(hierarchy);
    if (!h) return;
    this.#held.delete(hierarchy);
    this.#halt(h);
    await h.loop; // let a running refresh finish, so we release with the key the disk has
    if (h.status === 'lost') return; // never touch a disk we lost
    const problems: string[] = [];
    for (const [i, disk] of h.disks.entries()) {
      const key = h.diskKeys[i] ?? h.key;
      try {
        await releaseRetrying(this.#backend, disk, key, this.#timers);
      } catch (err) {
        // `conflict`: our key is not on the disk any more (preempted before the keeper saw it, e.g.
        // by a peer that found us frozen). Giving the disk back is then already done; failing the
        // stop instead left the hierarchy FAILED here, which blocked every peer from taking it.
        if (err instanceof OwnershipError && err.code === 'conflict') {
          this.#log.warn({ hierarchy, disk: disk.id, err: describe(err) }, 'ownership: nothing to release, our key is already gone from the disk (preempted)');
          continue;
        }
        problems.push(`${disk.id}: ${describe(err)}`);
      }
    }
    this.#stopWatchdogIfIdle();
    if (problems.length) throw new Error(`releasing hierarchy ${hierarchy}: ${problems.join('; ')}`);
  }

  /**
   * release(), and when that fails (the disk unreachable) forget the hierarchy anyway: its key,
   * no longer refreshed, freezes on the disk. The error, or undefined.
   */
  async releaseOrForget(hierarchy: string): Promise<string | undefined> {
    try {
      await this.release(hierarchy);
      return undefined;
    } catch (e) {
      this.forget(hierarchy);
      return describe(e);
    }
  }

  /** After a loss: stop every loop for it and drop it; the disks are never touched again. */
  forget(hierarchy: string): void {
    const h = this.#held.get(hierarchy);
    if (!h) return;
    this.#held.delete(hierarchy);
    this.#halt(h);
    this.#stopWatchdogIfIdle();
  }

  get(hierarchy: string): Ownership {
    const h = this.#held.get(hierarchy);
    if (!h) return { state: 'not-owned' };
    if (h.status === 'lost') return { state: 'lost', by: h.lostBy, detail: h.lostDetail };
    if (h.status === 'unverified') return { state: 'unverified', key: h.key };
    return { state: 'owned', key: h.key, since: h.since, lastVerified: h.lastVerified };
  }

  /** After a detected freeze: nothing is owned until re-read from disk; check everything now. */
  markUnverified(): void {
    for (const h of this.#held.values()) {
      if (h.status === 'lost') continue;
      h.status = 'unverified';
      h.epoch++;
      h.nextCheckAt = 0;
      h.wake();
    }
  }

  stop(): void {
    for (const h of this.#held.values()) this.#halt(h);
    this.#held.clear();
    if (this.#watchdog !== null) this.#timers.clearInterval(this.#watchdog);
    this.#watchdog = null;
  }

  #halt(h: Held): void {
    h.stopped = true;
    h.wake();
  }

  async #run(h: Held): Promise<void> {
    while (!h.stopped && h.status !== 'lost') {
      // Uncontested, no refresh is due: nextRefreshAt stays where it was, so the first round after
      // contest comes at once (it is overdue) and goes before a check.
      const refreshAt = this.#contested(h) ? h.nextRefreshAt : Infinity;
      const wait = Math.min(h.nextCheckAt, refreshAt) - this.#timers.now();
      if (wait > 0) await this.#sleep(h, wait);
      if (gone(h)) return;
      const t = this.#timers.now();
      const refreshDue = t >= h.nextRefreshAt && this.#contested(h);
      // The most overdue goes first. Never "check first whenever due": with slow I/O (a check
      // longer than ownershipCheckMs) that would starve the refresh, our key would look frozen
      // and a challenger would preempt a live holder. (markUnverified sets nextCheckAt = 0.)
      if (t >= h.nextCheckAt && (h.nextCheckAt <= h.nextRefreshAt || !refreshDue)) {
        h.nextCheckAt = t + this.#checkMs;
        await this.#busy(h, () => this.#check(h), 'check');
      } else if (refreshDue) {
        h.nextRefreshAt = t + this.#refreshMs;
        await this.#busy(h, () => this.#refresh(h), 'refresh');
      }
    }
  }

  /** Contested now, or within contestHoldMs (the loop runs at least every refresh while contested, and reconsider() wakes it). */
  #contested(h: Held): boolean {
    const t = this.#timers.now();
    if (this.#refreshNeeded(h.hierarchy)) h.contestedAt = t;
    return t - h.contestedAt < this.#contestHoldMs || h.contestedAt === t;
  }

  #sleep(h: Held, ms: number): Promise<void> {
    const timers = this.#timers;
    return new Promise((resolve) => {
      const timer = timers.setTimeout(done, ms);
      function done(): void {
        timers.clearTimeout(timer);
        h.wake = () => undefined;
        resolve();
      }
      h.wake = done;
    });
  }

  /** Runs one check or refresh; `timing` (kind, hierarchy, ms) tells observers (metrics) how long it took. */
  async #busy(h: Held, op: () => Promise<void>, kind: 'check' | 'refresh'): Promise<void> {
    const t0 = this.#timers.now();
    h.busySince = t0;
    this.#ensureWatchdog();
    try {
      await op();
    } finally {
      h.busySince = null;
      this.#stopWatchdogIfIdle();
      this.emit('timing', kind, h.hierarchy, this.#timers.now() - t0);
    }
  }

  async #refresh(h: Held): Promise<void> {
    const next = h.pending ?? nextKey(h.key);
    h.pending = next;
    for (const [i, disk] of h.disks.entries()) {
      const cur = h.diskKeys[i] ?? h.key;
      if (cur === next) continue;
      try {
        await this.#backend.reregister(disk, cur, next);
        h.diskKeys[i] = next; // even when stopping: release() must use the key the disk has
        if (gone(h)) return;
      } catch (err) {
        if (gone(h)) return;
        if (err instanceof OwnershipError && err.code === 'conflict') {
          await this.#onRefreshConflict(h, i, next, err);
          if (gone(h) || h.diskKeys[i] !== next) return; // lost, or undecided: round incomplete
          continue;
        }
        this.#log.warn({ hierarchy: h.hierarchy, disk: disk.id, err: describe(err) }, 'ownership: key refresh failed, will retry');
        return; // next round retries from the keys each disk has
      }
    }
    h.key = next;
    h.pending = null;
  }

  /** REGISTER said our key is not ours: preempted, unless our previous attempt did apply. */
  async #onRefreshConflict(h: Held, i: number, next: Key, err: OwnershipError): Promise<void> {
    const disk = h.disks[i];
    if (!disk) return;
    let holder: Key | null;
    try {
      holder = (await this.#backend.readReservation(disk)).holder;
    } catch (readErr) {
      // Cannot tell "preempted" from "our last REGISTER applied unseen": the next check decides
      // (it reads keys and reservation, and knows the pending key), at most ownershipCheckMs away.
      this.#log.warn({ hierarchy: h.hierarchy, disk: disk.id, err: describe(readErr) }, 'ownership: refresh refused and the reservation cannot be read; the next check decides');
      return;
    }
    if (holder === next) {
      h.diskKeys[i] = next; // an earlier REGISTER applied although we saw an error
      return;
    }
    if (gone(h)) return;
    this.#declareLost(h, holder, `key refresh on ${disk.id} refused (${err.message}): preempted${holder === null ? '' : ` by ${formatKey(holder)}`}`);
  }

  async #check(h: Held): Promise<void> {
    const epoch = h.epoch;
    try {
      for (const [i, disk] of h.disks.entries()) {
        const mine = h.diskKeys[i] ?? h.key;
        const keys = await this.#backend.readKeys(disk);
        const res = await this.#backend.readReservation(disk);
        if (gone(h)) return;
        // A refresh whose answer was lost may have moved this disk to the pending key already.
        const pending = h.pending;
        const ours = res.holder !== null && (res.holder === mine || res.holder === pending) ? res.holder : mine;
        if (!keys.keys.includes(ours)) {
          this.#declareLost(h, res.holder, `our key ${formatKey(mine)} is no longer registered on ${disk.id} (holder: ${res.holder === null ? 'nobody' : formatKey(res.holder)})`);
          return;
        }
        if (res.holder !== ours) {
          this.#declareLost(h, res.holder, `${disk.id} is ${res.holder === null ? 'not reserved any more' : `reserved by ${formatKey(res.holder)}`}, not by us (${formatKey(mine)})`);
          return;
        }
        h.diskKeys[i] = ours;
      }
    } catch (err) {
      if (gone(h)) return;
      this.#checkFailed(h, describe(err));
      return;
    }
    if (epoch !== h.epoch) return; // frozen during this check: markUnverified() queued a new one
    h.failedChecks = 0;
    h.lastVerified = this.#now();
    if (h.status === 'unverified') {
      h.status = 'owned';
      this.#log.info({ hierarchy: h.hierarchy }, 'ownership: verified again after a freeze');
    }
  }

  #checkFailed(h: Held, why: string): void {
    h.failedChecks++;
    if (h.failedChecks >= LOST_AFTER_FAILED_CHECKS) {
      this.#declareLost(h, null, `ownership could not be verified for ${h.failedChecks} check rounds (${why})`);
    } else {
      this.#log.warn({ hierarchy: h.hierarchy, failed: h.failedChecks, err: why }, 'ownership: check failed, will retry');
    }
  }

  #declareLost(h: Held, by: Key | null, detail: string): void {
    if (h.status === 'lost' || h.stopped) return;
    h.status = 'lost';
    h.lostBy = by;
    h.lostDetail = detail;
    h.wake();
    this.#log.error({ hierarchy: h.hierarchy, by: by === null ? null : formatKey(by), detail }, 'ownership lost');
    this.emit('lost', h.hierarchy, by, detail);
  }

  /** One timer for every hierarchy, armed only while an operation runs (an idle node has no timer
   *  to wake it): an operation stuck in I/O counts as a failed check per interval. */
  #ensureWatchdog(): void {
    if (this.#watchdog !== null) return;
    this.#watchdog = this.#timers.setInterval(() => {
      const t = this.#timers.now();
      for (const h of this.#held.values()) {
        if (h.status === 'lost' || h.stopped || h.busySince === null) continue;
        const stuck = t - h.busySince;
        if (stuck >= this.#checkMs * (h.failedChecks + 1)) {
          this.#checkFailed(h, `an ownership operation has been hanging for ${Math.round(stuck)} ms`);
        }
      }
    }, this.#checkMs);
  }

  #stopWatchdogIfIdle(): void {
    if (this.#watchdog !== null && ![...this.#held.values()].some((h) => h.busySince !== null)) {
      this.#timers.clearInterval(this.#watchdog);
      this.#watchdog = null;
    }
  }
}
