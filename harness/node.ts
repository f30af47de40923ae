// The node daemon: the executor of the reducer (harness/core/step.ts). It turns what happens
// (peers heard or lost, monitors, actions finishing, the keeper's verdicts, admin requests,
// reloads, timers) into events, steps the reducer, and performs the effects it returns: agents,
// ownership, heartbeat adverts, the guard's stop script, monitors, disk watches, timers, logs.
//
// Nothing here decides *what* to do or which phase a hierarchy is in: that is the reducer's
// (and decide.ts's). This file only knows *how* to carry an effect out.
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
import { dropOrHandOverAll } from '../fencing/handover.ts';
import type { DiskRef, Key, OwnershipBackend } from '../fencing/backend.ts';
import { holderClaims, selfEligible, type LocalPhase, type PeerView } from './decide.ts';
import { probe, runOp, startLevels, stopLevels, instanceName, type AgentContext, type ResourceInfo } from './actions.ts';
import { EarlyValidations } from './early-validate.ts';
import { Monitors } from './monitors.ts';
import { serveControl, setControlGroup, type ControlRequest } from './control.ts';
import { applyLive, clusterChanges } from './config-change.ts';
import { UtilityChecks } from './utility.ts';
import { setAutogroupNice, setOtherThreadsNice } from './thread-priority.ts';
import { DEFAULTS, ownershipTimers, type OwnershipTimers } from './defaults.ts';
import type { Logger } from './log.ts';
import { buildStatus, type FailoverRecord } from './status.ts';
import { Guard, isClientFacing, type GuardHierarchy, type GuardOwnership, type GuardStop } from './guard.ts';
import { watchHierarchies } from './reload.ts';
import { nextIncarnation } from './incarnation.ts';
import type { FSWatcher } from 'chokidar';
import { agentNiceIncrement, buildAgentEnv, setAgentNice, useAgentSpawner } from '../agents/runner.ts';
import { stopLevels as stopLevelsOf } from '../hierarchies/tree.ts';
import { initialState, step } from './core/step.ts';
import { keeperEvents } from './core/keeper-events.ts';
import type { ActionEffect, ActionResult, AdminRequest, Effect, Event, EventIn, GuardPlan, HierarchyState, NodeState } from './core/types.ts';
import { isAction } from './core/types.ts';
import type { NodeMeta } from './packet.ts';
import { loadAdmin, saveAdmin } from './admin-store.ts';
import { configFingerprint } from './config-fingerprint.ts';
import { startObservers, type Observers } from './observe.ts';

export interface NodeOptions {
  configFile: string;
  node: string;
  log: Logger;
}

/** The reducer's clock: monotonic, so a wall-clock jump never stretches a back-off or a failure window. */
const monoNow = (): number => performance.timeOrigin + performance.now();


const NO_HIERARCHIES: PeerView['hierarchies'] = Object.freeze({});

export class NodeDaemon {
  readonly node: string;
  readonly log: Logger;
  private readonly configFile: string;
  config!: Config;
  /** The reducer's state: the only place phases, ownership beliefs and admin state live. */
  state!: NodeState;
  private comm!: Comm;
  private backend!: OwnershipBackend;
  private keeper!: OwnershipKeeper;
  private monitors!: Monitors;
  private utility!: UtilityChecks;
  private control?: Server;
  private guard?: Guard;
  private observers?: Observers;
  private watcher?: FSWatcher;
  private ctx!: AgentContext;
  /** hierarchy -> holder key observation (see race.ts watchHolder). */
  private readonly watches = new Map<string, HolderWatch>();
  private watchList: string[] = [];
  readonly failovers = new Map<string, FailoverRecord>();
  private readonly peerDown = new Map<string, { at: number; lastHeard: number | null }>();
  private readonly lastAcquireMs = new Map<string, number>();
  private readonly lastStart = new Map<string, { startMs: number; agentMs: number }>();
  private generation = 0;
  private tickTimer?: NodeJS.Timeout;
  private lastTick = 0;
  /** performance.now() of the reducer's last periodic tick. */
  private lastReducerTick = 0;
  /** Ownership timers scaled to this cluster's dead time: computed once at start. */
  private timers!: OwnershipTimers;
  private lastAdverts: Extract<Effect, { kind: 'advertise' }>['adverts'] = {};
  private stateDir!: string;
  /** Fingerprint of the configuration in effect (advertised; status flags nodes that differ). */
  fingerprint = '';
  private askSeq = 0;
  /** Hierarchies blocked here, with the reason (advertised in the meta). */
  private blocked: Record<string, string> = {};

  /** The configuration in effect changed (a reload): advertise its new fingerprint. */
  private configChanged(): void {
    this.fingerprint = configFingerprint(this.config);
    this.comm.setMeta(this.meta());
  }

  /** What this node advertises besides its hierarchies: the admin map, its configuration, what it blocked. */
  private meta(): NodeMeta {
    return { admin: this.state.admin, config: this.fingerprint, ...(Object.keys(this.blocked).length ? { blocked: this.blocked } : {}) };
  }
  private readonly answers = new Map<number, (a: Extract<Effect, { kind: 'admin-answer' }>) => void>();
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
    // A large daemon's monitors are forked by a small helper (spawn-helper.ts), which inherits the priority just set.
    useAgentSpawner(true);
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
    this.stateDir = stateDir;
    this.observers = await startObservers({ config, node: this.node, stateDir, log: this.log, daemon: this });
    // Before anything acts: standby, maintenance, stop and move set while this node ran, or
    // learned from peers, hold from the first decision on (peers' newer entries merge as heard).
    const admin = loadAdmin(stateDir);
    this.fingerprint = configFingerprint(config);
    this.guard = new Guard({ node: this.node, stateDir, log: this.log });
    await this.guard.waitForPrevious();
    const rscTmp = process.env.HA_RSCTMP ?? '/run/resource-agents';

    this.ctx = { node: this.node, ocfRoot: config.cluster.ocfRoot, rscTmp, log: this.log, agents: new Map<string, AgentRef>(), info: new Map<string, ResourceInfo>() };
    this.ctx.early = new EarlyValidations((h, r) => runOp(this.ctx, h, r, 'validate-all', { early: true }), monoNow);
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
      agentNiceIncrement: agentNiceIncrement(),
    };
    this.keeper = new OwnershipKeeper({
      backend: this.backend,
      cluster: config.cluster.cluster,
      self: this.node,
      log: this.log,
      keyRefreshMs: this.timers.keyRefreshMs,
      ownershipCheckMs: this.timers.ownershipCheckMs,
      refreshNeeded: (h) => this.contested(h),
      contestHoldMs: DEFAULTS.contestHoldWindows * this.timers.livenessWindowMs,
    });
    this.keeper.on('timing', (kind: 'check' | 'refresh', h: string, ms: number) => this.observers?.ownership(kind, h, ms));
    this.keeper.on('lost', (h: string, by: Key | null, detail: string) => this.dispatch({ type: 'ownership', hierarchy: h, state: 'lost', by: by === null ? null : formatKey(by), detail }));
    // Key generations must grow across restarts of this daemon: seconds since the epoch, then +1 per acquire.
    this.generation = Math.floor(Date.now() / 1000) & 0x7fffffff;

    this.state = initialState(this.node, config.hierarchies, { maxParallelHierarchies: config.cluster.maxParallelHierarchies, raceDelayPerRankMs: DEFAULTS.raceDelayPerRankMs }, monoNow(), admin);
    for (const h of config.hierarchies) {
      if (!h.fenced) this.log.warn({ event: 'not-fenced', hierarchy: h.name }, `${h.name}: NOT FENCED (fencing: none): no disk arbitrates between nodes`);
    }
    // Disks that cannot be owned make their hierarchy ineligible here — never the whole node.
    for (const h of config.hierarchies) {
      for (const d of this.disks(h)) {
        try {
          await this.backend.verify(d);
        } catch (e) {
          this.queue.push({ type: 'disk-unusable', hierarchy: h.name, detail: (e as Error).message });
        }
      }
    }

    this.monitors = new Monitors(this.ctx, (h, resource, reason, fatal, hard) => this.dispatch({ type: 'monitor-failed', hierarchy: h, resource, reason, fatal, ...(hard ? { hard } : {}) }), (h) => this.state.h[h]?.busy ?? true);
    this.utility = new UtilityChecks(config.hierarchies, this.log, () => {
      for (const h of this.state.hierarchies) this.dispatch({ type: 'utility', hierarchy: h.name, ok: this.utility.ok(h.name) });
    });

    this.comm = new Comm({ cluster: config.cluster, self: this.node, key, log: this.log, incarnation: nextIncarnation(stateDir) });
    this.comm.on('calm', () => this.keeper.reconsider());
    this.comm.on('change', () => {
      this.notePeerChanges();
      this.dispatch({ type: 'peers', peers: this.peerViews() });
    });
    // The very first heartbeat already says "not probed yet" for every hierarchy: a peer must not
    // mistake our silence about H for "H is not running here".
    this.comm.setAdvert(Object.fromEntries(config.hierarchies.map((h) => [h.name, { state: 'starting' as const, epoch: 0, eligible: false }])));
    this.comm.setMeta(this.meta());
    await this.comm.start();
    this.control = await serveControl(me.controlSocket, (req) => this.handleControl(req), config.cluster.controlGroup);
    await this.guard.start();
    this.utility.start();
    this.watcher = watchHierarchies([config.cluster.hierarchyDir, this.configFile], this.log, () => void this.reload());
    this.lastTick = performance.now();
    // The tick rides on the heartbeat tick when that comes at least as often: one wake-up of an
    // idle daemon instead of two (wake-ups are most of its idle CPU).
    if (config.cluster.heartbeatIntervalMs <= DEFAULTS.tickMs) this.comm.on('tick', () => this.tick());
    else this.tickTimer = setInterval(() => this.tick(), DEFAULTS.tickMs);
    this.log.info(
      { event: 'node-started', cluster: config.cluster.cluster, hierarchies: config.hierarchies.map((h) => h.name), ownership: this.backend.name, key: formatKey(nodeKey(config.cluster.cluster, this.node, 0)) },
      `node ${this.node} joined cluster ${config.cluster.cluster} (${config.hierarchies.length} hierarchies, ownership backend ${this.backend.name})`,
    );
    this.dispatch({ type: 'peers', peers: this.peerViews() });
  }

  // --- the loop: event -> step -> effects -------------------------------------------------------

  private readonly queue: EventIn[] = [];
  private draining = false;

  /** Feed one event to the reducer; effects that produce events (none synchronously) queue them. */
  dispatch(ev: EventIn): void {
    this.queue.push(ev);
    if (this.draining || !this.state) return;
    this.draining = true;
    const t0 = performance.now();
    try {
      // A pause of this process (SIGSTOP, VM) is noticed before anything is decided after it,
      // and what the keeper knows about ownership goes in first.
      if (this.timers) this.checkFreeze();
      if (this.keeper) this.queue.unshift(...keeperEvents(this.state, this.keeper));
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        const t0 = performance.now();
        const { state, effects } = step(this.state, { ...next, now: monoNow() } as Event);
        this.state = state;
        for (const fx of effects) this.perform(fx);
        this.roundMs[this.rounds++ % this.roundMs.length] = performance.now() - t0;
      }
    } finally {
      this.draining = false;
      this.observers?.round(performance.now() - t0);
    }
  }

  /** The last 4096 decision rounds (one event through the reducer, its effects launched), ms: status shows p50/p99. */
  private readonly roundMs = new Float64Array(4096);
  private rounds = 0;
  decisionStats(): { rounds: number; p50Ms: number; p99Ms: number; maxMs: number } {
    const xs = Array.from(this.roundMs.subarray(0, Math.min(this.rounds, this.roundMs.length))).sort((a, b) => a - b);
    const at = (q: number) => Math.round((xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0) * 1000) / 1000;
    return { rounds: this.rounds, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
  }

  private perform(fx: Effect): void {
    try {
      if (isAction(fx)) return this.launch(fx);
      switch (fx.kind) {
        case 'log':
          return this.log[fx.level]({ event: fx.event, ...fx.fields }, fx.msg);
        case 'advertise':
          this.lastAdverts = fx.adverts;
          this.advertPending = fx;
          if (!this.advertQueued) {
            this.advertQueued = true;
            setImmediate(() => this.flushAdvert());
          }
          return;
        case 'guard':
          return this.updateGuard(fx.plan);
        case 'monitor': {
          const h = this.state.hierarchies.find((x) => x.name === fx.hierarchy);
          if (fx.on && h) this.monitors.arm(h);
          else this.monitors.disarm(fx.hierarchy);
          return;
        }
        case 'watch':
          for (const name of fx.hierarchies) if (!this.watchList.includes(name)) this.validateEarly(name);
          this.watchList = fx.hierarchies;
          for (const h of this.watches.keys()) if (!fx.hierarchies.includes(h)) this.watches.delete(h);
          void this.updateWatches(); // a peer just turned suspect: start reading its key now, not at the next tick
          return;
        case 'timer':
          setTimeout(() => this.dispatch({ type: 'tick' }), Math.max(0, fx.at - monoNow()) + 5).unref();
          return;
        case 'in-service':
          return this.recordInService(fx.hierarchy);
        case 'hierarchies': {
          // Agents switch to a new definition only when it takes effect (its hierarchy idle here):
          // a running resource keeps being monitored and stopped by the agent that started it.
          const before = new Set(this.config.hierarchies);
          for (const h of fx.list) if (!before.has(h)) this.resolveAgents(h);
          this.config = { ...this.config, hierarchies: fx.list };
          this.configChanged();
          this.utility.setHierarchies(fx.list);
          this.ctx.early?.keepOnly(new Set(fx.list.map((h) => h.name)));
          // A redefined hierarchy starts from a passing utility verdict: tell it the current one.
          for (const h of fx.list) if (!before.has(h)) this.queue.push({ type: 'utility', hierarchy: h.name, ok: this.utility.ok(h.name) });
          return;
        }
        case 'leave':
          void this.finishShutdown();
          return;
        case 'admin-state':
          // The same step's advert goes with it, in one news round.
          this.flushAdvert();
          // On disk before it goes out: what peers learn from us survives our own restart.
          saveAdmin(this.stateDir, fx.doc);
          this.comm.setMeta(this.meta());
          return;
        case 'admin-answer':
          this.answers.get(fx.askId)?.(fx);
          this.answers.delete(fx.askId);
          return;
      }
    } catch (e) {
      this.log.error({ event: 'effect-error', effect: fx.kind, err: (e as Error).stack ?? String(e) }, `effect ${fx.kind} failed: ${(e as Error).message}`);
    }
  }

  /**
   * The reducer's latest advert goes out once per turn of the event loop, after every event of
   * that turn: a burst of results (a cold start's probes ending together) is one advert change
   * for the peers to decode, not one per result. A turn is well under a millisecond.
   */
  private advertPending?: Extract<Effect, { kind: 'advertise' }>;
  private advertQueued = false;
  private flushAdvert(): void {
    this.advertQueued = false;
    const fx = this.advertPending;
    this.advertPending = undefined;
    // Leaving: finishShutdown() sends the last advert, marked leaving.
    if (!fx || this.finishing) return;
    this.applyAdvert(fx.adverts, fx.leaving, fx.blocked);
  }

  private applyAdvert(adverts: Extract<Effect, { kind: 'advertise' }>['adverts'], leaving: boolean, blocked: Extract<Effect, { kind: 'advertise' }>['blocked']): void {
    try {
      this.comm.setAdvert(adverts, { leaving });
      if (JSON.stringify(blocked) !== JSON.stringify(this.blocked)) {
        this.blocked = blocked;
        this.comm.setMeta(this.meta());
      }
    } catch (e) {
      this.log.error({ event: 'effect-error', effect: 'advertise', err: (e as Error).stack ?? String(e) }, `effect advertise failed: ${(e as Error).message}`);
    }
  }

  /** Run an action effect; its typed result (or the exception, as evidence) comes back as `done`. */
  private launch(fx: ActionEffect): void {
    const t0 = performance.now();
    const h = this.state.hierarchies.find((x) => x.name === fx.hierarchy)!;
    const resources = { ...this.state.h[fx.hierarchy]!.resources };
    // A start (or restart) waits until the guard's stop script covers it (written off the loop:
    // guard.ts). Anything else begins now, in this turn: an acquire must take the holder watch
    // (evidence gathered while the holder was suspect) before this turn's effects drop it.
    const run = () => this.execute(fx, h, resources);
    const started = (fx.kind === 'start' || fx.kind === 'restart') && this.guard ? this.guard.written().then(run) : run();
    started
      .catch((e: unknown): ActionResult => ({ kind: 'error', detail: (e as Error).stack ?? String(e) }))
      .then((result) => {
        this.dispatch({ type: 'done', id: fx.id, hierarchy: fx.hierarchy, result });
        const rt = this.state.h[fx.hierarchy];
        this.log.info({ event: 'action-done', action: fx.kind, hierarchy: fx.hierarchy, phase: rt?.phase, durationMs: Math.round(performance.now() - t0) }, `${fx.hierarchy}: ${fx.kind} done -> ${rt?.phase}`);
      });
  }

  private async execute(a: ActionEffect, h: HierarchyConfig, resources: HierarchyState['resources']): Promise<ActionResult> {
    switch (a.kind) {
      case 'probe':
        return { kind: 'probe', ...(await probe(this.ctx, h)) };
      case 'unregister': {
        const error = await this.dropOwnRegistration(h);
        return error ? { kind: 'unregister', error } : { kind: 'unregister' };
      }
      case 'acquire':
        return this.doAcquire(a, h);
      case 'start': {
        const t0 = performance.now();
        const r = await startLevels(this.ctx, h, resources, a.levels);
        this.lastStart.set(h.name, { startMs: performance.now() - t0, agentMs: r.agentMs });
        return { kind: 'start', resources, ...(r.failed ? { failed: r.failed, reason: r.reason, fatal: r.fatal === true, ...(r.hard ? { hard: true } : {}) } : {}) };
      }
      case 'restart': {
        const s = await stopLevels(this.ctx, h, resources, a.stop);
        if (s.failed) return { kind: 'restart', resources, stopFailed: s.failed, reason: s.reason };
        const r = await startLevels(this.ctx, h, resources, a.start);
        return { kind: 'restart', resources, ...(r.failed ? { failed: r.failed, reason: r.reason, fatal: r.fatal === true, ...(r.hard ? { hard: true } : {}) } : {}) };
      }
      case 'stop': {
        if (a.urgent) this.keeper.forget(h.name);
        const s = await stopLevels(this.ctx, h, resources, a.levels, a.urgent ? DEFAULTS.fencedStopTimeoutMs : undefined);
        if (s.failed) return { kind: 'stop', resources, failed: s.failed, reason: s.reason };
        // Ownership given up because it could not be proven (hung or failing reads) is not
        // necessarily taken: our reservation may still sit on the disk. Nothing runs here now.
        // After an urgent stop the reducer drops our registration as a step of its own.
        if (a.urgent) return { kind: 'stop', resources };
        else if (a.release && this.keeper.get(h.name).state !== 'not-owned') {
          const releaseError = await this.keeper.releaseOrForget(h.name);
          if (releaseError) return { kind: 'stop', resources, releaseError };
        }
        return { kind: 'stop', resources };
      }
      case 'halt':
        this.keeper.stop();
        this.guard?.halt(a.reason, this.config.cluster.haltCommand);
        return { kind: 'halt' };
    }
  }

  private async doAcquire(a: Extract<ActionEffect, { kind: 'acquire' }>, h: HierarchyConfig): Promise<ActionResult> {
    const t0 = performance.now();
    if (!h.fenced) return { kind: 'acquire', ok: true, key: 'none', generation: this.generation };
    const disks = this.disks(h);
    this.generation = (this.generation + 1) & 0x7fffffff;
    const priorWatch = this.watches.get(h.name);
    // Once per race: holderInfo is asked at every poll of the liveness watch (reversed: on a
    // shared node part the first node listed wins, as a search would find it).
    const nodeOfPart = new Map(this.config.cluster.nodes.map((n) => [nodePart(nodeKey(this.config.cluster.cluster, n.name, 0)), n.name] as const).reverse());
    const outcome = await acquire(this.backend, disks, {
      cluster: this.config.cluster.cluster,
      self: this.node,
      generation: this.generation,
      delayMs: a.delayMs,
      livenessWindowMs: this.timers.livenessWindowMs,
      priorWatch,
      // Monotonic, as the watch: a wall-clock step must not make a live holder's key look frozen.
      now: monoNow,
      holderInfo: (key: Key) => {
        const node = nodeOfPart.get(nodePart(key)) ?? null;
        // The current view, not one from the start of the race: the watch asks again (race.ts).
        return { node, reachable: node !== null && node !== this.node && holderClaims(this.peerViews()[node], h.name) };
      },
    });
    const ms = Math.round(performance.now() - t0);
    if (outcome.ok) {
      this.keeper.adopt(h.name, disks, outcome.key);
      this.lastAcquireMs.set(h.name, ms);
      this.log.info({ event: 'acquired', hierarchy: h.name, key: formatKey(outcome.key), preempted: outcome.preempted ? formatKey(outcome.preempted) : undefined, watchedBefore: priorWatch !== undefined, durationMs: ms }, `${h.name}: owns its disks${outcome.preempted ? ` (preempted ${formatKey(outcome.preempted)})` : ''}`);
      return { kind: 'acquire', ok: true, key: formatKey(outcome.key), generation: this.generation, ...(outcome.preempted ? { preempted: formatKey(outcome.preempted) } : {}) };
    }
    this.log.warn({ event: 'acquire-failed', hierarchy: h.name, reason: outcome.reason, holder: outcome.holder ? formatKey(outcome.holder) : undefined, holderNode: outcome.holderNode, detail: outcome.detail, durationMs: ms }, `${h.name}: did not get ownership: ${outcome.reason} (${outcome.detail})`);
    return { kind: 'acquire', ok: false, reason: outcome.reason, detail: outcome.detail };
  }

  // --- configuration ------------------------------------------------------------------------------

  /**
   * Re-read the hierarchy files. All-or-nothing: any error keeps the last good configuration.
   * The reducer puts changed definitions in effect when their hierarchy is idle here.
   */
  async reload(): Promise<void> {
    const { config, issues } = await validateInChild(this.configFile, undefined, this.agentNice);
    const errors = issues.filter(isError);
    if (!config || errors.length > 0) {
      this.log.error({ event: 'reload-rejected', issues: errors.map(formatIssue) }, `configuration NOT reloaded (keeping the last good one): ${errors.map(formatIssue).join('; ')}`);
      return;
    }
    // cluster.yaml: what may change live does; what needs a restart is refused (config-change.ts).
    const running = this.config.cluster;
    const { live, restart } = clusterChanges(running, config.cluster);
    if (restart.length > 0) {
      this.log.error({ event: 'reload-needs-restart', fields: restart }, `${running.file}: ${restart.join(', ')} changed: needs a restart (keeping the running ${restart.join(', ')}; the other changes apply)`);
    }
    if (live.length > 0) {
      const cluster = applyLive(running, config.cluster);
      this.config = { ...this.config, cluster };
      this.ctx.ocfRoot = cluster.ocfRoot;
      if (live.includes('controlGroup') && this.control) await setControlGroup(this.control, cluster.controlGroup).catch((e: Error) => this.log.error({ event: 'control-group', err: e.message }, `control group not changed: ${e.message}`));
      if (live.includes('hierarchyDir')) {
        await this.watcher?.close();
        this.watcher = watchHierarchies([cluster.hierarchyDir, this.configFile], this.log, () => void this.reload());
      }
      this.configChanged();
      this.log.info({ event: 'reload-live', fields: live }, `${running.file}: applied ${live.join(', ')}`);
    }
    this.dispatch({ type: 'config', hierarchies: config.hierarchies, settings: { ...this.state.settings, maxParallelHierarchies: this.config.cluster.maxParallelHierarchies } });
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

  /** Our registration off every disk of H, a reservation we still hold handed over (fencing/handover.ts). */
  private async dropOwnRegistration(h: HierarchyConfig): Promise<string | undefined> {
    return dropOrHandOverAll(this.backend, this.disks(h), nodePart(nodeKey(this.config.cluster.cluster, this.node, 0)), (d, err) =>
      this.log.warn({ event: 'unregister-failed', hierarchy: h.name, disk: d.id, err }, `${h.name}: could not drop our registration on ${d.id}: ${err}`),
    );
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
      let others = { threads: 0, failed: 0 };
      let group: number | string;
      try {
        others = setOtherThreadsNice(boosted);
        group = setAutogroupNice(boosted);
      } catch (e) {
        group = (e as Error).message;
      }
      this.log.info(
        { event: 'priority', nice: boosted, agentNice: base, threads: others.threads + 1, threadsNotSet: others.failed, autogroupNice: group },
        `daemon runs at nice ${boosted} (${others.threads + 1 - others.failed} of its ${others.threads + 1} threads; its session's autogroup: ${typeof group === 'number' ? `nice ${group}` : `not set, ${group}`}), agents at ${base}`,
      );
    } catch (e) {
      this.log.warn({ event: 'priority', err: (e as Error).message }, `cannot raise the daemon's priority (needs root or CAP_SYS_NICE): heartbeats compete with agents for CPU`);
    }
  }

  // --- sensors: time, freezes, the keeper, peers, disk watches ------------------------------------

  private tick(): void {
    this.checkFreeze();
    this.syncOwnership();
    void this.updateWatches();
    // Events trigger decisions at once; the periodic tick only catches slow time-based changes
    // (failure windows): once a second is plenty and keeps an idle node idle.
    const now = performance.now();
    if (now - this.lastReducerTick >= 1000) {
      this.lastReducerTick = now;
      this.dispatch({ type: 'tick' });
    }
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

  /** A node that could race us for this hierarchy is not calm with us: its keys must keep moving (ownership.ts). */
  private contested(hierarchy: string): boolean {
    const h = this.config.hierarchies.find((x) => x.name === hierarchy);
    return !h || !this.comm || this.comm.contested(Object.keys(h.priorities), hierarchy);
  }

  /** Report the keeper's verdicts (owned / unverified after a freeze / lost) that the reducer has not seen. */
  private syncOwnership(): void {
    for (const ev of keeperEvents(this.state, this.keeper)) this.dispatch(ev);
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

  private peerViews(): Record<string, PeerView> {
    const out: Record<string, PeerView> = {};
    for (const [node, p] of Object.entries(this.comm.view())) {
      // The advert itself (frozen, and the same object while unchanged: the reducer skips such a
      // peer's entries by identity); the reducer reads only each entry's state and eligibility.
      const hs: PeerView['hierarchies'] = p.advert ?? NO_HIERARCHIES;
      out[node] = { state: p.state, leaving: p.leaving, suspect: p.suspect, hierarchies: hs, ...(p.meta ? { admin: p.meta.admin, config: p.meta.config, ...(p.meta.blocked ? { blocked: p.meta.blocked } : {}) } : {}) };
    }
    return out;
  }

  /** A newly watched hierarchy we may take over once the dead time runs out (this node may run
   *  it, and a peer runs it, not only probes it): validate its first level now (early-validate.ts). */
  private validateEarly(name: string): void {
    const h = this.state.hierarchies.find((x) => x.name === name);
    const rt = this.state.h[name];
    if (!h || !rt || !selfEligible(h, this.node, rt, this.state)) return;
    if (!Object.values(this.state.peers).some((p) => p.hierarchies[name]?.state === 'in-service')) return;
    this.ctx.early?.begin(h);
  }

  /** Sample the holder key of every hierarchy the reducer asked to watch (all at once: twenty must not take twenty turns). */
  private watching = false;
  private watchTimer?: NodeJS.Timeout;
  private async updateWatches(): Promise<void> {
    if (this.watching || !this.comm) return;
    if (this.watchList.length === 0 && this.watches.size === 0) return;
    this.watching = true;
    try {
      await Promise.all(
        this.watchList.map(async (name) => {
          const h = this.state.hierarchies.find((x) => x.name === name);
          const disk = h && this.disks(h)[0];
          if (!disk) return;
          try {
            const w = await watchHolder(this.backend, disk, this.watches.get(name), monoNow());
            if (!this.watchList.includes(name)) return;
            if (w) this.watches.set(name, w);
            else if (this.watches.delete(name)) this.dispatch({ type: 'holder-released', hierarchy: name });
          } catch (e) {
            this.log.debug({ hierarchy: name, err: (e as Error).message }, 'holder watch read failed');
          }
        }),
      );
    } finally {
      this.watching = false;
      // While watching, sample at the key-poll rate (the tick is slower); stop when nothing is watched.
      if (this.watchList.length > 0 && !this.watchTimer) this.watchTimer = setInterval(() => void this.updateWatches(), DEFAULTS.keyPollMs);
      if (this.watchList.length === 0 && this.watchTimer) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    }
  }

  // --- the guard ----------------------------------------------------------------------------------

  /**
   * Per hierarchy, its plan entry and what it renders to: the reducer hands an unchanged entry
   * over as the same object, so a plan change renders only the entries that moved.
   */
  private readonly guardEntries = new Map<string, { p: GuardPlan; h: HierarchyConfig; g: GuardHierarchy }>();
  private guardByName: { list: readonly HierarchyConfig[] | null; map: Map<string, HierarchyConfig> } = { list: null, map: new Map() };

  /** Render the reducer's guard plan: agent stop commands per level, and the disks to release. */
  private updateGuard(plan: GuardPlan[]): void {
    if (this.guardByName.list !== this.state.hierarchies) this.guardByName = { list: this.state.hierarchies, map: new Map(this.state.hierarchies.map((h) => [h.name, h])) };
    const byName = this.guardByName.map;
    const out: GuardHierarchy[] = [];
    const seen = new Set<string>();
    for (const p of plan) {
      const h = byName.get(p.name);
      if (!h) continue;
      seen.add(p.name);
      const cached = this.guardEntries.get(p.name);
      if (cached && cached.p === p && cached.h === h) {
        out.push(cached.g);
        continue;
      }
      const levels = stopLevelsOf(h).map((level) =>
        level.flatMap((name): GuardStop[] => {
          const r = h.resources.find((x) => x.name === name)!;
          if (r.kind !== 'agent' || !p.resources.includes(name)) return [];
          const agent = this.ctx.agents.get(`${h.name}/${name}`)!;
          const timeoutMs = DEFAULTS.fencedStopTimeoutMs;
          const env = buildAgentEnv({ agent, action: 'stop', instance: instanceName(h, r), params: r.params, timeoutMs, nodeName: this.node, ocfRoot: this.ctx.ocfRoot, rscTmp: this.ctx.rscTmp });
          return [{ label: `${h.name}/${name}`, agentPath: agent.path, timeoutMs, env, clientFacing: isClientFacing(r.type) }];
        }),
      );
      const disks = p.owned ? this.disks(h).map((d) => this.backend.guardDisk(d)) : [];
      const g = { name: h.name, levels, disks, release: p.release };
      this.guardEntries.set(p.name, { p, h, g });
      out.push(g);
    }
    for (const name of this.guardEntries.keys()) if (!seen.has(name)) this.guardEntries.delete(name);
    try {
      this.guard?.update(out, this.guardOwnership);
    } catch (e) {
      this.log.error({ event: 'guard-error', err: (e as Error).message }, `guard: cannot write stop script: ${(e as Error).message}`);
    }
  }
  /** How the guard reaches the disks: fixed for the daemon's life, set at start. */
  private guardOwnership!: GuardOwnership;

  private recordInService(name: string): void {
    const now = Date.now();
    // If a peer that ran H died, time the whole failover from the last moment we heard it. Only a
    // peer whose last word had H active counts: a cold start or a move while some other node is
    // down is no failover.
    const view = this.comm.view();
    const ran = (node: string) => ['in-service', 'starting', 'stopping', 'failed'].includes(view[node]?.advert?.[name]?.state ?? '');
    let from: { node: string; lastHeard: number | null; at: number } | undefined;
    for (const [node, d] of this.peerDown) if (ran(node) && (!from || d.at > from.at)) from = { node, ...d };
    const acquireMs = this.lastAcquireMs.get(name) ?? 0;
    const start = this.lastStart.get(name) ?? { startMs: 0, agentMs: 0 };
    const rec: FailoverRecord = {
      at: now,
      from: from?.node ?? null,
      detectMs: from?.lastHeard ? from.at - from.lastHeard : null,
      totalMs: from?.lastHeard ? now - from.lastHeard : null,
      acquireMs,
      startMs: Math.round(start.startMs),
      agentMs: Math.round(start.agentMs),
    };
    this.failovers.set(name, rec);
    this.log.info({ event: 'in-service', hierarchy: name, ...rec }, `${name}: IN SERVICE here (acquire ${acquireMs} ms, start ${rec.startMs} ms${rec.totalMs !== null ? `, ${rec.totalMs} ms since ${rec.from} was last heard` : ''})`);
  }

  // --- control ------------------------------------------------------------------------------------

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
        return { stopping: true, mode: this.state.shutdown };
      case 'hierarchy':
      case 'node': {
        const request: AdminRequest =
          req.cmd === 'hierarchy' ? { target: 'hierarchy', hierarchy: req.name, action: req.action, ...(req.to !== undefined ? { to: req.to } : {}) } : { target: 'node', node: req.name, action: req.action };
        const id = ++this.askSeq;
        const answer = new Promise<Extract<Effect, { kind: 'admin-answer' }>>((res) => this.answers.set(id, res));
        this.dispatch({ type: 'admin', ask: { id, by: req.by ?? `root@${this.node}`, at: Date.now(), request } });
        const a = await answer;
        if (!a.ok) throw new Error(a.message);
        return { message: a.message, version: a.version, ...(a.to ? { to: a.to } : {}) };
      }
    }
    throw new Error('unknown command');
  }

  requestShutdown(mode: 'switchover' | 'stop'): void {
    this.dispatch({ type: 'shutdown', mode });
  }

  private finishing = false;
  private async finishShutdown(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    // Tell peers we are leaving (several times, UDP may drop one) so they take over at once.
    // Keep the adverts: a hierarchy held by `--mode stop` must stay held in the peers' memory.
    const last = this.advertPending;
    this.advertPending = undefined;
    this.applyAdvert(this.lastAdverts, true, last?.blocked ?? this.blocked);
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
    await this.observers?.stop();
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
  }

  // --- read-only accessors for status and metrics ---
  phases(): Record<string, LocalPhase> {
    return Object.fromEntries(Object.entries(this.state.h).map(([name, rt]) => [name, rt.phase]));
  }
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
    return this.state.shutdown;
  }
}
