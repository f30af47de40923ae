// ============================================================================================
//  FILE BACKEND — THIS IS *NOT* I/O FENCING, AND IT IS FOR ONE HOST ONLY.
//  It reproduces the SCSI-3 persistent-reservation rules in a JSON file per disk so that the
//  race, the keeper and whole clusters can be demonstrated and tested on ONE machine (or on
//  namespaces sharing a filesystem). Nothing stops a node that lost the "reservation" from
//  writing to anything: the loser only stops because its own keeper notices. `ioFencing` is
//  false so every status display can say so. Use the 'scsi' backend for real data.
//  Single host: every node using one directory must run under the same kernel. Atomicity rests on
//  rename(2) and O_EXCL of one kernel (a network filesystem gives neither reliably), and a lock's
//  owner is judged alive or dead through this kernel's process table.
// ============================================================================================
//
// Layout: one state file per disk, `<dir>/<escaped disk id>.json` (stateFileName): "/" becomes
// "__", "_" becomes "_5f" and any other character outside [A-Za-z0-9.-] becomes "_" and its
// UTF-8 bytes in hex, so two ids never share a file (before, "web__data/x" and "web/data__x"
// both became web__data__x.json). Ids of letters, digits, ".", "-" and "/" (every id without "_"
// that the config schema allows) keep the name they had under the old mapping ("/" -> "__"
// only); a state file that an id with "_" had under the old mapping is still read, and moved to
// its new name by the next operation on it (see #migrate).
//   { "generation": 3, "registrations": { "<initiator>": "0x…" }, "holder": "<initiator>"|null, "type": 1|null }
// The initiator is the node name: one "I_T nexus" per node (the file backend has no paths:
// DiskRef.paths and .wwn are ignored; verify() checks the directory and the state file).
//
// Atomicity across processes: every PR OUT operation runs under an exclusive lock file
// (`<state>.lock`, created with O_CREAT|O_EXCL|O_NOFOLLOW) for its read-modify-write, and
// publishes the new state by writing a temp file (also O_EXCL|O_NOFOLLOW) and renaming it (no
// fsync: see #locked). PR IN (reads) take no lock: rename is atomic, so a reader sees the state
// before or after an operation, never half of one — and a reader is never stuck behind a frozen
// lock holder, which is exactly when a challenger needs to read.
//
// Why a lock file rather than flock(2): Node has no flock, and holding one through a helper
// process per operation costs a spawn. The price is stale-lock recovery, done here as:
//  - the lock records {pid, pid namespace, host (boot id), token}; a lock whose owner is a dead
//    pid of OUR pid namespace on OUR host (same boot id) is stale at once. The host matters: the
//    first pid namespace of every Linux host has the same id (pid:[4026531836]), so a pid
//    namespace alone took a live lock of another host for a dead one of ours. Cluster nodes on one
//    machine run in separate pid namespaces, where a pid means nothing — then, as for another
//    host or a lock without a host, only age counts;
//  - a lock older than `lockStaleMs` is stale whatever its owner: a SIGSTOPped (frozen) node must
//    not block the node that is about to preempt it;
//  - breaking is serialised by a second O_EXCL file (`.lock.break`) and re-checks the lock is the
//    same file (inode, mtime, content), so two breakers never remove a fresh lock;
//  - an owner re-reads the lock right before its rename and abandons the operation ('io', not
//    applied) if the lock is no longer its own — a frozen owner that wakes up after its lock was
//    broken does not overwrite newer state. A window of a few instructions between that check
//    and the rename remains: acceptable for a demo backend, another reason it is not fencing.
// The guard (harness/guard-lib.sh) takes the same lock with the same owner record and rules.
//
// PR semantics reproduced (backend.ts header, and LIO as recorded in the SCSI test bed):
//  - REGISTER AND IGNORE (sark≠0) always succeeds and bumps the generation; sark=0 unregisters
//    (no bump, as LIO) and releases the reservation when we held it;
//  - REGISTER rk/sark: `conflict` unless rk is our current key (rk=0 when unregistered);
//    a holder changing its key keeps the reservation (the holder is the initiator, not the key);
//  - RESERVE: unregistered -> 'not-ready' (LIO's answer); rk not ours -> 'conflict';
//    free or already ours (same type) -> ok; held by another -> 'conflict'. No generation bump;
//  - PREEMPT AND ABORT: caller unregistered or rk not ours -> 'conflict'; victim key matching no
//    other registration -> 'conflict' (SPC; this is what makes two racers preempting the same
//    frozen victim end with exactly one winner); else remove every registration with the victim's
//    key, hand us the reservation when the victim held it, bump the generation;
//  - RELEASE (our `release`): rk must be our key ('conflict' otherwise, as LIO answers an
//    unregistered or stale-key RELEASE); releases when we hold, then unregisters.
// The backend never logs: it throws OwnershipError and the caller decides.
import { DEFAULTS } from '../harness/defaults.ts';
import { randomUUID } from 'node:crypto';
import { closeSync, constants as fsConstants, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { access, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { OwnershipError } from './backend.ts';
import type { DiskRef, Key, KeyList, OwnershipBackend, OwnershipErrorCode, ReservationState } from './backend.ts';
import { formatKey, parseKey } from './keys.ts';

/** Write Exclusive: only the holder writes (a registered non-holder is blocked too). */
const RESERVATION_TYPE = 1;
const MAX_KEY = (1n << 64n) - 1n;
/** Lock, break and temp files: a new file or nothing (never an existing one, never through a symlink). */
const CREATE_EXCL = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export interface FileBackendOptions {
  /** Directory holding the state files (shared by every node using this backend). */
  dir: string;
  /** This node's name: the one initiator ("I_T nexus") it registers through. */
  initiator: string;
  /** A lock older than this is broken whatever its owner (frozen owners). Default 2000 ms. */
  lockStaleMs?: number;
  /** Give up waiting for a lock after this long ('io'). Default 3 × lockStaleMs. */
  lockTimeoutMs?: number;
}

interface DiskState {
  generation: number;
  /** initiator -> key, in registration order (as LIO lists them). */
  registrations: Map<string, Key>;
  holder: string | null;
  type: number | null;
}

interface StateDoc {
  generation: number;
  registrations: Record<string, string>;
  holder: string | null;
  type: number | null;
}

/** Checked by hand rather than with the schema library: this runs in the daemon, which keeps its
 *  memory footprint small by not loading zod (config validation runs in a child process). */
function checkStateDoc(v: unknown): StateDoc {
  const o = v as Partial<StateDoc> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('(root): expected an object');
  if (!Number.isInteger(o.generation) || o.generation! < 0 || o.generation! > 0xffffffff) throw new Error('generation: expected an integer 0..2^32-1');
  if (typeof o.registrations !== 'object' || o.registrations === null || Array.isArray(o.registrations)) throw new Error('registrations: expected an object');
  for (const [ini, k] of Object.entries(o.registrations)) {
    if (ini === '' || typeof k !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(k)) throw new Error(`registrations.${ini}: expected a 0x… key`);
  }
  if (o.holder !== null && (typeof o.holder !== 'string' || o.holder === '')) throw new Error('holder: expected a name or null');
  if (o.type !== null && !Number.isInteger(o.type)) throw new Error('type: expected an integer or null');
  for (const k of Object.keys(o)) if (!['generation', 'registrations', 'holder', 'type'].includes(k)) throw new Error(`${k}: unknown field`);
  return o as StateDoc;
}

function emptyState(): DiskState {
  return { generation: 0, registrations: new Map(), holder: null, type: null };
}

/** Refuses ids that could escape dir or hide (no NUL, backslash or leading dot). */
function checkId(id: string): void {
  if (typeof id !== 'string' || id === '') throw new Error('disk id is empty');
  if (id.includes('\0') || id.includes('\\') || id.startsWith('.')) {
    throw new Error(`disk id "${id}" cannot name a file (no NUL, backslash or leading dot)`);
  }
}

/**
 * `<hierarchy>/<resource>` -> `<hierarchy>__<resource>.json`, one file per id: "/" -> "__",
 * "_" -> "_5f", any other character outside [A-Za-z0-9.-] -> "_" + its UTF-8 bytes in hex. Every
 * "_" of a name starts "__" or "_" + two hex digits, so a name reads back to exactly one id.
 */
export function stateFileName(id: string): string {
  checkId(id);
  let name = '';
  for (const ch of id) {
    if (ch === '/') name += '__';
    else if (/^[A-Za-z0-9.-]$/.test(ch)) name += ch;
    else for (const b of Buffer.from(ch, 'utf8')) name += `_${b.toString(16).padStart(2, '0')}`;
  }
  return `${name}.json`;
}

/** The name the old mapping ("/" -> "__" only, not one-to-one) gave an id; read for compatibility. */
export function legacyStateFileName(id: string): string {
  checkId(id);
  return `${id.replaceAll('/', '__')}.json`;
}

function checkKey(disk: string, key: Key, what: string, allowZero: boolean): void {
  if (typeof key !== 'bigint' || key < 0n || key > MAX_KEY || (!allowZero && key === 0n)) {
    throw new OwnershipError('io', disk, `${what} ${String(key)} is not a valid reservation key (1..2^64-1)`);
  }
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function fsError(disk: string, path: string, action: string, err: unknown): OwnershipError {
  const code = errnoCode(err);
  const kind: OwnershipErrorCode = code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR' ? 'open-failed' : 'io';
  const msg = err instanceof Error ? err.message : String(err);
  return new OwnershipError(kind, disk, `${action} ${path}: ${msg}`, { path });
}

let pidNamespace: string | null | undefined;
/** Our pid namespace ("pid:[4026531836]"), or null when /proc cannot tell. Cached. */
async function ownPidNamespace(): Promise<string | null> {
  if (pidNamespace === undefined) {
    pidNamespace = await readlink('/proc/self/ns/pid').catch(() => null);
  }
  return pidNamespace;
}

let hostId: string | null | undefined;
/**
 * This host's boot id (random per boot, the same in every namespace of one kernel), or null when
 * /proc cannot tell. Cached. Not the host name: containers and UTS namespaces of one host differ
 * there, and two hosts may share one ("localhost").
 */
async function ownHost(): Promise<string | null> {
  if (hostId === undefined) {
    hostId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((s) => s.trim(), () => '')) || null;
  }
  return hostId;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM'; // exists, just not ours to signal
  }
}

interface LockOwner {
  pid?: number;
  ns?: string | null;
  host?: string | null;
  token?: string;
}

function parseLockOwner(raw: string): LockOwner {
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === 'object' && v !== null) return v as LockOwner;
  } catch {
    // empty (owner is between create and write) or torn: judged by age alone
  }
  return {};
}

export class FileBackend implements OwnershipBackend {
  readonly name = 'file';
  readonly ioFencing = false;
  readonly #dir: string;
  readonly #initiator: string;
  readonly #lockStaleMs: number;
  readonly #lockTimeoutMs: number;
  /** In-process queue per state file: our own concurrent operations wait here, not by polling. */
  readonly #queues = new Map<string, Promise<unknown>>();
  /** State files known to be under their (new) name: no old-name file to move any more. */
  readonly #current = new Set<string>();

  constructor(opts: FileBackendOptions) {
    if (!opts || typeof opts.dir !== 'string' || opts.dir === '') throw new Error('FileBackend: option "dir" is required');
    if (typeof opts.initiator !== 'string' || opts.initiator === '') {
      throw new Error('FileBackend: option "initiator" (the node name) is required');
    }
    this.#dir = opts.dir;
    this.#initiator = opts.initiator;
    this.#lockStaleMs = opts.lockStaleMs ?? DEFAULTS.fileLockStaleMs;
    this.#lockTimeoutMs = opts.lockTimeoutMs ?? 3 * this.#lockStaleMs;
    if (!(this.#lockStaleMs > 0) || !(this.#lockTimeoutMs > 0)) throw new Error('FileBackend: lock bounds must be > 0 ms');
  }

  /** Path of a disk's state file (for messages and tests). */
  statePath(disk: DiskRef): string {
    try {
      return join(this.#dir, stateFileName(disk.id));
    } catch (err) {
      throw new OwnershipError('identity', String(disk.id), (err as Error).message);
    }
  }

  /** Path the old, not one-to-one, mapping gave this disk; null when it is the same file. */
  #legacyPath(disk: DiskRef): string | null {
    const legacy = join(this.#dir, legacyStateFileName(disk.id));
    return legacy === this.statePath(disk) ? null : legacy;
  }

  guardDisk(disk: DiskRef): string {
    return this.statePath(disk);
  }

  async verify(disk: DiskRef): Promise<void> {
    const path = this.statePath(disk);
    try {
      const st = await stat(this.#dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      await access(this.#dir, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
    } catch (err) {
      throw fsError(disk.id, this.#dir, 'ownership directory', err);
    }
    await this.#read(disk, path); // garbled state is reported now rather than mid-failover
  }

  async registerIgnore(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'service action key', true);
    await this.#update(disk, (s) => {
      if (key === 0n) return this.#unregister(s);
      s.registrations.set(this.#initiator, key);
      s.generation = (s.generation + 1) >>> 0;
      return true;
    });
  }

  async reregister(disk: DiskRef, oldKey: Key, newKey: Key): Promise<void> {
    checkKey(disk.id, oldKey, 'reservation key', true);
    checkKey(disk.id, newKey, 'service action key', true);
    await this.#update(disk, (s) => {
      const mine = s.registrations.get(this.#initiator) ?? 0n;
      if (mine !== oldKey) {
        throw new OwnershipError('conflict', disk.id, `REGISTER with key ${formatKey(oldKey)}: ${this.#initiator} is ${mine === 0n ? 'not registered' : `registered with ${formatKey(mine)}`}`);
      }
      if (newKey === 0n) return this.#unregister(s);
      s.registrations.set(this.#initiator, newKey); // the holder stays the initiator: reservation kept
      s.generation = (s.generation + 1) >>> 0;
      return true;
    });
  }

  async reserve(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    await this.#update(disk, (s) => {
      const mine = s.registrations.get(this.#initiator);
      if (mine === undefined) {
        throw new OwnershipError('not-ready', disk.id, `RESERVE by unregistered initiator ${this.#initiator}`);
      }
      if (mine !== key) {
        throw new OwnershipError('conflict', disk.id, `RESERVE with key ${formatKey(key)}: ${this.#initiator} is registered with ${formatKey(mine)}`);
      }
      if (s.holder === null) {
        s.holder = this.#initiator;
        s.type = RESERVATION_TYPE;
        return true;
      }
      if (s.holder === this.#initiator && s.type === RESERVATION_TYPE) return false;
      const by = s.registrations.get(s.holder);
      throw new OwnershipError('conflict', disk.id, `RESERVE: reservation held by ${s.holder}${by === undefined ? '' : ` (${formatKey(by)})`}`);
    });
  }

  async preemptAbort(disk: DiskRef, key: Key, victim: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    checkKey(disk.id, victim, 'victim key', true);
    if (victim === 0n) throw new OwnershipError('io', disk.id, 'PREEMPT AND ABORT with victim key 0 (illegal request)');
    await this.#update(disk, (s) => {
      const mine = s.registrations.get(this.#initiator);
      if (mine !== key) {
        throw new OwnershipError('conflict', disk.id, `PREEMPT AND ABORT with key ${formatKey(key)}: ${this.#initiator} is ${mine === undefined ? 'not registered' : `registered with ${formatKey(mine)}`}`);
      }
      const victims = [...s.registrations].filter(([ini, k]) => k === victim && ini !== this.#initiator).map(([ini]) => ini);
      if (victims.length === 0) {
        throw new OwnershipError('conflict', disk.id, `PREEMPT AND ABORT: no registration with key ${formatKey(victim)}`);
      }
      for (const ini of victims) s.registrations.delete(ini);
      if (s.holder !== null && victims.includes(s.holder)) {
        s.holder = this.#initiator;
        s.type = RESERVATION_TYPE;
      }
      s.generation = (s.generation + 1) >>> 0;
      return true;
    });
  }

  async readKeys(disk: DiskRef): Promise<KeyList> {
    const s = await this.#read(disk, this.statePath(disk));
    return { generation: s.generation, keys: [...s.registrations.values()] };
  }

  async readReservation(disk: DiskRef): Promise<ReservationState> {
    const s = await this.#read(disk, this.statePath(disk));
    const holder = s.holder === null ? null : (s.registrations.get(s.holder) ?? null);
    return { generation: s.generation, holder, type: holder === null ? null : s.type };
  }

  async release(disk: DiskRef, key: Key): Promise<void> {
    checkKey(disk.id, key, 'reservation key', false);
    await this.#update(disk, (s) => {
      const mine = s.registrations.get(this.#initiator);
      if (mine !== key) {
        throw new OwnershipError('conflict', disk.id, `RELEASE with key ${formatKey(key)}: ${this.#initiator} is ${mine === undefined ? 'not registered' : `registered with ${formatKey(mine)}`}`);
      }
      return this.#unregister(s);
    });
  }

  /** Unregister this initiator (releasing when it held); no generation bump, as LIO. */
  #unregister(s: DiskState): boolean {
    if (!s.registrations.has(this.#initiator)) return false;
    s.registrations.delete(this.#initiator);
    if (s.holder === this.#initiator) {
      s.holder = null;
      s.type = null;
    }
    return true;
  }

  /** A file's text, or null when it does not exist. Synchronous: a local file of a few hundred
   *  bytes (see the header: one host) reads in microseconds, where the thread pool's round trips
   *  (open, stat, read, close) were most of an idle owner's ownership checks. */
  #readRaw(disk: DiskRef, path: string): string | null {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw fsError(disk.id, path, 'read', err);
    }
  }

  async #read(disk: DiskRef, statePath: string): Promise<DiskState> {
    return this.#readSync(disk, statePath);
  }

  #readSync(disk: DiskRef, statePath: string): DiskState {
    let path = statePath;
    let raw = this.#readRaw(disk, path);
    const legacy = raw === null ? this.#legacyPath(disk) : null;
    if (legacy !== null) {
      // Written under the old name and not moved yet (#migrate)? Or moved just now: look again.
      raw = this.#readRaw(disk, legacy);
      if (raw !== null) path = legacy;
      else raw = this.#readRaw(disk, path);
    }
    if (raw === null) {
      // No state file yet = a blank disk; but a missing directory is a configuration error.
      try {
        statSync(this.#dir);
      } catch (dirErr) {
        throw fsError(disk.id, this.#dir, 'ownership directory', dirErr);
      }
      return emptyState();
    }
    let parsed: StateDoc;
    try {
      parsed = checkStateDoc(JSON.parse(raw));
    } catch (err) {
      const why = (err as Error).message;
      throw new OwnershipError('garbled', disk.id, `state file ${path} is not valid: ${why}`, { path, raw });
    }
    const registrations = new Map<string, Key>();
    for (const [ini, hex] of Object.entries(parsed.registrations)) {
      const key = parseKey(hex);
      if (key === 0n) throw new OwnershipError('garbled', disk.id, `state file ${path}: registration of ${ini} has key 0`, { path, raw });
      registrations.set(ini, key);
    }
    if (parsed.holder !== null && !registrations.has(parsed.holder)) {
      throw new OwnershipError('garbled', disk.id, `state file ${path}: holder ${parsed.holder} is not registered`, { path, raw });
    }
    return { generation: parsed.generation, registrations, holder: parsed.holder, type: parsed.holder === null ? null : parsed.type };
  }

  /** Read-modify-write under the lock; `change` mutates the state and says whether to write it. */
  async #update(disk: DiskRef, change: (s: DiskState) => boolean): Promise<void> {
    const path = this.statePath(disk);
    const previous = this.#queues.get(path) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#locked(disk, path, change));
    const settled = run.catch(() => undefined);
    this.#queues.set(path, settled);
    settled.then(() => {
      if (this.#queues.get(path) === settled) this.#queues.delete(path);
    });
    await run;
  }

  /**
   * The read-modify-write under the lock, synchronous from taking the lock to removing it: a few
   * local syscalls, microseconds. With awaits inside, each step waited its turn in the thread pool
   * (4 threads) behind every other disk's operations, and at a cold start of hundreds of
   * hierarchies a lock stayed held for seconds: peers timed out on it ("still busy").
   */
  async #locked(disk: DiskRef, path: string, change: (s: DiskState) => boolean): Promise<void> {
    const lockPath = `${path}.lock`;
    const owner = await lockOwner();
    await this.#lock(disk, lockPath, owner);
    try {
      this.#migrate(disk, path, owner);
      const state = this.#readSync(disk, path);
      if (!change(state)) return;
      const doc = {
        generation: state.generation,
        registrations: Object.fromEntries([...state.registrations].map(([ini, k]) => [ini, formatKey(k)])),
        holder: state.holder,
        type: state.type,
      };
      const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
      try {
        // No fsync: the nodes sharing this file share one kernel (one machine or namespaces), so
        // rename() is atomic for all of them; durability across a power loss is moot, every
        // "node" dies with it. An fsync per refresh only stalled loaded machines into false losses.
        writeNew(tmp, `${JSON.stringify(doc, null, 2)}\n`);
        if (readOr(lockPath, '') !== owner) {
          throw new OwnershipError('io', disk.id, `lock ${lockPath} was broken while this operation ran (process frozen or too slow): not applied`, { path });
        }
        renameSync(tmp, path);
      } catch (err) {
        try {
          unlinkSync(tmp);
        } catch {
          // not created, or already renamed
        }
        if (err instanceof OwnershipError) throw err;
        throw fsError(disk.id, path, 'write', err);
      }
    } finally {
      // Remove the lock only while it is still ours (it may have been broken as stale).
      unlockIfOurs(lockPath, owner);
    }
  }

  /**
   * Under the lock of `path`: a state file this disk still has under its old name moves to the new
   * one (link, so a file already there is never replaced, then unlink), under the old name's lock
   * too, so a daemon of the old version is not mid-operation on it. A daemon of the old version
   * that still holds the disk then finds its registration gone, as if preempted, and stops.
   */
  #migrate(disk: DiskRef, path: string, owner: string): void {
    const legacy = this.#legacyPath(disk);
    if (legacy === null || this.#current.has(path)) return;
    const exists = (p: string): boolean => {
      try {
        statSync(p);
        return true;
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return false;
        throw fsError(disk.id, p, 'stat', err);
      }
    };
    if (exists(path)) return void this.#current.add(path);
    if (!exists(legacy)) return;
    const lockPath = `${legacy}.lock`;
    // Under our lock of the new name: one try at the old name's lock. Busy (an old-version daemon
    // in the middle of an operation on it): this operation fails as transient, and is retried.
    try {
      writeNew(lockPath, owner);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') throw new OwnershipError('io', disk.id, `lock ${lockPath} of the old state file name is busy: not applied`, { path: lockPath });
      throw fsError(disk.id, lockPath, 'create lock', err);
    }
    try {
      try {
        linkSync(legacy, path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return; // moved by someone else meanwhile
        if (errnoCode(err) === 'EEXIST') return void this.#current.add(path);
        throw fsError(disk.id, legacy, `move to ${path}`, err);
      }
      this.#current.add(path);
      try {
        unlinkSync(legacy);
      } catch {
        // gone already
      }
    } finally {
      unlockIfOurs(lockPath, owner);
    }
  }

  async #lock(disk: DiskRef, lockPath: string, owner: string): Promise<void> {
    const deadline = Date.now() + this.#lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        writeNew(lockPath, owner);
        return;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw fsError(disk.id, lockPath, 'create lock', err);
      }
      await this.#breakIfStale(lockPath);
      if (Date.now() > deadline) {
        throw new OwnershipError('io', disk.id, `lock ${lockPath} still busy after ${this.#lockTimeoutMs} ms`, { path: lockPath });
      }
      // Operations hold the lock for a millisecond or so: poll fast first, then back off (jittered
      // so that racers do not retry in lock step).
      await delay(Math.min(1 + attempt, 20) * (0.5 + Math.random()));
    }
  }

  async #breakIfStale(lockPath: string): Promise<void> {
    const seen = lockSnapshot(lockPath);
    if (seen === null || !(await this.#isStale(seen))) return;
    const breaker = `${lockPath}.break`;
    try {
      writeNew(breaker, '');
    } catch (err) {
      // Another process is breaking it; a breaker left by a process that died mid-break is
      // itself removed once it is old.
      if (errnoCode(err) === 'EEXIST') {
        try {
          if (Date.now() - statSync(breaker).mtimeMs > this.#lockStaleMs) unlinkSync(breaker);
        } catch {
          // gone meanwhile
        }
      }
      return;
    }
    try {
      const again = lockSnapshot(lockPath);
      if (again && again.ino === seen.ino && again.mtimeMs === seen.mtimeMs && again.raw === seen.raw) {
        try {
          unlinkSync(lockPath);
        } catch {
          // gone meanwhile
        }
      }
    } finally {
      try {
        unlinkSync(breaker);
      } catch {
        // gone meanwhile
      }
    }
  }

  async #isStale(seen: LockSnapshot): Promise<boolean> {
    if (Date.now() - seen.mtimeMs > this.#lockStaleMs) return true;
    const owner = parseLockOwner(seen.raw);
    const ns = await ownPidNamespace();
    const host = await ownHost();
    // Only a pid of this very process table can be judged: same host (boot) and pid namespace.
    if (typeof owner.pid !== 'number' || ns === null || host === null || owner.ns !== ns || owner.host !== host) return false;
    return !pidAlive(owner.pid);
  }
}

/** The text of a lock this process creates: who holds it, and a token unique to this operation. */
async function lockOwner(): Promise<string> {
  return JSON.stringify({ pid: process.pid, ns: await ownPidNamespace(), host: await ownHost(), token: randomUUID() });
}

interface LockSnapshot {
  ino: number;
  mtimeMs: number;
  raw: string;
}

function lockSnapshot(lockPath: string): LockSnapshot | null {
  try {
    const st = statSync(lockPath);
    const raw = readFileSync(lockPath, 'utf8');
    return { ino: st.ino, mtimeMs: st.mtimeMs, raw };
  } catch {
    return null; // gone meanwhile: just retry the lock
  }
}

/** Create `path` (a new file or nothing: O_EXCL, never through a symlink) holding `text`. */
function writeNew(path: string, text: string): void {
  const fd = openSync(path, CREATE_EXCL, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** A file's text, or `dflt` when it cannot be read. */
function readOr(path: string, dflt: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return dflt;
  }
}

/** Remove a lock only while it is still ours (it may have been broken as stale and retaken). */
function unlockIfOurs(lockPath: string, owner: string): void {
  if (readOr(lockPath, '') !== owner) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // gone meanwhile
  }
}
