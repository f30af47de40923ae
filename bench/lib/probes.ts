// What clients see, recorded with timestamps while a fault plays out.
//
//  - PingProbe: `ping -D` from a station every ~10 ms; reply receive times.
//  - HttpProbe: bench/lib/http-probe.ts in a station: GET every 10 ms, start/end/ok of each.
//  - Watchers (one station per node) answer "which node answers for the VIP?": each watcher has
//    a permanent neighbour entry VIP → that node's MAC, so its pings reach that node whatever
//    the ARP caches say, and only come back if that node's kernel owns the VIP and its link is
//    up. Two watchers answered in the same 10 ms slot = the VIP answered from two nodes. This
//    is wire-level evidence; sampling `ip addr` would also count a VIP on a node whose links
//    are down (answers nobody), and ARP probing cannot reach a node the cache does not point at.
//  - AddressSampler: which node has the VIP configured, read every 10 ms from each node's
//    /proc/<init>/net/fib_trie (a file read, no process spawned): shows when an isolated or
//    frozen node really let go of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localAddresses, parsePingLine, type Gap, type HttpSample, type PingReply } from './analyze.ts';
import { nodeMac, watcherAddress } from './addressing.ts';
import type { NetnsCluster, Station } from './cluster.ts';

const HTTP_PROBE = join(dirname(fileURLToPath(import.meta.url)), 'http-probe.ts');

/**
 * iputils ping paces `-i 0.01` at ~16 ms on this kernel (timer rounding), while `-i 0.009`
 * gives ~9 ms: the closest to "every 10 ms" it can do.
 */
export const PING_INTERVAL_S = 0.009;
/**
 * Below 10 ms iputils ping busy-waits for its next send (non-blocking receives and sched_yield):
 * `-i 0.009` costs ~26 % of a core per ping on an idle machine (0.53 CPU-s in 2 s), `-i 0.01`
 * ~0. The 20-hierarchy bed pings 20 VIPs: at 0.009 its pingers took ~15 % of every CPU sample
 * during a takeover, competing with the agents, which the shell floor it is compared to does
 * not have. It uses this instead (~16 ms apart on this kernel).
 */
export const PING_INTERVAL_QUIET_S = 0.01;
/**
 * The many-hierarchy bed's VIP pingers (one per VIP). At PING_INTERVAL_QUIET_S, 20 of them and
 * this process reading their replies and sampling addresses were ~0.3 CPU-s of a tuned 20-hierarchy
 * takeover (perf, 2026-12-01), on 2 cores that the shell floor it is compared to has to itself:
 * half of the "harness overhead" was the bench's. The last VIP back is then known to 50 ms; the
 * bar uses the in-service times from the logs.
 */
export const PING_INTERVAL_MANY_S = 0.05;

/** Collect the stdout lines of a child; stop it with SIGINT, SIGKILL if it lingers. */
class LineChild {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private partial = '';

  constructor(argv: string[]) {
    const [cmd, ...args] = argv;
    this.child = spawn(cmd ?? 'false', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (d: string) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    this.child.stderr?.resume();
    this.exited = new Promise((resolve) => {
      this.child.on('close', () => resolve());
      this.child.on('error', () => resolve());
    });
  }

  async stop(): Promise<string[]> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(killer);
    if (this.partial) this.lines.push(this.partial);
    this.partial = '';
    return this.lines;
  }
}

export class PingProbe {
  private readonly proc: LineChild;
  readonly target: string;

  private constructor(proc: LineChild, target: string) {
    this.proc = proc;
    this.target = target;
  }

  /** Ping `target` from network namespace `netns` every `intervalS` for at most `boundS` seconds. */
  static start(cluster: NetnsCluster, netns: string, target: string, boundS: number, intervalS = PING_INTERVAL_S): PingProbe {
    const argv = cluster.netnsArgv(netns, ['ping', '-n', '-D', '-i', String(intervalS), '-W', '1', '-w', String(Math.ceil(boundS)), target]);
    return new PingProbe(new LineChild(argv), target);
  }

  /** Receive time of the newest reply so far (epoch ms), or null: lets a run wait for recovery. */
  latestReply(): number | null {
    const lines = this.proc.lines;
    for (let i = lines.length - 1; i >= 0 && i >= lines.length - 50; i--) {
      const r = parsePingLine(lines[i] ?? '');
      if (r) return r.t;
    }
    return null;
  }

  /** Stop and return the replies (receive time epoch ms, icmp_seq), by time. */
  async stop(): Promise<PingReply[]> {
    const lines = await this.proc.stop();
    return lines
      .map(parsePingLine)
      .filter((x) => x !== null)
      .sort((a, b) => a.t - b.t);
  }
}

export class HttpProbe {
  private readonly proc: LineChild;

  private constructor(proc: LineChild) {
    this.proc = proc;
  }

  /** GET `url` every `everyMs` from `netns`, each bounded by `timeoutMs`, for at most boundS. */
  static start(cluster: NetnsCluster, netns: string, url: string, boundS: number, everyMs = 10, timeoutMs = 500): HttpProbe {
    const argv = cluster.netnsArgv(netns, [process.execPath, HTTP_PROBE, url, String(everyMs), String(timeoutMs), String(boundS)]);
    return new HttpProbe(new LineChild(argv));
  }

  /** Samples so far (the probe is a Node process: it needs a moment to start). */
  count(): number {
    return this.proc.lines.length;
  }

  async stop(): Promise<HttpSample[]> {
    const lines = await this.proc.stop();
    const out: HttpSample[] = [];
    for (const l of lines) {
      const m = /^(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (ok|fail)/.exec(l);
      if (m) out.push({ start: Number(m[1]), end: Number(m[2]), ok: m[3] === 'ok' });
    }
    return out;
  }
}

/** One watcher station per node, each pinning `vip` to that node's path-0 MAC. */
export function addWatchers(cluster: NetnsCluster, vip: string): Map<string, Station> {
  const out = new Map<string, Station>();
  for (const n of cluster.nodes) {
    const s = cluster.addStation(`w${n.index}`, [watcherAddress(n.index)]);
    cluster.ip(s.netns, 'neigh', 'replace', vip, 'lladdr', nodeMac(n.index, 0), 'dev', 'eth0', 'nud', 'permanent');
    out.set(n.name, s);
  }
  return out;
}

/** Pings from every watcher at once; stop() gives reply times per node. */
export class WatcherProbes {
  private readonly probes: Map<string, PingProbe>;

  constructor(cluster: NetnsCluster, watchers: ReadonlyMap<string, Station>, vip: string, boundS: number, intervalS = PING_INTERVAL_S) {
    this.probes = new Map([...watchers].map(([node, s]) => [node, PingProbe.start(cluster, s.netns, vip, boundS, intervalS)]));
  }

  /** Reply times per node. */
  async stop(): Promise<Map<string, number[]>> {
    const entries = await Promise.all([...this.probes].map(async ([node, p]) => [node, (await p.stop()).map((r) => r.t)] as const));
    return new Map(entries);
  }
}

/**
 * Which node has `address` configured, sampled every `everyMs` from the host. A powered-off
 * node counts as not having it.
 */
export class AddressSampler {
  private readonly cluster: NetnsCluster;
  private readonly address: string;
  private readonly open = new Map<string, number>();
  private readonly done = new Map<string, Gap[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(cluster: NetnsCluster, address: string, everyMs = 10) {
    this.cluster = cluster;
    this.address = address;
    for (const n of cluster.nodes) this.done.set(n.name, []);
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private has(initPid: number | null): boolean {
    if (initPid === null) return false;
    try {
      return localAddresses(readFileSync(`/proc/${initPid}/net/fib_trie`, 'utf8')).has(this.address);
    } catch {
      return false; // powered off between the check and the read
    }
  }

  private sample(): void {
    const now = Date.now();
    for (const n of this.cluster.nodes) {
      const on = this.has(n.initPid);
      const since = this.open.get(n.name);
      if (on && since === undefined) this.open.set(n.name, now);
      else if (!on && since !== undefined) {
        this.done.get(n.name)?.push({ from: since, to: now });
        this.open.delete(n.name);
      }
    }
  }

  /** Does `node` have the address configured right now (as of the last sample)? */
  isConfigured(node: string): boolean {
    return this.open.has(node);
  }

  /** Stop; intervals during which each node had the address (still-open ones end now). */
  stop(): Map<string, Gap[]> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const now = Date.now();
    for (const [node, since] of this.open) this.done.get(node)?.push({ from: since, to: now });
    this.open.clear();
    return this.done;
  }
}
