// Driving the harness daemon inside test nodes: start it (foreground, JSON logs to a file on
// the host), ask its status over its control socket, stop it gracefully, find its pids, read
// its log events.
//
// The control socket lives in the node's private /run; the host reaches it through
// /proc/<node init>/root, the node's own view of the filesystem, so no process is spawned
// for a status poll (spawning `harness status` costs a whole Node start-up each time).
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../harness/control.ts';
import { DEFAULT_CONTROL_SOCKET } from '../../hierarchies/load.ts';
import type { StatusDoc } from '../../harness/status.ts';
import type { NetnsCluster, TestNode } from './cluster.ts';

export const HARNESS_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'harness.ts');

export function logFileOf(node: TestNode): string {
  return join(node.dir, 'harness.log');
}

/** Start `harness start --foreground` in the node, as a child of the node's init. */
export function startDaemon(cluster: NetnsCluster, node: TestNode, clusterFile: string, env: NodeJS.ProcessEnv = {}): void {
  cluster.spawnIn(node, [process.execPath, HARNESS_BIN, 'start', '--foreground', '--config', clusterFile, '--node', node.name], {
    logFile: logFileOf(node),
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', ...env },
  });
}

/** `harness stop` inside the node (hands hierarchies over per onStop), bounded. */
export async function stopDaemon(cluster: NetnsCluster, node: TestNode, clusterFile: string, timeoutMs = 60_000): Promise<void> {
  await cluster.exec(node, [process.execPath, HARNESS_BIN, 'stop', '--config', clusterFile, '--node', node.name], { timeoutMs });
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
    .filter((p) => p.argv.includes(HARNESS_BIN) && p.argv.includes('start'))
    .map((p) => p.pid);
}

export function guardPids(cluster: NetnsCluster, node: TestNode): number[] {
  return cluster
    .processes(node)
    .filter((p) => p.argv.some((a) => a.endsWith('/harness/guard.sh')))
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
