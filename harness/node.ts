// The node daemon: wires comm + decisions + ownership + agents. It owns all the mutable state of
// this node (one HierarchyRuntime per hierarchy) and runs one loop:
//
//   something changed (peer, monitor, action finished, admin, timer) -> decide() -> start the
//   returned actions (bounded concurrency, one in flight per hierarchy) -> write outcomes back.
//
// Nothing here decides *what* to do: that is harness/decide.ts. This file only decides *how*.
import { mkdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { Config, HierarchyConfig } from '../hierarchies/model.ts';
import { validateInChild } from '../hierarchies/validate-child.ts';
import { ConfigError, formatIssue, isError } from '../hierarchies/issues.ts';
import { locateAgent, BUNDLED_AGENT_DIR, type AgentRef } from '../agents/locate.ts';
import { Comm } from './comm.ts';
import { readAuthKey } from './authkey.ts';
import { createBackend } from '../fencing/index.ts';
import { acquire, watchHolder, type HolderWatch } from '../fencing/race.ts';
import { OwnershipKeeper } from '../fencing/ownership.ts';
import { nodeKey, nodePart, formatKey } from '../fencing/keys.ts';
import type { DiskRef, Key, OwnershipBackend } from '../fencing/backend.ts';
import { decide, initialRuntime, type Action, type DecideInput, type HierarchyRuntime, type PeerView } from './decide.ts';
import { probe, startLevels, stopLevels, instanceName, type AgentContext, type ResourceInfo } from './actions.ts';
import { Monitors } from './monitors.ts';
import { serveControl, type ControlRequest } from './control.ts';
import { UtilityChecks } from './utility.ts';
import { DEFAULTS, ownershipTimers, type OwnershipTimers } from './defaults.ts';
import type { Logger } from './log.ts';
import { buildStatus, type FailoverRecord } from './status.ts';
import { Guard, isClientFacing, type GuardHierarchy, type GuardOwnership, type GuardStop } from './guard.ts';
import { watchHierarchies } from './reload.ts';
import { nextIncarnation } from './incarnation.ts';
import type { FSWatcher } from 'chokidar';
import { buildAgentEnv, setAgentNice } from '../agents/runner.ts';
import { stopLevels as stopLevelsOf } from '../hierarchies/tree.ts';

export interface NodeOptions {
  configFile: string;
  node: string;
  log: Logger;
}

/** Back-off after a failed acquire, per reason: a live owner is re-checked slowly. */
const ACQUIRE_BACKOFF_MS: Record<string, number> = {
  'held-by-reachable': 500,
  'owner-alive-on-disk': 500,
  'lost-race': 300,
  error: 2000,
};

export class NodeDaemon {
  readonly node: string;
  readonly log: Logger;
  private readonly configFile: string;
  config!: Config;
  private comm!: Comm;
  private backend!: OwnershipBackend;
  private keeper!: OwnershipKeeper;
  private monitors!: Monitors;
  private utility!: UtilityChecks;
  private control?: Server;
  private guard?: Guard;
  private watcher?: FSWatcher;
  /** Validated hierarchy definitions waiting until their hierarchy is idle here to take effect. */
  private pending = new Map<string, HierarchyConfig | null>();
  private ctx!: AgentContext;
  readonly runtime = new Map<string, HierarchyRuntime>();
  private readonly failures = new Map<string, number[]>(); // hierarchy -> failure times
  private readonly watches = new Map<string, HolderWatch>(); // hierarchy -> holder key observation
  readonly notes = new Map<string, string>();
  readonly failovers = new Map<string, FailoverRecord>();
  readonly fencedBy = new Map<string, string>();
  private readonly peerDown = new Map<string, { at: number; lastHeard: number | null }>();
  private readonly inFlight = new Set<string>();
  private shutdown: false | 'switchover' | 'stop' = false;
  private readonly adminStop = new Set<string>();
  private generation = 0;
  private tickTimer?: NodeJS.Timeout;
  private lastTick = 0;
  /** Ownership timers scaled to this cluster's dead time: computed once at start. */
  private timers!: OwnershipTimers;
  private scheduled = false;
  private stopped!: Promise<void>;
  private resolveStopped!: () => void;
  readonly startedAt = Date.now();

  constructor(opts: NodeOptions) {
    this.configFile = opts.configFile;
    this.node = opts.node;
    this.log = opts.log;
    this.stopped = new Promise((r) => (this.resolveStopped = r));
  }

  /** Load and check everything, then join the cluster. Throws (ConfigError etc.) before touching anything shared. */
  async start(): Promise<void> {
    // Boosted first: the check (a child process) runs at the daemon's priority, and so does not
    // starve behind busy peers on a shared host (the scsi tier's three nodes on two emulated
    // vCPUs: 60 s without reaching its first step); its agents still run at the original nice.
    this.raisePriority();
    const { config, issues, ms } = await validateInChild(this.configFile, undefined, this.agentNice);
    const errors = issues.filter(isError);
    this.log.info({ event: 'config-checked', durationMs: ms, errors: errors.length }, `configuration checked in ${ms} ms`);
    for (const i of issues) this.log.warn({ event: 'config-issue' }, formatIssue(i));
    if (!config || errors.length > 0) throw new ConfigError(errors.length ? errors : issues);
    this.config = config;
    const me = config.cluster.nodes.find((n) => n.name === this.node);
    if (!me) throw new Error(`${config.cluster.file}: node ${this.node} is not in the cluster's node list`);
    const stateDir = me.stateDir ?? join('/var/lib/harness', this.node);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.guard = new Guard({ node: this.node, stateDir, log: this.log });
    await this.guard.waitForPrevious();
    const rscTmp = process.env.HA_RSCTMP ?? '/run/resource-agents';

    this.ctx = { node: this.node, ocfRoot: config.cluster.ocfRoot, rscTmp, log: this.log, agents: new Map<string, AgentRef>(), info: new Map<string, ResourceInfo>() };
    for (const h of config.hierarchies) this.resolveAgents(h);

    const key = readAuthKey(config.cluster.authKeyFile);
    // The file backend's directory is shared by the nodes of one machine (demo/tests): create it.
    if (config.cluster.ownership.backend === 'file') mkdirSync(config.cluster.ownership.dir, { recursive: true });
    this.timers = ownershipTimers(config.cluster.deadTimeMs);
    this.backend = await createBackend(config.cluster.ownership, this.node, { fileLockStaleMs: this.timers.fileLockStaleMs });
    this.guardOwnership = {
      backend: this.backend.name === 'scsi' ? 'scsi' : 'file',
      nodePart: nodePart(nodeKey(config.cluster.cluster, this.node, 0)).toString(16),
      initiator: this.node,
      keyRefreshMs: this.timers.keyRefreshMs,
      fileLockStaleMs: this.timers.fileLockStaleMs,
    };
    this.keeper = new OwnershipKeeper({
      backend: this.backend,
      cluster: config.cluster.cluster,
      self: this.node,
      log: this.log,
      keyRefreshMs: this.timers.keyRefreshMs,
      ownershipCheckMs: this.timers.ownershipCheckMs,
    });
    this.keeper.on('lost', (h: string, by: Key | null, detail: string) => {
      this.fencedBy.set(h, by ? formatKey(by) : 'unknown');
      this.log.error({ event: 'fenced', hierarchy: h, by: by ? formatKey(by) : null, detail }, `${h}: ownership LOST (fenced by ${by ? formatKey(by) : 'unknown'}): stopping at once`);
      const rt = this.runtime.get(h);
      if (rt) rt.ownership = 'lost';
      this.schedule();
    });
    // Key generations must grow across restarts of this daemon: seconds since the epoch, then +1 per acquire.
    this.generation = Math.floor(Date.now() / 1000) & 0x7fffffff;

    for (const h of config.hierarchies) {
      const rt = initialRuntime(h);
      if (!h.fenced) this.log.warn({ event: 'not-fenced', hierarchy: h.name }, `${h.name}: NOT FENCED (fencing: none): no disk arbitrates between nodes`);
      this.runtime.set(h.name, rt);
    }
    // Disks that cannot be owned make their hierarchy ineligible here — never the whole node.
    for (const h of config.hierarchies) {
      for (const d of this.disks(h)) {
        try {
          await this.backend.verify(d);
        } catch (e) {
          const rt = this.runtime.get(h.name)!;
          rt.utilityOk = false;
          this.notes.set(h.name, `disk unusable: ${(e as Error).message}`);
          this.log.error({ event: 'disk-unusable', hierarchy: h.name, disk: d.id, err: (e as Error).message }, `${h.name}: refusing to own it: ${(e as Error).message}`);
        }
      }
    }

    this.monitors = new Monitors(this.ctx, (h, r, reason) => this.onMonitorFailure(h, r, reason), (h) => this.runtime.get(h)?.busy ?? true);
    this.utility = new UtilityChecks(config.hierarchies, this.log, () => this.schedule());

    this.comm = new Comm({ cluster: config.cluster, self: this.node, key, log: this.log, incarnation: nextIncarnation(stateDir) });
    this.comm.on('change', () => {
      this.notePeerChanges();
      void this.updateWatches(); // a peer just turned suspect: start reading its key now, not at the next tick
      this.schedule();
    });
    // The very first heartbeat already says "not probed yet" for every hierarchy: a peer must not
    // mistake our silence about H for "H is not running here".
    this.comm.setAdvert(Object.fromEntries(config.hierarchies.map((h) => [h.name, { state: 'starting' as const, epoch: 0, eligible: false }])));
    await this.comm.start();
    this.control = await serveControl(me.controlSocket, (req) => this.handleControl(req), config.cluster.controlGroup);
    await this.guard.start();
    this.utility.start();
    this.watcher = watchHierarchies(config.cluster.hierarchyDir, this.log, () => void this.reload());
    this.lastTick = performance.now();
    this.tickTimer = setInterval(() => this.tick(), DEFAULTS.tickMs);
    this.log.info(
      { event: 'node-started', cluster: config.cluster.cluster, hierarchies: config.hierarchies.map((h) => h.name), ownership: this.backend.name, key: formatKey(nodeKey(config.cluster.cluster, this.node, 0)) },
      `node ${this.node} joined cluster ${config.cluster.cluster} (${config.hierarchies.length} hierarchies, ownership backend ${this.backend.name})`,
    );
    this.schedule();
  }

  /**
   * Re-read the hierarchy files. All-or-nothing: any error keeps the last good configuration.
   * Added hierarchies start at once (probe first); changed or removed ones take effect when they
   * are idle here (out of service, not owned), so a running hierarchy is never redefined under
   * its own feet.
   */
  async reload(): Promise<void> {
    const { config, issues } = await validateInChild(this.configFile, undefined, this.agentNice);
    const errors = issues.filter(isError);
    if (!config || errors.length > 0) {
      this.log.error({ event: 'reload-rejected', issues: errors.map(formatIssue) }, `configuration NOT reloaded (keeping the last good one): ${errors.map(formatIssue).join('; ')}`);
      return;
    }
    const old = new Map(this.config.hierarchies.map((h) => [h.name, h]));
    const next = new Map(config.hierarchies.map((h) => [h.name, h]));
    for (const [name, h] of next) {
      const before = old.get(name);
      if (!before || JSON.stringify(before) !== JSON.stringify(h)) this.pending.set(name, h);
    }
    for (const name of old.keys()) if (!next.has(name)) this.pending.set(name, null);
    this.log.info({ event: 'reload', changed: [...this.pending.keys()] }, `configuration reloaded: ${this.pending.size} hierarchies changed`);
    this.applyPending();
    this.schedule();
  }

  private applyPending(): void {
    for (const [name, h] of this.pending) {
      const rt = this.runtime.get(name);
      const idle = !rt || (!rt.busy && (rt.phase === 'out-of-service' || rt.phase === 'unprobed') && rt.ownership === 'not-owned' && !Object.values(rt.resources).some((s) => s === 'running'));
      if (!idle) continue;
      this.pending.delete(name);
      const list = this.config.hierarchies.filter((x) => x.name !== name);
      if (h) {
        this.resolveAgents(h);
        list.push(h);
        this.runtime.set(name, initialRuntime(h));
      } else {
        this.runtime.delete(name);
        this.monitors.disarm(name);
      }
      list.sort((a, b) => a.name.localeCompare(b.name));
      this.config = { ...this.config, hierarchies: list };
      this.utility.setHierarchies(list);
      this.log.info({ event: h ? 'hierarchy-defined' : 'hierarchy-removed', hierarchy: name }, `${name}: ${h ? 'new definition in effect' : 'removed'}`);
    }
  }

  /** Find the agent of every resource of H (same search order as validation: admin dirs, bundled, OCF root). */
  private resolveAgents(h: HierarchyConfig): void {
    const { agentDirs, ocfRoot } = this.config.cluster;
    for (const r of h.resources) {
      if (r.kind !== 'agent') continue;
      this.ctx.agents.set(`${h.name}/${r.name}`, locateAgent(r.provider!, r.type!, { agentDirs: [...agentDirs, BUNDLED_AGENT_DIR], ocfRoot }));
    }
  }

  /** Resolves when the daemon has stopped (after `harness stop`). */
  whenStopped(): Promise<void> {
    return this.stopped;
  }

  disks(h: HierarchyConfig): DiskRef[] {
    return h.resources
      .filter((r) => r.kind === 'disk')
      // `{node}` in a path is this node's name: where nodes reach one LUN under different names
      // (several initiators on one test host), a per-node symlink directory keeps one config for all.
      .map((r) => ({ id: `${h.name}/${r.name}`, paths: (r.disk?.paths ?? []).map((p) => p.replaceAll('{node}', this.node)), ...(r.disk?.wwn ? { wwn: r.disk.wwn } : {}) }));
  }

  /**
   * For a hierarchy that does not run here: drop any registration of ours on its disks, which
   * would otherwise block every peer for good ("held by a node we can reach"). REGISTER with key
   * 0: never a re-registration, a no-op when we hold nothing (or a peer preempted us), and it
   * releases the reservation if we still held it.
   */
  private async dropOwnRegistration(h: HierarchyConfig): Promise<void> {
    for (const d of this.disks(h)) {
      await this.backend.registerIgnore(d, 0n).catch((e: unknown) =>
        this.log.warn({ event: 'unregister-failed', hierarchy: h.name, disk: d.id, err: (e as Error).message }, `${h.name}: could not drop our registration on ${d.id}: ${(e as Error).message}`),
      );
    }
  }

  /** The nice value agents run at, when the daemon raised its own priority above it. */
  private agentNice: number | undefined;

  /** Heartbeats and key refreshes before agents (see DEFAULTS.daemonPriorityBoost). */
  private raisePriority(): void {
    const base = getPriority();
    const boosted = Math.max(-20, base - DEFAULTS.daemonPriorityBoost);
    if (boosted === base) return;
    try {
      setPriority(boosted);
      setAgentNice(base);
      this.agentNice = base;
      this.log.info({ event: 'priority', nice: boosted, agentNice: base }, `daemon runs at nice ${boosted}, agents at ${base}`);
    } catch (e) {
      this.log.warn({ event: 'priority', err: (e as Error).message }, `cannot raise the daemon's priority (needs root or CAP_SYS_NICE): heartbeats compete with agents for CPU`);
    }
  }

  /** Do not race for this hierarchy again before `ms` from now; decide again right then. */
  private backoff(rt: HierarchyRuntime, ms: number): void {
    rt.acquireBackoffUntil = Date.now() + ms;
    setTimeout(() => this.schedule(), ms + 5).unref();
  }

  private ticks = 0;
  private lastAdvert = '';
  private lastAdvertObj: Record<string, import('./packet.ts').HierarchyAdvert> = {};
  private tick(): void {
    this.checkFreeze();
    void this.updateWatches();
    // Events (peers, monitors, finished actions, admin, back-off expiry) trigger decisions at once;
    // the periodic re-decision only catches slow time-based changes (failure windows): once a
    // second is plenty and keeps an idle node idle.
    if (++this.ticks % Math.max(1, Math.round(1000 / DEFAULTS.tickMs)) === 0) this.schedule();
  }

  /** Called on every tick and before answering status, so a resumed node never reports stale ownership. */
  private checkFreeze(): void {
    const now = performance.now();
    const gap = now - this.lastTick;
    this.lastTick = now;
    if (gap > this.timers.freezeDetectMs) {
      // We were frozen (SIGSTOP, VM pause, swap storm). Whatever we believed about ownership may be
      // stale: peers may have preempted us meanwhile. Trust nothing until the disks are re-read.
      this.log.warn({ event: 'freeze-detected', gapMs: Math.round(gap) }, `main loop was frozen for ${Math.round(gap)} ms: re-verifying ownership`);
      this.keeper.markUnverified();
    }
  }

  /** Track peers going down, for failover timing (detection time = down - last heard). */
  private notePeerChanges(): void {
    for (const [node, p] of Object.entries(this.comm.view())) {
      const was = this.peerDown.get(node);
      if (p.state === 'down' && !was) {
        const at = Date.now();
        this.peerDown.set(node, { at, lastHeard: p.lastHeardMs });
        this.log.warn({ event: 'peer-down', peer: node, detectMs: p.lastHeardMs ? at - p.lastHeardMs : null, leaving: p.leaving }, `peer ${node} is ${p.leaving ? 'leaving' : 'DOWN'}`);
      } else if (p.state === 'up' && was) {
        this.peerDown.delete(node);
        this.log.info({ event: 'peer-up', peer: node }, `peer ${node} is up`);
      }
    }
  }

  /**
   * The disk as the last comm path: while the node running H is suspect or down (and we might take
   * over), keep sampling its key on the disk so the liveness window overlaps the dead time.
   */
  private watching = false;
  private async updateWatches(): Promise<void> {
    if (this.watching || !this.comm) return;
    // Nothing to watch while every peer is heard from (the common, idle case): skip the work.
    if (this.watches.size === 0 && !Object.values(this.comm.view()).some((p) => p.suspect || p.state === 'down')) return;
    this.watching = true;
    try {
      const view = this.comm.view();
      // One read per watched disk, all at once: twenty hierarchies must not take twenty turns.
      await Promise.all(
        this.config.hierarchies.map(async (h) => {
          const rt = this.runtime.get(h.name)!;
          const runner = Object.values(view).find((p) => p.advert?.[h.name]?.state === 'in-service' || p.advert?.[h.name]?.state === 'starting');
          const runsOnReachable = Object.values(view).some((p) => p.state === 'up' && !p.suspect && p.advert?.[h.name]?.state === 'in-service');
          const interesting = h.fenced && rt.phase === 'out-of-service' && runner && (runner.suspect || runner.state === 'down') && !runsOnReachable;
          const disk = this.disks(h)[0];
          if (!interesting || !disk) {
            this.watches.delete(h.name);
            return;
          }
          try {
            const w = await watchHolder(this.backend, disk, this.watches.get(h.name), Date.now());
            if (w) this.watches.set(h.name, w);
            else if (this.watches.delete(h.name) && rt.acquireBackoffUntil > Date.now()) {
              // The holder we watched let go (its guard stopped everything and released): race
              // now rather than at the end of a back-off taken while it was still holding.
              rt.acquireBackoffUntil = 0;
              this.schedule();
            }
          } catch (e) {
            this.log.debug({ hierarchy: h.name, err: (e as Error).message }, 'holder watch read failed');
          }
        }),
      );
    } finally {
      this.watching = false;
      // While watching, sample at the key-poll rate (the tick is slower); stop when nothing is watched.
      if (this.watches.size > 0 && !this.watchTimer) this.watchTimer = setInterval(() => void this.updateWatches(), DEFAULTS.keyPollMs);
      if (this.watches.size === 0 && this.watchTimer) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    }
  }
  private watchTimer?: NodeJS.Timeout;

  private peerViews(): Record<string, PeerView> {
    const out: Record<string, PeerView> = {};
    for (const [node, p] of Object.entries(this.comm.view())) {
      const hs: PeerView['hierarchies'] = {};
      for (const [name, a] of Object.entries(p.advert ?? {})) hs[name] = { state: a.state, eligible: a.eligible };
      out[node] = { state: p.state, leaving: p.leaving, hierarchies: hs };
    }
    return out;
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.runDecisions();
    });
  }

  /** The keeper is the authority on ownership of fenced hierarchies (refresh/check loops, freezes). */
  private syncOwnership(): void {
    for (const h of this.config.hierarchies) {
      const rt = this.runtime.get(h.name)!;
      if (!h.fenced || rt.ownership === 'not-owned') continue;
      const own = this.keeper.get(h.name);
      if (own.state === 'owned' || own.state === 'unverified' || own.state === 'lost') rt.ownership = own.state;
    }
  }

  private decideInput(): DecideInput {
    const now = Date.now();
    this.syncOwnership();
    for (const h of this.config.hierarchies) {
      const rt = this.runtime.get(h.name)!;
      const windowMs = Math.max(...h.resources.map((r) => r.restart.windowMs), 0);
      const list = (this.failures.get(h.name) ?? []).filter((t) => now - t < windowMs);
      this.failures.set(h.name, list);
      rt.failuresInWindow = list.length;
      rt.utilityOk = this.utility.ok(h.name) && !this.notes.get(h.name)?.startsWith('disk unusable');
    }
    return {
      self: this.node,
      now,
      hierarchies: this.config.hierarchies,
      peers: this.peerViews(),
      local: Object.fromEntries(this.runtime),
      shutdown: this.shutdown,
      adminStop: [...this.adminStop],
      raceDelayPerRankMs: DEFAULTS.raceDelayPerRankMs,
    };
  }

  private runDecisions(): void {
    if (!this.config) return;
    if (this.pending.size) this.applyPending();
    const input = this.decideInput();
    const d = decide(input);
    for (const [h, note] of Object.entries(d.notes)) {
      if (!this.notes.get(h)?.startsWith('disk unusable')) this.notes.set(h, note);
    }
    const advert = Object.fromEntries(
      Object.entries(d.advert).map(([h, a]) => {
        const own = this.keeper.get(h);
        return [h, { ...a, epoch: this.generation, ...(own.state === 'owned' ? { ownerKey: formatKey(own.key) } : {}) }];
      }),
    );
    const leaving = this.shutdown !== false && this.allQuiet();
    const key = JSON.stringify([advert, leaving]);
    if (key !== this.lastAdvert) {
      this.lastAdvert = key;
      this.lastAdvertObj = advert;
      this.comm.setAdvert(advert, { leaving });
    }
    for (const a of d.actions) {
      if (this.inFlight.size >= this.config.cluster.maxParallelHierarchies) break;
      this.launch(a);
    }
    if (this.shutdown && this.allQuiet()) void this.finishShutdown();
  }

  private allQuiet(): boolean {
    for (const rt of this.runtime.values()) {
      if (rt.busy) return false;
      if (rt.phase !== 'out-of-service' && rt.phase !== 'failed' && rt.phase !== 'unprobed') return false;
      if (rt.ownership === 'owned' && rt.phase !== 'failed') return false;
    }
    return true;
  }

  private launch(a: Action): void {
    const rt = this.runtime.get(a.hierarchy)!;
    const h = this.config.hierarchies.find((x) => x.name === a.hierarchy)!;
    rt.busy = true;
    this.inFlight.add(a.hierarchy);
    if (a.kind === 'start' || a.kind === 'restart') {
      this.guardStarting.set(a.hierarchy, new Set((a.kind === 'start' ? a.levels : a.start).flat()));
      this.updateGuard();
    }
    const t0 = performance.now();
    this.log.info({ event: 'action', action: a.kind, hierarchy: a.hierarchy, reason: a.reason, ...(a.kind === 'acquire' ? { delayMs: a.delayMs } : {}) }, `${a.hierarchy}: ${a.kind} (${a.reason})`);
    this.execute(a, h, rt)
      .catch((e: unknown) => {
        this.log.error({ event: 'action-error', action: a.kind, hierarchy: a.hierarchy, err: (e as Error).stack ?? String(e) }, `${a.hierarchy}: ${a.kind} failed unexpectedly: ${(e as Error).message}`);
        if (a.kind === 'stop' || a.kind === 'restart') rt.phase = 'failed';
        else if (a.kind === 'acquire') this.backoff(rt, ACQUIRE_BACKOFF_MS.error!);
      })
      .finally(() => {
        rt.busy = false;
        this.inFlight.delete(a.hierarchy);
        this.guardStarting.delete(a.hierarchy);
        this.updateGuard();
        this.log.info({ event: 'action-done', action: a.kind, hierarchy: a.hierarchy, phase: rt.phase, durationMs: Math.round(performance.now() - t0) }, `${a.hierarchy}: ${a.kind} done -> ${rt.phase}`);
        this.schedule();
      });
  }

  private async execute(a: Action, h: HierarchyConfig, rt: HierarchyRuntime): Promise<void> {
    switch (a.kind) {
      case 'probe': {
        await probe(this.ctx, h, rt);
        const running = Object.values(rt.resources).some((s) => s === 'running');
        rt.phase = running ? 'in-service' : 'out-of-service';
        rt.wasRunning = running;
        if (running) {
          this.log.warn({ event: 'found-running', hierarchy: h.name, resources: rt.resources }, `${h.name}: found running at start-up: claiming ownership before anything else`);
        } else if (h.fenced) {
          // Nothing of H runs here, so no registration of ours on its disks is of any use: one left
          // by an earlier life of this node (a daemon that died or hung while holding) would block
          // every peer for good.
          await this.dropOwnRegistration(h);
        }
        return;
      }
      case 'acquire':
        return this.doAcquire(a, h, rt);
      case 'start': {
        rt.phase = 'starting';
        const t0 = performance.now();
        const r = await startLevels(this.ctx, h, rt, a.levels);
        rt.phase = 'in-service';
        if (r.failed) {
          this.recordFailure(h.name);
          this.log.error({ event: 'start-failed', hierarchy: h.name, resource: r.failed, reason: r.reason }, `${h.name}/${r.failed}: start failed: ${r.reason}`);
        } else {
          this.monitors.arm(h);
          this.recordInService(h, performance.now() - t0, r.agentMs);
        }
        return;
      }
      case 'restart': {
        rt.phase = 'restarting';
        rt.monitorFailures = rt.monitorFailures.filter((x) => x !== a.resource);
        this.monitors.disarm(h.name);
        const s = await stopLevels(this.ctx, h, rt, a.stop);
        if (s.failed) {
          rt.phase = 'failed';
          this.log.error({ event: 'stop-failed', hierarchy: h.name, resource: s.failed, reason: s.reason }, `${h.name}/${s.failed}: stop failed during local restart: hierarchy FAILED, ownership kept`);
          return;
        }
        const r = await startLevels(this.ctx, h, rt, a.start);
        rt.phase = 'in-service';
        if (r.failed) {
          // A failed restart is one more failure: without counting it a resource that can never
          // start again here would be restarted forever instead of failing over.
          this.recordFailure(h.name);
          this.log.error({ event: 'start-failed', hierarchy: h.name, resource: r.failed, reason: r.reason }, `${h.name}/${r.failed}: restart failed: ${r.reason}`);
        }
        else {
          this.monitors.arm(h);
          this.log.info({ event: 'restarted', hierarchy: h.name, resource: a.resource }, `${h.name}/${a.resource}: restarted in place`);
        }
        return;
      }
      case 'stop':
        return this.doStop(a, h, rt);
      case 'halt': {
        this.log.fatal({ event: 'halt', hierarchy: h.name, reason: a.reason }, `${h.name}: ${a.reason}: halting this node (per policy)`);
        this.keeper.stop();
        this.guard?.halt(a.reason, this.config.cluster.haltCommand);
        return;
      }
    }
  }

  private async doAcquire(a: Extract<Action, { kind: 'acquire' }>, h: HierarchyConfig, rt: HierarchyRuntime): Promise<void> {
    const prevPhase = rt.phase;
    rt.phase = 'acquiring';
    const t0 = performance.now();
    try {
      if (!h.fenced) {
        rt.ownership = 'owned';
        return;
      }
      const disks = this.disks(h);
      this.generation = (this.generation + 1) & 0x7fffffff;
      const view = this.comm.view();
      const outcome = await acquire(this.backend, disks, {
        cluster: this.config.cluster.cluster,
        self: this.node,
        generation: this.generation,
        delayMs: a.delayMs,
        livenessWindowMs: this.timers.livenessWindowMs,
        priorWatch: this.watches.get(h.name),
        holderInfo: (key: Key) => {
          const part = nodePart(key);
          const node = this.config.cluster.nodes.find((n) => nodePart(nodeKey(this.config.cluster.cluster, n.name, 0)) === part)?.name ?? null;
          return { node, reachable: node !== null && node !== this.node && view[node]?.state === 'up' };
        },
      });
      const ms = Math.round(performance.now() - t0);
      if (outcome.ok) {
        this.keeper.adopt(h.name, disks, outcome.key);
        rt.ownership = 'owned';
        this.fencedBy.delete(h.name);
        this.lastAcquireMs.set(h.name, ms);
        this.log.info({ event: 'acquired', hierarchy: h.name, key: formatKey(outcome.key), preempted: outcome.preempted ? formatKey(outcome.preempted) : undefined, durationMs: ms }, `${h.name}: owns its disks${outcome.preempted ? ` (preempted ${formatKey(outcome.preempted)})` : ''}`);
      } else {
        this.backoff(rt, ACQUIRE_BACKOFF_MS[outcome.reason] ?? 1000);
        this.log.warn({ event: 'acquire-failed', hierarchy: h.name, reason: outcome.reason, holder: outcome.holder ? formatKey(outcome.holder) : undefined, holderNode: outcome.holderNode, detail: outcome.detail, durationMs: ms }, `${h.name}: did not get ownership: ${outcome.reason} (${outcome.detail})`);
      }
    } finally {
      rt.phase = prevPhase === 'in-service' ? 'in-service' : 'out-of-service';
    }
  }

  private readonly lastAcquireMs = new Map<string, number>();

  private async doStop(a: Extract<Action, { kind: 'stop' }>, h: HierarchyConfig, rt: HierarchyRuntime): Promise<void> {
    rt.phase = 'stopping';
    this.monitors.disarm(h.name);
    const t0 = performance.now();
    if (a.urgent) this.keeper.forget(h.name);
    const s = await stopLevels(this.ctx, h, rt, a.levels, a.urgent ? DEFAULTS.fencedStopTimeoutMs : undefined);
    if (s.failed) {
      rt.phase = 'failed';
      // Keep ownership: as long as we hold the disks nobody else can start H next to our half-stopped copy.
      this.log.error({ event: 'stop-failed', hierarchy: h.name, resource: s.failed, reason: s.reason }, `${h.name}/${s.failed}: STOP FAILED (${s.reason}): hierarchy FAILED here, ownership kept so it cannot run twice; admin action needed`);
      return;
    }
    if (a.urgent) {
      rt.ownership = 'not-owned';
      // Ownership was given up because it could not be proven (hung or failing reads), not
      // necessarily taken: our reservation may still sit on the disk. Nothing runs here now.
      await this.dropOwnRegistration(h);
    } else if (a.release && rt.ownership !== 'not-owned') {
      await this.keeper.release(h.name);
      rt.ownership = 'not-owned';
    }
    rt.phase = 'out-of-service';
    rt.wasRunning = false;
    this.log.info({ event: 'stopped', hierarchy: h.name, reason: a.reason, durationMs: Math.round(performance.now() - t0), released: a.release }, `${h.name}: out of service here (${a.reason})`);
  }

  /**
   * Keep the guard's stop script equal to what runs and what is owned here. Resources of a start
   * or restart in flight count as running from its launch: a daemon that dies half way through a
   * start leaves them running.
   */
  private updateGuard(): void {
    const plan: GuardHierarchy[] = [];
    for (const h of this.config.hierarchies) {
      const rt = this.runtime.get(h.name)!;
      const starting = this.guardStarting.get(h.name);
      const levels = stopLevelsOf(h).map((level) =>
        level.flatMap((name): GuardStop[] => {
          const r = h.resources.find((x) => x.name === name)!;
          if (r.kind !== 'agent' || (rt.resources[name] === 'stopped' && !starting?.has(name))) return [];
          const agent = this.ctx.agents.get(`${h.name}/${name}`)!;
          const timeoutMs = DEFAULTS.fencedStopTimeoutMs;
          const env = buildAgentEnv({ agent, action: 'stop', instance: instanceName(h, r), params: r.params, timeoutMs, nodeName: this.node, ocfRoot: this.ctx.ocfRoot, rscTmp: this.ctx.rscTmp });
          return [{ label: `${h.name}/${name}`, agentPath: agent.path, timeoutMs, env, clientFacing: isClientFacing(r.type) }];
        }),
      );
      const own = this.keeper.get(h.name).state;
      const disks = h.fenced && (own === 'owned' || own === 'unverified') ? this.disks(h).map((d) => this.backend.guardDisk(d)) : [];
      plan.push({ name: h.name, levels, disks, release: starting === undefined });
    }
    try {
      this.guard?.update(plan, this.guardOwnership);
    } catch (e) {
      this.log.error({ event: 'guard-error', err: (e as Error).message }, `guard: cannot write stop script: ${(e as Error).message}`);
    }
  }
  /** hierarchy -> resources of the start or restart in flight (see updateGuard). */
  private readonly guardStarting = new Map<string, Set<string>>();
  /** How the guard reaches the disks: fixed for the daemon's life, set at start. */
  private guardOwnership!: GuardOwnership;

  private recordFailure(h: string): void {
    const list = this.failures.get(h) ?? [];
    list.push(Date.now());
    this.failures.set(h, list);
  }

  private recordInService(h: HierarchyConfig, startMs: number, agentMs: number): void {
    const now = Date.now();
    // If a peer that ran H died, time the whole failover from the last moment we heard it.
    let from: { node: string; lastHeard: number | null; at: number } | undefined;
    for (const [node, d] of this.peerDown) if (!from || d.at > from.at) from = { node, ...d };
    const acquireMs = this.lastAcquireMs.get(h.name) ?? 0;
    const rec: FailoverRecord = {
      at: now,
      from: from?.node ?? null,
      detectMs: from?.lastHeard ? from.at - from.lastHeard : null,
      totalMs: from?.lastHeard ? now - from.lastHeard : null,
      acquireMs,
      startMs: Math.round(startMs),
      agentMs: Math.round(agentMs),
    };
    this.failovers.set(h.name, rec);
    this.log.info({ event: 'in-service', hierarchy: h.name, ...rec }, `${h.name}: IN SERVICE here (acquire ${acquireMs} ms, start ${rec.startMs} ms${rec.totalMs !== null ? `, ${rec.totalMs} ms since ${rec.from} was last heard` : ''})`);
  }

  private onMonitorFailure(h: string, resource: string, reason: string): void {
    const rt = this.runtime.get(h);
    if (!rt || rt.phase !== 'in-service') return;
    this.log.warn({ event: 'monitor-failed', hierarchy: h, resource, reason }, `${h}/${resource}: monitor failed: ${reason}`);
    rt.resources[resource] = 'failed';
    // Counted when it happens, so the core sees the (N+1)th failure as exhausting the budget.
    this.recordFailure(h);
    if (!rt.monitorFailures.includes(resource)) rt.monitorFailures.push(resource);
    this.schedule();
  }

  private async handleControl(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'ping':
        return { node: this.node };
      case 'status':
        this.checkFreeze();
        this.syncOwnership();
        return buildStatus(this);
      case 'stop':
        this.requestShutdown(req.mode ?? this.config.cluster.onStop);
        return { stopping: true, mode: this.shutdown };
      case 'hierarchy':
        if (!this.runtime.has(req.name)) throw new Error(`no hierarchy ${req.name}`);
        if (req.action === 'out-of-service') this.adminStop.add(req.name);
        else this.adminStop.delete(req.name);
        this.schedule();
        return { ok: true };
    }
    throw new Error('unknown command');
  }

  requestShutdown(mode: 'switchover' | 'stop'): void {
    if (this.shutdown) return;
    this.shutdown = mode;
    // "Just stop": what runs here stays down cluster-wide (advertised as held) until this node returns.
    if (mode === 'stop') {
      for (const [h, rt] of this.runtime) if (rt.phase !== 'out-of-service' && rt.phase !== 'unprobed') this.adminStop.add(h);
    }
    this.log.info({ event: 'shutdown', mode }, `shutting down (${mode})`);
    this.schedule();
  }

  private finishing = false;
  private async finishShutdown(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    for (const [h, rt] of this.runtime) {
      if (rt.phase === 'failed') this.log.error({ event: 'leaving-failed', hierarchy: h }, `${h}: leaving with it FAILED here (a stop failed, resources may still run): peers will not take it over until this node is back and an admin has cleared it`);
    }
    // Tell peers we are leaving (several times, UDP may drop one) so they take over at once.
    // Keep the adverts: a hierarchy held by `--mode stop` must stay held in the peers' memory.
    this.comm.setAdvert(this.lastAdvertObj, { leaving: true });
    await new Promise((r) => setTimeout(r, 3 * (this.config.cluster.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs)));
    await this.close();
    this.log.info({ event: 'node-stopped' }, `node ${this.node} stopped`);
    this.resolveStopped();
  }

  /** Tear down local machinery without touching resources (used by shutdown and tests). */
  async close(): Promise<void> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.monitors?.disarmAll();
    this.utility?.stop();
    await this.watcher?.close();
    this.keeper?.stop();
    await this.comm?.stop();
    await this.guard?.stop();
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
  }

  // --- read-only accessors for status ---
  commView() {
    return this.comm.view();
  }
  commCounters() {
    return this.comm.counters();
  }
  ownershipOf(h: string) {
    return this.keeper.get(h);
  }
  resourceInfo(h: string, r: string): ResourceInfo | undefined {
    return this.ctx.info.get(`${h}/${r}`);
  }
  myKey(): string {
    return formatKey(nodeKey(this.config.cluster.cluster, this.node, 0));
  }
  backendName(): string {
    return this.backend.name;
  }
  backendIoFencing(): boolean {
    return this.backend.ioFencing;
  }
  isShuttingDown() {
    return this.shutdown;
  }
}
