// Driving the harness daemon inside test nodes: start it (foreground, JSON logs to a file on
// the host), ask its status over its control socket, stop it gracefully, find its pids, read
// its log events.
//
// The control socket lives in the node's private /run; the host reaches it through
// /proc/<node init>/root, the node's own view of the filesystem, so no process is spawned
// for a status poll (spawning `harness status` costs a whole Node start-up each time).
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readSync, statSync } from 'node:fs';
import { DAEMON_NODE_FLAGS } from '../../harness/defaults.ts';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../harness/control.ts';
import { DEFAULT_CONTROL_SOCKET } from '../../hierarchies/load.ts';
import type { StatusDoc } from '../../harness/status.ts';
import type { NetnsCluster, TestNode } from './cluster.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The sources, run by Node's type stripping. */
export const HARNESS_TS = join(REPO, 'bin', 'harness.ts');
/** What `npm ci` installs (`npm run build`): plain JavaScript, no TypeScript stripper in memory. */
export const HARNESS_DIST = join(REPO, 'dist', 'bin', 'harness.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Which daemon to run: the dist/ build (what users run, and what the footprint is about) when it
 * exists and is newer than every source file, else the .ts sources — a stale build would
 * benchmark old code. HARNESS_BENCH_DAEMON=ts|dist forces one.
 */
export function daemonEntry(): { path: string; flavour: 'dist' | 'ts'; why: string } {
  const forced = process.env.HARNESS_BENCH_DAEMON;
  if (forced === 'ts') return { path: HARNESS_TS, flavour: 'ts', why: 'HARNESS_BENCH_DAEMON=ts' };
  if (!existsSync(HARNESS_DIST)) {
    if (forced === 'dist') throw new Error(`HARNESS_BENCH_DAEMON=dist but ${HARNESS_DIST} does not exist (npm run build)`);
    return { path: HARNESS_TS, flavour: 'ts', why: 'no dist/ build (npm run build)' };
  }
  if (forced === 'dist') return { path: HARNESS_DIST, flavour: 'dist', why: 'HARNESS_BENCH_DAEMON=dist' };
  const built = statSync(HARNESS_DIST).mtimeMs;
  const stale = ['bin', 'harness', 'hierarchies', 'fencing', 'agents'].some((d) => existsSync(join(REPO, d)) && newestSource(join(REPO, d)) > built);
  return stale ? { path: HARNESS_TS, flavour: 'ts', why: 'dist/ is older than the sources (npm run build)' } : { path: HARNESS_DIST, flavour: 'dist', why: 'dist/ build is current' };
}

export function logFileOf(node: TestNode): string {
  return join(node.dir, 'harness.log');
}

/** PATH of every daemon the bed starts (and so, through agents/runner.ts, of its agents). */
export const DAEMON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Start `harness start --foreground` (`entry`: see daemonEntry) in the node, as a child of the node's init. */
export function startDaemon(cluster: NetnsCluster, node: TestNode, clusterFile: string, entry: string, env: NodeJS.ProcessEnv = {}): void {
  // HARNESS_BENCH_DAEMON_FLAGS: extra Node flags for the daemons, {node} replaced by the node's name
  // (e.g. "--prof --logfile=/tmp/p/{node}-%t.log --no-logfile-per-isolate": a CPU profile that
  // survives a power-off; every node's daemon has the same pid in its own pid namespace).
  const extra = (process.env.HARNESS_BENCH_DAEMON_FLAGS ?? '').split(' ').filter(Boolean).map((f) => f.replaceAll('{node}', node.name));
  cluster.spawnIn(node, [process.execPath, ...DAEMON_NODE_FLAGS, ...extra, entry, 'start', '--foreground', '--config', clusterFile, '--node', node.name], {
    logFile: logFileOf(node),
    env: { PATH: DAEMON_PATH, HOME: '/root', LANG: 'C.UTF-8', ...env },
  });
}

/** `harness stop` inside the node (hands hierarchies over per onStop), bounded. */
export async function stopDaemon(cluster: NetnsCluster, node: TestNode, clusterFile: string, timeoutMs = 60_000): Promise<void> {
  await cluster.exec(node, [process.execPath, HARNESS_TS, 'stop', '--config', clusterFile, '--node', node.name], { timeoutMs });
}

function socketPath(node: TestNode): string | null {
  return node.initPid === null ? null : `/proc/${node.initPid}/root${DEFAULT_CONTROL_SOCKET}`;
}

/** The node's status document, or null when its daemon does not answer. */
export async function daemonStatus(node: TestNode, timeoutMs = 1000): Promise<StatusDoc | null> {
  const sock = socketPath(node);
  if (!sock) return null;
  try {
    return (await controlRequest(sock, { cmd: 'status' }, timeoutMs)) as StatusDoc;
  } catch {
    return null;
  }
}

/**
 * Host pids of the daemon itself (the Node process running bin/harness.ts start), not its guard
 * (`/bin/sh harness/guard.sh`) nor its agents: the "processes killed, host alive" fault.
 */
export function daemonPids(cluster: NetnsCluster, node: TestNode): number[] {
  return cluster
    .processes(node)
    .filter((p) => (p.argv.includes(HARNESS_TS) || p.argv.includes(HARNESS_DIST)) && p.argv.includes('start'))
    .map((p) => p.pid);
}

export function guardPids(cluster: NetnsCluster, node: TestNode): number[] {
  return cluster
    .processes(node)
    .filter((p) => p.argv.some((a) => a.endsWith('/harness/guard.sh')))
    .map((p) => p.pid);
}

/** The daemon's agent spawner (harness/spawn-helper.ts): it forks the agents, so its CPU is the harness's. */
export function spawnerPids(cluster: NetnsCluster, node: TestNode): number[] {
  return cluster
    .processes(node)
    .filter((p) => p.argv.some((a) => /\/harness\/spawn-helper\.(ts|js)$/.test(a)))
    .map((p) => p.pid);
}

export interface LogEvent {
  /** epoch ms (pino `time`). */
  time: number;
  /** Node whose log it is. */
  node: string;
  event?: string;
  msg?: string;
  hierarchy?: string;
  peer?: string;
  resource?: string;
  durationMs?: number;
  [k: string]: unknown;
}

/** Byte size of a node's log: remember it before a fault, read events from there after. */
export function logOffset(node: TestNode): number {
  try {
    return statSync(logFileOf(node)).size;
  } catch {
    return 0;
  }
}

/**
 * The guard's own report in a node's log from byte `offset` on (plain lines, not JSON): ms from the
 * daemon's death until `hierarchy` was stopped and released, and until the guard was done.
 */
export function guardTimes(node: TestNode, offset: number, hierarchy: string): { releasedMs: number | null; doneMs: number | null } {
  let text = '';
  try {
    text = readFileSync(logFileOf(node), 'utf8').slice(offset);
  } catch {
    return { releasedMs: null, doneMs: null };
  }
  const released = new RegExp(`^harness guard: ${hierarchy}: stopped and released \\((\\d+) ms`, 'm').exec(text);
  const done = /^harness guard: done in (\d+) ms/m.exec(text);
  return { releasedMs: released ? Number(released[1]) : null, doneMs: done ? Number(done[1]) : null };
}

/** JSON events of a node's log from byte `offset` on; non-JSON lines (stderr noise) are skipped. */
export function readEvents(node: TestNode, offset: number): LogEvent[] {
  let fd: number;
  try {
    fd = openSync(logFileOf(node), 'r');
  } catch {
    return [];
  }
  try {
    const size = statSync(logFileOf(node)).size;
    if (size <= offset) return [];
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    const out: LogEvent[] = [];
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (typeof o.time === 'number') out.push({ ...o, time: o.time, node: node.name });
      } catch {
        // a line cut by a power-off: ignore
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
