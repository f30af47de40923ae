// The assembled test bed for the benchmark and the system tests: a namespace cluster running
// the harness daemon on every node, a client station (which also holds the gateway address of
// the utility check), one watcher per node, the shared loop disk, and the configuration.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_ADDRESS, GATEWAY_ADDRESS, vipAddress } from './addressing.ts';
import { NetnsCluster, type Station, type TestNode } from './cluster.ts';
import { vipHierarchy, webHierarchy, writeBedConfig, WEB_PORT, type HierarchyDoc, type TimingProfile } from './config.ts';
import { daemonEntry, daemonStatus, logFileOf, startDaemon } from './daemon.ts';
import { createLoopDisk, sweepStaleLoops } from './disk.ts';
import { addWatchers } from './probes.ts';
import { sleep } from './run.ts';

/** Directory of workDir holding the file ownership backend's state (a tmpfs, see Bed.create). */
const OWNERSHIP_DIR = 'ownership';

export interface BedOptions {
  profile: TimingProfile;
  /** 'web': the full stack (disk, Filesystem, Dummy, IPaddr2, webserver); 'many': N Dummy+IPaddr2 hierarchies. */
  kind: 'web' | 'many';
  /** Number of hierarchies for kind 'many' (default 20). */
  many?: number;
  nodes?: number;
  keepWorkDir?: boolean;
  /** Extra environment for every daemon (e.g. HARNESS_LOG_LEVEL). */
  daemonEnv?: NodeJS.ProcessEnv;
}

export class Bed {
  readonly cluster: NetnsCluster;
  readonly client: Station;
  readonly watchers: Map<string, Station>;
  readonly clusterFile: string;
  /** Service addresses; vips[0] is the one the watchers and the address sampler follow. */
  readonly vips: string[];
  readonly hierarchies: string[];
  readonly httpUrl: string | null;
  readonly profile: TimingProfile;
  /** The daemon binary every node runs (dist/ build or .ts sources) and why. */
  readonly daemon: ReturnType<typeof daemonEntry>;
  private readonly daemonEnv: NodeJS.ProcessEnv;
  /** Nodes whose daemon should be running (started and neither stopped nor powered off since). */
  readonly daemonsUp = new Set<string>();

  private constructor(init: {
    cluster: NetnsCluster;
    client: Station;
    watchers: Map<string, Station>;
    clusterFile: string;
    vips: string[];
    hierarchies: string[];
    httpUrl: string | null;
    profile: TimingProfile;
    daemonEnv: NodeJS.ProcessEnv;
  }) {
    this.cluster = init.cluster;
    this.client = init.client;
    this.watchers = init.watchers;
    this.clusterFile = init.clusterFile;
    this.vips = init.vips;
    this.hierarchies = init.hierarchies;
    this.httpUrl = init.httpUrl;
    this.profile = init.profile;
    this.daemonEnv = init.daemonEnv;
    this.daemon = daemonEntry();
  }

  /** Build everything and start a daemon on every node; does not wait for the cluster to settle. */
  static async create(opts: BedOptions): Promise<Bed> {
    sweepStaleLoops();
    // The file backend's directory on a tmpfs, as the README advises (every operation creates and
    // removes a lock and a temp file; on ext4 that churn slows every creation down).
    const cluster = await NetnsCluster.create({ nodes: opts.nodes ?? 3, paths: 2, keepWorkDir: opts.keepWorkDir, tmpfsDirs: [OWNERSHIP_DIR] });
    try {
      const client = cluster.addStation('cl', [CLIENT_ADDRESS, GATEWAY_ADDRESS]);
      let hierarchies: HierarchyDoc[];
      let vips: string[];
      let httpUrl: string | null = null;
      if (opts.kind === 'web') {
        const content = join(cluster.workDir, 'www-content');
        mkdirSync(content, { recursive: true });
        writeFileSync(join(content, 'index.html'), 'harness bench\n');
        const disk = createLoopDisk(join(cluster.workDir, 'disk.img'), 64, content);
        cluster.onTeardown(`loop device ${disk.device}`, () => disk.detach());
        const mountDir = join(cluster.workDir, 'www');
        mkdirSync(mountDir, { recursive: true });
        vips = [vipAddress(0)];
        hierarchies = [webHierarchy({ nodes: cluster.nodes, vip: vipAddress(0), device: disk.device, mountDir })];
        httpUrl = `http://${vipAddress(0)}:${WEB_PORT}/`;
      } else {
        const n = opts.many ?? 20;
        vips = Array.from({ length: n }, (_, k) => vipAddress(k + 1));
        hierarchies = vips.map((vip, k) => vipHierarchy({ name: `h${String(k + 1).padStart(2, '0')}`, nodes: cluster.nodes, vip }));
      }
      const watchers = addWatchers(cluster, vips[0] as string);
      const cfg = writeBedConfig({
        dir: join(cluster.workDir, 'etc'),
        nodes: cluster.nodes,
        paths: cluster.paths,
        privateMount: cluster.privateMount,
        ownershipDir: join(cluster.workDir, OWNERSHIP_DIR),
        profile: opts.profile,
        hierarchies,
      });
      const bed = new Bed({
        cluster,
        client,
        watchers,
        clusterFile: cfg.clusterFile,
        vips,
        hierarchies: hierarchies.map((h) => String(h.hierarchy)),
        httpUrl,
        profile: opts.profile,
        daemonEnv: opts.daemonEnv ?? {},
      });
      for (const node of cluster.nodes) bed.startDaemon(node);
      return bed;
    } catch (e) {
      cluster.teardown();
      throw e;
    }
  }

  startDaemon(node: TestNode): void {
    startDaemon(this.cluster, node, this.clusterFile, this.daemon.path, this.daemonEnv);
    this.daemonsUp.add(node.name);
  }

  /** Node lost power or its daemon was stopped/killed: not expected to answer any more. */
  markDown(node: TestNode): void {
    this.daemonsUp.delete(node.name);
  }

  /** Power-cycle a node and start its daemon again. */
  async rebootNode(node: TestNode): Promise<void> {
    this.markDown(node);
    await this.cluster.reboot(node);
    this.startDaemon(node);
  }

  /**
   * Wait until every running daemon answers, sees every other running node up, and all of them
   * agree that each hierarchy is in service on exactly one node. Returns hierarchy → node.
   */
  async settle(timeoutMs = 30_000): Promise<Map<string, string>> {
    const deadline = Date.now() + timeoutMs;
    let why = 'no status yet';
    while (Date.now() < deadline) {
      const up = this.cluster.nodes.filter((n) => this.daemonsUp.has(n.name) && n.initPid !== null);
      const docs = await Promise.all(up.map((n) => daemonStatus(n)));
      why = this.unsettled(up, docs) ?? '';
      if (!why) {
        const first = docs[0];
        return new Map((first?.hierarchies ?? []).map((h) => [h.name, h.runningOn[0] ?? '']));
      }
      await sleep(200);
    }
    // Say why from the daemons' own words: the last lines of each running node's log.
    const tails = this.cluster.nodes
      .filter((n) => this.daemonsUp.has(n.name))
      .map((n) => {
        let lines: string[] = [];
        try {
          lines = readFileSync(logFileOf(n), 'utf8').trimEnd().split('\n').slice(-3);
        } catch {
          lines = ['(no log)'];
        }
        return `  ${n.name} (${logFileOf(n)}):\n    ${lines.map((l) => l.slice(0, 300)).join('\n    ')}`;
      });
    throw new Error(`cluster did not settle within ${timeoutMs} ms: ${why}\n${tails.join('\n')}`);
  }

  /** Why the cluster is not settled yet, or null when it is. */
  private unsettled(up: TestNode[], docs: Array<Awaited<ReturnType<typeof daemonStatus>>>): string | null {
    if (up.length === 0) return 'no node is running a daemon';
    const upNames = new Set(up.map((n) => n.name));
    for (const [i, d] of docs.entries()) {
      const name = up[i]?.name ?? '?';
      if (!d) return `${name}: daemon does not answer on its control socket`;
      if (d.shuttingDown) return `${name}: shutting down`;
      for (const peer of d.nodes) {
        if (upNames.has(peer.name) && peer.state !== 'self' && peer.state !== 'up') return `${name} sees ${peer.name} ${peer.state}`;
      }
    }
    for (const h of this.hierarchies) {
      let where: string | null = null;
      for (const [i, d] of docs.entries()) {
        const view = d?.hierarchies.find((x) => x.name === h);
        if (!view) return `${up[i]?.name}: no hierarchy ${h}`;
        if (view.runningOn.length !== 1) return `${up[i]?.name}: ${h} runs on [${view.runningOn.join(', ')}]`;
        const on = view.runningOn[0] as string;
        if (where !== null && on !== where) return `${h}: nodes disagree (${where} vs ${on})`;
        where = on;
        if (on === up[i]?.name && view.phase !== 'in-service') return `${on}: ${h} is ${view.phase}`;
      }
    }
    return null;
  }

  teardown(): void {
    this.cluster.teardown();
  }
}
