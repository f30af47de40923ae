// What the SCSI test bed (test/scsi/bed/target.sh) set up, read from its environment, plus the
// few raw operations tests need besides the backend: a direct write, and wiping a disk's PR
// state between tests. Only usable inside the bed's guest (test/scsi/run.sh).
import { execFile } from 'node:child_process';
import type { DiskRef } from '../../../../fencing/backend.ts';

export const CLUSTER = 'scsi-bed';

/**
 * Factor for the timers of the nodes under test (refresh, check, liveness window, key polling).
 * Under TCG every process start costs ~100 ms instead of ~1 ms, so the defaults' 250 ms refresh
 * would not keep up; stretched by the same factor, the timers keep their proportions, and the
 * proportions are what the tests are about. run.sh sets it (4 under TCG, 1 under KVM).
 */
export const TIME_SCALE = Math.max(1, Number(process.env.HARNESS_SCSI_TIME_SCALE ?? 1) || 1);

/**
 * How much slower this guest runs than the one the tier's bounds were set on: the time of a fixed
 * piece of work in node, one per vCPU at once (bed/guest.sh, median of 3), over
 * REFERENCE_WORK_UNIT_MS, the same measurement on the project's machine (TCG, 2 vCPUs: 1194 ms on
 * a quiet host, 1829-2117 ms on a busy one; QEMU limited to one host core 2837 ms, to 60 % of one
 * 4690-5371 ms, where the whole tier ran 3.5x longer than quiet). Never below 1.
 * Every wait and test timeout of the tier goes through bound(): the assertions are about
 * invariants, and a slower machine must only make them take longer.
 */
export const REFERENCE_WORK_UNIT_MS = 1200;
export const SLOWNESS = Math.max(1, Number(process.env.HARNESS_SCSI_WORK_UNIT_MS ?? 0) / REFERENCE_WORK_UNIT_MS || 1);
export function bound(ms: number): number {
  return Math.round(ms * SLOWNESS);
}
export const NODE_NAMES = ['node1', 'node2', 'node3'] as const;
export type NodeName = (typeof NODE_NAMES)[number];

/** Why the tier cannot run here (node:test's `skip` reason), or false inside the bed. */
export function notInBed(): string | false {
  if (process.env.HARNESS_SCSI_NODES === undefined) return 'not inside the SCSI test bed: run `bash test/scsi/run.sh` as root';
  return false;
}

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') throw new Error(`test bed variable ${name} is not set (test/scsi/bed/target.sh)`);
  return v.trim();
}

function nodeIndex(node: NodeName): number {
  return NODE_NAMES.indexOf(node) + 1;
}

/** Device paths of `node` to disk 0 or 1 (node1 has two paths: multipath). */
export function devs(node: NodeName, disk: 0 | 1 = 0): string[] {
  const n = nodeIndex(node);
  return env(disk === 0 ? `HARNESS_SCSI_DEVS_N${n}` : `HARNESS_SCSI_DISK1_DEVS_N${n}`).split(/\s+/);
}

export function wwn(disk: 0 | 1 = 0): string {
  return env(disk === 0 ? 'HARNESS_SCSI_WWN' : 'HARNESS_SCSI_DISK1_WWN');
}

/** The DiskRef `node` would use for disk 0 or 1, as the daemon builds it from the hierarchy. */
export function diskRef(node: NodeName, disk: 0 | 1 = 0, withWwn = true): DiskRef {
  return { id: `bed/disk${disk}`, paths: devs(node, disk), ...(withWwn ? { wwn: wwn(disk) } : {}) };
}

export function loopDev(): string {
  return env('HARNESS_SCSI_LOOP_DEV');
}

/** A SCSI disk (scsi_debug) that does not implement persistent reservations. */
export function noPrDev(): string {
  return env('HARNESS_SCSI_NOPR_DEV');
}

/**
 * Runs a helper command (dd, sg_turs, sg_persist for the wipe). Plain execFile, not execa: these
 * are test scaffolding, not the code under test, and under TCG execa's extra work per process
 * is measurable on every round of the race.
 */
function run(file: string, args: string[]): Promise<{ exitCode: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: bound(20_000), encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ exitCode: code, out: stdout, err: stderr });
    });
  });
}

export interface WriteResult {
  ok: boolean;
  /** dd's complaint; EBADE ("Invalid exchange") is how Linux reports RESERVATION CONFLICT. */
  error: string;
}

/** One 512-byte O_DIRECT write (buffered writes would only fail later, at writeback). */
export async function writeBlock(path: string, block = 4096): Promise<WriteResult> {
  const r = await run('dd', ['if=/dev/zero', `of=${path}`, 'bs=512', 'count=1', `seek=${block}`, 'oflag=direct', 'conv=notrunc', 'status=none']);
  return { ok: r.exitCode === 0, error: r.err.trim() };
}

/** One 512-byte O_DIRECT read: readers are never fenced by Write Exclusive. */
export async function readBlock(path: string, block = 4096): Promise<boolean> {
  const r = await run('dd', [`if=${path}`, 'of=/dev/null', 'bs=512', 'count=1', `skip=${block}`, 'iflag=direct', 'status=none']);
  return r.exitCode === 0;
}

async function sgPersist(args: string[]): Promise<{ exitCode: number; out: string }> {
  const r = await run('sg_persist', ['--no-inquiry', ...args]);
  return { exitCode: r.exitCode, out: r.out + r.err };
}

/**
 * Wipe every registration and reservation of a disk (PR OUT CLEAR from a registered path), and
 * consume the unit attentions this leaves on every path, so the next test starts clean.
 */
export async function wipe(disk: 0 | 1 = 0): Promise<void> {
  const path = devs('node3', disk)[0] as string;
  const key = '0x5ca1ab1e';
  for (let i = 0; i < 3; i++) {
    const reg = await sgPersist(['--out', '--register-ignore', `--param-sark=${key}`, path]);
    if (reg.exitCode === 6) continue; // unit attention: consumed, try again
    if (reg.exitCode !== 0) throw new Error(`wipe: register on ${path} failed: ${reg.out}`);
    const clr = await sgPersist(['--out', '--clear', `--param-rk=${key}`, path]);
    if (clr.exitCode !== 0) throw new Error(`wipe: clear on ${path} failed: ${clr.out}`);
    for (const node of NODE_NAMES) {
      for (const p of devs(node, disk)) await run('sg_turs', [p]);
    }
    const left = await sgPersist(['--in', '--read-keys', path]);
    if (!/there are NO registered reservation keys/.test(left.out)) throw new Error(`wipe: keys left on ${path}: ${left.out}`);
    return;
  }
  throw new Error(`wipe: ${path} kept answering unit attention`);
}
