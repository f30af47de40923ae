// Several harness nodes on ONE machine, as separate real processes on loopback addresses, with
// the shared-file ownership backend. Used by `npm run demo` and the integration tests. (The
// benchmark uses real namespaces instead: bench/.)
//
// Every node gets its own loopback addresses (one per comm path), control socket, state dir and
// HA_RSCTMP. "Killing a node" kills every process that carries the node's HA_RSCTMP in its
// environment: the daemon, its guard, and everything its agents started (agents inherit
// HA_RSCTMP from the runner, their daemons from them) — as close to a power-off as one machine gets.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { controlRequest } from './control.ts';
import type { StatusDoc } from './status.ts';
import { generateAuthKey } from './authkey.ts';
import { DAEMON_NODE_FLAGS } from './defaults.ts';

// Daemons run from the same flavour as this file (dist/ JavaScript from the build, or the .ts sources).
const HARNESS_BIN = fileURLToPath(new URL(`../bin/harness.${import.meta.url.endsWith('.js') ? 'js' : 'ts'}`, import.meta.url));

export interface LocalClusterOptions {
  nodes?: string[];
  /** hierarchy file name -> YAML text; `{port}` etc. are the caller's business. */
  hierarchies: Record<string, string>;
  heartbeat?: { interval: string; deadTime: string; startupGrace?: string };
  /** Second octet of the 127.x.y.z addresses, to keep concurrent clusters apart. */
  net?: number;
  basePort?: number;
  dir?: string;
  onStop?: 'switchover' | 'stop';
  extraAgentDirs?: string[];
}

export interface LogEvent {
  time: number;
  level: number;
  node: string;
  msg: string;
  event?: string;
  hierarchy?: string;
  [k: string]: unknown;
}

export class LocalCluster {
  readonly dir: string;
  readonly clusterFile: string;
  readonly nodes: string[];
  readonly procs = new Map<string, ChildProcess>();
  private readonly addrs: Map<string, string[]>;

  constructor(opts: LocalClusterOptions) {
    this.nodes = opts.nodes ?? ['n1', 'n2', 'n3'];
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'harness-'));
    mkdirSync(join(this.dir, 'hierarchies'), { recursive: true });
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    const net = opts.net ?? 77;
    const port = opts.basePort ?? 17400 + Math.floor(Math.random() * 2000) * 2;
    this.addrs = new Map(this.nodes.map((n, i) => [n, [`127.${net}.0.${i + 1}:${port}`, `127.${net}.1.${i + 1}:${port + 1}`]]));
    generateAuthKey(join(this.dir, 'authkey'), { overwrite: true });
    // The nodes here start together, the case startupGrace exists for (harness/defaults.ts): their
    // spawn and configuration check alone come up to ~1 s apart on a loaded machine, more than the
    // dead time, and a later first node would find its hierarchies taken by the second.
    const hb = opts.heartbeat ?? { interval: '150ms', deadTime: '900ms', startupGrace: '5s' };
    const cluster = [
      `cluster: local`,
      `heartbeat: { interval: ${hb.interval}, deadTime: ${hb.deadTime}${hb.startupGrace ? `, startupGrace: ${hb.startupGrace}` : ''} }`,
      `authKeyFile: ./authkey`,
      `stateDir: ./state/{node}`,
      `hierarchyDir: ./hierarchies`,
      `ownership: { backend: file, dir: ./ownership }`,
      `onStop: ${opts.onStop ?? 'switchover'}`,
      ...(opts.extraAgentDirs?.length ? [`agentDirs: [${opts.extraAgentDirs.map((d) => JSON.stringify(d)).join(', ')}]`] : []),
      `nodes:`,
      ...this.nodes.flatMap((n) => [
        `  - name: ${n}`,
        `    addresses: [${this.addrs.get(n)!.map((a) => `"${a}"`).join(', ')}]`,
        `    controlSocket: ./run/{node}.sock`,
      ]),
    ].join('\n');
    this.clusterFile = join(this.dir, 'cluster.yaml');
    writeFileSync(this.clusterFile, cluster + '\n');
    for (const [name, text] of Object.entries(opts.hierarchies)) writeFileSync(join(this.dir, 'hierarchies', name), text);
  }

  rscTmp(node: string): string {
    return join(this.dir, 'rsctmp', node);
  }
  socket(node: string): string {
    return join(this.dir, 'run', `${node}.sock`);
  }
  logFile(node: string): string {
    return join(this.dir, 'logs', `${node}.log`);
  }
  addresses(node: string): string[] {
    return this.addrs.get(node)!;
  }

  /** Start a node's daemon in the foreground as a child process, logging to logs/<node>.log. */
  start(node: string, env: Record<string, string> = {}): ChildProcess {
    mkdirSync(this.rscTmp(node), { recursive: true });
    const fd = openSync(this.logFile(node), 'a');
    const p = spawn(process.execPath, [...DAEMON_NODE_FLAGS, HARNESS_BIN, 'start', '--foreground', '--config', this.clusterFile, '--node', node], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, HA_RSCTMP: this.rscTmp(node), HARNESS_LOG_LEVEL: process.env.HARNESS_LOG_LEVEL ?? 'debug', ...env },
    });
    closeSync(fd);
    this.procs.set(node, p);
    return p;
  }

  /** Pids of every process belonging to a node (daemon, guard, agents and what they started). */
  pids(node: string): number[] {
    const tag = `HA_RSCTMP=${this.rscTmp(node)}`;
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
      try {
        const env = readFileSync(`/proc/${d}/environ`, 'latin1').split('\0');
        if (env.includes(tag)) out.push(Number(d));
      } catch {
        /* gone or not ours */
      }
    }
    return out;
  }

  /** Signal the whole node (default SIGKILL: a crash of daemon and agents alike). */
  signalNode(node: string, signal: NodeJS.Signals = 'SIGKILL'): number[] {
    const pids = this.pids(node);
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
    return pids;
  }

  /** Signal only the daemon process. */
  signalDaemon(node: string, signal: NodeJS.Signals): void {
    this.procs.get(node)?.kill(signal);
  }

  async status(node: string, timeoutMs = 3000): Promise<StatusDoc> {
    return (await controlRequest(this.socket(node), { cmd: 'status' }, timeoutMs)) as StatusDoc;
  }

  async tryStatus(node: string, timeoutMs = 1500): Promise<StatusDoc | null> {
    return this.status(node, timeoutMs).catch(() => null);
  }

  /** Where does H run *with ownership*, according to each live node about itself? */
  async runners(hierarchy: string, nodes = this.nodes): Promise<string[]> {
    // In parallel and with a short timeout: a frozen node must not slow down sampling of the others.
    const docs = await Promise.all(nodes.map((n) => this.tryStatus(n, 400)));
    return nodes.filter((_n, i) => {
      const h = docs[i]?.hierarchies.find((x) => x.name === hierarchy);
      return h !== undefined && (h.phase === 'in-service' || h.phase === 'restarting') && h.ownership === 'owned';
    });
  }

  events(node: string): LogEvent[] {
    if (!existsSync(this.logFile(node))) return [];
    const out: LogEvent[] = [];
    for (const line of readFileSync(this.logFile(node), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogEvent);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  /** Until the node answers status with every hierarchy past its start-up probe. */
  async waitProbed(node: string, timeoutMs = 20_000): Promise<void> {
    await this.waitFor(`${node} up with every hierarchy probed`, async () => (await this.tryStatus(node))?.hierarchies.every((h) => h.phase !== 'unprobed') === true, timeoutMs, 100);
  }

  async waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\n${this.evidence()}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** What each node was doing, for a failed wait: is its daemon alive, and its last warnings
   *  and decisions (the logs are gone with the directory once the test tears down). */
  evidence(lines = 6): string {
    const out: string[] = [];
    for (const n of this.nodes) {
      const p = this.procs.get(n);
      const proc = !p ? 'not started' : p.exitCode !== null || p.signalCode !== null ? `daemon exited (${p.signalCode ?? `exit code ${p.exitCode}`})` : `daemon pid ${p.pid} running`;
      const notable = this.events(n).filter((e) => e.level >= 40 || (e.level >= 30 && e.event !== undefined)).slice(-lines);
      out.push(`  ${n}: ${proc}`);
      for (const e of notable) out.push(`    ${new Date(e.time).toISOString().slice(11, 23)} ${e.event ?? (e.level >= 50 ? 'error' : 'warn')}${e.hierarchy ? ` ${e.hierarchy}` : ''}: ${e.msg.slice(0, 300)}`);
    }
    return out.join('\n');
  }

  /** Graceful stop of one node through its control socket. */
  async stop(node: string, mode?: 'switchover' | 'stop'): Promise<void> {
    await controlRequest(this.socket(node), { cmd: 'stop', ...(mode ? { mode } : {}) }).catch(() => {});
    const p = this.procs.get(node);
    if (p && p.exitCode === null) await new Promise<void>((r) => { const t = setTimeout(r, 30_000); p.once('exit', () => { clearTimeout(t); r(); }); });
  }

  /** Kill everything and (unless keep) remove the directory. */
  async teardown(keep = false): Promise<void> {
    for (const n of this.nodes) {
      this.signalNode(n, 'SIGCONT');
      this.signalNode(n, 'SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 100));
    for (const n of this.nodes) this.signalNode(n, 'SIGKILL');
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
