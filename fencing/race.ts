// The ownership race: how a node that wants to run a hierarchy takes its disks. Works over any
// OwnershipBackend (file or scsi) using only the PR primitives, so the same code decides on a
// demo laptop and on a SAN. Time is injected (sleep, now) so tests can drive it with a fake clock.
//
// Exactly one racer wins because every step that takes a disk is a compare-and-swap on the
// device itself: RESERVE succeeds only on a free disk, and PREEMPT AND ABORT names the victim's
// exact key — if the victim refreshed (new generation) or another racer preempted it first, no
// registration matches and the device answers `conflict`.
//
// Key generation: the caller may pass `generation` (e.g. persisted across restarts); by default
// it is now() in ms modulo 2^32. What matters is that it differs from any key an earlier
// incarnation of this node left behind: that key was (its start time + one per refresh), and
// refreshes (every 250 ms) advance far slower than the clock, so the two cannot meet unless the
// clock went back. (Note `Date.now() & 0xffffffff` would be a signed int32 in JS: not used.)
//
// The holder's liveness is judged from its reservation key, read with READ RESERVATION (the
// holder's current key, whatever path or stale registrations it has): a live holder's keeper
// moves it to the next generation every keyRefreshMs.
import { DEFAULTS } from '../harness/defaults.ts';
import { setTimeout as delay } from 'node:timers/promises';
import type { DiskRef, Key, OwnershipBackend, ReservationState } from './backend.ts';
import { OwnershipError } from './backend.ts';
import { formatKey, isReleasedKey, nodeKey, nodePart, releasedKey } from './keys.ts';
import { mutant } from '../harness/core/mutants.ts';

export type AcquireOutcome =
  | { ok: true; key: Key; preempted?: Key }
  | {
      ok: false;
      reason: 'held-by-reachable' | 'owner-alive-on-disk' | 'lost-race' | 'error';
      holder?: Key;
      holderNode?: string;
      detail: string;
    };

/** What a challenger saw of a holder's key while the holder was suspect (see watchHolder). */
export interface HolderWatch {
  /** The holder's key at the last observation. */
  key: Key;
  /** When this holder (node part) was first observed holding. */
  firstSeenMs: number;
  /** When its key was last seen to change (or first seen): it has been frozen since at most this. */
  lastChangeMs: number;
}

export interface AcquireOptions {
  cluster: string;
  self: string;
  /** Wait this long before reserving a FREE disk (the decision core computes it from the priority rank; 0 for the node that currently runs it). */
  delayMs: number;
  /** Maps a holder key to a node name (by node part) and says if we can reach that node now (asked
   *  again at every poll of a liveness watch: the answer must be current, not a snapshot). */
  holderInfo: (key: Key) => { node: string | null; reachable: boolean };
  livenessWindowMs: number;
  /** How often the holder's key is re-read during the liveness watch. Default 100 ms. */
  keyPollMs?: number;
  /** Evidence gathered while the holder was merely suspect (see watchHolder) — lets the window overlap the dead time. */
  priorWatch?: HolderWatch;
  /** Generation of our fresh key; default now() mod 2^32 (see the header). */
  generation?: number;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

type Failure = Extract<AcquireOutcome, { ok: false }>;
type DiskResult = { ok: true; preempted?: Key } | Failure;

/** A disk whose reservation kept changing under us this many times is reported as an error. */
const MAX_ROUNDS = 4;
const DEFAULT_KEY_POLL_MS = DEFAULTS.keyPollMs;

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : undefined);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isConflict(err: unknown): boolean {
  return err instanceof OwnershipError && err.code === 'conflict';
}

/**
 * Take every disk of a hierarchy, or none. Must not be called for a hierarchy this node's keeper
 * already holds: our own live key would look like a stale one and be preempted.
 */
export async function acquire(backend: OwnershipBackend, disks: DiskRef[], opts: AcquireOptions): Promise<AcquireOutcome> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const pollMs = Math.max(1, opts.keyPollMs ?? DEFAULT_KEY_POLL_MS);
  // Same order on every node: two racers for several disks never hold one each and wait.
  const sorted = [...disks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.id === sorted[i - 1]?.id) {
      return { ok: false, reason: 'error', detail: `disk ${sorted[i]?.id} is listed twice` };
    }
  }

  let key: Key;
  try {
    key = nodeKey(opts.cluster, opts.self, opts.generation ?? now() % 2 ** 32);
  } catch (err) {
    return { ok: false, reason: 'error', detail: describe(err) };
  }
  const registered: DiskRef[] = [];
  const taken: DiskRef[] = [];
  let preempted: Key | undefined;
  let delayDone = opts.delayMs <= 0 || mutant('no-rank-delay');

  const holderFailure = (reason: Failure['reason'], holder: Key, detail: string): Failure => {
    const node = opts.holderInfo(holder).node;
    return { ok: false, reason, holder, ...(node !== null ? { holderNode: node } : {}), detail };
  };
  const who = (holder: Key): string => {
    const node = opts.holderInfo(holder).node;
    return `${formatKey(holder)}${node !== null ? ` (${node})` : ' (unknown node)'}`;
  };

  /** The rank delay, once per acquire: wait it out, then what the disk says now (null: no delay left). */
  const rankDelay = async (disk: DiskRef): Promise<ReservationState | null> => {
    if (delayDone) return null;
    delayDone = true;
    await sleep(opts.delayMs, opts.signal);
    return backend.readReservation(disk);
  };

  /** Watch a holder's key for the liveness window; 'frozen', what changed, or 'reachable'. */
  const watch = async (disk: DiskRef, victim: Key): Promise<{ frozen: true } | { frozen: false; now: ReservationState } | 'reachable'> => {
    const start = now();
    // A prior watch that ended on this very key proves it has not moved since its last change.
    const frozenSince = opts.priorWatch && opts.priorWatch.key === victim ? Math.min(start, opts.priorWatch.lastChangeMs) : start;
    for (;;) {
      const left = (mutant('preempt-without-window') ? 0 : opts.livenessWindowMs) - (now() - frozenSince);
      if (left <= 0) return { frozen: true };
      await sleep(Math.min(pollMs, left), opts.signal);
      const r = await backend.readReservation(disk);
      if (r.holder !== victim) return { frozen: false, now: r };
      // We hear it again and it says it runs the hierarchy (our view was older than its news, or
      // it came back): alive. Its keys move only while it knows of a contest, which may not be
      // yet, so its frozen key would not prove it dead (the simulator's lost-during-stop with a
      // slower stop had a racer preempt a live holder this way).
      if (opts.holderInfo(victim).reachable) return 'reachable';
    }
  };

  /** Preempt `victim` and check the device really made us holder. */
  const preempt = async (disk: DiskRef, victim: Key): Promise<'won' | ReservationState> => {
    try {
      await backend.preemptAbort(disk, key, victim);
    } catch (err) {
      if (!isConflict(err)) throw err;
      return await backend.readReservation(disk); // someone moved first: caller re-evaluates
    }
    const r = await backend.readReservation(disk);
    if (r.holder !== key) throw new Error(`preempt of ${formatKey(victim)} on ${disk.id} succeeded but the holder is ${r.holder === null ? 'nobody' : formatKey(r.holder)}`);
    return 'won';
  };

  const takeDisk = async (disk: DiskRef): Promise<DiskResult> => {
    let r = await backend.readReservation(disk);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const holder = r.holder;

      if (holder === null) {
        const again = await rankDelay(disk);
        if (again) {
          r = again;
          if (r.holder !== null && r.holder !== key) {
            return holderFailure('lost-race', r.holder, `${disk.id} was free, then taken by ${who(r.holder)} during our ${opts.delayMs} ms rank delay`);
          }
        }
        try {
          await backend.reserve(disk, key);
        } catch (err) {
          if (!isConflict(err)) throw err;
          const now2 = await backend.readReservation(disk);
          if (now2.holder === null) return { ok: false, reason: 'lost-race', detail: `RESERVE of ${disk.id} conflicted: ${describe(err)}` };
          return holderFailure('lost-race', now2.holder, `${disk.id} was reserved first by ${who(now2.holder)}`);
        }
        const check = await backend.readReservation(disk);
        if (check.holder !== key) {
          throw new Error(`RESERVE of ${disk.id} succeeded but the holder is ${check.holder === null ? 'nobody' : formatKey(check.holder)}`);
        }
        return { ok: true };
      }

      if (holder === key) return { ok: true };

      if (nodePart(holder) === nodePart(key)) {
        // A registration left by an earlier incarnation of this node (fence_scsi lesson: after a
        // reboot the initiator can come back as a new I_T nexus). It is ours: take it back.
        const got = await preempt(disk, holder);
        if (got === 'won') return { ok: true, preempted: holder };
        r = got;
        continue;
      }

      if (isReleasedKey(holder)) {
        // Handed over: its holder stopped everything and left the reservation under the released
        // marker. Taken at once (no liveness window), in rank order as a free disk is.
        const again = await rankDelay(disk);
        if (again && again.holder !== holder) {
          r = again;
          continue;
        }
        const got = await preempt(disk, holder);
        if (got === 'won') return { ok: true, preempted: holder };
        if (got.holder !== null && got.holder !== key) return holderFailure('lost-race', got.holder, `${disk.id} was handed over by ${who(holder)} and taken first by ${who(got.holder)}`);
        r = got;
        continue;
      }

      const info = opts.holderInfo(holder);
      if (info.reachable) {
        return holderFailure('held-by-reachable', holder, `${disk.id} is held by ${who(holder)}, which we can reach`);
      }

      const seen = await watch(disk, holder);
      if (seen === 'reachable') {
        return holderFailure('held-by-reachable', holder, `${disk.id} is held by ${who(holder)}, which we can reach again (it runs the hierarchy): not preempting`);
      }
      if (!seen.frozen) {
        const h2 = seen.now.holder;
        // Handed over while we watched: its marker carries its node part but is no sign of life.
        if (h2 !== null && nodePart(h2) === nodePart(holder) && !isReleasedKey(h2)) {
          return holderFailure('owner-alive-on-disk', h2, `${disk.id}: key of ${who(holder)} moved to ${formatKey(h2)} — it is alive, only unreachable; not preempting`);
        }
        if (h2 !== null && h2 !== key && !isReleasedKey(h2)) {
          return holderFailure('lost-race', h2, `${disk.id} was taken from ${who(holder)} by ${who(h2)} while we watched`);
        }
        r = seen.now; // released meanwhile (or, oddly, ours): evaluate again
        continue;
      }
      // Several survivors of a dead holder finish the window together: the same rank delay as
      // for a free disk lets the best of them preempt first.
      const again = await rankDelay(disk);
      if (again && again.holder !== holder) {
        r = again;
        continue;
      }
      const got = await preempt(disk, holder);
      if (got === 'won') return { ok: true, preempted: holder };
      const h2 = got.holder;
      if (h2 !== null && nodePart(h2) === nodePart(holder) && !isReleasedKey(h2)) {
        return holderFailure('owner-alive-on-disk', h2, `${disk.id}: ${who(holder)} refreshed its key to ${formatKey(h2)} just before our preempt; not preempting`);
      }
      if (h2 !== null && h2 !== key && !isReleasedKey(h2)) {
        return holderFailure('lost-race', h2, `${disk.id}: ${who(h2)} preempted ${formatKey(holder)} before us`);
      }
      r = got;
    }
    return { ok: false, reason: 'error', detail: `${disk.id}: the reservation changed ${MAX_ROUNDS} times while we tried to take it` };
  };

  /** Give back what we took and drop our registrations, so a loser keeps nothing on disk. */
  const giveBack = async (): Promise<string> => {
    const problems: string[] = [];
    for (const disk of [...registered].reverse()) {
      try {
        // Never RELEASE (see keys.ts RELEASED_GENERATION): hand it over.
        if (taken.includes(disk)) await backend.reregister(disk, key, releasedKey(key));
        else await backend.registerIgnore(disk, 0n);
      } catch (err) {
        problems.push(`${disk.id}: ${describe(err)}`);
      }
    }
    return problems.length ? `; giving back failed on ${problems.join(', ')}` : '';
  };

  try {
    for (const disk of sorted) {
      if (opts.signal?.aborted) throw new Error('aborted');
      if (!delayDone) {
        // Our own hand-over marker holds it (we released it earlier): registering makes us holder
        // again at once, so the rank delay comes first, as for any handed-over disk.
        const pre = await backend.readReservation(disk);
        if (pre.holder !== null && isReleasedKey(pre.holder) && nodePart(pre.holder) === nodePart(key)) {
          delayDone = true;
          await sleep(opts.delayMs, opts.signal);
        }
      }
      registered.push(disk); // before the call: a REGISTER whose answer was lost may have applied
      await backend.registerIgnore(disk, key);
      const result = await takeDisk(disk);
      if (!result.ok) {
        const extra = await giveBack();
        return { ...result, detail: result.detail + extra };
      }
      taken.push(disk);
      if (result.preempted !== undefined && preempted === undefined) preempted = result.preempted;
    }
  } catch (err) {
    const extra = await giveBack();
    const what = opts.signal?.aborted ? 'aborted' : describe(err);
    return { ok: false, reason: 'error', detail: `taking ${sorted.map((d) => d.id).join(', ')}: ${what}${extra}` };
  }
  return preempted !== undefined ? { ok: true, key, preempted } : { ok: true, key };
}

/**
 * One observation of a suspect holder: the daemon calls it every few hundred ms while a peer is
 * suspect, and passes the result as `priorWatch` to acquire(), so the liveness window overlaps
 * the dead time. Undefined when nobody holds the disk.
 */
export async function watchHolder(backend: OwnershipBackend, disk: DiskRef, prev: HolderWatch | undefined, now: number): Promise<HolderWatch | undefined> {
  const r = await backend.readReservation(disk);
  const key = r.holder;
  if (key === null) return undefined;
  if (prev === undefined || nodePart(prev.key) !== nodePart(key)) return { key, firstSeenMs: now, lastChangeMs: now };
  if (prev.key === key) return prev;
  return { key, firstSeenMs: prev.firstSeenMs, lastChangeMs: now };
}
