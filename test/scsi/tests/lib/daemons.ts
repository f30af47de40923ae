// Real harness daemons on the SCSI bed: one `harness start --foreground` per node, each in the
// node's own network namespace (HARNESS_SCSI_NETNS_N<i>, address HARNESS_SCSI_ADDR_N<i>), the
// `scsi` ownership backend on the node's own iSCSI paths, Debian's ocf:heartbeat:Dummy as the
// application. Only usable inside the bed's guest (test/scsi/run.sh).
//
// The hierarchy files name one disk path for every node, `<dir>/disks/{node}/disk<d>`; the daemon
// replaces `{node}` by its name, and the symlinks made here point each node at its own /dev/sdX
// (its own I_T nexus) of that LUN. One path per node: a path list must be the same for all nodes,
// and node1's second path would double the keeper's sg_persist calls on an emulated CPU.
//
// "Killing a node" signals every process with the node's HA_RSCTMP in its environment (daemon,
// guard, agents), as harness/local-cluster.ts does. "Cutting a node" takes its bridge-side veth
// down: its heartbeats stop, but its iSCSI sessions live in the guest's root namespace, so its
// storage stays up — a pure network partition.
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { controlRequest } from '../../../../harness/control.ts';
import { generateAuthKey } from '../../../../harness/authkey.ts';
import type { StatusDoc } from '../../../../harness/status.ts';
import { DAEMON_NODE_FLAGS, DEFAULTS, ownershipTimers } from '../../../../harness/defaults.ts';
import { daemonEntry } from '../../../../bench/lib/daemon.ts';
import { nodeKey, nodePart } from '../../../../fencing/keys.ts';
import { CLUSTER, NODE_NAMES, TIME_SCALE, bound, devs, writeBlock } from './bed.ts';
import type { NodeName } from './bed.ts';

/** Heartbeat of the daemons under test: the defaults stretched by the bed's time scale (TCG: 600 ms / 3.6 s). */
export const HEARTBEAT_MS = DEFAULTS.heartbeatIntervalMs * TIME_SCALE;
export const DEAD_TIME_MS = DEFAULTS.deadTimeMs * TIME_SCALE;
/** What the daemon derives from that dead time (the same function). */
export const { keyRefreshMs: KEY_REFRESH_MS, livenessWindowMs: LIVENESS_WINDOW_MS } = ownershipTimers(DEAD_TIME_MS);
/** The default check loop period (the tests' bounds scale it by the bed's time scale themselves). */
export const CHECK_MS = DEFAULTS.ownershipCheckMs;
const PORT = 7400;
const ROOT = '/run/hs';

export interface LogEvent {
  time: number;
  node: string;
  event?: string;
  hierarchy?: string;
  msg?: string;
  [k: string]: unknown;
}

export type HierarchyStatus = StatusDoc['hierarchies'][number];

function index(node: NodeName): number {
  return NODE_NAMES.indexOf(node) + 1;
}

function bedEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') throw new Error(`test bed variable ${name} is not set (run with HARNESS_SCSI_NETNS=1, test/scsi/bed/target.sh)`);
  return v.trim();
}

export function netnsOf(node: NodeName): string {
  return bedEnv(`HARNESS_SCSI_NETNS_N${index(node)}`);
}

/** Bridge-side veth of a node (bed/target.sh names it hs-veth<i>). */
function vethOf(node: NodeName): string {
  return `hs-veth${index(node)}`;
}

function run(file: string, args: string[], timeoutMs = bound(20_000)): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, out: stdout + stderr });
    });
  });
}

/**
 * A hierarchy file: a disk (the node's own path to disk `d`, with the LUN's WWN unless given) and
 * a Dummy that requires it. `disk` may also be a full path template (bad-input tests).
 */
export function dummyHierarchy(name: string, priority: NodeName[], disk: { path: string; wwn?: string }): string {
  return [
    `hierarchy: ${name}`,
    `priority: { ${priority.map((n, i) => `${n}: ${i + 1}`).join(', ')} }`,
    `resources:`,
    `  - name: disk`,
    `    disk: { paths: [${JSON.stringify(disk.path)}]${disk.wwn ? `, wwn: ${JSON.stringify(disk.wwn)}` : ''} }`,
    `  - name: app`,
    `    agent: ocf:heartbeat:Dummy`,
    `    requires: [disk]`,
    // Dummy's own timeouts are 20 s; a TCG guest needs no more, and a stuck agent must not stall a test for longer.
    `    timeouts: { start: 20s, stop: 20s, monitor: 20s }`,
    '',
  ].join('\n');
}

export interface ScsiClusterOptions {
  /** Short tag for the directory name (test file). */
  tag: string;
  /** file name -> YAML text. Disk paths are usually `cluster.diskPath(d)`: build after construction via `hierarchies`. */
  hierarchies: (c: ScsiCluster) => Record<string, string>;
}

export class ScsiCluster {
  readonly dir: string;
  readonly clusterFile: string;
  readonly procs = new Map<NodeName, ChildProcess>();
  private readonly entry = daemonEntry();
  private readonly cut = new Set<NodeName>();

  constructor(opts: ScsiClusterOptions) {
    mkdirSync(ROOT, { recursive: true });
    this.dir = mkdtempSync(join(ROOT, `${opts.tag}-`));
    for (const d of ['hierarchies', 'logs', 'rsctmp', 'run', 'state']) mkdirSync(join(this.dir, d), { recursive: true });
    generateAuthKey(join(this.dir, 'authkey'), { overwrite: true });
    // Each node's own device for each LUN, under one name for every node (the `{node}` template).
    for (const node of NODE_NAMES) {
      mkdirSync(join(this.dir, 'disks', node), { recursive: true });
      symlinkSync(devs(node, 0)[0] as string, join(this.dir, 'disks', node, 'disk0'));
      symlinkSync(devs(node, 1)[0] as string, join(this.dir, 'disks', node, 'disk1'));
    }
    const cluster = [
      `cluster: ${CLUSTER}`,
      `heartbeat: { interval: ${HEARTBEAT_MS}ms, deadTime: ${DEAD_TIME_MS}ms }`,
      `authKeyFile: ./authkey`,
      `stateDir: ./state/{node}`,
      `hierarchyDir: ./hierarchies`,
      `ownership: { backend: scsi }`,
      `onStop: switchover`,
      `nodes:`,
      ...NODE_NAMES.flatMap((n) => [`  - name: ${n}`, `    addresses: ["${bedEnv(`HARNESS_SCSI_ADDR_N${index(n)}`)}:${PORT}"]`, `    controlSocket: ./run/{node}.sock`]),
      '',
    ].join('\n');
    this.clusterFile = join(this.dir, 'cluster.yaml');
    writeFileSync(this.clusterFile, cluster);
    for (const [file, text] of Object.entries(opts.hierarchies(this))) writeFileSync(join(this.dir, 'hierarchies', file), text);
  }

  /** The `{node}` path template of disk `d` for hierarchy files. */
  diskPath(d: 0 | 1): string {
    return join(this.dir, 'disks', '{node}', `disk${d}`);
  }

  /** A per-node symlink `<dir>/disks/<node>/<name>` to `target(node)` (bad-input tests). */
  link(name: string, target: (node: NodeName) => string): string {
    for (const node of NODE_NAMES) symlinkSync(target(node), join(this.dir, 'disks', node, name));
    return join(this.dir, 'disks', '{node}', name);
  }

  rscTmp(node: NodeName): string {
    return join(this.dir, 'rsctmp', node);
  }
  socket(node: NodeName): string {
    return join(this.dir, 'run', `${node}.sock`);
  }
  logFile(node: NodeName): string {
    return join(this.dir, 'logs', `${node}.log`);
  }
  /** Where `node`'s daemon writes disk `d` (the path the test checks with dd). */
  dev(node: NodeName, d: 0 | 1 = 0): string {
    return devs(node, d)[0] as string;
  }

  /** Start a node's daemon in its namespace, logging (JSON) to logs/<node>.log. */
  start(node: NodeName): ChildProcess {
    mkdirSync(this.rscTmp(node), { recursive: true });
    const fd = openSync(this.logFile(node), 'a');
    // With the daemon's own node flags, as `harness start` runs it.
    const p = spawn('ip', ['netns', 'exec', netnsOf(node), process.execPath, ...DAEMON_NODE_FLAGS, this.entry.path, 'start', '--foreground', '--config', this.clusterFile, '--node', node], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, HA_RSCTMP: this.rscTmp(node), HARNESS_LOG_LEVEL: process.env.HARNESS_SCSI_LOG ?? 'info' },
    });
    closeSync(fd);
    this.procs.set(node, p);
    return p;
  }

  /** Pids of every process of the node: daemon, guard, agents (all carry its HA_RSCTMP). */
  pids(node: NodeName): number[] {
    const tag = `HA_RSCTMP=${this.rscTmp(node)}`;
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(tag)) out.push(Number(d));
      } catch {
        // gone, or a kernel thread
      }
    }
    return out;
  }

  signal(node: NodeName, sig: NodeJS.Signals): number[] {
    const pids = this.pids(node);
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
    return pids;
  }

  /** SIGKILL the whole node (a power-off of daemon and agents alike) and wait, bounded, until every process is gone. */
  async kill(node: NodeName): Promise<number> {
    const killed = this.signal(node, 'SIGKILL').length;
    const deadline = Date.now() + bound(10_000);
    while (Date.now() < deadline) {
      const left = this.pids(node).filter((pid) => !isZombie(pid));
      if (left.length === 0) return killed;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await sleep(50);
    }
    throw new Error(`${node}: processes ${this.pids(node).join(', ')} survived SIGKILL for 10 s`);
  }

  /** All of the node's network down (bridge-side veth): a partition; its storage path stays up. */
  async cutNetwork(node: NodeName): Promise<void> {
    const r = await run('ip', ['link', 'set', vethOf(node), 'down']);
    if (r.code !== 0) throw new Error(`ip link set ${vethOf(node)} down: ${r.out}`);
    this.cut.add(node);
  }

  async healNetwork(node: NodeName): Promise<void> {
    const r = await run('ip', ['link', 'set', vethOf(node), 'up']);
    if (r.code !== 0) throw new Error(`ip link set ${vethOf(node)} up: ${r.out}`);
    this.cut.delete(node);
  }

  async status(node: NodeName, timeoutMs = 3000): Promise<StatusDoc> {
    return (await controlRequest(this.socket(node), { cmd: 'status' }, timeoutMs)) as StatusDoc;
  }

  async tryStatus(node: NodeName, timeoutMs = 1500): Promise<StatusDoc | null> {
    return this.status(node, timeoutMs).catch(() => null);
  }

  /** One hierarchy as `node` reports it, or null when the daemon does not answer. */
  async hierarchy(node: NodeName, h: string, timeoutMs = 1500): Promise<HierarchyStatus | null> {
    return (await this.tryStatus(node, timeoutMs))?.hierarchies.find((x) => x.name === h) ?? null;
  }

  /**
   * Nodes that report H in service here with ownership 'owned' (or, with `wide`, still claiming it:
   * see claims()). Asked in parallel: a frozen node does not slow the others down.
   */
  async runners(h: string, nodes: readonly NodeName[] = NODE_NAMES, wide = false, timeoutMs = 3000): Promise<NodeName[]> {
    const hs = await Promise.all(nodes.map((n) => this.hierarchy(n, h, timeoutMs)));
    return nodes.filter((_, i) => (wide ? claims(hs[i]) : isRunning(hs[i])));
  }

  /** JSON events of a node's log (non-JSON lines, e.g. a crash trace, are skipped). */
  events(node: NodeName): LogEvent[] {
    if (!existsSync(this.logFile(node))) return [];
    const out: LogEvent[] = [];
    for (const line of readFileSync(this.logFile(node), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push({ ...(JSON.parse(line) as Record<string, unknown>), node } as LogEvent);
      } catch {
        // a line cut by SIGKILL
      }
    }
    return out;
  }

  /** The last `n` log lines of each node, for failure messages. */
  tail(nodes: readonly NodeName[] = NODE_NAMES, n = 15): string {
    return nodes
      .map((node) => {
        const lines = existsSync(this.logFile(node)) ? readFileSync(this.logFile(node), 'utf8').trimEnd().split('\n').slice(-n) : [];
        return `--- ${node} (${this.logFile(node)}):\n${lines.map(brief).join('\n')}\n    processes: ${this.describeProcs(node)}`;
      })
      .join('\n');
  }

  /** The node's processes with their state and kernel wait channel (why a daemon says nothing). */
  describeProcs(node: NodeName): string {
    const rows = this.pids(node).map((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        const wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8');
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => basename(a)).join(' ').slice(0, 80);
        // CPU used against time alive, and nice: tells a starved process from a spinning one.
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const hz = 100;
        const cpuS = (Number(f[11]) + Number(f[12])) / hz;
        const aliveS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) - Number(f[19]) / hz;
        return `${pid} ${state} ${wchan || '-'} cpu ${cpuS.toFixed(1)} s of ${aliveS.toFixed(1)} s, nice ${f[16]} [${cmd}]`;
      } catch {
        return `${pid} gone`;
      }
    });
    return rows.length ? rows.join('; ') : 'none';
  }

  /** Poll `fn` until it returns something truthy; fail after timeoutMs naming `what`, with the nodes' last log lines. */
  async waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\n${this.tail()}`);
      await sleep(everyMs);
    }
  }

  /** The first event of `node` since `since` (epoch ms) matching `pred`, waiting at most timeoutMs. */
  waitEvent(node: NodeName, what: string, pred: (e: LogEvent) => boolean, since: number, timeoutMs: number): Promise<LogEvent> {
    return this.waitFor(`${node}: ${what}`, () => this.events(node).find((e) => e.time >= since && pred(e)), timeoutMs, 100);
  }

  /** Start the given nodes and wait until each answers and has probed every hierarchy. */
  async startAll(nodes: readonly NodeName[], timeoutMs = bound(90_000)): Promise<void> {
    for (const n of nodes) this.start(n);
    await Promise.all(nodes.map((n) => this.waitProbed(n, timeoutMs)));
  }

  async waitProbed(node: NodeName, timeoutMs = bound(90_000)): Promise<void> {
    await this.waitFor(`${node} up with every hierarchy probed`, async () => {
      const p = this.procs.get(node);
      if (p && p.exitCode !== null) throw new Error(`${node}'s daemon exited (${p.exitCode}):\n${this.tail([node], 30)}`);
      return (await this.tryStatus(node, 1000))?.hierarchies.every((h) => h.phase !== 'unprobed');
    }, timeoutMs, 200);
  }

  /**
   * Kill every node, heal every cut, and remove the directory. The daemons' logs are copied to the
   * bed's result share first (HARNESS_SCSI_SHARE, set by bed/guest.sh): the guest's /run dies
   * with it, and run.sh keeps the share when the tier fails (or with HARNESS_SCSI_KEEP=1).
   */
  async teardown(): Promise<void> {
    for (const n of NODE_NAMES) this.signal(n, 'SIGCONT');
    await Promise.all(NODE_NAMES.map((n) => this.kill(n).catch(() => 0)));
    for (const n of [...this.cut]) await this.healNetwork(n).catch(() => undefined);
    const share = process.env.HARNESS_SCSI_SHARE;
    if (share) {
      try {
        cpSync(join(this.dir, 'logs'), join(share, 'daemon-logs', basename(this.dir)), { recursive: true });
      } catch {
        // the logs are a convenience; a full share must not fail the test
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** In service with proven ownership: where H runs. */
export function isRunning(h: HierarchyStatus | null | undefined): boolean {
  return claims(h) && h?.ownership === 'owned';
}

/**
 * In service and not known to have lost the disk: 'unverified' (re-reading the disks after a
 * freeze) counts too. The safety checks use this wider notion, so a node that still believes it
 * runs H is held to "cannot write" until it has found out otherwise.
 */
export function claims(h: HierarchyStatus | null | undefined): boolean {
  return h !== null && h !== undefined && (h.phase === 'in-service' || h.phase === 'restarting') && (h.ownership === 'owned' || h.ownership === 'unverified');
}

/** One O_DIRECT write through the device: true when the LUN accepted it. */
export async function canWrite(path: string): Promise<boolean> {
  return (await writeBlock(path, 6000)).ok;
}

/**
 * The keys registered on disk `d`, as `sg_persist -n -i -k` prints them (read through node3's path;
 * a unit attention left by a preempt is consumed and the read repeated).
 */
export async function keysOnDisk(d: 0 | 1 = 0): Promise<bigint[]> {
  const path = devs('node3', d)[0] as string;
  for (let i = 0; i < 3; i++) {
    const r = await run('sg_persist', ['-n', '-i', '-k', path]);
    if (r.code === 6) continue;
    if (r.code !== 0) throw new Error(`sg_persist -n -i -k ${path} failed (${r.code}): ${r.out}`);
    if (/there are NO registered reservation keys/.test(r.out)) return [];
    return [...r.out.matchAll(/^\s+(0x[0-9a-f]+)\s*$/gim)].map((m) => BigInt(m[1] as string));
  }
  throw new Error(`sg_persist -n -i -k ${path}: unit attention three times in a row`);
}

/** Node part of `node`'s keys in the bed's cluster. */
export function partOf(node: NodeName): number {
  return nodePart(nodeKey(CLUSTER, node, 0));
}

/** The node a key (as logged: "0x…") belongs to, or null. */
export function nodeOfKey(key: unknown): NodeName | null {
  if (typeof key !== 'string' || !/^0x[0-9a-f]+$/i.test(key)) return null;
  const part = nodePart(BigInt(key));
  return NODE_NAMES.find((n) => partOf(n) === part) ?? null;
}

export function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function brief(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const o = JSON.parse(line) as { time?: number; event?: string; msg?: string };
    return `${new Date(o.time ?? 0).toISOString().slice(11, 23)} ${o.event ?? '-'} ${o.msg ?? ''}`;
  } catch {
    return line;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
