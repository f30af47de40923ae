// A cluster of test nodes on one machine, each node a set of namespaces (see
// ../shared/netns-testbed.md): its own network namespace with one veth per comm path, and
// its own pid + mount + uts namespaces under a reaping PID 1 (bench/lib/node-init.sh).
// Bridges (one per path) live in a namespace of their own, so nothing is added to the root
// namespace; clients and watchers are "stations" (network namespaces) on the path-0 bridge.
//
// Node power is the lifetime of its PID 1: SIGKILL of that init kills every process of the
// node at once and drops its mount namespace (mounts, /run), exactly like pulling the plug.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PREFIX_LEN, nodeAddress, nodeMac, stationMac } from './addressing.ts';
import { onCleanup } from './cleanup.ts';
import { alive, childrenOf, nsId, processesInNetNs, processesInPidNs, signal, type ProcInfo } from './procs.ts';
import { run, runSync, waitFor, type RunOptions, type RunResult } from './run.ts';

const INIT_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'node-init.sh');
/** Our namespace names: `hx<creator pid>-<3 random chars>-<role>`; the pid lets a later run sweep them. */
const NS_PREFIX = 'hx';

export interface ClusterOptions {
  /** Number of nodes, named n1..nN (default 3). */
  nodes?: number;
  /** Comm paths per node (default 2). */
  paths?: number;
  /** Host directory for configs, logs and node-private state (default: a fresh dir in /tmp). */
  workDir?: string;
  /** Keep workDir after teardown (logs for a post-mortem). */
  keepWorkDir?: boolean;
  /** Directories of workDir (relative names) that get a tmpfs of their own, mounted before the nodes boot so every node sees it. */
  tmpfsDirs?: string[];
}

export interface TestNode {
  readonly name: string;
  /** 1-based. */
  readonly index: number;
  readonly netns: string;
  /** Host directory of this node: logs, and `private/` mounted at cluster.privateMount inside it. */
  readonly dir: string;
  /** Host pid of the node's PID 1 while it is powered on, else null. */
  initPid: number | null;
  /** The `unshare` process that parents the init (outside the node's pid namespace). */
  launcherPid: number | null;
}

export interface Station {
  readonly label: string;
  readonly netns: string;
  readonly addresses: string[];
}

export class NetnsCluster {
  readonly prefix: string;
  readonly workDir: string;
  readonly paths: number;
  readonly nodes: TestNode[];
  readonly bridgeNs: string;
  readonly stations: Station[] = [];
  /** Same path on every node; each node mounts its own private directory there. */
  readonly privateMount: string;
  private readonly keepWorkDir: boolean;
  private readonly namespaces: string[] = [];
  private readonly extraCleanups: Array<{ what: string; fn: () => void }> = [];
  private unregister: () => void = () => {};
  private tornDown = false;

  private constructor(opts: ClusterOptions) {
    const count = opts.nodes ?? 3;
    if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`nodes: expected 1..20, got ${count}`);
    this.paths = opts.paths ?? 2;
    if (!Number.isInteger(this.paths) || this.paths < 1 || this.paths > 4) throw new Error(`paths: expected 1..4, got ${this.paths}`);
    // Unique per process: parallel test beds (another helper's tests) never collide.
    this.prefix = `${NS_PREFIX}${process.pid}-${Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0')}`;
    this.workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.keepWorkDir = opts.keepWorkDir ?? false;
    this.privateMount = join(this.workDir, 'node');
    this.bridgeNs = `${this.prefix}-br`;
    this.nodes = [];
    for (let i = 1; i <= count; i++) {
      const name = `n${i}`;
      this.nodes.push({ name, index: i, netns: `${this.prefix}-${name}`, dir: join(this.workDir, 'nodes', name), initPid: null, launcherPid: null });
    }
  }

  /** Build bridges and nodes (powered on) and register teardown for every way the process may end. */
  static async create(opts: ClusterOptions = {}): Promise<NetnsCluster> {
    if (process.getuid?.() !== 0) throw new Error('the namespace test bed needs root (ip netns, unshare, nsenter)');
    sweepStale();
    const c = new NetnsCluster(opts);
    c.unregister = onCleanup(`namespace cluster ${c.prefix}`, () => c.teardown());
    try {
      mkdirSync(c.privateMount, { recursive: true });
      for (const d of opts.tmpfsDirs ?? []) c.mountTmpfs(join(c.workDir, d));
      c.addNetns(c.bridgeNs);
      for (let p = 0; p < c.paths; p++) {
        c.ip(c.bridgeNs, 'link', 'add', `br${p}`, 'type', 'bridge');
        c.ip(c.bridgeNs, 'link', 'set', `br${p}`, 'up');
      }
      await Promise.all(c.nodes.map((n) => c.boot(n)));
    } catch (e) {
      c.teardown();
      throw e;
    }
    return c;
  }

  node(name: string): TestNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node "${name}" in this cluster (have ${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  /** Bridge-side name of node's veth on `path`. */
  portName(node: TestNode, path: number): string {
    return `${node.name}p${path}`;
  }

  // ---------------------------------------------------------------------------------------
  // Stations: namespaces on the path-0 bridge (clients, watchers, the gateway)

  addStation(label: string, addresses: string[]): Station {
    if (!/^[a-z0-9]{1,8}$/.test(label)) throw new Error(`station label "${label}": expected 1-8 of [a-z0-9]`);
    if (this.stations.some((s) => s.label === label)) throw new Error(`station "${label}" exists already`);
    const netns = `${this.prefix}-${label}`;
    this.addNetns(netns);
    const port = `s-${label}`;
    const mac = stationMac(this.stations.length + 1);
    this.ip(this.bridgeNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns, 'address', mac);
    this.ip(this.bridgeNs, 'link', 'set', port, 'master', 'br0', 'up');
    for (const a of addresses) this.ip(netns, 'addr', 'add', `${a}/${PREFIX_LEN}`, 'dev', 'eth0');
    this.ip(netns, 'link', 'set', 'eth0', 'up');
    const s: Station = { label, netns, addresses };
    this.stations.push(s);
    return s;
  }

  station(label: string): Station {
    const s = this.stations.find((x) => x.label === label);
    if (!s) throw new Error(`no station "${label}"`);
    return s;
  }

  // ---------------------------------------------------------------------------------------
  // Node power

  /** Create the node's network namespace and veths, and start its init. */
  async boot(node: TestNode): Promise<void> {
    if (node.initPid !== null) throw new Error(`${node.name} is already powered on (init ${node.initPid})`);
    await this.scrapNetwork(node);
    this.addNetns(node.netns);
    for (let p = 0; p < this.paths; p++) {
      const port = this.portName(node, p);
      this.ip(this.bridgeNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', `eth${p}`, 'netns', node.netns, 'address', nodeMac(node.index, p));
      this.ip(this.bridgeNs, 'link', 'set', port, 'master', `br${p}`, 'up');
      this.ip(node.netns, 'addr', 'add', `${nodeAddress(node.index, p)}/${PREFIX_LEN}`, 'dev', `eth${p}`);
      this.ip(node.netns, 'link', 'set', `eth${p}`, 'up');
    }
    mkdirSync(node.dir, { recursive: true });
    const ready = join(node.dir, 'ready');
    rmSync(ready, { force: true });
    const log = openSync(join(node.dir, 'init.log'), 'a');
    try {
      const launcher = spawn(
        'ip',
        ['netns', 'exec', node.netns, 'unshare', '--pid', '--fork', '--mount', '--uts', '--mount-proc', '--propagation', 'private', '--',
          '/bin/sh', INIT_SCRIPT, node.name, ready, join(node.dir, 'private'), this.privateMount],
        { detached: true, stdio: ['ignore', log, log] },
      );
      launcher.unref();
      if (launcher.pid === undefined) throw new Error(`${node.name}: could not start its init`);
      node.launcherPid = launcher.pid;
    } finally {
      closeSync(log);
    }
    const launcherPid = node.launcherPid;
    // `ip netns exec` execs unshare in place; unshare --fork makes the init its only child.
    node.initPid = await waitFor(`${node.name}'s init (see ${join(node.dir, 'init.log')})`, 10_000, 20, () => {
      if (!existsSync(ready)) {
        if (!alive(launcherPid)) throw new Error('the launcher exited');
        return undefined;
      }
      return childrenOf(launcherPid)[0];
    });
  }

  /** Pull the plug: every bridge-side veth down, then SIGKILL the node's init. */
  powerOff(node: TestNode): void {
    for (let p = 0; p < this.paths; p++) this.ip(this.bridgeNs, 'link', 'set', this.portName(node, p), 'down');
    if (node.initPid !== null) signal(node.initPid, 'SIGKILL');
    node.initPid = null;
  }

  /** Power-off (if on), then boot with fresh network, /run and processes. */
  async reboot(node: TestNode): Promise<void> {
    if (node.initPid !== null) this.powerOff(node);
    await this.boot(node);
  }

  /** Delete the node's network namespace and veths once its old processes are gone. */
  private async scrapNetwork(node: TestNode): Promise<void> {
    const launcher = node.launcherPid;
    if (launcher !== null) {
      await waitFor(`${node.name}'s old init to exit`, 10_000, 10, () => {
        if (!alive(launcher)) return true;
        // The namespace's end waits for every task of it to be reaped; a stopped parent outside
        // it (nsenter) would hold a zombie forever. Wake and kill whatever is left in its netns.
        const id = netnsId(node.netns);
        for (const pid of id ? processesInNetNs(id) : []) {
          if (pid === launcher) continue;
          signal(pid, 'SIGKILL');
          signal(pid, 'SIGCONT');
        }
        return undefined;
      });
      node.launcherPid = null;
    }
    if (!existsSync(`/run/netns/${node.netns}`)) return;
    // Processes of ours still inside (a prober, a stray nsenter) would keep the old namespace
    // and its veths alive; kill them, then delete the veths explicitly so names are free now.
    const id = netnsId(node.netns);
    if (id) for (const pid of processesInNetNs(id)) signal(pid, 'SIGKILL');
    for (let p = 0; p < this.paths; p++) {
      runSync(['ip', '-n', this.bridgeNs, 'link', 'del', this.portName(node, p)], { allowFail: true });
    }
    runSync(['ip', 'netns', 'del', node.netns], { allowFail: true });
  }

  // ---------------------------------------------------------------------------------------
  // Network faults

  /** Set one bridge-side veth of a node up or down (one comm path cut / restored). */
  setPath(node: TestNode, path: number, up: boolean): void {
    if (path < 0 || path >= this.paths) throw new Error(`path ${path}: the cluster has paths 0..${this.paths - 1}`);
    this.ip(this.bridgeNs, 'link', 'set', this.portName(node, path), up ? 'up' : 'down');
  }

  /** Isolate a running node: every path down. */
  partition(node: TestNode): void {
    for (let p = 0; p < this.paths; p++) this.setPath(node, p, false);
  }

  heal(node: TestNode): void {
    for (let p = 0; p < this.paths; p++) this.setPath(node, p, true);
  }

  /**
   * One-way link loss: `to` no longer receives anything `from` sends it, on any path (an nftables
   * input rule in `to`'s own network namespace; the client, watchers and gateway are unaffected).
   * Both ways between two groups make a partition in which both sides still reach the gateway and
   * the shared disk. Needs Debian's nftables.
   */
  dropFrom(to: TestNode, from: TestNode): void {
    const ns = ['ip', 'netns', 'exec', to.netns, 'nft'];
    runSync([...ns, 'add', 'table', 'inet', 'hxdrop']);
    runSync([...ns, 'add chain inet hxdrop in { type filter hook input priority 0; }']);
    for (let p = 0; p < this.paths; p++) runSync([...ns, 'add', 'rule', 'inet', 'hxdrop', 'in', 'ip', 'saddr', nodeAddress(from.index, p), 'drop']);
  }

  /** Undo every dropFrom(node, …). */
  clearDrops(node: TestNode): void {
    runSync(['ip', 'netns', 'exec', node.netns, 'nft', 'delete', 'table', 'inet', 'hxdrop'], { allowFail: true });
  }

  // ---------------------------------------------------------------------------------------
  // Processes inside a node

  private requireInit(node: TestNode): number {
    if (node.initPid === null) throw new Error(`${node.name} is powered off`);
    return node.initPid;
  }

  /** argv that runs `argv` inside the node (all of its namespaces). */
  nsenterArgv(node: TestNode, argv: readonly string[]): string[] {
    return ['nsenter', '-t', String(this.requireInit(node)), '-m', '-n', '-u', '-p', '--wd=/', '--', ...argv];
  }

  execSync(node: TestNode, argv: readonly string[], opts?: RunOptions): RunResult {
    return runSync(this.nsenterArgv(node, argv), opts);
  }

  exec(node: TestNode, argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run(this.nsenterArgv(node, argv), opts);
  }

  /**
   * Start a long-running process inside the node, stdout and stderr appended to `logFile`
   * (a host path). `setsid -f` forks it away from nsenter, so it is re-parented to the node's
   * init like a daemon on a real host, and no nsenter stays behind (nsenter mirrors its child's
   * SIGSTOP onto itself and would then never reap it, blocking the node's power-off).
   */
  spawnIn(node: TestNode, argv: readonly string[], opts: { logFile: string; env?: NodeJS.ProcessEnv }): void {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    const fd = openSync(opts.logFile, 'a');
    try {
      const [cmd, ...args] = this.nsenterArgv(node, ['setsid', '-f', ...argv]);
      const child = spawn(cmd ?? 'nsenter', args, { detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env });
      child.on('error', () => {}); // reported by the caller's readiness checks, never a crash
      child.unref();
      if (child.pid === undefined) throw new Error(`${node.name}: could not start ${argv.join(' ')}`);
    } finally {
      closeSync(fd);
    }
  }

  /** Every process of the node, its init included (empty when powered off). */
  processes(node: TestNode): ProcInfo[] {
    return node.initPid === null ? [] : processesInPidNs(node.initPid);
  }

  /** Freeze (SIGSTOP) or thaw (SIGCONT) every process of the node but its init. Returns the pids. */
  freeze(node: TestNode, on: boolean): number[] {
    const init = node.initPid;
    const pids = this.processes(node)
      .filter((p) => p.pid !== init)
      .map((p) => p.pid);
    for (const pid of pids) signal(pid, on ? 'SIGSTOP' : 'SIGCONT');
    if (!on) {
      // An nsenter outside the node's pid namespace (a command we run in it) stops itself when
      // its child stops, and only continues on SIGCONT: wake those too.
      const id = netnsId(node.netns);
      if (id) for (const pid of processesInNetNs(id)) signal(pid, 'SIGCONT');
    }
    return pids;
  }

  // ---------------------------------------------------------------------------------------
  // Commands in network namespaces (stations, bridge)

  /** argv that runs `argv` in a network namespace (a station's, the bridge's). */
  netnsArgv(netns: string, argv: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', netns, ...argv];
  }

  ip(netns: string, ...args: string[]): RunResult {
    return runSync(['ip', '-n', netns, ...args]);
  }

  ipAsync(netns: string, ...args: string[]): Promise<RunResult> {
    return run(['ip', '-n', netns, ...args]);
  }

  private addNetns(name: string): void {
    if (existsSync(`/run/netns/${name}`)) throw new Error(`network namespace ${name} exists already`);
    runSync(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    this.ip(name, 'link', 'set', 'lo', 'up');
  }

  /** A tmpfs at `dir` on the host: nodes booted from now on see it (their mount namespaces copy the host's). */
  private mountTmpfs(dir: string): void {
    mkdirSync(dir, { recursive: true });
    runSync(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=16m', 'tmpfs', dir]);
    this.onTeardown(`tmpfs ${dir}`, () => void runSync(['umount', '-l', dir], { allowFail: true }));
  }

  /** Run `fn` during teardown, before the namespaces go (loop devices, mounts...). */
  onTeardown(what: string, fn: () => void): void {
    this.extraCleanups.push({ what, fn });
  }

  // ---------------------------------------------------------------------------------------
  // Teardown

  /** Kill every node and process we started, delete every namespace and veth. Idempotent, sync. */
  teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    this.unregister();
    for (const n of this.nodes) {
      if (n.initPid !== null) signal(n.initPid, 'SIGKILL');
      n.initPid = null;
    }
    // Anything else still inside one of our namespaces: probes, nsenter parents, launchers.
    for (const ns of this.namespaces) {
      const id = netnsId(ns);
      if (id) for (const pid of processesInNetNs(id)) signal(pid, 'SIGKILL');
    }
    for (const { what, fn } of this.extraCleanups.reverse()) {
      try {
        fn();
      } catch (e) {
        console.error(`teardown of ${what} failed: ${(e as Error).message}`);
      }
    }
    for (const ns of new Set(this.namespaces)) runSync(['ip', 'netns', 'del', ns], { allowFail: true });
    if (!this.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** nsfs identity of a named network namespace, comparable with nsId(pid, 'net'). */
function netnsId(name: string): string | null {
  try {
    return `net:[${statSync(`/run/netns/${name}`).ino}]`;
  } catch {
    return null;
  }
}

/**
 * Remove namespaces left by a test bed whose process died without tearing down (SIGKILL,
 * OOM): their creator pid is in the name. Processes inside them are killed first.
 */
export function sweepStale(): void {
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-[a-z0-9]+-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const id = netnsId(name);
    if (id) for (const pid of processesInNetNs(id)) signal(pid, 'SIGKILL');
    runSync(['ip', 'netns', 'del', name], { allowFail: true });
  }
}


