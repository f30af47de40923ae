// One simulated machine: its daemon process (the real reducer, decide(), race, keeper and
// liveness rule, on the simulated clock) and its guard. This is the simulator's executor: the
// same job as harness/node.ts, with agents, disks and the network simulated.
//
// Process model:
//  - power off: the machine stops at once; its resources stop running; its registrations stay on
//    the disks (a dead node's key freezes).
//  - crash (SIGKILL of the daemon): the guard stops what the daemon's last guard plan lists,
//    keeping the disks' keys moving meanwhile, then releases them (all stops ok, no start in
//    flight) or leaves them frozen for a peer to preempt.
//  - stall (SIGSTOP): the daemon runs nothing (its timers and packets wait); its resources keep
//    running, the guard does nothing (the daemon is not dead). On resume the overdue timers fire
//    once each and the queued packets are read.
import { acquire, watchHolder, type HolderWatch } from '../fencing/race.ts';
import { OwnershipKeeper } from '../fencing/ownership.ts';
import { formatKey, nextKey, nodeKey, nodePart, releasedKey } from '../fencing/keys.ts';
import { dropOrHandOverAll } from '../fencing/handover.ts';
import { keeperEvents } from '../harness/core/keeper-events.ts';
import type { DiskRef, Key } from '../fencing/backend.ts';
import { Liveness, changesView, commTimers, type HeartbeatIn } from '../harness/liveness.ts';
import { OwnAdvert } from '../harness/advert.ts';
import { initialState, step } from '../harness/core/step.ts';
import { isAction, type ActionEffect, type ActionResult, type Effect, type Event, type EventIn, type GuardPlan, type NodeState } from '../harness/core/types.ts';
import { holderClaims, type PeerView, type ResourceState } from '../harness/decide.ts';
import type { HierarchyConfig } from '../hierarchies/model.ts';
import { stopLevels as stopLevelsOf } from '../hierarchies/tree.ts';
import { incarnationAfter } from '../harness/incarnation.ts';
import { DEFAULTS, ownershipTimers } from '../harness/defaults.ts';
import type { SimClock, SimTimer } from './clock.ts';
import { SimBackend, type SimSan } from './disk.ts';
import type { SimAgents } from './agents.ts';
import type { SimNetwork } from './network.ts';
import type { AdminDoc } from '../harness/core/admin.ts';

export interface SimCluster {
  cluster: string;
  nodes: string[];
  paths: number;
  heartbeatIntervalMs: number;
  deadTimeMs: number;
  maxParallelHierarchies: number;
  hierarchies: HierarchyConfig[];
  /** Probe duration per resource, ms. */
  probeMs: number;
  /** Monitor interval in the simulator, ms. */
  monitorMs: number;
}

export interface Hooks {
  clock: SimClock;
  san: SimSan;
  agents: SimAgents;
  net: SimNetwork;
  /** Every reducer step: the simulator checks invariants and records the trace here. */
  stepped(node: SimNode, ev: Event, before: NodeState, after: NodeState, effects: Effect[]): void;
  /** A peer view was dispatched (the simulator checks it against the truth). */
  viewed(node: SimNode, peers: Record<string, PeerView>): void;
  diskLatencyMs: (node: string) => number;
  /** Disk state changed outside a SimBackend (the guard writes the disk directly). */
  changed(): void;
  /** A line for the trace (the guard's work). */
  note(node: SimNode, text: string): void;
}

/** A halted (rebooted) machine is back this long after the halt. */
export const REBOOT_MS = 10_000;

const quiet = {
  level: 'silent',
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  trace() {},
  child() {
    return quiet;
  },
};


/** One daemon process's life: everything here dies with it. */
interface Proc {
  readonly gen: number;
  state: NodeState;
  liveness: Liveness;
  keeper: OwnershipKeeper;
  backend: SimBackend;
  incarnation: number;
  seq: number;
  round: number;
  deadlineArmed: boolean;
  /** What it advertises: hierarchies and meta (summarized in every heartbeat, carried on news and on request). */
  own: OwnAdvert;
  guardPlan: GuardPlan[];
  watchList: string[];
  watches: Map<string, HolderWatch>;
  intervals: Set<SimTimer>;
  monitors: Map<string, SimTimer>;
  queue: EventIn[];
  draining: boolean;
  lastTick: number;
  ticks: number;
  viewKey: string;
  /** Our doubts as last sent (see comm.ts doubtsMoved). */
  doubtsSent: string;
  generation: number;
  watchTimer: SimTimer | null;
  exiting: boolean;
}

export class SimNode {
  readonly name: string;
  readonly c: SimCluster;
  readonly hooks: Hooks;
  /** Machine powered on. */
  power = true;
  p: Proc | null = null;
  stalled = false;
  /** When the daemon last died (crash, power-off, clean exit). */
  diedAt = -Infinity;
  stalledSince = -Infinity;
  resumedAt = -Infinity;
  readonly #deferred = new Map<() => void, true>();
  readonly #buffered: HeartbeatIn[] = [];
  #gen = 0;
  #machineGen = 0;
  /** Persistent (stateDir): the last incarnation used. */
  #lastIncarnation = 0;
  /** The admin map as persisted in stateDir: survives restarts of the node. */
  #admin: AdminDoc = {};
  /** Wall clock offset (clock jumps): only the incarnation reads the wall clock. */
  wallOffsetMs = 0;
  guardRunning = false;
  /** Its utility checks pass (a fault can make them fail): told to every new daemon too. */
  utilityOk = true;
  /** The daemon was asked to stop and has exited cleanly. */
  stoppedCleanly = false;
  readonly #timers: ReturnType<typeof ownershipTimers>;
  readonly #stride: number;

  constructor(name: string, c: SimCluster, hooks: Hooks) {
    this.name = name;
    this.c = c;
    this.hooks = hooks;
    this.#timers = ownershipTimers(c.deadTimeMs);
    this.#stride = commTimers(c).pathStride;
  }

  get clock(): SimClock {
    return this.hooks.clock;
  }

  // --- process life ---------------------------------------------------------------------------

  /** Start the daemon (as `harness start`): a new incarnation, fresh memory, probe first. */
  boot(): void {
    if (!this.power || this.p) return;
    const gen = ++this.#gen;
    const now = this.clock.now();
    this.#lastIncarnation = incarnationAfter(this.#lastIncarnation, 1_000_000 + now + this.wallOffsetMs);
    const timers = this.procTimers(gen);
    const backend = new SimBackend({ san: this.hooks.san, node: this.name, clock: this.clock, latencyMs: this.hooks.diskLatencyMs(this.name) });
    const keeper = new OwnershipKeeper({
      backend,
      cluster: this.c.cluster,
      self: this.name,
      log: quiet as never,
      keyRefreshMs: this.#timers.keyRefreshMs,
      ownershipCheckMs: this.#timers.ownershipCheckMs,
      now: () => this.clock.now(),
      timers,
      refreshNeeded: (h) => this.contested(h),
      contestHoldMs: DEFAULTS.contestHoldWindows * this.#timers.livenessWindowMs,
    });
    const liveness = new Liveness({ self: this.name, selfIncarnation: this.#lastIncarnation, peers: this.c.nodes.filter((n) => n !== this.name), paths: this.c.paths, timers: commTimers(this.c) });
    liveness.start(now);
    const p: Proc = {
      gen,
      state: initialState(this.name, this.c.hierarchies, { maxParallelHierarchies: this.c.maxParallelHierarchies, raceDelayPerRankMs: DEFAULTS.raceDelayPerRankMs }, now, this.#admin),
      liveness,
      keeper,
      backend,
      incarnation: this.#lastIncarnation,
      seq: 0,
      round: 0,
      deadlineArmed: false,
      own: new OwnAdvert(),
      guardPlan: [],
      watchList: [],
      watches: new Map(),
      intervals: new Set(),
      monitors: new Map(),
      queue: [],
      draining: false,
      lastTick: now,
      ticks: 0,
      viewKey: '',
      doubtsSent: '',
      generation: Math.floor((now + this.wallOffsetMs) / 1000) & 0x7fffffff,
      watchTimer: null,
      exiting: false,
    };
    p.own.set(Object.fromEntries(this.c.hierarchies.map((h) => [h.name, { state: 'starting' as const, epoch: 0, eligible: false }])), false);
    p.own.setMeta({ admin: this.#admin, config: 'sim' });
    this.p = p;
    this.stoppedCleanly = false;
    // Only while this incarnation lives: a dead one's keeper can still settle a call that hung
    // (its backend times it out 10 s later) and count it as a failed check. A real process is gone
    // with its keeper; delivering that verdict to the next incarnation stopped a healthy owner
    // (seed 889: 'ownership LOST' at 14.048 s for a readKeys the powered-off n2 began at 4.048 s).
    keeper.on('lost', (h: string, by: Key | null, detail: string) => {
      if (this.p === p) this.dispatch({ type: 'ownership', hierarchy: h, state: 'lost', by: by === null ? null : formatKey(by), detail });
    });
    p.intervals.add(timers.setInterval(() => this.heartbeatRound(), this.c.heartbeatIntervalMs));
    p.intervals.add(timers.setInterval(() => this.tick(), DEFAULTS.tickMs));
    if (!this.utilityOk) this.tellUtility();
    this.dispatch({ type: 'peers', peers: this.peerViews() });
  }

  /** Its utility verdict, for every hierarchy that has utility checks. */
  tellUtility(): void {
    for (const h of this.c.hierarchies) if (h.utilityChecks.length > 0) this.dispatch({ type: 'utility', hierarchy: h.name, ok: this.utilityOk });
  }

  /** The daemon dies (SIGKILL, or a crash): the guard takes over. */
  crash(): void {
    const p = this.p;
    if (!p) return;
    this.kill();
    if (!p.exiting) this.runGuard(p.guardPlan);
  }

  /** The machine loses power: nothing runs, nothing is released. */
  powerOff(): void {
    if (!this.power) return;
    this.kill();
    this.power = false;
    this.#machineGen++;
    this.guardRunning = false;
    this.stalled = false;
    this.#deferred.clear();
    this.#buffered.length = 0;
    this.hooks.agents.powerOff(this.name);
  }

  powerOn(): void {
    if (this.power) return;
    this.power = true;
    this.boot();
  }

  stall(): void {
    if (!this.p || this.stalled) return;
    this.stalled = true;
    this.stalledSince = this.clock.now();
  }

  resume(): void {
    if (!this.stalled) return;
    this.stalled = false;
    this.resumedAt = this.clock.now();
    // As comm.ts: what arrived during the stall is read before the overdue timers judge anyone.
    const pkts = this.#buffered.splice(0);
    for (const hb of pkts) this.receive(hb);
    const fns = [...this.#deferred.keys()];
    this.#deferred.clear();
    for (const fn of fns) fn();
  }

  private kill(): void {
    const p = this.p;
    if (!p) return;
    for (const t of p.intervals) this.clock.clearInterval(t);
    for (const t of p.monitors.values()) this.clock.clearInterval(t);
    if (p.watchTimer) this.clock.clearInterval(p.watchTimer);
    p.backend.hang = true; // calls in flight never answer a dead process
    this.p = null;
    this.diedAt = this.clock.now();
    if (this.stalled) this.resumedAt = this.clock.now(); // a stall ended by death: the guard acts now
    this.stalled = false;
    this.#deferred.clear();
    this.#buffered.length = 0;
  }

  /** Timers of one process: they do nothing once it is gone, and wait while it is stalled. */
  private procTimers(gen: number) {
    const run = (fn: () => void) => {
      if (this.p?.gen !== gen) return;
      if (this.stalled) {
        this.#deferred.set(fn, true);
        return;
      }
      fn();
    };
    const clock = this.clock;
    const p = () => this.p;
    return {
      now: () => clock.now(),
      setTimeout: (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const once = () => fn(...args);
        return clock.setTimeout(() => run(once), ms);
      },
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
      setInterval: (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const every = () => fn(...args);
        const t = clock.setInterval(() => run(every), ms);
        p()?.intervals.add(t);
        return t;
      },
      clearInterval: (h: unknown) => {
        clock.clearInterval(h);
        p()?.intervals.delete(h as SimTimer);
      },
    };
  }

  private sleep(gen: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.procTimers(gen).setTimeout(() => resolve(), Math.max(0, ms));
    });
  }

  // --- the executor ---------------------------------------------------------------------------

  dispatch(ev: EventIn): void {
    const p = this.p;
    if (!p) return;
    p.queue.push(ev);
    if (p.draining) return;
    p.draining = true;
    try {
      // As harness/node.ts: a pause is noticed, and the keeper's verdicts go in, before any decision.
      this.checkFreeze(p);
      p.queue.unshift(...keeperEvents(p.state, p.keeper));
      for (let next = p.queue.shift(); next && this.p === p; next = p.queue.shift()) {
        const e = { ...next, now: this.clock.now() } as Event;
        const before = p.state;
        const { state, effects } = step(before, e);
        p.state = state;
        this.hooks.stepped(this, e, before, state, effects);
        for (const fx of effects) if (this.p === p) this.perform(p, fx);
      }
    } finally {
      p.draining = false;
    }
  }

  private perform(p: Proc, fx: Effect): void {
    if (isAction(fx)) return void this.launch(p, fx);
    switch (fx.kind) {
      case 'log':
        return;
      case 'advertise':
        p.own.set(fx.adverts, fx.leaving);
        if (JSON.stringify(fx.blocked) !== JSON.stringify(p.own.meta?.blocked ?? {})) p.own.setMeta({ admin: this.#admin, config: 'sim', ...(Object.keys(fx.blocked).length ? { blocked: fx.blocked } : {}) });
        this.send(p, true); // news goes out at once, on every path
        return;
      case 'guard':
        p.guardPlan = fx.plan;
        return;
      case 'monitor':
        return this.monitor(p, fx.hierarchy, fx.on);
      case 'watch':
        p.watchList = fx.hierarchies;
        for (const h of [...p.watches.keys()]) if (!fx.hierarchies.includes(h)) p.watches.delete(h);
        if (fx.hierarchies.length > 0 && !p.watchTimer) {
          p.watchTimer = this.procTimers(p.gen).setInterval(() => void this.sampleWatches(p), DEFAULTS.keyPollMs);
          void this.sampleWatches(p);
        }
        if (fx.hierarchies.length === 0 && p.watchTimer) {
          this.clock.clearInterval(p.watchTimer);
          p.watchTimer = null;
        }
        return;
      case 'timer':
        this.procTimers(p.gen).setTimeout(() => this.dispatch({ type: 'tick' }), Math.max(0, fx.at - this.clock.now()) + 1);
        return;
      case 'in-service':
      case 'hierarchies':
      case 'admin-answer':
        return;
      case 'admin-state':
        this.#admin = fx.doc;
        p.own.setMeta({ ...(p.own.meta ?? { config: 'sim' }), admin: fx.doc });
        this.send(p, true);
        return;
      case 'leave':
        p.exiting = true;
        p.own.set(p.own.hierarchies, true);
        this.procTimers(p.gen).setTimeout(() => {
          this.kill();
          this.stoppedCleanly = true;
        }, 3 * this.c.heartbeatIntervalMs);
        return;
    }
  }

  private launch(p: Proc, fx: ActionEffect): void {
    const h = p.state.hierarchies.find((x) => x.name === fx.hierarchy)!;
    const resources = { ...p.state.h[fx.hierarchy]!.resources };
    this.execute(p, fx, h, resources)
      .catch((e: unknown): ActionResult => ({ kind: 'error', detail: (e as Error).stack ?? String(e) }))
      .then((result) => {
        if (this.p === p) this.dispatch({ type: 'done', id: fx.id, hierarchy: fx.hierarchy, result });
      });
  }

  disks(h: HierarchyConfig): DiskRef[] {
    return h.resources.filter((r) => r.kind === 'disk').map((r) => ({ id: `${h.name}/${r.name}`, paths: [] }));
  }

  private async execute(p: Proc, a: ActionEffect, h: HierarchyConfig, resources: Record<string, ResourceState>): Promise<ActionResult> {
    const agents = this.hooks.agents;
    switch (a.kind) {
      case 'probe': {
        await this.sleep(p.gen, this.c.probeMs);
        const out: Record<string, ResourceState> = {};
        let cannotRun: string | null = null;
        let fatal: string | null = null;
        for (const r of h.resources) {
          if (r.kind === 'disk') {
            out[r.name] = 'stopped';
            continue;
          }
          const v = agents.probe(this.name, h.name, r.name);
          if (v === 'not-installed') cannotRun = `${r.name}: not-installed (rc 5)`;
          if (v === 'not-configured') fatal = `${r.name}: not-configured (rc 6)`;
          out[r.name] = v === 'running' ? 'running' : 'stopped';
        }
        return { kind: 'probe', resources: out, cannotRun, fatal };
      }
      case 'unregister': {
        const error = await this.unregister(p, h);
        return error ? { kind: 'unregister', error } : { kind: 'unregister' };
      }
      case 'acquire': {
        if (!h.fenced) return { kind: 'acquire', ok: true, key: 'none', generation: p.generation };
        p.generation = (p.generation + 1) & 0x7fffffff;
        const disks = this.disks(h);
        // Once per race: holderInfo is asked at every poll of the liveness watch (as harness/node.ts,
        // reversed: on a shared node part the first node listed wins).
        const nodeOfPart = new Map(this.c.nodes.map((n) => [nodePart(nodeKey(this.c.cluster, n, 0)), n] as const).reverse());
        const outcome = await acquire(p.backend, disks, {
          cluster: this.c.cluster,
          self: this.name,
          generation: p.generation,
          delayMs: a.delayMs,
          livenessWindowMs: this.#timers.livenessWindowMs,
          priorWatch: p.watches.get(h.name),
          holderInfo: (key: Key) => {
            const node = nodeOfPart.get(nodePart(key)) ?? null;
            return { node, reachable: node !== null && node !== this.name && holderClaims(this.peerViews()[node], h.name) };
          },
          sleep: (ms) => this.sleep(p.gen, ms),
          now: () => this.clock.now(),
        });
        if (this.p !== p) return new Promise(() => undefined);
        if (outcome.ok) {
          p.keeper.adopt(h.name, disks, outcome.key);
          return { kind: 'acquire', ok: true, key: formatKey(outcome.key), generation: p.generation, ...(outcome.preempted ? { preempted: formatKey(outcome.preempted) } : {}) };
        }
        return { kind: 'acquire', ok: false, reason: outcome.reason, detail: outcome.detail };
      }
      case 'start': {
        const w = await this.walk(p, h, resources, a.levels, 'start');
        return { kind: 'start', resources, ...w };
      }
      case 'restart': {
        const s = await this.walk(p, h, resources, a.stop, 'stop');
        if (s.failed) return { kind: 'restart', resources, stopFailed: s.failed, reason: s.reason };
        const w = await this.walk(p, h, resources, a.start, 'start');
        return { kind: 'restart', resources, ...w };
      }
      case 'stop': {
        if (a.urgent) p.keeper.forget(h.name);
        const s = await this.walk(p, h, resources, a.levels, 'stop', a.urgent ? DEFAULTS.fencedStopTimeoutMs : undefined);
        if (s.failed) return { kind: 'stop', resources, ...s };
        if (a.urgent) return { kind: 'stop', resources };
        else if (a.release && p.keeper.get(h.name).state !== 'not-owned') {
          const releaseError = await p.keeper.releaseOrForget(h.name);
          if (releaseError) return { kind: 'stop', resources, releaseError };
        }
        return { kind: 'stop', resources };
      }
      case 'halt':
        // The guard runs the halt command at once: an immediate reboot (back after REBOOT_MS).
        this.clock.setTimeout(() => {
          this.powerOff();
          this.clock.setTimeout(() => this.powerOn(), REBOOT_MS);
        }, 1);
        return new Promise(() => undefined);
    }
  }

  private unregister(p: Proc, h: HierarchyConfig): Promise<string | undefined> {
    return dropOrHandOverAll(p.backend, this.disks(h), nodePart(nodeKey(this.c.cluster, this.name, 0)));
  }

  private async walk(p: Proc, h: HierarchyConfig, resources: Record<string, ResourceState>, levels: string[][], kind: 'start' | 'stop', timeoutMs?: number): Promise<{ failed?: string; reason?: string; fatal?: boolean }> {
    const agents = this.hooks.agents;
    for (const level of levels) {
      const results = await Promise.all(
        level.map(async (name) => {
          const r = h.resources.find((x) => x.name === name)!;
          if (r.kind === 'disk') {
            resources[name] = kind === 'start' ? 'running' : 'stopped';
            return { name, ok: true, fatal: false, reason: '' };
          }
          const t = timeoutMs ?? (kind === 'start' ? r.timeouts.startMs : r.timeouts.stopMs) ?? DEFAULTS.startTimeoutMs;
          const o = agents.plan(kind, this.name, h.name, name, t);
          agents.launch(kind, this.name, h.name, name);
          await this.sleep(p.gen, o.durationMs);
          if (this.p !== p) return new Promise<never>(() => undefined);
          agents.finish(kind, this.name, h.name, name, o.ok);
          if (kind === 'start' && o.ok && agents.isBroken(this.name, h.name, name)) {
            this.clock.setTimeout(() => agents.crash(this.name, h.name, name), agents.brokenAfterMs);
          }
          resources[name] = o.ok ? (kind === 'start' ? 'running' : 'stopped') : kind === 'start' ? 'failed' : 'stop-failed';
          return { name, ok: o.ok, fatal: o.fatal === true, reason: o.reason ?? '' };
        }),
      );
      const bad = results.find((x) => !x.ok);
      if (bad) return { failed: bad.name, reason: bad.reason, ...(bad.fatal ? { fatal: true } : {}) };
    }
    return {};
  }

  private monitor(p: Proc, name: string, on: boolean): void {
    const old = p.monitors.get(name);
    if (old) this.clock.clearInterval(old);
    p.monitors.delete(name);
    if (!on) return;
    const h = p.state.hierarchies.find((x) => x.name === name);
    if (!h) return;
    const reported = new Set<string>();
    const t = this.procTimers(p.gen).setInterval(() => {
      const rt = p.state.h[name];
      if (!rt || rt.busy) return;
      for (const r of h.resources) {
        if (r.kind !== 'agent' || reported.has(r.name)) continue;
        const fatal = this.hooks.agents.misconfigured.has(`${name}/${r.name}`);
        if (fatal || !this.hooks.agents.running(this.name, name, r.name)) {
          reported.add(r.name);
          this.dispatch({ type: 'monitor-failed', hierarchy: name, resource: r.name, reason: fatal ? 'not-configured (rc 6)' : 'not-running (rc 7)', fatal });
        }
      }
    }, this.c.monitorMs);
    p.intervals.delete(t);
    p.monitors.set(name, t);
  }

  private async sampleWatches(p: Proc): Promise<void> {
    for (const name of p.watchList) {
      const h = p.state.hierarchies.find((x) => x.name === name);
      const disk = h && this.disks(h)[0];
      if (!disk) continue;
      try {
        const w = await watchHolder(p.backend, disk, p.watches.get(name), this.clock.now());
        if (this.p !== p) return;
        if (!p.watchList.includes(name)) continue;
        if (w) p.watches.set(name, w);
        else if (p.watches.delete(name)) this.dispatch({ type: 'holder-released', hierarchy: name });
      } catch {
        // a failed read proves nothing either way
      }
    }
  }

  // --- comm -------------------------------------------------------------------------------------

  private heartbeatRound(): void {
    const p = this.p;
    if (!p) return;
    p.round++;
    this.send(p, false);
    this.evaluate(p);
  }

  /** As comm.ts: judge the peers, and wake exactly at the next threshold if it comes before the next round. */
  private evaluate(p: Proc): void {
    const now = this.clock.now();
    const changes = p.liveness.evaluate(now);
    if (changes.some((ch) => ch.kind === 'state' || ch.kind === 'suspect')) this.doubtsMoved(p);
    if (changesView(changes)) this.peersChanged(p);
    if (this.p !== p) return;
    const next = p.liveness.nextDeadline(now);
    if (next === null || next - now >= this.c.heartbeatIntervalMs || p.deadlineArmed) return;
    p.deadlineArmed = true;
    this.procTimers(p.gen).setTimeout(() => {
      p.deadlineArmed = false;
      this.evaluate(p);
    }, next - now + 1);
  }

  /** As comm.ts sendRound: paths take turns, except toward peers not heard on every path, and news (which carries the advert). */
  private send(p: Proc, all: boolean, carry = all): void {
    const stride = Math.min(this.#stride, this.c.paths);
    const turn = p.round % stride;
    const wantsAll = all ? null : new Set(p.liveness.wantsEveryPath(this.clock.now()));
    p.seq++;
    for (let path = 0; path < this.c.paths; path++) {
      const onTurn = all || path % stride === turn;
      const hb = this.heartbeat(p, path, carry);
      for (const to of this.c.nodes) {
        if (to === this.name || !(onTurn || wantsAll?.has(to))) continue;
        this.hooks.net.send(this.name, to, hb);
      }
    }
  }

  private heartbeat(p: Proc, path: number, carry: boolean): HeartbeatIn {
    const want = p.liveness.wanted();
    const doubts = p.liveness.doubts(this.clock.now());
    return { node: this.name, path, incarnation: p.incarnation, seq: p.seq, heard: p.liveness.heard(), leaving: p.own.leaving, ...p.own.summary(carry), ...(want.length > 0 ? { want } : {}), doubts };
  }

  /** As harness/node.ts contested(): a node that could race us for it is not calm with us. */
  private contested(hierarchy: string): boolean {
    const p = this.p;
    const h = this.c.hierarchies.find((x) => x.name === hierarchy);
    return !p || !h || p.liveness.contested(Object.keys(h.priorities), this.clock.now(), hierarchy);
  }

  /** As comm.ts doubtsMoved(): a peer we newly doubt hears at once, and the keeper looks again. */
  private doubtsMoved(p: Proc): void {
    const list = p.liveness.doubts(this.clock.now());
    const doubts = list.join(',');
    if (doubts === p.doubtsSent) return;
    const before = new Set(p.doubtsSent.split(','));
    p.doubtsSent = doubts;
    const newly = list.filter((n) => !before.has(n));
    if (newly.length > 0) {
      p.seq++;
      for (let path = 0; path < this.c.paths; path++) {
        const hb = this.heartbeat(p, path, false);
        for (const to of newly) this.hooks.net.send(this.name, to, hb);
      }
    }
    p.keeper.reconsider();
  }

  /** As comm.ts queueAnswer: our advert to a peer that asked, or our `want` to one whose advert we miss, on the path it came on. */
  private answer(p: Proc, to: string, path: number, carry: boolean): void {
    p.seq++;
    this.hooks.net.send(this.name, to, this.heartbeat(p, path, carry));
  }

  receive(hb: HeartbeatIn): void {
    const p = this.p;
    if (!p) return;
    if (this.stalled) {
      if (this.#buffered.length < 256) this.#buffered.push(hb);
      return;
    }
    this.hooks.net.record(hb.node, this.name, hb);
    const r = p.liveness.receive(hb, this.clock.now());
    if (r.ok && (r.request || r.need)) this.answer(p, hb.node, hb.path, r.request === true);
    if (r.ok && r.doubtChanged) p.keeper.reconsider();
    if (r.changes.some((ch) => ch.kind === 'state' || ch.kind === 'suspect')) this.doubtsMoved(p);
    if (r.changed) this.peersChanged(p);
  }

  private peersChanged(p: Proc): void {
    const views = this.peerViews();
    const key = JSON.stringify(views);
    if (key === p.viewKey) return;
    p.viewKey = key;
    this.hooks.viewed(this, views);
    this.dispatch({ type: 'peers', peers: views });
  }

  peerViews(): Record<string, PeerView> {
    const p = this.p;
    if (!p) return {};
    const out: Record<string, PeerView> = {};
    for (const [node, v] of Object.entries(p.liveness.view(this.clock.now()))) {
      const hs: PeerView['hierarchies'] = {};
      for (const [name, a] of Object.entries(v.advert ?? {})) hs[name] = { state: a.state, eligible: a.eligible };
      out[node] = { state: v.state, leaving: v.leaving, suspect: v.suspect, hierarchies: hs, ...(v.meta ? { admin: v.meta.admin, config: v.meta.config, ...(v.meta.blocked ? { blocked: v.meta.blocked } : {}) } : {}) };
    }
    return out;
  }

  private tick(): void {
    const p = this.p;
    if (!p) return;
    this.checkFreeze(p);
    for (const ev of keeperEvents(p.state, p.keeper)) this.dispatch(ev);
    if (++p.ticks % 5 === 0) this.dispatch({ type: 'tick' });
  }

  /** A main-loop gap means this process was frozen: ownership is unverified until re-read. */
  private checkFreeze(p: Proc): void {
    const now = this.clock.now();
    if (now - p.lastTick > this.#timers.freezeDetectMs) p.keeper.markUnverified();
    p.lastTick = now;
  }

  // --- the guard --------------------------------------------------------------------------------

  /**
   * What harness/guard-lib.sh does when the daemon dies: keep the disks' keys moving, stop the
   * listed resources (stop order), then release the disks when every stop succeeded and no start
   * was in flight; else leave the key frozen (peers preempt after the liveness window).
   */
  private runGuard(plan: GuardPlan[]): void {
    const machine = this.#machineGen;
    const alive = () => this.power && this.#machineGen === machine;
    const later = (ms: number) => new Promise<void>((r) => this.clock.setTimeout(() => alive() && r(), Math.max(0, ms)));
    const held = plan.filter((x) => x.owned);
    const todo = plan.filter((x) => x.resources.length > 0 || x.owned);
    if (todo.length === 0) return;
    this.guardRunning = true;
    this.hooks.note(this, `guard: daemon gone, stopping ${todo.map((x) => x.name).join(', ')}`);
    const san = this.hooks.san;
    let holding = true;
    const refresh = () => {
      if (!holding || !alive()) return;
      for (const x of held) {
        const h = this.c.hierarchies.find((y) => y.name === x.name)!;
        for (const d of this.disks(h)) {
          const disk = san.get(d.id);
          const cur = disk?.keyOf(this.name);
          if (disk && cur !== undefined) {
            try {
              disk.reregister(this.name, cur, nextKey(cur));
              this.hooks.changed();
            } catch {
              // preempted meanwhile: nothing to hold
            }
          }
        }
      }
      this.clock.setTimeout(refresh, this.#timers.keyRefreshMs);
    };
    refresh();
    void (async () => {
      for (const x of todo) {
        const h = this.c.hierarchies.find((y) => y.name === x.name)!;
        let ok = true;
        for (const level of stopLevelsOf(h)) {
          const results = await Promise.all(
            level
              .filter((name) => x.resources.includes(name))
              .map(async (name) => {
                const o = this.hooks.agents.plan('stop', this.name, h.name, name, DEFAULTS.fencedStopTimeoutMs);
                await later(o.durationMs);
                this.hooks.agents.finish('stop', this.name, h.name, name, o.ok);
                return o.ok;
              }),
          );
          if (results.some((r) => !r)) {
            ok = false;
            this.hooks.note(this, `guard: ${h.name}: a stop failed: keeping its disks (peers preempt once the key freezes)`);
            break;
          }
        }
        if (ok && x.owned && !x.release) this.hooks.note(this, `guard: ${h.name}: stopped; a start was in flight: its disks are left to freeze`);
        if (ok && x.owned && x.release) {
          for (const d of this.disks(h)) {
            try {
              // As guard-lib.sh hg_release: hand over, never unreserve.
              const disk = san.get(d.id);
              const cur = disk?.keyOf(this.name);
              if (disk && cur !== undefined) disk.reregister(this.name, cur, releasedKey(cur));
              this.hooks.changed();
            } catch {
              // nothing registered
            }
          }
          this.hooks.note(this, `guard: ${h.name}: stopped and released`);
        } else if (ok && !x.owned) {
          this.hooks.note(this, `guard: ${h.name}: stopped`);
        }
      }
      holding = false;
      this.guardRunning = false;
    })();
  }
}
