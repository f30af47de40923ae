// The real ownership backend: SCSI-3 persistent reservations through sg_persist (sg3_utils).
// Primitives only (the race is fencing/race.ts); each one is a PERSISTENT RESERVE IN/OUT command
// run as its own process with an argument array (never a shell) and a hard time limit.
//
// Reservation type 1, Write Exclusive: only the reservation holder may write, every other
// initiator (registered or not) gets RESERVATION CONFLICT on writes, and reads stay allowed.
// Not type 5 (Write Exclusive, registrants only, what fence_scsi uses): under type 5 every
// *registered* initiator may write, and every racer registers before it races, so a node that
// lost the race — or one that was preempted and re-registers by mistake — could still write to
// the disk the winner now runs on. With type 1, registration only gives the right to race.
//
// Paths: a disk may be reached through several devices (multipath). Each path is its own
// I_T nexus, i.e. its own PR initiator on the device, so REGISTER runs on every path. RESERVE and
// PREEMPT run once, through the first path that answers: the reservation belongs to the LUN.
// Reads go to every path and fail with `identity` when the paths report different LUNs — two
// disks must never be confused. Every path must succeed: a registration missing on one path would
// later make that path's REGISTER answer `conflict`, which means "preempted" to the keeper.
//
// Unit attentions: the first command on a path after its registration was preempted or cleared
// fails with UNIT ATTENTION without being executed; we retry (the failed command consumed it).
import { DEFAULTS } from '../harness/defaults.ts';
import { execa } from 'execa';
import { spawnTurn } from '../harness/spawn-turn.ts';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DiskRef, Key, KeyList, OwnershipBackend, OwnershipErrorCode, ReservationState } from './backend.ts';
import { OwnershipError } from './backend.ts';
import { classifyExit, lastLine, normalizeWwn, parseLunIdentity, parseReadKeys, parseReadReservation } from './sg-parse.ts';

/** The reservation type we take: 1 = Write Exclusive (see the header). */
export const RESERVATION_TYPE = 1;
/** Default limit for one sg3_utils command (a path whose transport is down can hang a while). */
export const DEFAULT_COMMAND_TIMEOUT_MS = DEFAULTS.scsiCommandTimeoutMs;
/** Attempts of one command while the device answers UNIT ATTENTION (several may be queued). */
const UNIT_ATTENTION_ATTEMPTS = 3;
const MAX_KEY = (1n << 64n) - 1n;

export interface ScsiBackendOptions {
  log?: Logger;
  /** sg_persist executable (default: from PATH). sg_vpd is looked up beside it. */
  sgPersist?: string;
  /** Time limit of one command, ms (default DEFAULT_COMMAND_TIMEOUT_MS). */
  timeoutMs?: number;
}

interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Errors worth trying the next path for; anything else is the LUN's answer and final. */
const PATH_ERRORS: ReadonlySet<OwnershipErrorCode> = new Set(['open-failed', 'io', 'not-ready', 'unit-attention']);

function hex(key: Key): string {
  return `0x${key.toString(16)}`;
}

function checkKey(key: Key, what: string, zeroAllowed: boolean): void {
  if (typeof key !== 'bigint' || key < (zeroAllowed ? 0n : 1n) || key > MAX_KEY) {
    throw new RangeError(`scsi backend: ${what} must be a ${zeroAllowed ? '' : 'non-zero '}64-bit key, got ${String(key)}`);
  }
}

export class ScsiBackend implements OwnershipBackend {
  readonly name = 'scsi';
  readonly ioFencing = true;
  readonly #log: Logger | undefined;
  readonly #sgPersist: string;
  readonly #sgVpd: string;
  readonly #timeoutMs: number;

  constructor(opts: ScsiBackendOptions = {}) {
    this.#log = opts.log;
    this.#sgPersist = opts.sgPersist ?? 'sg_persist';
    const slash = this.#sgPersist.lastIndexOf('/');
    this.#sgVpd = slash >= 0 ? `${this.#sgPersist.slice(0, slash + 1)}sg_vpd` : 'sg_vpd';
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) {
      throw new RangeError(`scsi backend: timeoutMs must be a positive number, got ${String(opts.timeoutMs)}`);
    }
  }

  guardDisk(disk: DiskRef): string {
    // One word per path for the guard's shell loop: a path with white space cannot be handed over.
    const paths = this.#paths(disk);
    const bad = paths.find((p) => /\s/.test(p));
    if (bad !== undefined) throw new OwnershipError('identity', disk.id, `path "${bad}" contains white space: the guard cannot hold this disk`);
    return paths.join(' ');
  }

  async verify(disk: DiskRef): Promise<void> {
    const paths = this.#paths(disk);
    let expected: string | null = null;
    if (disk.wwn !== undefined) {
      expected = normalizeWwn(disk.wwn);
      if (expected === null) {
        throw new OwnershipError('identity', disk.id, `wwn "${disk.wwn}" is not an NAA designator (expected e.g. naa.6001405… or 0x6001405…)`);
      }
    }
    for (const path of paths) await this.#checkDeviceNode(disk, path);
    // PR IN first: a device that cannot do persistent reservations is reported as such, even
    // when it would also fail the identity check.
    for (const path of paths) await this.#persist(disk, path, ['--in', '--read-keys']);
    const ids = await this.#identities(disk, paths);
    for (const [path, id] of ids) {
      if (id === null) {
        if (expected !== null || paths.length > 1) {
          throw new OwnershipError('identity', disk.id, 'the device reports no NAA designator (VPD page 0x83), so its identity cannot be checked', { path });
        }
      } else if (expected !== null && id !== expected) {
        throw new OwnershipError('identity', disk.id, `LUN identity is ${id}, configured wwn is ${expected}: wrong disk`, { path });
      }
    }
    this.#log?.debug({ disk: disk.id, paths, identity: ids.get(paths[0] ?? '') ?? null }, 'scsi: disk verified');
  }

  async registerIgnore(disk: DiskRef, key: Key): Promise<void> {
    checkKey(key, 'registerIgnore key', true);
    await this.#everyPath(disk, (path) => this.#persist(disk, path, ['--out', '--register-ignore', `--param-sark=${hex(key)}`]));
  }

  async reregister(disk: DiskRef, oldKey: Key, newKey: Key): Promise<void> {
    checkKey(oldKey, 'reregister oldKey', false);
    checkKey(newKey, 'reregister newKey', true);
    await this.#everyPath(disk, (path) =>
      this.#persist(disk, path, ['--out', '--register', `--param-rk=${hex(oldKey)}`, `--param-sark=${hex(newKey)}`]),
    );
  }

  async reserve(disk: DiskRef, key: Key): Promise<void> {
    checkKey(key, 'reserve key', false);
    await this.#firstPath(disk, (path) =>
      this.#persist(disk, path, ['--out', '--reserve', `--param-rk=${hex(key)}`, `--prout-type=${RESERVATION_TYPE}`]),
    );
  }

  async preemptAbort(disk: DiskRef, key: Key, victim: Key): Promise<void> {
    checkKey(key, 'preemptAbort key', false);
    checkKey(victim, 'preemptAbort victim', false);
    // PREEMPT AND ABORT, not plain PREEMPT: also aborts the victim's queued commands, so a write
    // it issued before the preempt cannot land after it.
    await this.#firstPath(disk, (path) =>
      this.#persist(disk, path, [
        '--out',
        '--preempt-abort',
        `--param-rk=${hex(key)}`,
        `--param-sark=${hex(victim)}`,
        `--prout-type=${RESERVATION_TYPE}`,
      ]),
    );
  }

  async readKeys(disk: DiskRef): Promise<KeyList> {
    const lists = await this.#readEveryPath(disk, ['--in', '--read-keys'], parseReadKeys);
    return newest(lists);
  }

  async readReservation(disk: DiskRef): Promise<ReservationState> {
    const states = await this.#readEveryPath(disk, ['--in', '--read-reservation'], parseReadReservation);
    return newest(states);
  }

  async release(disk: DiskRef, key: Key): Promise<void> {
    checkKey(key, 'release key', false);
    const state = await this.readReservation(disk);
    if (state.holder === key) {
      // RELEASE must name the reservation's current type, or the device answers conflict.
      const type = state.type ?? RESERVATION_TYPE;
      await this.#firstPath(disk, (path) =>
        this.#persist(disk, path, ['--out', '--release', `--param-rk=${hex(key)}`, `--prout-type=${type}`]),
      );
    }
    await this.registerIgnore(disk, 0n);
  }

  // ---- paths -------------------------------------------------------------------------------

  #paths(disk: DiskRef): string[] {
    if (!Array.isArray(disk.paths) || disk.paths.length === 0) {
      throw new OwnershipError('open-failed', disk.id, 'no device paths configured for this disk');
    }
    const seen = new Set<string>();
    for (const p of disk.paths) {
      if (typeof p !== 'string' || !p.startsWith('/')) {
        throw new OwnershipError('open-failed', disk.id, `device path ${JSON.stringify(p)} is not an absolute path`);
      }
      if (seen.has(p)) throw new OwnershipError('identity', disk.id, `device path ${p} is listed twice`);
      seen.add(p);
    }
    return disk.paths;
  }

  /** Runs `op` on every path concurrently; all must succeed. A conflict wins over other errors. */
  async #everyPath<T>(disk: DiskRef, op: (path: string) => Promise<T>): Promise<Map<string, T>> {
    const paths = this.#paths(disk);
    const settled = await Promise.allSettled(paths.map(op));
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    if (failures.length > 0) {
      const conflict = failures.find((e) => e instanceof OwnershipError && e.code === 'conflict');
      throw conflict ?? failures[0];
    }
    const out = new Map<string, T>();
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') out.set(paths[i] as string, s.value);
    });
    return out;
  }

  /** Runs `op` through the first path that works; the LUN's own answers (conflict …) are final. */
  async #firstPath(disk: DiskRef, op: (path: string) => Promise<unknown>): Promise<void> {
    const paths = this.#paths(disk);
    let last: unknown;
    for (const path of paths) {
      try {
        await op(path);
        return;
      } catch (err) {
        if (!(err instanceof OwnershipError) || !PATH_ERRORS.has(err.code)) throw err;
        last = err;
        if (paths.length > 1) this.#log?.warn({ disk: disk.id, path, err: err.message }, 'scsi: path failed, trying the next one');
      }
    }
    throw last;
  }

  /** PR IN on every path plus, with several paths, a check that they all reach one LUN. */
  async #readEveryPath<T extends { generation: number }>(
    disk: DiskRef,
    args: string[],
    parse: (stdout: string, src: { disk: string; path: string }) => T,
  ): Promise<T[]> {
    const paths = this.#paths(disk);
    const [results, ids] = await Promise.all([
      this.#everyPath(disk, async (path) => parse((await this.#persist(disk, path, args)).stdout, { disk: disk.id, path })),
      // One path cannot disagree with itself; its identity was checked by verify().
      paths.length > 1 ? this.#quickIdentities(disk, paths) : Promise.resolve(null),
    ]);
    if (ids !== null) {
      const distinct = new Set(ids.values());
      if (distinct.size > 1 || distinct.has(null)) {
        const list = [...ids].map(([p, id]) => `${p}=${id ?? 'no NAA designator'}`).join(', ');
        throw new OwnershipError('identity', disk.id, `the paths do not reach one LUN: ${list}`);
      }
    }
    return paths.map((p) => results.get(p) as T);
  }

  /**
   * Identities for the frequent reads (the holder checks every ownershipCheckMs): the kernel's
   * copy of VPD page 0x83, /sys/dev/{block,char}/M:m/device/wwid, costs no process and no SCSI
   * command, and it belongs to the device node the path resolves to now, so a path that was
   * re-pointed at another LUN shows the other LUN's identity. The kernel may pick a different
   * designator than parseLunIdentity (it prefers the most specific kind), so these strings are only
   * compared with each other, never with disk.wwn (verify() does that, from the device itself).
   * Any path without the sysfs attribute (a partition, a non-SCSI device): ask the devices.
   */
  async #quickIdentities(disk: DiskRef, paths: string[]): Promise<Map<string, string | null>> {
    const fromSysfs = await Promise.all(paths.map((p) => sysfsWwid(p)));
    if (fromSysfs.every((id) => id !== null)) return new Map(paths.map((p, i) => [p, fromSysfs[i] as string]));
    return this.#identities(disk, paths);
  }

  async #identities(disk: DiskRef, paths: string[]): Promise<Map<string, string | null>> {
    return this.#everyPath({ ...disk, paths }, async (path) => {
      const r = await this.#run(disk, path, this.#sgVpd, ['--page=di', path]);
      this.#fail(disk, path, 'sg_vpd --page=di', r);
      return parseLunIdentity(r.stdout, { disk: disk.id, path });
    });
  }

  async #checkDeviceNode(disk: DiskRef, path: string): Promise<void> {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      const why = code === 'ENOENT' ? 'no such device' : `cannot stat the device (${code})`;
      throw new OwnershipError('open-failed', disk.id, why, { path });
    }
    if (!st.isBlockDevice() && !st.isCharacterDevice()) {
      throw new OwnershipError('unsupported', disk.id, 'not a block or SCSI generic device', { path });
    }
  }

  // ---- commands ----------------------------------------------------------------------------

  /** One sg_persist command on one path, retried while the device answers UNIT ATTENTION. */
  async #persist(disk: DiskRef, path: string, args: string[]): Promise<CommandResult> {
    const argv = ['--no-inquiry', ...args, path];
    const what = `sg_persist ${args.join(' ')}`;
    for (let attempt = 1; ; attempt++) {
      const r = await this.#run(disk, path, this.#sgPersist, argv);
      if (r.exitCode === 6 && attempt < UNIT_ATTENTION_ATTEMPTS) {
        this.#log?.info({ disk: disk.id, path, cmd: what, sense: lastLine(r.stderr) }, 'scsi: unit attention, retrying');
        continue;
      }
      this.#fail(disk, path, what, r);
      return r;
    }
  }

  /** Throws the typed error for a non-zero exit status. */
  #fail(disk: DiskRef, path: string, what: string, r: CommandResult): void {
    const code = classifyExit(r.exitCode, r.stderr);
    if (code === null) return;
    const reason = lastLine(r.stderr) || `exit status ${r.exitCode}`;
    const err = new OwnershipError(code, disk.id, `${what}: ${reason} (exit ${r.exitCode})`, { path, raw: r.stdout + r.stderr });
    this.#log?.debug({ disk: disk.id, path, cmd: what, exit: r.exitCode, code, ms: r.ms }, 'scsi: command failed');
    throw err;
  }

  /** Runs a command with a hard deadline: a process stuck in the kernel must not stall the caller. */
  async #run(disk: DiskRef, path: string, file: string, args: string[]): Promise<CommandResult> {
    await spawnTurn();
    const started = performance.now();
    const child = execa(file, args, {
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
      env: { LC_ALL: 'C' },
      // Our own deadline below does the killing; execa's exit-hook bookkeeping only costs time.
      cleanup: false,
      forceKillAfterDelay: false,
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
    });
    const r = await Promise.race([child, deadline]).finally(() => clearTimeout(timer));
    const ms = Math.round(performance.now() - started);
    if (r === 'timeout') {
      child.kill('SIGKILL');
      child.catch(() => {}); // settles whenever the kernel lets the process go
      throw new OwnershipError('io', disk.id, `${file} ${args.join(' ')} did not finish within ${this.#timeoutMs} ms`, { path });
    }
    if (r.exitCode === undefined) {
      // Not started (ENOENT: sg3-utils missing) or killed by a signal.
      const why = r.code === 'ENOENT' ? `${file} not found (install sg3-utils)` : `${file} failed: ${r.shortMessage}`;
      throw new OwnershipError('io', disk.id, why, { path });
    }
    const out = { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), ms };
    this.#log?.trace({ disk: disk.id, path, cmd: [file, ...args].join(' '), exit: r.exitCode, ms }, 'scsi: command');
    return out;
  }
}

/** The kernel's LUN identity of the device node behind `path`, or null when it has none. */
async function sysfsWwid(path: string): Promise<string | null> {
  try {
    const st = await stat(path, { bigint: true });
    const kind = st.isBlockDevice() ? 'block' : st.isCharacterDevice() ? 'char' : null;
    if (kind === null) return null;
    // Linux dev_t layout (glibc gnu_dev_major/minor).
    const major = ((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn);
    const minor = (st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn);
    const wwid = (await readFile(`/sys/dev/${kind}/${major}:${minor}/device/wwid`, 'utf8')).trim();
    return wwid === '' ? null : wwid;
  } catch {
    return null;
  }
}

/**
 * Every path reads the same LUN (checked), so their answers differ only when the state changed
 * between two reads: the highest PR generation is the latest state. On equal generations the
 * first path's answer is taken (RESERVE and RELEASE do not bump the generation).
 */
function newest<T extends { generation: number }>(answers: T[]): T {
  let best = answers[0] as T;
  for (const a of answers) if (a.generation > best.generation) best = a;
  return best;
}
