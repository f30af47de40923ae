// The decision core. A pure, deterministic function:
//
//   (config, this node's view of its peers, ownership state, resource states, admin requests, now)
//     -> actions
//
// No I/O, no timers, no clock reads: `now` is an input like everything else, so every decision
// can be replayed offline from a logged input (see `harness simulate`). The daemon (node.ts)
// executes the actions and calls decide() again whenever anything changes.
//
// The rule that makes a leaderless cluster work, per hierarchy H, on every node independently:
//   this node is MASTER for H when it is eligible for H, every eligible node of higher priority
//   is unreachable, and H is not active on any node it can reach.
// Masters then race for ownership of H's disks; the disk picks exactly one winner. Everything
// else below is bookkeeping around that rule: probing at start-up, local restarts, stopping when
// ownership is lost, switchback, graceful shutdown.

import type { HierarchyConfig, NodeName } from '../hierarchies/model.ts';
import { levels, stopLevels, dependents } from '../hierarchies/tree.ts';
import { mutant } from './core/mutants.ts';
import { hierarchyInMaintenance, isStandby, isStopped, moveTarget, nodeInMaintenance, setAnywhere, unmanaged, type AdminDoc } from './core/admin.ts';

/** What a node advertises (and what we advertise) for one hierarchy. */
/** `held`: out of service on an admin's request; peers must not take it over. */
/** `blocked`: an agent answered OCF_ERR_CONFIGURED (6): fatal everywhere, nobody may start it. */
export type AdvertState = 'in-service' | 'out-of-service' | 'starting' | 'stopping' | 'failed' | 'held' | 'blocked';

export interface PeerHierarchy {
  state: AdvertState;
  eligible: boolean;
}

export interface PeerView {
  /** unknown = not heard yet and still inside the start-up grace: it might be running anything. */
  state: 'up' | 'down' | 'unknown';
  /** The peer is shutting down cleanly: it is handing its hierarchies over. */
  leaving: boolean;
  /** Silent on every path for a while (not yet dead): challengers start watching its keys on disk. */
  suspect?: boolean;
  hierarchies: Record<string, PeerHierarchy>;
  /** Its admin map (core/admin.ts), merged into ours by the reducer. */
  admin?: AdminDoc;
  /** Fingerprint of its effective configuration (status flags nodes that differ). */
  config?: string;
  /** Hierarchies it blocked (OCF rc 6), with the agent's reason. */
  blocked?: Record<string, string>;
}

/** Local life cycle of one hierarchy on this node. */
export type LocalPhase =
  | 'unprobed' //      start-up: we do not know yet what runs here
  | 'out-of-service'
  | 'acquiring'
  | 'starting'
  | 'in-service'
  | 'restarting'
  | 'stopping'
  | 'failed'; //        a stop failed or timed out: we keep ownership, nothing moves until an admin acts

export type ResourceState = 'unknown' | 'stopped' | 'running' | 'failed' | 'stop-failed';

export type OwnershipView = 'not-owned' | 'owned' | 'lost' | 'unverified';

export interface HierarchyRuntime {
  phase: LocalPhase;
  /** An action for this hierarchy is in flight: decide() leaves it alone until it completes. */
  busy: boolean;
  ownership: OwnershipView;
  resources: Record<string, ResourceState>;
  /** Resources whose recurring monitor failed and that were not handled yet. */
  monitorFailures: string[];
  /** Failures (monitor failures + failed starts) of this hierarchy here within the restart window. */
  failuresInWindow: number;
  /** Local utility checks pass (a node failing them is not eligible). */
  utilityOk: boolean;
  /** The last acquire failed; do not retry before this time (ms, same clock as `now`). */
  acquireBackoffUntil: number;
  /** This node ran H just before (found running at probe, or was running it): it races without delay. */
  wasRunning: boolean;
  /**
   * Why this node cannot run H at all, or null: a probe answered OCF 5 (not installed here) or 6
   * (not configured). OCF's rule: on a probe that means "not running here", not a failure to clean
   * up; the node is ineligible (until the definition changes or the daemon restarts).
   */
  cannotRun: string | null;
  /**
   * A registration of ours may remain on H's disks although nothing of H runs here: giving them
   * back failed (disk unreachable). Left there it blocks every peer for good ("held by a node we
   * can reach"), so it is dropped as soon as the disk answers again.
   */
  diskCleanup: boolean;
  /**
   * This node's I/O to H's disks is failing (an acquire, release or check could not reach them):
   * ineligible, so a peer that can reach them takes over, until a disk operation succeeds again
   * (the diskCleanup retry doubles as that test).
   */
  diskError: string | null;
  /**
   * An agent of H answered OCF_ERR_CONFIGURED (6) here: its configuration is wrong on every node
   * (Pacemaker's rule: a fatal error). H is stopped, advertised `blocked`, and no node starts it
   * until an admin fixes the definition (a reload resets it) or restarts this daemon.
   */
  blocked: string | null;
  /**
   * Re-probed after maintenance or a `clear`: found running here without ownership, H is not
   * claimed (which would stop it here if another node runs it) until the peers' own probes show
   * where it runs; running on two nodes makes it FAILED instead (the reducer), nothing stopped.
   */
  recheck: boolean;
}

export interface DecideInput {
  self: NodeName;
  now: number;
  hierarchies: HierarchyConfig[];
  peers: Record<NodeName, PeerView>;
  local: Record<string, HierarchyRuntime>;
  /** Graceful shutdown in progress: hand over (switchover) or just stop. */
  shutdown: false | 'switchover' | 'stop';
  /** Hierarchies held out of service by this node's `stop --mode stop`. */
  adminStop: string[];
  /** The cluster-wide admin map: stop, move, maintenance, standby (core/admin.ts). */
  admin: AdminDoc;
  raceDelayPerRankMs: number;
}

export type Action =
  | { kind: 'probe'; hierarchy: string; resources: string[]; reason: string }
  | { kind: 'acquire'; hierarchy: string; delayMs: number; reason: string }
  | { kind: 'start'; hierarchy: string; levels: string[][]; reason: string }
  | { kind: 'restart'; hierarchy: string; resource: string; stop: string[][]; start: string[][]; reason: string }
  | {
      kind: 'stop';
      hierarchy: string;
      levels: string[][];
      /** Release ownership afterwards (false when ownership is already lost). */
      release: boolean;
      /** Ownership was lost: short timeouts, then kill (we may no longer write). */
      urgent: boolean;
      reason: string;
    }
  | { kind: 'halt'; hierarchy: string; reason: string }
  /** Drop our registration on H's disks (REGISTER key 0): nothing of H runs here. */
  | { kind: 'unregister'; hierarchy: string; reason: string };

export interface Decision {
  actions: Action[];
  /** Per hierarchy: why nothing is done, or what this node is (for status and logs). */
  notes: Record<string, string>;
  /** What this node advertises to its peers. */
  advert: Record<string, PeerHierarchy>;
}

/** Phases in which a hierarchy holds or may hold resources on a node: it is "active" there. */
const ACTIVE: ReadonlySet<AdvertState> = new Set(['in-service', 'starting', 'stopping', 'failed', 'held']);

export function advertState(rt: HierarchyRuntime): AdvertState {
  switch (rt.phase) {
    case 'in-service':
    case 'restarting':
      return 'in-service';
    case 'acquiring':
    case 'starting':
      return 'starting';
    case 'stopping':
      return 'stopping';
    case 'failed':
      return 'failed';
    case 'unprobed':
      // Not probed yet: it may well be running here. Peers must not take it meanwhile.
      return Object.values(rt.resources).some((s) => s !== 'stopped') ? 'starting' : 'out-of-service';
    case 'out-of-service':
      return rt.blocked !== null ? 'blocked' : 'out-of-service';
  }
}

/** Is this node itself eligible to run H right now? */
export function selfEligible(h: HierarchyConfig, self: NodeName, rt: HierarchyRuntime, input: Pick<DecideInput, 'shutdown' | 'adminStop' | 'admin'>): boolean {
  return ineligibleWhy(h, self, rt, input) === null;
}

/** Why this node may not run H now (for notes), or null when it may. */
export function ineligibleWhy(h: HierarchyConfig, self: NodeName, rt: HierarchyRuntime, input: Pick<DecideInput, 'shutdown' | 'adminStop' | 'admin'>): string | null {
  if (h.priorities[self] === undefined) return 'not in its priority list';
  if (rt.blocked !== null) return `BLOCKED: fatal configuration error here (${rt.blocked}): fix the definition`;
  if (rt.cannotRun !== null) return `cannot run here: ${rt.cannotRun}`;
  if (rt.diskError !== null) return `its disks fail here: ${rt.diskError}`;
  if (isStopped(input.admin, h.name)) return 'held out of service cluster-wide by an admin (`hierarchy start` puts it back)';
  if (hierarchyInMaintenance(input.admin, h.name)) return 'MAINTENANCE: unmanaged cluster-wide';
  if (nodeInMaintenance(input.admin, self)) return 'MAINTENANCE: this node is unmanaged';
  if (isStandby(input.admin, self)) return 'this node is in standby (`node online` makes it eligible again)';
  // Local recovery exhausted: H failed over away from here; stay ineligible until the window passes.
  const exhausted = rt.failuresInWindow > maxRestarts(h) && !mutant('restart-past-budget');
  if (input.shutdown || input.adminStop.includes(h.name) || !rt.utilityOk || exhausted) return 'not eligible here';
  return null;
}

function maxRestarts(h: HierarchyConfig): number {
  // The hierarchy's budget is the smallest budget among its resources (most conservative).
  let m = Infinity;
  for (const r of h.resources) if (r.kind === 'agent') m = Math.min(m, r.restart.max);
  return m === Infinity ? 0 : m;
}

/** Nodes of H ordered by priority (1 first). */
export function byPriority(h: HierarchyConfig): NodeName[] {
  return Object.entries(h.priorities)
    .sort((a, b) => a[1] - b[1])
    .map(([n]) => n);
}

export type Mastership =
  | { master: true; rank: number }
  | { master: false; why: string };

/**
 * The mastership rule. Pure, and the only place it is written down.
 *  - an `unknown` peer listed for H blocks: it may be running H and we cannot tell yet;
 *  - a higher-priority peer that is up and eligible blocks (it is the master, not us);
 *  - H active on any reachable peer blocks (it runs there; intelligent switchback keeps it there).
 */
export function mastership(h: HierarchyConfig, input: DecideInput, rt: HierarchyRuntime): Mastership {
  const self = input.self;
  const unmanagedWhy = maintenanceBlocks(h, input);
  if (unmanagedWhy) return { master: false, why: unmanagedWhy };
  const why = ineligibleWhy(h, self, rt, input);
  if (why !== null) return { master: false, why };
  // Priorities as an admin's move or standby leaves them (the unknown-peer wait keeps the listed nodes).
  const listed = h.priorities;
  h = effectiveHierarchy(h, input.admin);
  const myPrio = h.priorities[self]!;
  const peers = Object.entries(input.peers).filter(([node]) => node !== self);
  for (const [node, view] of peers) {
    if (view.state === 'unknown' && listed[node] !== undefined) return { master: false, why: `waiting to hear from ${node}` };
    // A node that left cleanly with H held (`harness stop --mode stop`) keeps it held until it returns.
    if (view.leaving && view.hierarchies[h.name]?.state === 'held' && !mutant('ignore-leaving')) return { master: false, why: `held out of service by ${node} (stopped with --mode stop)` };
    // A node that left with H FAILED (a stop failed there: its resources may still run) hands
    // nothing over: H stays blocked until that node returns and an admin clears it.
    // A fatal configuration error reported by any node we hear (or that left saying so) blocks
    // H everywhere: starting it elsewhere would fail the same way, node after node.
    if ((view.state === 'up' || view.leaving) && view.hierarchies[h.name]?.state === 'blocked') {
      const reason = view.blocked?.[h.name];
      return { master: false, why: `BLOCKED: fatal configuration error reported by ${node} (OCF rc 6${reason ? `: ${reason}` : ''}): fix the definition` };
    }
    if (view.leaving && view.hierarchies[h.name]?.state === 'failed' && !mutant('ignore-leaving')) return { master: false, why: `FAILED on ${node}, which left with it: a stop failed there, admin action needed` };
  }
  const reachable = peers.filter(([, view]) => view.state === 'up' && !view.leaving);
  for (const [node, view] of reachable) {
    const ph = view.hierarchies[h.name];
    if (ph && ACTIVE.has(ph.state)) return { master: false, why: `${ph.state} on ${node}` };
  }
  for (const [node, view] of reachable) {
    const prio = h.priorities[node];
    if (prio !== undefined && prio < myPrio && view.hierarchies[h.name]?.eligible) {
      return { master: false, why: `${node} has higher priority and is reachable` };
    }
  }
  // Race bias: how many nodes ahead of us in H's priority list may race us for a free disk (0 =
  // none), not list positions. Only a node we cannot hear may, or one that has not loaded H yet:
  // one we hear is ineligible (else we would not be master), one that left said so, and the node
  // we last saw running H, now down, left
  // its disk free by releasing it (its guard stopped H, or it stopped H itself): it does not race
  // for H again until it is back.
  const ahead = byPriority(h).slice(0, byPriority(h).indexOf(self));
  const rank = ahead.filter((node) => {
    const view = input.peers[node];
    if (!view) return true;
    if (view.leaving) return false;
    // Heard: ineligible by its own word, unless it has not loaded H yet (a reload reaches the
    // nodes some ms apart): then it may be about to race us.
    if (view.state === 'up') return view.hierarchies[h.name] === undefined;
    const ph = view.hierarchies[h.name];
    // One last seen *starting* H may be in the middle of its own acquire: it counts.
    return !(view.state === 'down' && ph && ACTIVE.has(ph.state) && ph.state !== 'starting');
  }).length;
  return { master: true, rank };
}

/**
 * H as an admin's requests rank its nodes: nodes in standby are not in the list, and the node H
 * was moved to comes first (so an automatic switchback does not bring it straight back).
 */
export function effectiveHierarchy(h: HierarchyConfig, admin: AdminDoc): HierarchyConfig {
  const target = moveTarget(admin, h.name);
  const standby = Object.keys(h.priorities).filter((n) => isStandby(admin, n));
  if (standby.length === 0 && (target === null || h.priorities[target] === undefined)) return h;
  const priorities: Record<NodeName, number> = {};
  for (const [n, p] of Object.entries(h.priorities)) if (!standby.includes(n)) priorities[n] = p;
  if (target !== null && priorities[target] !== undefined) priorities[target] = Math.min(...Object.values(h.priorities)) - 1;
  return { ...h, priorities };
}

/**
 * Unmanaged H is never taken over: not while it is in maintenance, nor while the node last seen
 * running it is (even when that node is down: status says so, loudly).
 */
function maintenanceBlocks(h: HierarchyConfig, input: DecideInput): string | null {
  if (!setAnywhere(input.admin, 'h', 'maintenance') && !setAnywhere(input.admin, 'n', 'maintenance')) return null;
  const runners = Object.entries(input.peers).filter(([, v]) => {
    const st = v.hierarchies[h.name]?.state;
    return st !== undefined && ACTIVE.has(st) && st !== 'held';
  });
  const down = runners.filter(([, v]) => v.state !== 'up');
  if (hierarchyInMaintenance(input.admin, h.name)) {
    return down.length > 0 ? `MAINTENANCE: unmanaged; it ran on ${down.map(([n]) => n).join(', ')}, which is DOWN: it is NOT taken over while in maintenance` : 'MAINTENANCE: unmanaged cluster-wide';
  }
  for (const [node, v] of runners) {
    if (!nodeInMaintenance(input.admin, node)) continue;
    return v.state !== 'up' ? `MAINTENANCE: ${node} is in maintenance and DOWN with it ${v.hierarchies[h.name]!.state}: it is NOT taken over` : `${node} is in maintenance with it ${v.hierarchies[h.name]!.state}`;
  }
  return null;
}

/** For automatic switchback: a reachable, eligible, idle node of higher priority exists. */
function betterNodeWaiting(h: HierarchyConfig, input: DecideInput): NodeName | null {
  const myPrio = h.priorities[input.self] ?? Infinity;
  for (const node of byPriority(h)) {
    if (node === input.self || h.priorities[node]! >= myPrio) continue;
    const view = input.peers[node];
    if (!view || view.state !== 'up' || view.leaving) continue;
    const ph = view.hierarchies[h.name];
    if (ph && ph.eligible && ph.state === 'out-of-service') return node;
  }
  return null;
}

/**
 * For the race (fencing/race.ts holderInfo): a disk holder we can reach is never preempted, but
 * only while it says it has H active. One that says H is out of service there holds a stale
 * registration (its release failed, its disk was cut): the frozen-key window decides, as for an
 * unreachable holder, and it is never a live copy.
 */
export function holderClaims(view: PeerView | undefined, h: string): boolean {
  const ph = view?.hierarchies[h];
  return view !== undefined && view.state === 'up' && !view.leaving && ph !== undefined && ACTIVE.has(ph.state);
}

/** A reachable peer where H is active (may hold resources), or null. */
function activeOnReachable(h: HierarchyConfig, input: Pick<DecideInput, 'peers'>): NodeName | null {
  for (const [node, view] of Object.entries(input.peers)) {
    const ph = view.hierarchies[h.name];
    if (view.state === 'up' && !view.leaving && ph && ACTIVE.has(ph.state) && ph.state !== 'held') return node;
  }
  return null;
}

/** A reachable node of higher priority that also runs H (only possible without fencing). */
function twinOnBetterNode(h: HierarchyConfig, input: DecideInput): NodeName | null {
  const mine = h.priorities[input.self] ?? Infinity;
  for (const [node, view] of Object.entries(input.peers)) {
    if (view.state !== 'up' || view.leaving || view.hierarchies[h.name]?.state !== 'in-service') continue;
    if ((h.priorities[node] ?? Infinity) < mine) return node;
  }
  return null;
}

/**
 * We own H's disks while a reachable peer still says H is active there: that copy lost its
 * reservation to us (stalled, cut off from the disk, or its stop failed). Giving the disks back
 * would let it write again: every stop keeps them, and so does the guard.
 */
export function staleCopyElsewhere(h: HierarchyConfig, input: Pick<DecideInput, 'peers'>, rt: HierarchyRuntime): NodeName | null {
  if (!h.fenced || rt.ownership !== 'owned') return null;
  return activeOnReachable(h, input);
}

function decideOne(h: HierarchyConfig, rt: HierarchyRuntime, input: DecideInput): { action?: Action; note: string } {
  const name = h.name;
  const agents = h.resources.filter((r) => r.kind === 'agent').map((r) => r.name);

  if (rt.busy) return { note: `${rt.phase} (in progress)` };

  // 1. Lost ownership beats everything: someone else owns the disks now. Stop at once, never
  //    re-register on our own (the keeper already forgot the hierarchy).
  //    Not once FAILED: that stop failed already, and retrying it at once would loop.
  if (rt.ownership === 'lost' && rt.phase !== 'failed' && (rt.phase === 'in-service' || rt.phase === 'starting' || rt.phase === 'restarting' || anyUp(rt))) {
    if (h.onLoss === 'halt') return { action: { kind: 'halt', hierarchy: name, reason: 'ownership lost' }, note: 'ownership lost: halting' };
    return {
      action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: false, urgent: true, reason: 'ownership lost (fenced)' },
      note: 'ownership lost: stopping at once',
    };
  }

  // Maintenance: no actions and no monitors; what runs stays as it is (a probe only reads).
  if (rt.phase !== 'unprobed' && unmanaged(input.admin, name, input.self)) {
    // Not running here: say loudly when its node is down and it is not taken over.
    const loud = rt.phase === 'out-of-service' ? maintenanceBlocks(h, input) : null;
    return { note: loud?.includes('DOWN') ? loud : `MAINTENANCE: unmanaged here (${rt.phase}): no monitors, no recovery; resources left as they are` };
  }

  switch (rt.phase) {
    case 'unprobed':
      if (input.now < rt.acquireBackoffUntil) return { note: 'the probe failed unexpectedly: retrying' };
      return { action: { kind: 'probe', hierarchy: name, resources: agents, reason: 'start-up probe' }, note: 'probing' };

    case 'failed':
      if (h.onStopFailure === 'halt') return { action: { kind: 'halt', hierarchy: name, reason: 'stop failed' }, note: 'stop failed: halting' };
      return { note: 'FAILED: a stop failed; ownership kept so nobody else starts it; admin action needed' };

    case 'in-service':
    case 'restarting': {
      // Ownership not (yet) proven, e.g. found running at probe or after a freeze: get it first.
      if (rt.ownership === 'not-owned') {
        if (rt.recheck) return { note: 'found running here after maintenance or clear: waiting for the peers\' probes before claiming it' };
        if (input.now < rt.acquireBackoffUntil) {
          return {
            action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: false, urgent: false, reason: 'running here without ownership' },
            note: 'running without ownership: stopping',
          };
        }
        return { action: { kind: 'acquire', hierarchy: name, delayMs: 0, reason: 'running here, claiming ownership' }, note: 'claiming ownership' };
      }
      if (rt.ownership === 'unverified') return { note: 'ownership unverified (re-reading disks)' };
      if (rt.blocked !== null) {
        return {
          action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: `fatal configuration error (${rt.blocked}): stopping it, it runs nowhere until fixed` },
          note: `BLOCKED: ${rt.blocked}`,
        };
      }
      const standby = isStandby(input.admin, input.self);
      if (input.shutdown || input.adminStop.includes(name) || isStopped(input.admin, name) || standby) {
        const why = input.shutdown ? `node shutdown (${input.shutdown})` : standby ? 'node standby: switching over' : 'admin stop';
        return { action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: why }, note: why };
      }
      // Not fenced, nothing arbitrates: after a partition heals both sides may run it. The copy on
      // the lower-priority node goes (a fenced hierarchy cannot get here: the disk has one owner).
      const twin = h.fenced ? undefined : twinOnBetterNode(h, input);
      if (twin) {
        return {
          action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: `also in service on ${twin} (higher priority; not fenced): stopping this copy` },
          note: `running twice (not fenced): stopping here for ${twin}`,
        };
      }
      if (!rt.utilityOk) {
        return {
          action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: 'utility check failed: giving it up' },
          note: 'utility check failed',
        };
      }
      const failed = rt.monitorFailures[0] ?? Object.entries(rt.resources).find(([, s]) => s === 'failed')?.[0];
      if (failed !== undefined) {
        // An OCF hard error (2-5): this node cannot run it, restarting here is pointless.
        if (rt.cannotRun !== null) {
          return {
            action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: `cannot run here (${rt.cannotRun}): failing over` },
            note: 'failing over',
          };
        }
        if (rt.failuresInWindow > maxRestarts(h) && !mutant('restart-past-budget')) {
          return {
            action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: `${failed} failed ${rt.failuresInWindow} times in the window: failing over` },
            note: 'failing over',
          };
        }
        const affected = new Set([failed, ...dependents(h, failed)]);
        const stop = stopLevels(h).map((l) => l.filter((r) => affected.has(r))).filter((l) => l.length > 0);
        const start = levels(h).map((l) => l.filter((r) => affected.has(r))).filter((l) => l.length > 0);
        return {
          action: { kind: 'restart', hierarchy: name, resource: failed, stop, start, reason: `${failed} failed (failure ${rt.failuresInWindow} of ${maxRestarts(h)} allowed in the window)` },
          note: `restarting ${failed}`,
        };
      }
      // An admin's move: the target ranks first (effectiveHierarchy), whatever the switchback.
      const target = moveTarget(input.admin, name);
      if (h.switchback === 'automatic' || (target !== null && target !== input.self)) {
        const better = betterNodeWaiting(effectiveHierarchy(h, input.admin), input);
        if (better && (h.switchback === 'automatic' || better === target)) {
          const why = better === target ? `admin move to ${better}` : `automatic switchback to ${better}`;
          return {
            action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: true, urgent: false, reason: why },
            note: better === target ? `moving to ${better}` : `switching back to ${better}`,
          };
        }
      }
      // Partial start (some resource not running) is completed by an idempotent start.
      if (Object.values(rt.resources).some((s) => s !== 'running')) {
        if (input.now < rt.acquireBackoffUntil) return { note: 'the start failed unexpectedly: retrying' };
        return { action: { kind: 'start', hierarchy: name, levels: levels(h), reason: 'completing start' }, note: 'completing start' };
      }
      return { note: 'in service here' };
    }

    case 'out-of-service': {
      // Anything still up here without ownership must come down (e.g. found at probe, lost race).
      if (anyUp(rt) && rt.ownership !== 'owned') {
        return {
          action: { kind: 'stop', hierarchy: name, levels: stopLevels(h), release: false, urgent: false, reason: 'resources running here while out of service' },
          note: 'cleaning up',
        };
      }
      if (rt.ownership === 'owned' && !anyUp(rt)) {
        const m = mastership(h, input, rt);
        // H still runs on a node we can reach, but the disks are ours: that node lost its
        // reservation (it was stalled, or cut off from the disk) and has not noticed yet. Giving
        // the disks back now would let its stale copy, and any other, write again: keep them
        // until it has stopped.
        const stale = !m.master && h.fenced ? activeOnReachable(h, input) : null;
        if (stale) return { note: `keeping its disks: ${stale} still runs it without a reservation (it lost it to us); waiting for it to stop` };
        if (!m.master) {
          return {
            action: { kind: 'stop', hierarchy: name, levels: [], release: true, urgent: false, reason: `releasing unneeded ownership (${m.why})` },
            note: 'releasing',
          };
        }
      }
      if (rt.ownership === 'unverified') return { note: 'ownership unverified' };
      const m = mastership(h, input, rt);
      if (rt.diskCleanup && rt.ownership === 'not-owned' && !m.master) {
        if (input.now < rt.acquireBackoffUntil) return { note: `standby: ${m.why}; our registration may remain on its disks (giving it back failed): retrying` };
        return { action: { kind: 'unregister', hierarchy: name, reason: 'drop the registration left on its disks' }, note: 'dropping our registration' };
      }
      if (!m.master) return { note: `standby: ${m.why}` };
      if (input.now < rt.acquireBackoffUntil) return { note: 'master, waiting before racing again' };
      if (rt.ownership === 'owned') {
        return { action: { kind: 'start', hierarchy: name, levels: levels(h), reason: 'master and owner' }, note: 'starting' };
      }
      const delayMs = rt.wasRunning ? 0 : m.rank * input.raceDelayPerRankMs;
      return { action: { kind: 'acquire', hierarchy: name, delayMs, reason: 'master: racing for ownership' }, note: 'acquiring' };
    }

    case 'acquiring':
    case 'starting':
    case 'stopping':
      // These phases only exist while an action is in flight (busy); nothing to add.
      return { note: rt.phase };
  }
  return { note: 'idle' };
}

function anyUp(rt: HierarchyRuntime): boolean {
  return Object.values(rt.resources).some((s) => s === 'running' || s === 'failed' || s === 'unknown');
}

export function decide(input: DecideInput): Decision {
  const actions: Action[] = [];
  const notes: Record<string, string> = {};
  const advert: Record<string, PeerHierarchy> = {};
  for (const h of input.hierarchies) {
    const rt = input.local[h.name];
    if (!rt) continue;
    const { action, note } = decideOne(h, rt, input);
    if (action?.kind === 'stop' && action.release && staleCopyElsewhere(h, input, rt)) action.release = false;
    if (action) actions.push(action);
    notes[h.name] = note;
    advert[h.name] = { state: advertedState(h.name, rt, input), eligible: selfEligible(h, input.self, rt, input) };
  }
  return { actions, notes, advert };
}

/** What this node says about H: held when an admin keeps it out of service (here or cluster-wide). */
export function advertedState(name: string, rt: HierarchyRuntime, input: Pick<DecideInput, 'adminStop' | 'admin'>): AdvertState {
  const state = advertState(rt);
  return state === 'out-of-service' && (input.adminStop.includes(name) || isStopped(input.admin, name)) ? 'held' : state;
}

/** Does this node probe H? Not when H is `probe: listed` and this node is not in its list. */
export function probesHere(h: HierarchyConfig, self: NodeName): boolean {
  return h.probe !== 'listed' || h.priorities[self] !== undefined;
}

/**
 * A fresh runtime for a hierarchy this node just learned about: unprobed, or known stopped where
 * it is not probed (nothing to unregister either: this node never runs it).
 */
export function initialRuntime(h: HierarchyConfig, self: NodeName): HierarchyRuntime {
  const probed = probesHere(h, self);
  const resources: Record<string, ResourceState> = {};
  for (const r of h.resources) resources[r.name] = r.kind === 'disk' || !probed ? 'stopped' : 'unknown';
  return {
    phase: probed ? 'unprobed' : 'out-of-service',
    busy: false,
    ownership: 'not-owned',
    resources,
    monitorFailures: [],
    failuresInWindow: 0,
    utilityOk: true,
    acquireBackoffUntil: 0,
    wasRunning: false,
    cannotRun: null,
    diskCleanup: false,
    diskError: null,
    blocked: null,
    recheck: false,
  };
}
