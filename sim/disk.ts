// Simulated shared disks for the deterministic simulator: the SCSI-3 persistent-reservation state
// of one LUN (SimDisk), the shared storage every node sees (SimSan, a registry of SimDisks by disk
// id), and one node's OwnershipBackend over it (SimBackend) with fault controls.
//
// PR semantics: exactly those of fencing/backend.ts's header, with the details the file backend
// (fencing/file.ts) documents as LIO's behaviour — test/unit/sim-disk.test.ts runs the same random
// operations against both and requires identical answers and states:
//  - one initiator per node (the node name): multipath is not modelled (the scsi backend registers
//    every path and hides that), nor are unit attentions (the scsi backend retries them away);
//  - registrations are listed in registration order (a re-registration keeps its place);
//  - REGISTER AND IGNORE sark≠0 always succeeds and bumps the generation; sark=0 unregisters
//    without a bump (releasing when the initiator held);
//  - REGISTER rk/sark: `conflict` unless rk is our current key (0 when unregistered); the holder
//    changing its key keeps the reservation (the holder is the initiator, not the key);
//  - RESERVE (type 1): unregistered -> `not-ready`; rk not ours -> `conflict`; free or already
//    ours -> ok; held by another -> `conflict`. No generation bump;
//  - PREEMPT AND ABORT: caller unregistered or rk not ours -> `conflict`; no OTHER registration
//    with the victim key -> `conflict`; else those registrations go, the reservation passes to the
//    caller when the victim held it, the generation is bumped. Victim key 0 -> `io` (illegal);
//  - RELEASE (backend.release = RELEASE + unregister): rk not ours -> `conflict`; else releases
//    when held and unregisters, no bump;
//  - keys outside 1..2^64-1 (0 where the call allows it) -> `io`, before any I/O.
//
// Who may write (canWrite, for the simulator's data invariant): reservation type 1 is SPC-3 Write
// Exclusive. While it is held, only the holder's initiator may write: every other initiator,
// registered or not, gets RESERVATION CONFLICT (a registration only gives the right to race).
// While NO reservation exists, PR restricts nobody: any initiator may write, registered or not.
// A simulator checking "never two writers" must therefore treat an unreserved disk as unfenced.
// canWrite is the PR rule only; whether the node can reach the disk at all (cut, hang) is the
// simulator's to combine.
//
// Faults, per SimBackend (= per node):
//  - latencyMs: each call waits that long on the SimClock, then executes atomically on the disk
//    and answers. 0 (default) = executes and answers at once (as a resolved promise). With a
//    latency, awaiting a call resolves only while something drives the clock (step/runUntil);
//    inspect the state directly with SimSan.disk(id) instead.
//  - cut: the node cannot reach the disk: a call that executes while cut throws `io` and changes
//    nothing (a path down fails fast, like a transport error).
//  - hang: a call that reaches the disk while hung waits. Un-hanging (hang = false) lets the
//    waiting calls execute, in the order they were issued. A call still waiting when its
//    commandTimeoutMs (from its start, latency included) runs out rejects with `io` ("did not
//    finish") and is NOT applied. That is what the scsi backend turns a hung sg_persist into: it
//    kills the process after DEFAULTS.scsiCommandTimeoutMs (10 s) and throws `io`, so the caller
//    never waits longer. commandTimeoutMs = Infinity models a caller with no deadline (calls
//    never settle until un-hung). Not modelled: a command the device applies while its answer
//    is lost (the keeper's "answer lost in transit" case).
import { DEFAULTS } from '../harness/defaults.ts';
import { OwnershipError } from '../fencing/backend.ts';
import type { DiskRef, Key, KeyList, OwnershipBackend, ReservationState } from '../fencing/backend.ts';
import { formatKey } from '../fencing/keys.ts';
import type { SimClock } from './clock.ts';

/** SPC-3 reservation type 1, Write Exclusive. */
export const WRITE_EXCLUSIVE = 1;
const MAX_KEY = (1n << 64n) - 1n;

/** The PR operations a SimBackend issues (for latency functions and the op observer). */
export type SimOp = 'verify' | 'registerIgnore' | 'reregister' | 'reserve' | 'preemptAbort' | 'readKeys' | 'readReservation' | 'release';

/** A copy of a disk's PR state. */
export interface SimDiskState {
  generation: number;
  /** [initiator, key] in registration order. */
  registrations: [string, Key][];
  /** Initiator holding the reservation, or null. */
  holder: string | null;
  type: number | null;
}

/** One executed operation, as reported to SimSan.observer. */
export interface SimOpRecord {
  at: number;
  node: string;
  disk: string;
  op: SimOp;
  /** 'ok', or the OwnershipError code it failed with. */
  result: 'ok' | OwnershipError['code'];
  generation: number;
}

function checkKey(disk: string, key: Key, what: string, allowZero: boolean): void {
  if (typeof key !== 'bigint' || key < 0n || key > MAX_KEY || (!allowZero && key === 0n)) {
    throw new OwnershipError('io', disk, `${what} ${String(key)} is not a valid reservation key (1..2^64-1)`);
  }
}

function conflict(disk: string, message: string): OwnershipError {
  return new OwnershipError('conflict', disk, message);
}

function describeMine(initiator: string, mine: Key | undefined): string {
  return `${initiator} is ${mine === undefined ? 'not registered' : `registered with ${formatKey(mine)}`}`;
}

/** The persistent-reservation state of one LUN. Operations are synchronous and atomic. */
export class SimDisk {
  readonly id: string;
  /** LUN identity checked by verify() when the DiskRef names one. */
  readonly wwn: string | undefined;
  #generation = 0;
  readonly #registrations = new Map<string, Key>();
  #holder: string | null = null;
  #type: number | null = null;

  constructor(id: string, opts: { wwn?: string } = {}) {
    if (typeof id !== 'string' || id === '') throw new Error('SimDisk: id is empty');
    this.id = id;
    this.wwn = opts.wwn;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Initiator holding the reservation, or null. */
  get holder(): string | null {
    return this.#holder;
  }

  /** The key `initiator` is registered with, or undefined. */
  keyOf(initiator: string): Key | undefined {
    return this.#registrations.get(initiator);
  }

  snapshot(): SimDiskState {
    return { generation: this.#generation, registrations: [...this.#registrations], holder: this.#holder, type: this.#type };
  }

  /** READ KEYS. */
  readKeys(): KeyList {
    return { generation: this.#generation, keys: [...this.#registrations.values()] };
  }

  /** READ RESERVATION: the holder's current key. */
  readReservation(): ReservationState {
    const holder = this.#holder === null ? null : (this.#registrations.get(this.#holder) ?? null);
    return { generation: this.#generation, holder, type: holder === null ? null : this.#type };
  }

  /** Write Exclusive (see the header): the holder, or anyone while nobody holds. */
  canWrite(initiator: string): boolean {
    return this.#holder === null || this.#holder === initiator;
  }

  /** REGISTER AND IGNORE EXISTING KEY (sark = key; 0n unregisters). */
  registerIgnore(initiator: string, key: Key): void {
    checkKey(this.id, key, 'service action key', true);
    if (key === 0n) {
      this.#unregister(initiator);
      return;
    }
    this.#registrations.set(initiator, key);
    this.#bump();
  }

  /** REGISTER rk=oldKey sark=newKey. */
  reregister(initiator: string, oldKey: Key, newKey: Key): void {
    checkKey(this.id, oldKey, 'reservation key', true);
    checkKey(this.id, newKey, 'service action key', true);
    const mine = this.#registrations.get(initiator) ?? 0n;
    if (mine !== oldKey) {
      throw conflict(this.id, `REGISTER with key ${formatKey(oldKey)}: ${initiator} is ${mine === 0n ? 'not registered' : `registered with ${formatKey(mine)}`}`);
    }
    if (newKey === 0n) {
      this.#unregister(initiator);
      return;
    }
    this.#registrations.set(initiator, newKey);
    this.#bump();
  }

  /** RESERVE, type 1. */
  reserve(initiator: string, key: Key): void {
    checkKey(this.id, key, 'reservation key', false);
    const mine = this.#registrations.get(initiator);
    if (mine === undefined) throw new OwnershipError('not-ready', this.id, `RESERVE by unregistered initiator ${initiator}`);
    if (mine !== key) throw conflict(this.id, `RESERVE with key ${formatKey(key)}: ${describeMine(initiator, mine)}`);
    if (this.#holder === null) {
      this.#holder = initiator;
      this.#type = WRITE_EXCLUSIVE;
      return;
    }
    if (this.#holder === initiator && this.#type === WRITE_EXCLUSIVE) return;
    throw conflict(this.id, `RESERVE: reservation held by ${this.#holder}`);
  }

  /** PREEMPT AND ABORT: remove every other registration with `victim`, take its reservation. */
  preemptAbort(initiator: string, key: Key, victim: Key): void {
    checkKey(this.id, key, 'reservation key', false);
    checkKey(this.id, victim, 'victim key', true);
    if (victim === 0n) throw new OwnershipError('io', this.id, 'PREEMPT AND ABORT with victim key 0 (illegal request)');
    const mine = this.#registrations.get(initiator);
    if (mine !== key) throw conflict(this.id, `PREEMPT AND ABORT with key ${formatKey(key)}: ${describeMine(initiator, mine)}`);
    const victims = [...this.#registrations].filter(([ini, k]) => k === victim && ini !== initiator).map(([ini]) => ini);
    if (victims.length === 0) throw conflict(this.id, `PREEMPT AND ABORT: no registration with key ${formatKey(victim)}`);
    for (const ini of victims) this.#registrations.delete(ini);
    if (this.#holder !== null && victims.includes(this.#holder)) {
      this.#holder = initiator;
      this.#type = WRITE_EXCLUSIVE;
    }
    this.#bump();
  }

  /** RELEASE (when held) and unregister. */
  release(initiator: string, key: Key): void {
    checkKey(this.id, key, 'reservation key', false);
    const mine = this.#registrations.get(initiator);
    if (mine !== key) throw conflict(this.id, `RELEASE with key ${formatKey(key)}: ${describeMine(initiator, mine)}`);
    this.#unregister(initiator);
  }

  #unregister(initiator: string): void {
    if (!this.#registrations.delete(initiator)) return;
    if (this.#holder === initiator) {
      this.#holder = null;
      this.#type = null;
    }
  }

  #bump(): void {
    this.#generation = (this.#generation + 1) >>> 0;
  }
}

/** The shared storage: every SimDisk by disk id, as every node's SimBackend sees it. */
export class SimSan {
  readonly #disks = new Map<string, SimDisk>();
  /** Called after every operation a SimBackend executed on a disk (not for calls that failed before reaching it). */
  observer: ((record: SimOpRecord) => void) | undefined;

  constructor(ids: Iterable<string> = []) {
    for (const id of ids) this.add(id);
  }

  /** Creates a blank disk (no registrations, generation 0). */
  add(id: string, opts: { wwn?: string } = {}): SimDisk {
    if (this.#disks.has(id)) throw new Error(`SimSan: disk ${id} exists already`);
    const d = new SimDisk(id, opts);
    this.#disks.set(id, d);
    return d;
  }

  get(id: string): SimDisk | undefined {
    return this.#disks.get(id);
  }

  /** The disk, or an Error naming the missing id. */
  disk(id: string): SimDisk {
    const d = this.#disks.get(id);
    if (!d) throw new Error(`SimSan: no disk ${id}`);
    return d;
  }

  ids(): string[] {
    return [...this.#disks.keys()];
  }

  /** The PR write rule (see the header) for `node` on disk `diskId`; throws for an unknown disk. */
  canWrite(node: string, diskId: string): boolean {
    return this.disk(diskId).canWrite(node);
  }
}

export interface SimBackendOptions {
  san: SimSan;
  /** This node's name: its one initiator on every disk. */
  node: string;
  clock: SimClock;
  /** Per-call latency, ms, or a function of the operation (e.g. drawing from a seeded Rng). Default 0. */
  latencyMs?: number | ((op: SimOp, disk: string) => number);
  /** A call not answered this long after it started rejects with `io`, unapplied (see the header). */
  commandTimeoutMs?: number;
}

interface HangWaiter {
  release: () => void;
}

/** One node's OwnershipBackend over a SimSan, with its fault controls (see the header). */
export class SimBackend implements OwnershipBackend {
  readonly name = 'sim';
  readonly ioFencing = true;
  readonly node: string;
  readonly san: SimSan;
  readonly #clock: SimClock;
  /** Fault: the node cannot reach any disk (calls throw `io`). */
  cut = false;
  /** Latency of every call (see SimBackendOptions.latencyMs). */
  latencyMs: number | ((op: SimOp, disk: string) => number);
  /** Deadline of one call, ms (default DEFAULTS.scsiCommandTimeoutMs; Infinity = none). */
  commandTimeoutMs: number;
  #hang = false;
  #waiters: HangWaiter[] = [];
  #inFlight = 0;

  constructor(opts: SimBackendOptions) {
    if (typeof opts.node !== 'string' || opts.node === '') throw new Error('SimBackend: option "node" is required');
    this.node = opts.node;
    this.san = opts.san;
    this.#clock = opts.clock;
    this.latencyMs = opts.latencyMs ?? 0;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULTS.scsiCommandTimeoutMs;
    if (!(this.commandTimeoutMs > 0)) throw new RangeError(`SimBackend: commandTimeoutMs must be > 0, got ${String(this.commandTimeoutMs)}`);
  }

  /** Fault: calls reaching the disk wait (see the header); setting false lets them proceed in order. */
  get hang(): boolean {
    return this.#hang;
  }
  set hang(v: boolean) {
    this.#hang = v;
    if (v) return;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) w.release();
  }

  /** Calls started and not yet answered (in latency or hung). */
  inFlight(): number {
    return this.#inFlight;
  }

  /** The PR write rule for this node on `diskId` (SimSan.canWrite). */
  canWrite(diskId: string): boolean {
    return this.san.canWrite(this.node, diskId);
  }

  guardDisk(disk: DiskRef): string {
    return `sim:${disk.id}`;
  }

  async verify(disk: DiskRef): Promise<void> {
    await this.#call('verify', disk, (d) => {
      if (disk.wwn !== undefined && d.wwn !== undefined && disk.wwn !== d.wwn) {
        throw new OwnershipError('identity', disk.id, `LUN identity is ${d.wwn}, expected ${disk.wwn}`);
      }
    });
  }

  async registerIgnore(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'service action key', true);
    await this.#call('registerIgnore', disk, (d) => d.registerIgnore(this.node, key));
  }

  async reregister(disk: DiskRef, oldKey: Key, newKey: Key): Promise<void> {
    checkKey(disk.id, oldKey, 'reservation key', true);
    checkKey(disk.id, newKey, 'service action key', true);
    await this.#call('reregister', disk, (d) => d.reregister(this.node, oldKey, newKey));
  }

  async reserve(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    await this.#call('reserve', disk, (d) => d.reserve(this.node, key));
  }

  async preemptAbort(disk: DiskRef, key: Key, victim: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    checkKey(disk.id, victim, 'victim key', true);
    if (victim === 0n) throw new OwnershipError('io', disk.id, 'PREEMPT AND ABORT with victim key 0 (illegal request)');
    await this.#call('preemptAbort', disk, (d) => d.preemptAbort(this.node, key, victim));
  }

  async readKeys(disk: DiskRef): Promise<KeyList> {
    return await this.#call('readKeys', disk, (d) => d.readKeys());
  }

  async readReservation(disk: DiskRef): Promise<ReservationState> {
    return await this.#call('readReservation', disk, (d) => d.readReservation());
  }

  async release(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    await this.#call('release', disk, (d) => d.release(this.node, key));
  }

  /** Latency, hang, cut, then the operation itself — atomically, at one simulated instant. */
  async #call<T>(op: SimOp, disk: DiskRef, run: (d: SimDisk) => T): Promise<T> {
    const deadline = this.#clock.now() + this.commandTimeoutMs;
    this.#inFlight++;
    try {
      const lat = typeof this.latencyMs === 'function' ? this.latencyMs(op, disk.id) : this.latencyMs;
      if (lat > 0) {
        if (this.#clock.now() + lat >= deadline) {
          await this.#clock.sleep(deadline - this.#clock.now());
          throw this.#timedOut(op, disk);
        }
        await this.#clock.sleep(lat);
      }
      while (this.#hang) {
        if (this.#clock.now() >= deadline) throw this.#timedOut(op, disk);
        await this.#waitUnhung(op, disk, deadline);
      }
      if (this.cut) throw new OwnershipError('io', disk.id, `${op}: ${this.node} cannot reach ${disk.id} (sim: cut)`);
      const d = this.san.get(disk.id);
      if (!d) throw new OwnershipError('open-failed', disk.id, `${op}: no such disk (sim)`);
      return this.#observe(op, d, run);
    } finally {
      this.#inFlight--;
    }
  }

  #observe<T>(op: SimOp, d: SimDisk, run: (d: SimDisk) => T): T {
    let result: SimOpRecord['result'] = 'ok';
    try {
      return run(d);
    } catch (err) {
      result = err instanceof OwnershipError ? err.code : 'io';
      throw err;
    } finally {
      this.san.observer?.({ at: this.#clock.now(), node: this.node, disk: d.id, op, result, generation: d.generation });
    }
  }

  #waitUnhung(op: SimOp, disk: DiskRef, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: unknown = null;
      const w: HangWaiter = {
        release: () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(w);
      if (Number.isFinite(deadline)) {
        timer = this.#clock.setTimeout(() => {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(this.#timedOut(op, disk));
        }, deadline - this.#clock.now());
      }
    });
  }

  #timedOut(op: SimOp, disk: DiskRef): OwnershipError {
    return new OwnershipError('io', disk.id, `${op} did not finish within ${this.commandTimeoutMs} ms (sim: hung)`);
  }
}
