// The reducer: step(state, event) -> { state, effects }. Every transition of this node and of each
// of its hierarchies happens here, and nowhere else. Pure: no I/O, no clock (time is `event.now`),
// no randomness; the input state is never modified. decide.ts holds the rules (who is master,
// what to do next); this file applies events to the state, asks decide() what to do and turns
// its answer into effects, in the order the executor must run them (the guard's plan before the
// start it covers).
import { isDeepStrictEqual } from 'node:util';
import type { HierarchyConfig, NodeName } from '../../hierarchies/model.ts';
import { advertedState, decide, effectiveHierarchy, initialRuntime, probesHere, selfEligible, staleCopyElsewhere, type Action, type DecideInput, type PeerView } from '../decide.ts';
import type { ActionEffect, ActionResult, AdvertOut, CoreSettings, Effect, Event, GuardPlan, HierarchyState, NodeState } from './types.ts';
import { mutant } from './mutants.ts';
import { clearVersion, entryOf, hierarchyKey, maxVersion, mergeAdmin, moveTarget, unmanaged, writeAdmin, type AdminDoc } from './admin.ts';
import { adminRequest } from './admin-requests.ts';
import { scopeOf, type Scope } from './scope.ts';

/** Back-off after a failed acquire, per reason: a live owner is re-checked slowly. */
export const ACQUIRE_BACKOFF_MS: Record<string, number> = {
  'held-by-reachable': 500,
  'owner-alive-on-disk': 500,
  'lost-race': 300,
  error: 2000,
};

export function initialHierarchy(h: HierarchyConfig, self: NodeName): HierarchyState {
  return {
    ...initialRuntime(h, self),
    failures: [],
    note: probesHere(h, self) ? 'probing' : 'not probed here (probe: listed)',
    diskProblem: null,
    utilityPass: true,
    fencedBy: null,
    ownerKey: null,
    epoch: 0,
    action: null,
    monitored: false,
    clearSeen: 0,
    unmanaged: false,
    clearCheck: false,
    failedWhy: null,
  };
}

/** A hierarchy as this node starts with it: a `clear` or maintenance from before is not news. */
function startingHierarchy(h: HierarchyConfig, self: NodeName, admin: AdminDoc): HierarchyState {
  return { ...initialHierarchy(h, self), clearSeen: clearVersion(admin, h.name), unmanaged: unmanaged(admin, h.name, self) };
}

/** `admin`: the map persisted in stateDir (peers' newer entries are merged as they are heard). */
export function initialState(self: NodeName, hierarchies: HierarchyConfig[], settings: CoreSettings, now: number, admin: AdminDoc = {}): NodeState {
  return {
    self,
    now,
    settings,
    hierarchies,
    pending: {},
    h: Object.fromEntries(hierarchies.map((h) => [h.name, startingHierarchy(h, self, admin)])),
    peers: {},
    shutdown: false,
    adminStop: [],
    admin,
    nextActionId: 1,
    sent: { started: false, guarded: false, adverts: {}, blocked: {}, leaving: false, guard: {}, watch: [] },
    nextDeadline: Infinity,
    deferred: [],
    left: false,
    fullAt: -Infinity,
  };
}

/**
 * Copy deep enough that nothing the reducer writes is shared with the input state: the
 * hierarchies in scope (the only ones this step may write), the rest shared as they are.
 */
function copy(s: NodeState, scope: Scope): NodeState {
  const h: Record<string, HierarchyState> = scope === 'all' ? {} : { ...s.h };
  for (const k of scope === 'all' ? Object.keys(s.h) : scope) {
    const v = s.h[k];
    if (v) h[k] = copyHierarchy(v);
  }
  return { ...s, h, pending: { ...s.pending }, adminStop: [...s.adminStop], sent: { ...s.sent } };
}

function copyHierarchy(v: HierarchyState): HierarchyState {
  return { ...v, resources: { ...v.resources }, monitorFailures: [...v.monitorFailures], failures: [...v.failures], action: v.action && { ...v.action } };
}

/** The scope grows to every hierarchy mid-step (the admin map moved): copy the ones still shared. */
function widen(s: NodeState, scope: Scope): 'all' {
  if (scope !== 'all') for (const k of Object.keys(s.h)) if (!scope.has(k)) s.h[k] = copyHierarchy(s.h[k]!);
  return 'all';
}

class Out {
  readonly fx: Effect[] = [];
  /** The hierarchies this step decides (definition order), and whether that is all of them. */
  hs: HierarchyConfig[] = [];
  all = false;
  log(level: Extract<Effect, { kind: 'log' }>['level'], event: string, msg: string, fields: Record<string, unknown> = {}): void {
    this.fx.push({ kind: 'log', level, event, msg, fields });
  }
}

export function step(prev: NodeState, ev: Event): { state: NodeState; effects: Effect[] } {
  const r = stepIn(prev, ev, scopeOf(prev, ev));
  if (checkScope) {
    const why = differs(r, stepIn(prev, ev, 'all'));
    if (why) throw new Error(`scoped step differs from the full one on ${ev.type} at ${ev.now}: ${why}`);
  }
  return r;
}

let checkScope = false;
/** Tests and the simulator: every step is also run deciding every hierarchy, and must come out the same. */
export function setScopeCheck(on: boolean): void {
  checkScope = on;
}

function stepIn(prev: NodeState, ev: Event, first: Scope): { state: NodeState; effects: Effect[] } {
  let scope = first;
  const s = copy(prev, scope);
  s.now = ev.now;
  const out = new Out();
  if (!s.left) {
    apply(s, ev, out);
    if (s.admin !== prev.admin) scope = widen(s, scope);
    react(s, out, scope);
    if (out.all) s.fullAt = s.now;
  }
  if (s.admin !== prev.admin) out.fx.push({ kind: 'admin-state', doc: s.admin });
  return { state: s, effects: out.fx };
}

// --- events ---------------------------------------------------------------------------------------

function apply(s: NodeState, ev: Event, out: Out): void {
  switch (ev.type) {
    case 'tick':
      return;
    case 'peers': {
      const before = s.peers;
      s.peers = ev.peers;
      // A node learns the cluster's admin map from the first heartbeat it hears, before it decides.
      for (const [node, v] of Object.entries(ev.peers)) {
        // The same map as last time was merged then: merging it again changes nothing.
        if (!v.admin || v.admin === before[node]?.admin) continue;
        const m = mergeAdmin(s.admin, v.admin);
        if (m.changed.length === 0) continue;
        s.admin = m.doc;
        out.log('info', 'admin-learned', `admin state from ${node}: ${m.changed.map((k) => `${k}=${JSON.stringify(m.doc[k]!.value)} (${m.doc[k]!.by})`).join(', ')}`, { peer: node, keys: m.changed });
      }
      return;
    }
    case 'done':
      return finished(s, ev.id, ev.hierarchy, ev.result, out);
    case 'monitor-failed': {
      const rt = s.h[ev.hierarchy];
      if (!rt || rt.phase !== 'in-service' || rt.busy) return;
      out.log('warn', 'monitor-failed', `${ev.hierarchy}/${ev.resource}: monitor failed: ${ev.reason}`, { hierarchy: ev.hierarchy, resource: ev.resource, reason: ev.reason });
      if (ev.fatal) fatal(rt, ev.hierarchy, `${ev.resource}: ${ev.reason}`, out);
      if (ev.hard) cannotRunHere(rt, ev.hierarchy, `${ev.resource}: ${ev.reason}`, out);
      rt.resources[ev.resource] = 'failed';
      // Counted when it happens, so decide() sees the (N+1)th failure as exhausting the budget.
      rt.failures.push(s.now);
      if (!rt.monitorFailures.includes(ev.resource)) rt.monitorFailures.push(ev.resource);
      return;
    }
    case 'ownership': {
      const rt = s.h[ev.hierarchy];
      // Only ownership we hold can change this way; a late verdict on one we gave up is stale.
      if (!rt || rt.ownership === 'not-owned' || rt.ownership === ev.state) return;
      if (mutant('ignore-lost-key') && ev.state === 'lost') return;
      rt.ownership = ev.state;
      // Lost without a taker: our own reads and writes failed (cut, hang): not eligible until
      // the disks answer again.
      if (ev.state === 'lost' && (ev.by === null || ev.by === undefined)) {
        rt.diskError = ev.detail ?? 'ownership could not be proven';
        rt.diskCleanup = true; // our reservation may still sit there: drop it when the disk answers
      }
      if (ev.state === 'lost') {
        rt.fencedBy = ev.by ?? 'unknown';
        rt.ownerKey = null;
        out.log('error', 'fenced', `${ev.hierarchy}: ownership LOST (fenced by ${rt.fencedBy}): stopping at once`, { hierarchy: ev.hierarchy, by: ev.by ?? null, detail: ev.detail });
      }
      return;
    }
    case 'disk-unusable': {
      const rt = s.h[ev.hierarchy];
      if (!rt) return;
      rt.diskProblem = ev.detail;
      out.log('error', 'disk-unusable', `${ev.hierarchy}: refusing to own it: ${ev.detail}`, { hierarchy: ev.hierarchy, err: ev.detail });
      return;
    }
    case 'utility': {
      const rt = s.h[ev.hierarchy];
      if (rt) rt.utilityPass = ev.ok;
      return;
    }
    case 'holder-released': {
      const rt = s.h[ev.hierarchy];
      // Race now rather than at the end of a back-off taken while it was still holding.
      if (rt && rt.acquireBackoffUntil > s.now) rt.acquireBackoffUntil = 0;
      return;
    }
    case 'admin': {
      const r = adminRequest(s, ev.ask);
      if (r.ok) s.admin = r.doc;
      out.log(r.ok ? 'info' : 'warn', r.ok ? 'admin' : 'admin-refused', `admin request by ${ev.ask.by}: ${r.message}`, { request: ev.ask.request, by: ev.ask.by });
      out.fx.push({ kind: 'admin-answer', askId: ev.ask.id, ok: r.ok, message: r.message, version: maxVersion(s.admin), ...(r.ok && r.to ? { to: r.to } : {}) });
      return;
    }
    case 'config': {
      if (ev.settings) s.settings = ev.settings;
      // From scratch: a change reverted before it took effect is no change.
      s.pending = {};
      const old = new Map(s.hierarchies.map((h) => [h.name, h]));
      const next = new Map(ev.hierarchies.map((h) => [h.name, h]));
      for (const [name, h] of next) {
        const before = old.get(name);
        if (!before || JSON.stringify(before) !== JSON.stringify(h)) s.pending[name] = h;
      }
      for (const name of old.keys()) if (!next.has(name)) s.pending[name] = null;
      out.log('info', 'reload', `configuration reloaded: ${Object.keys(s.pending).length} hierarchies changed`, { changed: Object.keys(s.pending) });
      return;
    }
    case 'shutdown': {
      if (s.shutdown) return;
      s.shutdown = ev.mode;
      // "Just stop": what runs here stays down cluster-wide (advertised as held) until this node returns.
      if (ev.mode === 'stop') {
        for (const [name, rt] of Object.entries(s.h)) if (rt.phase !== 'out-of-service' && rt.phase !== 'unprobed' && !s.adminStop.includes(name)) s.adminStop.push(name);
      }
      out.log('info', 'shutdown', `shutting down (${ev.mode})`, { mode: ev.mode });
      return;
    }
  }
}

function anyRunning(rt: HierarchyState): boolean {
  return Object.values(rt.resources).some((x) => x === 'running');
}

/** An action finished: its typed result moves the hierarchy to its next phase. */
function finished(s: NodeState, id: number, name: string, r: ActionResult, out: Out): void {
  const rt = s.h[name];
  const h = s.hierarchies.find((x) => x.name === name);
  if (!rt || !h || !rt.action || rt.action.id !== id) {
    out.log('warn', 'stale-result', `${name}: result of action ${id} that is not in flight (ignored)`, { hierarchy: name, id });
    return;
  }
  const { kind, prevPhase, stop } = rt.action;
  rt.action = null;
  rt.busy = false;
  if (r.kind === 'error') {
    out.log('error', 'action-error', `${name}: ${kind} failed unexpectedly: ${r.detail}`, { action: kind, hierarchy: name, err: r.detail });
    backoff(s, rt, ACQUIRE_BACKOFF_MS.error!, out); // a bug or an exception must not spin
    if (kind === 'stop' || kind === 'restart') rt.phase = 'failed';
    else if (kind === 'acquire') rt.phase = prevPhase === 'in-service' ? 'in-service' : 'out-of-service';
    else if (kind === 'start') rt.phase = 'in-service'; // whatever started counts as running; decide() completes or stops it
    else if (kind === 'probe') rt.phase = 'unprobed';
  } else {
    switch (r.kind) {
      case 'probe': {
        // A re-probe (maintenance over, clear) of disks we still own: they stay ours, not 'stopped'.
        const held = rt.ownership === 'owned' ? h.resources.filter((x) => x.kind === 'disk' && rt.resources[x.name] === 'running').map((x) => x.name) : [];
        rt.resources = { ...r.resources };
        for (const d of held) rt.resources[d] = 'running';
        rt.cannotRun = r.cannotRun;
        if (r.fatal) fatal(rt, name, r.fatal, out);
        const running = anyRunning(rt);
        rt.phase = running ? 'in-service' : 'out-of-service';
        rt.wasRunning = running;
        if (running) out.log('warn', 'found-running', `${name}: found running at start-up: claiming ownership before anything else`, { hierarchy: name, resources: rt.resources });
        else if (h.fenced) {
          // Nothing of H runs here, so a registration of ours on its disks (left by an earlier life
          // of this node that died or hung while holding) is of no use and would block every peer.
          launchEffect(s, rt, { kind: 'unregister', id: 0, hierarchy: name, reason: 'nothing runs here after the probe' }, out);
        }
        break;
      }
      case 'unregister':
        rt.diskCleanup = r.error !== undefined;
        rt.diskError = r.error ?? null;
        if (r.error) {
          out.log('warn', 'unregister-failed', `${name}: could not drop our registration on its disks (${r.error}): retrying`, { hierarchy: name, err: r.error });
          backoff(s, rt, ACQUIRE_BACKOFF_MS.error!, out);
        }
        break;
      case 'acquire':
        rt.phase = prevPhase === 'in-service' ? 'in-service' : 'out-of-service';
        if (r.ok) {
          rt.ownership = 'owned';
          rt.fencedBy = null;
          rt.ownerKey = r.key;
          rt.epoch = r.generation;
        } else {
          backoff(s, rt, ACQUIRE_BACKOFF_MS[r.reason] ?? 1000, out);
          if (r.reason === 'error') {
            // Our disk I/O fails: step aside (a peer that reaches the disks takes over) and
            // retry dropping whatever registration the failed acquire may have left.
            rt.diskError = r.detail;
            rt.diskCleanup = true;
          }
        }
        break;
      case 'start':
        rt.resources = { ...r.resources };
        rt.phase = 'in-service';
        if (r.failed) startFailed(s, rt, name, 'start', r.failed, r, out);
        else out.fx.push({ kind: 'in-service', hierarchy: name });
        break;
      case 'restart':
        rt.resources = { ...r.resources };
        if (r.stopFailed) {
          rt.phase = 'failed';
          out.log('error', 'stop-failed', `${name}/${r.stopFailed}: stop failed during local restart: hierarchy FAILED, ownership kept`, { hierarchy: name, resource: r.stopFailed, reason: r.reason });
          break;
        }
        rt.phase = 'in-service';
        if (r.failed) startFailed(s, rt, name, 'restart', r.failed, r, out);
        else out.log('info', 'restarted', `${name}: restarted in place`, { hierarchy: name });
        break;
      case 'stop': {
        rt.resources = { ...r.resources };
        if (r.failed) {
          rt.phase = 'failed';
          // Ownership kept: as long as we hold the disks nobody else can start H next to our half-stopped copy.
          out.log('error', 'stop-failed', `${name}/${r.failed}: STOP FAILED (${r.reason}): hierarchy FAILED here, ownership kept so it cannot run twice; admin action needed`, { hierarchy: name, resource: r.failed, reason: r.reason });
          break;
        }
        // Lost while an ordinary stop ran (the keeper then skips the release): our reservation may
        // still be there.
        if (rt.ownership === 'lost' && !stop?.urgent && h.fenced) rt.diskCleanup = true;
        // Released, or given up because it was lost or could not be proven: not ours either way.
        if (stop?.release || stop?.urgent || rt.ownership === 'lost') {
          rt.ownership = 'not-owned';
          rt.ownerKey = null;
        }
        rt.phase = 'out-of-service';
        rt.wasRunning = false;
        out.log('info', 'stopped', `${name}: out of service here`, { hierarchy: name });
        // Nothing runs here, so this is no reason to block anyone, as long as the registration
        // left on the disk goes (decide() retries; a peer that cannot reach us preempts it).
        if (stop?.urgent && !r.releaseError && h.fenced) {
          // Ownership given up because it was lost or could not be proven: our reservation may
          // still sit on the disk. Dropped as its own step, so a hung disk does not keep H
          // "stopping" (peers wait on that) while nothing of it runs here any more.
          launchEffect(s, rt, { kind: 'unregister', id: 0, hierarchy: name, reason: 'ownership given up: drop our registration' }, out);
        }
        if (r.releaseError) {
          rt.diskError = r.releaseError;
          rt.diskCleanup = true;
          backoff(s, rt, ACQUIRE_BACKOFF_MS.error!, out);
          out.log('warn', 'release-failed', `${name}: stopped, but its disks could not be given back (${r.releaseError}): retrying until they answer`, { hierarchy: name, err: r.releaseError });
        }
        break;
      }
      case 'halt':
        break;
    }
  }
}

/**
 * A start, or a restart's start, failed: one more failure in the window (without counting a
 * restart's, a resource that can never start here would be restarted forever instead of failing
 * over); OCF 6 blocks the hierarchy.
 */
function startFailed(s: NodeState, rt: HierarchyState, name: string, what: 'start' | 'restart', resource: string, r: { reason?: string; fatal?: boolean; hard?: boolean }, out: Out): void {
  rt.failures.push(s.now);
  out.log('error', 'start-failed', `${name}/${resource}: ${what} failed: ${r.reason}`, { hierarchy: name, resource, reason: r.reason });
  if (r.fatal) fatal(rt, name, `${resource}: ${r.reason}`, out);
  if (r.hard) cannotRunHere(rt, name, `${resource}: ${r.reason}`, out);
}

/**
 * OCF hard error (2-5): this node cannot run H (as an rc 5 probe). Not eligible here until a new
 * probe says otherwise (an admin's clear, a reload, a restart): H fails over, with no restart in place.
 */
function cannotRunHere(rt: HierarchyState, name: string, why: string, out: Out): void {
  if (rt.cannotRun !== null) return;
  rt.cannotRun = why;
  out.log('error', 'cannot-run', `${name}: cannot run on this node: ${why}; it fails over`, { hierarchy: name, reason: why });
}

/** OCF_ERR_CONFIGURED: blocked everywhere (decide.ts stops it and refuses it to every node). */
function fatal(rt: HierarchyState, name: string, why: string, out: Out): void {
  if (rt.blocked !== null) return;
  rt.blocked = why;
  out.log('error', 'blocked', `${name}: BLOCKED cluster-wide: fatal configuration error (${why}); it runs nowhere until the definition is fixed`, { hierarchy: name, reason: why });
}

function backoff(s: NodeState, rt: HierarchyState, ms: number, out: Out): void {
  rt.acquireBackoffUntil = s.now + ms;
  out.fx.push({ kind: 'timer', at: rt.acquireBackoffUntil });
}

function monitor(rt: HierarchyState, name: string, on: boolean, out: Out): void {
  if (rt.monitored === on) return;
  rt.monitored = on;
  out.fx.push({ kind: 'monitor', hierarchy: name, on });
}

// --- reaction: decide, launch, advertise --------------------------------------------------------

function react(s: NodeState, out: Out, scope: Scope): void {
  applyPending(s, out);
  out.all = scope === 'all';
  out.hs = scope === 'all' ? s.hierarchies : s.hierarchies.filter((h) => scope.has(h.name));
  const adminBefore = s.admin;
  prepare(s, out.hs, out);
  if (!out.all && s.admin !== adminBefore) {
    // An admin transition (a move done) wrote the map: what it says may concern every hierarchy.
    const rest = s.hierarchies.filter((h) => !(scope as Set<string>).has(h.name));
    widen(s, scope);
    prepare(s, rest, out);
    out.all = true;
    out.hs = s.hierarchies;
  }
  const input: DecideInput = {
    self: s.self,
    now: s.now,
    hierarchies: out.hs,
    peers: s.peers,
    local: s.h,
    shutdown: s.shutdown,
    adminStop: s.adminStop,
    admin: s.admin,
    raceDelayPerRankMs: s.settings.raceDelayPerRankMs,
  };
  const d = decide(input);
  for (const [name, note] of Object.entries(d.notes)) {
    const rt = s.h[name]!;
    // In flight: the note says what was launched ('probing', 'failing over') until it is done.
    setNote(rt, rt.busy ? rt.note : note);
  }

  let inFlight = 0;
  for (const k in s.h) if (s.h[k]!.busy) inFlight++;
  const skipped = new Set<string>();
  for (const a of d.actions) {
    // Losing ownership does not wait for a slot: the stop (or halt) goes at once.
    const urgent = (a.kind === 'stop' && a.urgent) || a.kind === 'halt';
    if (inFlight >= s.settings.maxParallelHierarchies && !urgent) {
      skipped.add(a.hierarchy);
      continue;
    }
    launch(s, a, out);
    inFlight++;
  }
  // Deciding only some hierarchies, the others that waited for a slot still do.
  if (out.all) s.deferred = s.hierarchies.filter((h) => skipped.has(h.name)).map((h) => h.name);
  else if (skipped.size > 0 || s.deferred.length > 0) {
    const decided = new Set(out.hs.map((h) => h.name));
    const waiting = new Set([...s.deferred.filter((n) => !decided.has(n)), ...skipped]);
    s.deferred = s.hierarchies.filter((h) => waiting.has(h.name)).map((h) => h.name);
  }

  for (const h of out.hs) {
    const rt = s.h[h.name]!;
    // Monitors run while H is in service here, owned and managed; never during an action.
    monitor(rt, h.name, rt.phase === 'in-service' && !rt.busy && rt.ownership === 'owned' && !rt.unmanaged, out);
  }
  advertise(s, out);
  watch(s, out);
  s.nextDeadline = nextDeadline(s);
  if (s.shutdown && allQuiet(s) && !s.left) {
    for (const [name, rt] of Object.entries(s.h)) {
      if (rt.phase === 'failed') out.log('error', 'leaving-failed', `${name}: leaving with it FAILED here (a stop failed, resources may still run): peers will not take it over until this node is back and an admin has cleared it`, { hierarchy: name });
    }
    s.left = true;
    out.fx.push({ kind: 'leave' });
  }
}

/** What status says about H: an unusable disk or a FAILED hierarchy says so above anything else. */
function setNote(rt: HierarchyState, note: string): void {
  rt.note = rt.diskProblem ? `disk unusable: ${rt.diskProblem}` : rt.phase === 'failed' && rt.failedWhy ? `FAILED: ${rt.failedWhy}` : note;
}

/** The earliest time a decision may change by time alone: a back-off ends, a failure leaves its window. */
function nextDeadline(s: NodeState): number {
  let at = Infinity;
  for (const h of s.hierarchies) {
    const rt = s.h[h.name]!;
    if (rt.acquireBackoffUntil > s.now && rt.acquireBackoffUntil < at) at = rt.acquireBackoffUntil;
    if (rt.failures.length > 0) {
      const end = Math.min(...rt.failures) + restartWindowMs(h);
      if (end < at) at = end;
    }
  }
  return at;
}

function restartWindowMs(h: HierarchyConfig): number {
  return Math.max(...h.resources.map((r) => r.restart.windowMs), 0);
}

/** Before deciding H: ownership lost and nothing left here, failures out of the window, admin transitions. */
function prepare(s: NodeState, hs: HierarchyConfig[], out: Out): void {
  for (const h of hs) {
    const rt = s.h[h.name]!;
    // Lost, and nothing of it runs or is in flight here: simply not ours any more; what may be
    // left of our registration is dropped when the disk answers.
    if (rt.ownership === 'lost' && !rt.busy && rt.phase === 'out-of-service' && !anyRunning(rt) && !Object.values(rt.resources).some((x) => x === 'failed' || x === 'unknown')) {
      rt.ownership = 'not-owned';
      rt.ownerKey = null;
      if (h.fenced) rt.diskCleanup = true;
    }
  }
  for (const h of hs) {
    const rt = s.h[h.name]!;
    rt.failures = rt.failures.filter((t) => s.now - t < restartWindowMs(h));
    rt.failuresInWindow = rt.failures.length;
    rt.utilityOk = rt.utilityPass && rt.diskProblem === null;
  }
  for (const h of hs) adminTransitions(s, h, s.h[h.name]!, out);
}

/**
 * What the admin map asks of H here, applied when H is idle: maintenance starting (monitors off,
 * nothing done) or ending (re-probe), a new `clear` (failures forgotten, re-probe), the result of
 * such a re-probe, and an intelligent hierarchy's move done (its pin removed).
 */
function adminTransitions(s: NodeState, h: HierarchyConfig, rt: HierarchyState, out: Out): void {
  if (rt.busy) return;
  const name = h.name;
  const um = unmanaged(s.admin, name, s.self);
  if (um && !rt.unmanaged) {
    rt.unmanaged = true;
    out.log('warn', 'maintenance', `${name}: MAINTENANCE: unmanaged here (no monitors, no recovery, resources left as they are)`, { hierarchy: name });
  } else if (!um && rt.unmanaged) {
    rt.unmanaged = false;
    reprobe(rt, h, s.self);
    out.log('info', 'maintenance', `${name}: maintenance over: probing before managing it again`, { hierarchy: name });
  }
  const cv = clearVersion(s.admin, name);
  if (cv > rt.clearSeen && !rt.unmanaged) {
    rt.clearSeen = cv;
    rt.failures = [];
    rt.failuresInWindow = 0;
    rt.monitorFailures = [];
    rt.blocked = null;
    rt.cannotRun = null;
    rt.fencedBy = null;
    rt.acquireBackoffUntil = 0;
    rt.clearCheck = true;
    reprobe(rt, h, s.self);
    out.log('info', 'cleared', `${name}: cleared by an admin: failures forgotten, probing`, { hierarchy: name });
  }
  if (rt.phase === 'unprobed') return;
  if (rt.clearCheck) {
    rt.clearCheck = false;
    const unplaced = Object.entries(rt.resources).filter(([, st]) => st === 'failed' || st === 'unknown' || st === 'stop-failed').map(([r]) => r);
    if (unplaced.length > 0) {
      failHere(rt, name, `clear refused: ${unplaced.join(', ')} neither running nor stopped at the probe; fix it, then clear again`, out);
      rt.recheck = false;
    }
  }
  if (rt.recheck) {
    // Never ours (lost or unverified ownership is the fencing rules' business: stop at once).
    const notOurs = rt.phase === 'in-service' && rt.ownership === 'not-owned';
    const peers = Object.entries(s.peers).filter(([, v]) => v.state === 'up' && !v.leaving);
    const elsewhere = peers.filter(([, v]) => ['in-service', 'stopping', 'failed'].includes(v.hierarchies[name]?.state ?? '')).map(([n]) => n);
    const probing = peers.some(([, v]) => v.hierarchies[name]?.state === 'starting');
    if (notOurs && elsewhere.length > 0) {
      rt.recheck = false;
      failHere(rt, name, `running on two nodes (here and ${elsewhere.join(', ')}) after maintenance or clear: nothing was stopped; stop it on one node by hand, then \`hierarchy ${name} clear\``, out);
    } else if (!notOurs || !probing) rt.recheck = false;
  }
  // An intelligent hierarchy stays where it was moved: the pin has done its work.
  if (moveTarget(s.admin, name) === s.self && h.switchback !== 'automatic' && rt.phase === 'in-service' && rt.ownership === 'owned') {
    const pin = entryOf(s.admin, hierarchyKey(name, 'move'))!;
    s.admin = writeAdmin(s.admin, hierarchyKey(name, 'move'), null, { node: s.self, by: `${pin.by} (move done)`, at: pin.at });
    out.log('info', 'moved', `${name}: moved here; it stays (switchback intelligent)`, { hierarchy: name });
  }
}

function reprobe(rt: HierarchyState, h: HierarchyConfig, self: NodeName): void {
  if (!probesHere(h, self)) return;
  // Unknown until the probe answers: advertised as possibly running meanwhile (decide.ts advertState).
  for (const r of h.resources) if (r.kind === 'agent') rt.resources[r.name] = 'unknown';
  rt.phase = 'unprobed';
  rt.recheck = true;
  rt.failedWhy = null;
}

function failHere(rt: HierarchyState, name: string, why: string, out: Out): void {
  rt.phase = 'failed';
  rt.failedWhy = why;
  out.log('error', 'failed', `${name}: FAILED: ${why}`, { hierarchy: name, reason: why });
}

/** Changed or removed definitions take effect when their hierarchy is idle here. */
function applyPending(s: NodeState, out: Out): void {
  let changed = false;
  for (const [name, h] of Object.entries(s.pending)) {
    const rt = s.h[name];
    const idle = !rt || (!rt.busy && (rt.phase === 'out-of-service' || rt.phase === 'unprobed') && rt.ownership === 'not-owned' && !anyRunning(rt));
    // A definition this node will not probe (probe: listed, not listed) takes over only from a
    // state known stopped: a copy the old definition's probe would find must be found first.
    const unknownHere = rt && h && !probesHere(h, s.self) && (rt.phase !== 'out-of-service' || Object.values(rt.resources).some((st) => st !== 'stopped'));
    if (!idle || unknownHere) continue;
    delete s.pending[name];
    changed = true;
    const list = s.hierarchies.filter((x) => x.name !== name);
    if (h) {
      list.push(h);
      s.h[name] = startingHierarchy(h, s.self, s.admin);
    } else {
      if (rt) monitor(rt, name, false, out);
      delete s.h[name];
      s.adminStop = s.adminStop.filter((x) => x !== name);
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    s.hierarchies = list;
    out.log('info', h ? 'hierarchy-defined' : 'hierarchy-removed', `${name}: ${h ? 'new definition in effect' : 'removed'}`, { hierarchy: name });
  }
  if (changed) out.fx.push({ kind: 'hierarchies', list: s.hierarchies });
}

function launch(s: NodeState, a: Action, out: Out): void {
  const rt = s.h[a.hierarchy]!;
  if (a.kind === 'restart') rt.monitorFailures = rt.monitorFailures.filter((x) => x !== a.resource);
  const fx: ActionEffect = { ...a, id: 0 };
  launchEffect(s, rt, fx, out);
}

const PHASE_DURING: Partial<Record<ActionEffect['kind'], HierarchyState['phase']>> = {
  acquire: 'acquiring',
  start: 'starting',
  restart: 'restarting',
  stop: 'stopping',
};

function launchEffect(s: NodeState, rt: HierarchyState, fx: ActionEffect, out: Out): void {
  const id = s.nextActionId++;
  // Launched by a result rather than by decide(): no note of decide's says so.
  if (fx.kind === 'unregister') setNote(rt, 'dropping our registration');
  fx = { ...fx, id };
  const name = fx.hierarchy;
  const starting = fx.kind === 'start' ? fx.levels.flat() : fx.kind === 'restart' ? fx.start.flat() : [];
  rt.action = { id, kind: fx.kind, prevPhase: rt.phase, starting, ...(fx.kind === 'stop' ? { stop: { release: fx.release, urgent: fx.urgent } } : {}) };
  rt.busy = true;
  rt.phase = PHASE_DURING[fx.kind] ?? rt.phase;
  if (fx.kind === 'stop' || fx.kind === 'restart') monitor(rt, name, false, out);
  // The guard must cover a start before it is launched: a daemon that dies half way through a
  // start leaves the resources already started running.
  if (starting.length > 0 && !mutant('no-guard-before-start')) guard(s, out);
  const level = fx.kind === 'halt' ? 'fatal' : 'info';
  out.log(level, 'action', `${name}: ${fx.kind} (${fx.reason})`, { action: fx.kind, hierarchy: name, reason: fx.reason, ...(fx.kind === 'acquire' ? { delayMs: fx.delayMs } : {}) });
  out.fx.push(fx);
}

function advertise(s: NodeState, out: Out): void {
  guard(s, out);
  const adverts = updated(s.sent.adverts, s, out, (h, rt) => ({ state: advertedState(h.name, rt, s), eligible: selfEligible(h, s.self, rt, s), epoch: rt.epoch, ...(rt.ownership === 'owned' && rt.ownerKey ? { ownerKey: rt.ownerKey } : {}) }), sameAdvert);
  const blocked = updated(s.sent.blocked, s, out, (_h, rt) => (rt.blocked === null ? undefined : rt.blocked.length > 500 ? `${rt.blocked.slice(0, 497)}...` : rt.blocked), (a, b) => a === b);
  const leaving = s.shutdown !== false && allQuiet(s);
  if (s.sent.started && adverts === s.sent.adverts && blocked === s.sent.blocked && leaving === s.sent.leaving) return;
  s.sent = { ...s.sent, started: true, adverts, blocked, leaving };
  out.fx.push({ kind: 'advertise', adverts, leaving, blocked });
}

function sameAdvert(a: AdvertOut, b: AdvertOut): boolean {
  return a.state === b.state && a.eligible === b.eligible && a.epoch === b.epoch && a.ownerKey === b.ownerKey;
}

/**
 * `map` with the entries of the hierarchies this step decides brought up to date (and, deciding
 * all, those of hierarchies gone dropped): the same object when nothing changed.
 */
function updated<T>(map: Record<string, T>, s: NodeState, out: Out, value: (h: HierarchyConfig, rt: HierarchyState) => T | undefined, same: (a: T, b: T) => boolean): Record<string, T> {
  let next = map;
  const set = (k: string, v: T | undefined) => {
    if (next === map) next = { ...map };
    if (v === undefined) delete next[k];
    else next[k] = v;
  };
  for (const h of out.hs) {
    const v = value(h, s.h[h.name]!);
    const old = map[h.name];
    if (v === undefined ? old !== undefined : old === undefined || !same(old, v)) set(h.name, v);
  }
  if (out.all) for (const k of Object.keys(map)) if (!s.h[k]) set(k, undefined);
  return next;
}

function guard(s: NodeState, out: Out): void {
  const plan = updated(
    s.sent.guard,
    s,
    out,
    (h, rt) => {
      const starting = mutant('no-guard-before-start') ? [] : rt.action?.starting ?? [];
      const resources = h.resources.filter((r) => r.kind === 'agent' && (rt.resources[r.name] !== 'stopped' || starting.includes(r.name))).map((r) => r.name);
      // A stale copy of H still runs on a reachable peer: the guard must not give the disks back either.
      const stale = staleCopyElsewhere(h, s, rt) !== null;
      return { name: h.name, resources, owned: h.fenced && (rt.ownership === 'owned' || rt.ownership === 'unverified'), release: starting.length === 0 && !stale };
    },
    (a, b) => a.owned === b.owned && a.release === b.release && a.resources.join('\n') === b.resources.join('\n'),
  );
  if (s.sent.guarded && plan === s.sent.guard) return;
  s.sent = { ...s.sent, guarded: true, guard: plan };
  out.fx.push({ kind: 'guard', plan: s.hierarchies.map((h) => plan[h.name]!) });
}

/**
 * The disk as the last comm path: while the node running H is suspect or down (and we might take
 * over), keep sampling its key on the disk so the liveness window overlaps the dead time.
 */
function watch(s: NodeState, out: Out): void {
  const peers = Object.values(s.peers) as PeerView[];
  const watched = new Set(s.sent.watch);
  let changed = false;
  for (const h of out.hs) {
    const rt = s.h[h.name]!;
    let on = false;
    // Only a node that may take H over watches its holder: the watch is for its race.
    if (h.fenced && rt.phase === 'out-of-service' && h.priorities[s.self] !== undefined && h.resources.some((r) => r.kind === 'disk')) {
      const runner = peers.find((p) => p.hierarchies[h.name]?.state === 'in-service' || p.hierarchies[h.name]?.state === 'starting');
      const runsOnReachable = peers.some((p) => p.state === 'up' && !p.suspect && p.hierarchies[h.name]?.state === 'in-service');
      on = runner !== undefined && (runner.suspect === true || runner.state === 'down') && !runsOnReachable && !outranked(s, h);
    }
    if (on === watched.has(h.name)) continue;
    changed = true;
    if (on) watched.add(h.name);
    else watched.delete(h.name);
  }
  if (out.all) {
    for (const name of watched) {
      if (s.h[name]) continue;
      watched.delete(name);
      changed = true;
    }
  }
  if (!changed) return;
  const list = s.hierarchies.filter((h) => watched.has(h.name)).map((h) => h.name);
  s.sent = { ...s.sent, watch: list };
  out.fx.push({ kind: 'watch', hierarchies: list });
}

/**
 * A peer we hear well (up, not suspect, not leaving) that comes before us in H's priorities (as an
 * admin's move or standby leave them) and is eligible for H takes H over before we could: the race
 * is its to run, and so is the watch. A third node watched all of a dead runner's hierarchies while
 * the second took them over, and its reads competed with the takeover's agents.
 */
function outranked(s: NodeState, h: HierarchyConfig): boolean {
  const eh = effectiveHierarchy(h, s.admin);
  const mine = eh.priorities[s.self];
  if (mine === undefined) return false;
  for (const [node, p] of Object.entries(s.peers)) {
    const prio = eh.priorities[node];
    if (prio !== undefined && prio < mine && p.state === 'up' && !p.suspect && !p.leaving && p.hierarchies[h.name]?.eligible === true) return true;
  }
  return false;
}

/** Shutdown may finish: nothing in flight, nothing running, nothing owned (a FAILED hierarchy keeps both, and says so). */
export function allQuiet(s: NodeState): boolean {
  for (const h of s.hierarchies) {
    const rt = s.h[h.name]!;
    if (rt.busy) return false;
    if (rt.phase !== 'out-of-service' && rt.phase !== 'failed' && rt.phase !== 'unprobed') return false;
    // Kept for a stale copy on a peer (decide.ts staleCopyElsewhere): leave with the key frozen
    // on the disk rather than wait for an admin; nobody may start H while that copy shows.
    const kept = staleCopyElsewhere(h, s, rt) !== null;
    if (rt.ownership === 'owned' && rt.phase !== 'failed' && !kept) return false;
  }
  return true;
}

/** How two results of one step differ (the scope check), or null. Log lines may come in another order. */
function differs(scoped: { state: NodeState; effects: Effect[] }, b: { state: NodeState; effects: Effect[] }): string | null {
  // When the last full decision was is the one thing a full step always changes.
  const a = { ...scoped, state: { ...scoped.state, fullAt: b.state.fullAt } };
  if (!isDeepStrictEqual(a.state, b.state)) {
    for (const k of Object.keys(b.state) as (keyof NodeState)[]) {
      if (k === 'h') {
        for (const name of Object.keys(b.state.h)) if (!isDeepStrictEqual(a.state.h[name], b.state.h[name])) return `state.h.${name}: ${JSON.stringify(a.state.h[name])} vs ${JSON.stringify(b.state.h[name])}`;
      }
      if (!isDeepStrictEqual(a.state[k], b.state[k])) return `state.${k}: ${JSON.stringify(a.state[k])} vs ${JSON.stringify(b.state[k])}`;
    }
    return 'state';
  }
  const acts = (fx: Effect[]) => fx.filter((e) => e.kind !== 'log');
  const logs = (fx: Effect[]) => fx.filter((e) => e.kind === 'log').map((e) => JSON.stringify(e)).sort();
  if (!isDeepStrictEqual(acts(a.effects), acts(b.effects))) return `effects: ${JSON.stringify(acts(a.effects))} vs ${JSON.stringify(acts(b.effects))}`;
  if (!isDeepStrictEqual(logs(a.effects), logs(b.effects))) return `logs: ${JSON.stringify(logs(a.effects))} vs ${JSON.stringify(logs(b.effects))}`;
  return null;
}
