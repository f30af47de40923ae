// One simulated run: N machines (sim/node.ts) on a simulated network, shared disks with SCSI-3 PR
// semantics and simulated agents, all on one simulated clock; a timeline of faults; and the
// invariants, checked after every event. Deterministic: the same options give the same run.
//
// Invariants (see sim/README in the top-level README's "Simulation" section):
//  I1 data      at most one node able to write a disk of H (PR Write Exclusive, disk reachable)
//               while any resource of H runs there.
//  I2 service   at most one node runs any resource of H. Excused, measured and reported: a node
//               that lost its reservation while it could not know (stalled, or its disk cut or
//               hung) until it notices and stops (bounded by I2_BOUND_MS), and a copy whose stop
//               failed (I4: FAILED, it cannot write). Unfenced hierarchies: only while nothing
//               has disturbed the network or a process yet.
//  I3 recovery  after the faults stop, every hierarchy that has an eligible node is in service on
//               exactly one node within the recovery bound, and stays there (no ping-pong).
//  I4 failed    FAILED only after a stop failed there; every hierarchy always has a note (why).
//  I5 switchback an intelligent hierarchy in service when the faults stop does not move when
//               better nodes come back; an automatic one ends on its best eligible node.
//  L1 liveness  no node believes a peer up that has been dead longer than the dead time.
//  P1 priority  of racers for a free disk that cannot hear each other, the one due first by its
//               rank delay wins. (For a dead holder's frozen key, when each racer started watching
//               the key decides too: test/golden/race-survivors-frozen-key.yaml covers that case.)
import { SimClock } from './clock.ts';
import { SimSan } from './disk.ts';
import { SimAgents } from './agents.ts';
import { SimNetwork } from './network.ts';
import { Rng } from './rng.ts';
import { SimNode, type SimCluster } from './node.ts';
import { describeFault, type Fault, type TimedFault } from './faults.ts';
import type { Effect, Event, NodeState } from '../harness/core/types.ts';
import { effectiveHierarchy, selfEligible, type DecideInput, type PeerView } from '../harness/decide.ts';
import { DEFAULTS, ownershipTimers } from '../harness/defaults.ts';
import { isReleasedKey, nodeKey, nodePart } from '../fencing/keys.ts';
import { isStopped, moveTarget, unmanaged } from '../harness/core/admin.ts';

export interface WorldOptions {
  seed: number;
  cluster: SimCluster;
  timeline: TimedFault[];
  /** When the faults stop: everything is healed, powered and started (I3/I5 count from here). */
  quietAt: number;
  endAt: number;
  /** Standing defects that do not heal: `node/hierarchy/resource` broken, `node/hierarchy` not installed. */
  broken?: string[];
  notInstalled?: string[];
  /** Agent operation durations, ms: [min, max]. */
  opMs?: [number, number];
  /** Or exact durations per operation (`kind`, `node/hierarchy/resource`): scenarios. */
  opMsOf?: (kind: 'start' | 'stop', key: string) => number;
  diskLatencyMs?: number;
  /** Check I3/I5 at the end (random schedules); scenarios only print. */
  checkRecovery?: boolean;
  trace?: boolean;
}

export interface Violation {
  at: number;
  rule: string;
  detail: string;
}

export interface TraceLine {
  at: number;
  node: string;
  text: string;
}

export interface RunResult {
  seed: number;
  violations: Violation[];
  trace: TraceLine[];
  /** How often each fault kind and each decision branch was exercised. */
  faults: Record<string, number>;
  branches: Record<string, number>;
  /** Longest excused overlap per kind (I2), ms. */
  overlaps: Record<string, number>;
  steps: number;
}

const OT = ownershipTimers(DEFAULTS.deadTimeMs);
/** Notes that only repeat the action line printed beside them (kept out of the trace). */
const MIRRORS_AN_ACTION = /\(in progress\)$|^(probing|acquiring|starting|cleaning up|releasing|in service here|failing over|claiming ownership|completing start|dropping our registration|restarting .*|switching back to .*|node shutdown .*|admin stop|ownership lost: .*)$/;
/** I2: a node that lost its reservation without being able to know stops within this (see header). */
/** I3: how long every hierarchy must have stayed put to count as settled. */
export const SETTLE_WINDOW_MS = 5_000;
export const I2_BOUND_MS = DEFAULTS.tickMs + OT.ownershipCheckMs * (DEFAULTS.lostAfterFailedChecks + 1) + DEFAULTS.fencedStopTimeoutMs + 1000;

export class World {
  readonly o: WorldOptions;
  readonly clock = new SimClock({ start: 0 });
  readonly san = new SimSan();
  readonly agents: SimAgents;
  readonly net: SimNetwork;
  readonly nodes = new Map<string, SimNode>();
  readonly violations: Violation[] = [];
  readonly trace: TraceLine[] = [];
  readonly faults: Record<string, number> = {};
  readonly branches: Record<string, number> = {};
  readonly overlaps: Record<string, number> = {};
  steps = 0;
  readonly #rng: Rng;
  readonly #heldAt = new Map<string, number>();
  /** Trace: each node's last view of each peer. */
  readonly #seen = new Map<string, string>();
  readonly #seenGen = new Map<string, number | undefined>();
  /** `h|node`: its keys on H's disks, and when they last changed (a live holder's move every refresh). */
  readonly #lastKeys = new Map<string, string>();
  readonly #keyMovedAt = new Map<string, number>();
  readonly #overlapFrom = new Map<string, number>();
  /** Per node, the intervals its disks were cut or hung (until = Infinity: still). */
  readonly #diskFaults = new Map<string, Array<{ since: number; until: number }>>();
  /** Races in flight per hierarchy: who, since when, and which peers it could hear then. */
  /** Acquires in flight; `watching`: the disk had a live holder's key when it began (a frozen-key race, not P1's). */
  readonly #races = new Map<string, { node: string; at: number; id: number; heard: string[]; delayMs: number; watching: boolean }[]>();
  #disturbed = false;
  #stableKey = '';
  #stableSince = Infinity;
  /** When the cluster settled after the faults stopped (the run can end), or null. */
  #settledAt: number | null = null;
  /** Nodes whose daemon ran undisturbed for a while when the faults stopped (I5). */
  readonly #healthy = new Set<string>();
  #dirty = true;
  #maxJitter = 0;
  #samples: Array<{ at: number; runners: Record<string, string[]>; full: Record<string, boolean> }> = [];

  constructor(o: WorldOptions) {
    this.o = o;
    this.#rng = new Rng(o.seed);
    const opRng = this.#rng.fork('ops');
    const [lo, hi] = o.opMs ?? [20, 400];
    this.agents = new SimAgents({ opMs: o.opMsOf ?? (() => opRng.int(lo, hi)) });
    for (const k of o.broken ?? []) this.agents.broken.add(k);
    for (const k of o.notInstalled ?? []) this.agents.notInstalled.add(k);
    this.net = new SimNetwork(this.clock, this.#rng.fork('net'), (to, hb) => this.nodes.get(to)?.receive(hb));
    for (const h of o.cluster.hierarchies) for (const r of h.resources) if (r.kind === 'disk') this.san.add(`${h.name}/${r.name}`);
    const hooks = {
      clock: this.clock,
      san: this.san,
      agents: this.agents,
      net: this.net,
      diskLatencyMs: () => o.diskLatencyMs ?? 0,
      stepped: (n: SimNode, ev: Event, before: NodeState, after: NodeState, fx: Effect[]) => this.#stepped(n, ev, before, after, fx),
      viewed: (n: SimNode, peers: Record<string, PeerView>) => this.#viewed(n, peers),
      changed: () => (this.#dirty = true),
      note: (n: SimNode, text: string) => this.#log(n.name, text),
    };
    this.agents.onChange = () => (this.#dirty = true);
    this.san.observer = () => (this.#dirty = true);
    for (const name of o.cluster.nodes) this.nodes.set(name, new SimNode(name, o.cluster, hooks));
  }

  async run(): Promise<RunResult> {
    const { o } = this;
    for (const n of this.nodes.values()) n.boot();
    await this.clock.settle();
    for (const t of o.timeline) this.clock.setTimeout(() => this.apply(t.fault), Math.max(1, t.at));
    this.clock.setTimeout(() => this.#quiet(), Math.max(1, o.quietAt));
    const sampleEvery = 250;
    for (let t = sampleEvery; t <= o.endAt; t += sampleEvery) this.clock.setTimeout(() => this.#sample(), t);
    while (this.violations.length === 0 && this.#settledAt === null) {
      const next = this.clock.nextAt();
      if (next === null || next > o.endAt) break;
      await this.clock.fireNext();
      // Only what runs where, who holds a disk and the faults feed I1/I2: re-check when one of
      // them changed, or while an overlap is being timed.
      if (this.#dirty || this.#overlapFrom.size > 0) {
        this.#dirty = false;
        this.#checkTruth();
      }
    }
    if (o.checkRecovery && this.violations.length === 0) this.#checkRecovery();
    return { seed: o.seed, violations: this.violations, trace: this.trace, faults: this.faults, branches: this.branches, overlaps: this.overlaps, steps: this.steps };
  }

  #log(node: string, text: string): void {
    if (this.o.trace) this.trace.push({ at: this.clock.now(), node, text });
  }

  #violate(rule: string, detail: string): void {
    this.violations.push({ at: this.clock.now(), rule, detail });
    this.#log('!', `VIOLATION ${rule}: ${detail}`);
  }

  apply(f: Fault): void {
    this.#dirty = true;
    this.faults[f.do] = (this.faults[f.do] ?? 0) + 1;
    this.#log('*', describeFault(f));
    const node = 'node' in f ? this.nodes.get(f.node) : undefined;
    switch (f.do) {
      case 'power-off':
        node?.powerOff();
        return;
      case 'power-on':
        node?.powerOn();
        return;
      case 'crash':
        this.#disturbed = true;
        node?.crash();
        return;
      case 'start':
        if (node) this.#startWhenPossible(node);
        return;
      case 'shutdown':
        node?.dispatch({ type: 'shutdown', mode: f.mode });
        return;
      case 'stall':
        this.#disturbed = true;
        node?.stall();
        return;
      case 'resume':
        node?.resume();
        return;
      case 'cut':
        this.#disturbed = true;
        this.net.cut(f.from, f.to, f.path);
        return;
      case 'heal':
        this.net.heal(f.from, f.to, f.path);
        return;
      case 'partition':
        this.#disturbed = true;
        this.net.partition(f.groups);
        return;
      case 'link':
        this.#disturbed = true;
        this.#maxJitter = Math.max(this.#maxJitter, f.jitterMs);
        this.net.setFault(f.from, f.to, { loss: f.loss, dup: f.dup, jitterMs: f.jitterMs });
        return;
      case 'heal-network':
        this.net.healAll();
        return;
      case 'heal-pair':
        this.net.heal(f.a, f.b);
        this.net.heal(f.b, f.a);
        return;
      case 'disk-back':
        this.apply({ do: 'disk-cut', node: f.node, on: false });
        this.apply({ do: 'disk-hang', node: f.node, on: false });
        return;
      case 'disk-cut':
      case 'disk-hang': {
        if (!node) return;
        const be = node.p?.backend;
        if (be) {
          if (f.do === 'disk-cut') be.cut = f.on;
          else be.hang = f.on;
        }
        const list = this.#diskFaults.get(node.name) ?? [];
        this.#diskFaults.set(node.name, list);
        const cur = list.at(-1);
        if (f.on && !(cur && cur.until === Infinity)) list.push({ since: this.clock.now(), until: Infinity });
        if (!f.on && cur && cur.until === Infinity && !be?.cut && !be?.hang) cur.until = this.clock.now();
        this.#disturbed = true;
        return;
      }
      case 'start-fails':
      case 'stop-fails':
      case 'agent-hangs': {
        const set = f.do === 'start-fails' ? this.agents.startFails : f.do === 'stop-fails' ? this.agents.stopFails : this.agents.hangs;
        const k = `${f.node}/${f.hierarchy}/${f.resource}`;
        if (f.on) set.add(k);
        else set.delete(k);
        return;
      }
      case 'resource-dies':
        this.agents.crash(f.node, f.hierarchy, f.resource);
        return;
      case 'misconfigured':
        if (f.on) this.agents.misconfigured.add(`${f.hierarchy}/${f.resource}`);
        else this.agents.misconfigured.delete(`${f.hierarchy}/${f.resource}`);
        return;
      case 'clock-jump':
        if (node) node.wallOffsetMs += f.ms;
        return;
      case 'utility':
        if (!node) return;
        node.utilityOk = f.ok;
        node.tellUtility();
        return;
      case 'admin':
        node?.dispatch({ type: 'admin', ask: { id: 0, by: `root@${f.node}`, at: 0, request: f.request } });
        if (f.request.action === 'maintenance-off') this.#maintenanceEndedAt = this.clock.now();
        return;
      case 'replay':
        this.net.replay(f.from, f.to);
        return;
    }
  }

  /** `harness start`: it waits for the node's guard, or for a shutdown in progress to finish. */
  #startWhenPossible(node: SimNode): void {
    if (!node.p && !node.guardRunning && node.power) node.boot();
    else if (!node.p || node.p.state.shutdown) this.clock.setTimeout(() => this.#startWhenPossible(node), 500);
  }

  /** The faults stop: heal the network and the disks, resume, power on and start every node. */
  readonly #movePending = new Set<string>();
  /** Last maintenance-off: what maintenance deferred (a failed utility check, a dead resource) is acted on after it. */
  #maintenanceEndedAt = -Infinity;

  #quiet(): void {
    this.#dirty = true;
    const now = this.clock.now();
    for (const n of this.nodes.values()) {
      if (n.p && !n.p.state.shutdown && !n.stalled && !n.guardRunning && n.resumedAt < now - 5000 && n.diedAt < now - 5000 && !this.#diskTrouble(n.name, now - 5000, now)) this.#healthy.add(n.name);
    }
    // A move an admin asked for and the cluster could not carry out yet completes after the quiet
    // point, as it should (I5 excuses it).
    for (const n of this.nodes.values()) for (const h of this.o.cluster.hierarchies) if (n.p && moveTarget(n.p.state.admin, h.name) !== null) this.#movePending.add(h.name);
    this.#log('*', 'faults stop: network and disks healed, every node powered and started');
    this.net.healAll();
    for (const n of this.nodes.values()) if (!n.utilityOk) this.apply({ do: 'utility', node: n.name, ok: true });
    this.agents.startFails.clear();
    this.agents.hangs.clear();
    for (const n of this.nodes.values()) {
      n.resume();
      const be = n.p?.backend;
      if (be) {
        be.cut = false;
        be.hang = false;
      }
      const cur = this.#diskFaults.get(n.name)?.at(-1);
      if (cur && cur.until === Infinity) cur.until = this.clock.now();
      if (!n.power) n.powerOn();
      else if (!n.p || n.p.state.shutdown) this.#startWhenPossible(n);
    }
  }

  // --- invariants -------------------------------------------------------------------------------

  #stepped(n: SimNode, ev: Event, before: NodeState, after: NodeState, fx: Effect[]): void {
    this.steps++;
    for (const e of fx) {
      if (e.kind === 'log') {
        if (e.event !== 'action') this.branches[`log ${e.event}`] = (this.branches[`log ${e.event}`] ?? 0) + 1;
        if (['blocked', 'fenced', 'stop-failed', 'found-running', 'leaving-failed', 'start-failed', 'monitor-failed', 'restarted', 'shutdown', 'admin'].includes(e.event)) this.#log(n.name, e.msg);
      } else if ('id' in e) {
        const why = `${e.kind}: ${e.reason.replace(/\b(n\d+)\b/g, '<node>').replace(/\d+/g, 'N')}`;
        this.branches[why] = (this.branches[why] ?? 0) + 1;
        this.#log(n.name, `${e.hierarchy}: ${e.kind} (${e.reason})${e.kind === 'acquire' ? ` delay ${e.delayMs} ms` : ''}`);
        if (e.kind === 'acquire' && e.reason.startsWith('master')) {
          const list = this.#races.get(e.hierarchy) ?? [];
          const heard = Object.entries(after.peers).filter(([, v]) => v.state === 'up').map(([k]) => k);
          const hc = this.o.cluster.hierarchies.find((x) => x.name === e.hierarchy)!;
          const d = hc.resources.find((r) => r.kind === 'disk');
          const holder = d ? this.san.disk(`${hc.name}/${d.name}`)?.readReservation().holder ?? null : null;
          list.push({ node: n.name, at: this.clock.now(), id: e.id, heard, delayMs: e.delayMs, watching: holder !== null && !isReleasedKey(holder) });
          this.#races.set(e.hierarchy, list);
        }
      } else if (e.kind === 'in-service') {
        this.#log(n.name, `${e.hierarchy}: IN SERVICE`);
      }
    }
    if (ev.type === 'done') {
      const list = this.#races.get(ev.hierarchy) ?? [];
      const mine = list.find((r) => r.node === n.name && r.id === ev.id);
      // A free disk, or one handed over (released marker): a race in rank order.
      if (mine && ev.result.kind === 'acquire' && ev.result.ok && (!ev.result.preempted || isReleasedKey(BigInt(ev.result.preempted)))) this.#checkPriority(ev.hierarchy, mine);
      this.#races.set(ev.hierarchy, list.filter((r) => !(r.node === n.name && r.id === ev.id)));
      if (ev.result.kind === 'acquire' && !ev.result.ok) this.#log(n.name, `${ev.hierarchy}: acquire refused: ${ev.result.reason}`);
      const fenced = this.o.cluster.hierarchies.find((x) => x.name === ev.hierarchy)?.fenced;
      if (ev.result.kind === 'acquire' && ev.result.ok && this.o.trace && fenced) {
        const victim = ev.result.preempted === undefined ? undefined : this.#nodeOfKey(BigInt(ev.result.preempted));
        const how = ev.result.preempted === undefined ? '' : isReleasedKey(BigInt(ev.result.preempted)) ? ` (handed over by ${victim === n.name ? 'itself earlier' : victim ?? 'an unknown node'})` : ` (preempted ${victim === n.name ? 'its own earlier key' : `the key of ${victim ?? 'an unknown node'}`})`;
        this.#log(n.name, `${ev.hierarchy}: owns its disks${how}`);
      }
    }
    for (const [name, rt] of Object.entries(after.h)) {
      const was = before.h[name];
      if (rt.phase === 'failed' && was?.phase !== 'failed' && !this.agents.stopFailed.has(`${n.name}/${name}`) && !(ev.type === 'done' && ev.result.kind === 'error')) {
        this.#violate('I4', `${name} became FAILED on ${n.name} without a failed stop (event ${ev.type})`);
      }
      if (ev.type === 'done' && ev.result.kind === 'error') this.#violate('I4', `${name} on ${n.name}: the executor failed: ${ev.result.detail.split('\n')[0]}`);
      if (!rt.note) this.#violate('I4', `${name} on ${n.name} has no note (status must say why)`);
      if (was && was.note !== rt.note) {
        // Decisions that take no action (standby and why, waiting, keeping the disks) count too.
        const why = `note: ${rt.note.replace(/\b(n\d+)\b/g, '<node>').replace(/\(.*\)/g, '(...)').replace(/\d+/g, 'N')}`;
        this.branches[why] = (this.branches[why] ?? 0) + 1;
        if (this.o.trace && !MIRRORS_AN_ACTION.test(rt.note)) this.#log(n.name, `${name}: ${rt.note}`);
      }
    }
  }

  #nodeOfKey(key: bigint): string | undefined {
    return this.o.cluster.nodes.find((x) => nodePart(nodeKey(this.o.cluster.cluster, x, 0)) === nodePart(key));
  }

  /** P1: see the header. */
  #checkPriority(h: string, winner: { node: string; at: number; heard: string[]; delayMs: number }): void {
    const hc = this.o.cluster.hierarchies.find((x) => x.name === h)!;
    const mine = hc.priorities[winner.node]!;
    for (const r of this.#races.get(h) ?? []) {
      if (r.node === winner.node || (hc.priorities[r.node] ?? Infinity) >= mine) continue;
      // It began by watching a live holder's key: who sees the hand-over or the frozen key first
      // wins (the header: the golden frozen-key scenario covers that case).
      if (r.watching) continue;
      // A peer the winner could hear counted by its own advert (ineligible then): not a rank race.
      if (winner.heard.includes(r.node)) continue;
      const other = this.nodes.get(r.node)!;
      if (!other.p || other.diedAt >= r.at || other.stalled || other.resumedAt >= r.at) continue; // it died or froze mid-race
      if (this.#diskTrouble(r.node, r.at, Infinity)) continue;
      // By their rank delays the other one was due first, by a margin the disk's latency cannot eat.
      if (r.at + r.delayMs + 50 < winner.at + winner.delayMs) {
        this.#violate('P1', `${h}: ${winner.node} (priority ${mine}, rank delay ${winner.delayMs} ms) won the disk over ${r.node} (priority ${hc.priorities[r.node]}, rank delay ${r.delayMs} ms), which started racing ${Math.round(r.at - winner.at)} ms later`);
      }
    }
  }

  #viewed(n: SimNode, peers: Record<string, PeerView>): void {
    const now = this.clock.now();
    if (this.o.trace) {
      // A restarted node starts with no view of its peers.
      if (this.#seenGen.get(n.name) !== n.p?.gen) {
        this.#seenGen.set(n.name, n.p?.gen);
        for (const k of [...this.#seen.keys()]) if (k.startsWith(`${n.name}>`)) this.#seen.delete(k);
      }
      for (const [peer, v] of Object.entries(peers)) {
        const k = `${n.name}>${peer}`;
        const was = this.#seen.get(k);
        const st = v.leaving && v.state === 'down' ? 'leaving' : v.state;
        if (was !== st && !(was === undefined && st === 'unknown')) this.#log(n.name, `sees ${peer} ${st}`);
        this.#seen.set(k, st);
      }
    }
    const dead = this.o.cluster.deadTimeMs + this.#maxJitter + 50;
    if (now - n.resumedAt < dead) return; // packets read after a stall are as old as the stall
    for (const [peer, v] of Object.entries(peers)) {
      if (v.state !== 'up') continue;
      const other = this.nodes.get(peer)!;
      const since = other.diedAt;
      if (!other.p && now - since > dead) this.#violate('L1', `${n.name} believes ${peer} up, dead for ${Math.round(now - since)} ms`);
    }
  }

  /** The node's disks were cut or hung at some moment in [from, to]. */
  #diskTrouble(node: string, from: number, to: number = from): boolean {
    return (this.#diskFaults.get(node) ?? []).some((f) => f.since <= to && f.until >= from - 1);
  }


  #checkTruth(): void {
    const now = this.clock.now();
    const names = this.o.cluster.nodes;
    for (const h of this.o.cluster.hierarchies) {
      const agentRs = h.resources.filter((r) => r.kind === 'agent').map((r) => r.name);
      const disks = h.resources.filter((r) => r.kind === 'disk').map((r) => this.san.disk(`${h.name}/${r.name}`));
      for (const n of names) {
        if (disks.some((d) => d.holder === n)) this.#heldAt.set(`${h.name}|${n}`, now);
        const keys = disks.map((d) => String(d.keyOf(n) ?? 0n)).join(',');
        const k = `${h.name}|${n}`;
        if (this.#lastKeys.get(k) !== keys) {
          this.#lastKeys.set(k, keys);
          // A new key is a sign of life; a key removed (preempted, released) is not.
          if (!keys.split(',').includes('0')) this.#keyMovedAt.set(k, now);
        }
      }
      const runners = this.agents.runners(h.name, agentRs, names);
      if (runners.length < 2) {
        for (const n of names) this.#overlapFrom.delete(`${h.name}|${n}`);
        continue;
      }
      if (!h.fenced || disks.length === 0) {
        if (!this.#disturbed) this.#violate('I2', `${h.name} (not fenced) runs on ${runners.join(' and ')} with nothing disturbed`);
        continue;
      }
      const writers = runners.filter((n) => !this.#diskTrouble(n, now) && disks.some((d) => d.canWrite(n)));
      if (writers.length > 1) this.#violate('I1', `${h.name}: ${writers.join(' and ')} can both write its disk while its resources run there`);
      const holder = runners.find((n) => disks.some((d) => d.holder === n));
      for (const n of runners) {
        if (n === holder) continue;
        const key = `${h.name}|${n}`;
        const from = this.#overlapFrom.get(key) ?? now;
        this.#overlapFrom.set(key, from);
        const node = this.nodes.get(n)!;
        if (this.agents.stopFailed.has(`${n}/${h.name}`)) {
          this.overlaps['stop failed (FAILED copy, cannot write)'] = Math.max(this.overlaps['stop failed (FAILED copy, cannot write)'] ?? 0, now - from);
          continue;
        }
        const lostAt = this.#heldAt.get(key) ?? -Infinity;
        if (lostAt === -Infinity) {
          this.#violate('I2', `${h.name} runs on ${n} beside ${holder ?? '(no holder)'} and ${n} never held its disk`);
          continue;
        }
        // The liveness window's promise: a holder is preempted only after its key stood still on
        // the disk for the whole window (it was dead, stalled, cut off from the disk, or gave up).
        const frozenFor = lostAt - (this.#keyMovedAt.get(key) ?? -Infinity);
        if (frozenFor < OT.livenessWindowMs - 100) {
          this.#violate('I2', `${h.name} runs on ${n} and ${holder ?? '(no holder)'}: ${n} was preempted at ${Math.round(lostAt)} ms while its key had moved ${Math.round(frozenFor)} ms before (a live holder; the liveness window is ${OT.livenessWindowMs} ms)`);
          continue;
        }
        if (node.stalled) continue;
        const noticeFrom = Math.max(lostAt, node.resumedAt);
        const late = now - Math.max(from, noticeFrom);
        const kind = node.resumedAt >= lostAt ? 'stalled while preempted' : 'key frozen (disk unreachable, or gave up) while preempted';
        // Measured from when it could first notice (resumed, or the loss itself): what the bound limits.
        this.overlaps[kind] = Math.max(this.overlaps[kind] ?? 0, late);
        if (late > I2_BOUND_MS) this.#violate('I2', `${h.name} still runs on ${n} ${Math.round(late)} ms after it could notice its reservation was taken (bound ${I2_BOUND_MS} ms)`);
      }
    }
  }

  #sample(): void {
    const runners: Record<string, string[]> = {};
    const full: Record<string, boolean> = {};
    for (const h of this.o.cluster.hierarchies) {
      const agentRs = h.resources.filter((r) => r.kind === 'agent').map((r) => r.name);
      runners[h.name] = this.agents.runners(h.name, agentRs, this.o.cluster.nodes);
      const r = runners[h.name]![0];
      full[h.name] = runners[h.name]!.length === 1 && r !== undefined && agentRs.every((x) => this.agents.running(r, h.name, x));
    }
    this.#samples.push({ at: this.clock.now(), runners, full });
    // Settled early: every hierarchy that should run has run, fully, on the same node for a
    // whole settle window. The rest of the recovery bound would only repeat that.
    const now = this.clock.now();
    if (this.o.checkRecovery && now > this.o.quietAt) {
      const hs = this.o.cluster.hierarchies.filter((h) => !this.#excused(h.name));
      const key = hs.map((h) => `${h.name}:${runners[h.name]!.join(',')}:${full[h.name]}`).join(' ');
      const ok = hs.every((h) => full[h.name]);
      if (!ok || key !== this.#stableKey) this.#stableSince = now;
      this.#stableKey = key;
      if (ok && now - this.#stableSince >= SETTLE_WINDOW_MS) this.#settledAt = this.#stableSince;
    }
  }

  /** Recovery bound from the timers: start-up grace, dead time, liveness window, back-offs, agents. */
  recoveryBoundMs(): number {
    const c = this.o.cluster;
    const [, hi] = this.o.opMs ?? [20, 400];
    const depth = Math.max(...c.hierarchies.map((h) => h.resources.length));
    const restarts = Math.max(...c.hierarchies.flatMap((h) => h.resources.map((r) => r.restart.max)));
    return c.deadTimeMs * 3 + OT.livenessWindowMs + 2000 + DEFAULTS.raceDelayPerRankMs * c.nodes.length + c.probeMs + depth * hi * 2 + (restarts + 1) * (this.agents.brokenAfterMs + c.monitorMs + depth * hi * 2) + 2000;
  }

  #checkRecovery(): void {
    const { o } = this;
    const settleFrom = this.#settledAt ?? o.quietAt + this.recoveryBoundMs();
    const window = this.#samples.filter((s) => s.at >= settleFrom);
    if (window.length === 0) return;
    const atQuiet = this.#samples.filter((s) => s.at <= o.quietAt && s.at > o.quietAt - 2000);
    for (const h of o.cluster.hierarchies) {
      if (this.#excused(h.name)) continue;
      const first = window[0]!.runners[h.name]!.join(',');
      const bad = window.find((s) => !s.full[h.name] || s.runners[h.name]!.join(',') !== first);
      if (bad || first === '') {
        const s = bad ?? window[0]!;
        this.#violate('I3', `${h.name} not in service on exactly one node, steadily, after ${Math.round(settleFrom - o.quietAt)} ms of quiet: at ${s.at} ms it runs on [${s.runners[h.name]!.join(', ')}]${s.full[h.name] ? '' : ' (not every resource running)'}; from ${first || 'nowhere'} at the bound`);
        continue;
      }
      // Without fencing a stale copy can come back with a stalled node; the duplicate is then
      // resolved by priority (decide.ts twinOnBetterNode), which may move it: not checked.
      const deferred = this.#maintenanceEndedAt > o.quietAt - 5000;
      if (h.switchback === 'intelligent' && h.fenced && atQuiet.length > 0 && !this.#movePending.has(h.name) && !deferred) {
        const before = atQuiet.map((s) => (s.full[h.name] ? s.runners[h.name]!.join(',') : '')).filter((x, i, a) => a.indexOf(x) === i);
        const was = before.length === 1 ? before[0]! : '';
        const wasHealthy = was !== '' && this.#healthyAtQuiet(was, h.name);
        if (wasHealthy && first !== was) this.#violate('I5', `${h.name} (intelligent switchback) ran on ${was} when the faults stopped and moved to ${first}`);
      }
      if (h.switchback === 'automatic') {
        // As an admin's move and standby rank the nodes (the map every live node converged on).
        const admin = [...this.nodes.values()].find((n) => n.p)?.p?.state.admin ?? {};
        const ranked = effectiveHierarchy(h, admin).priorities;
        const best = Object.entries(ranked).sort((a, b) => a[1] - b[1]).map(([n]) => n).find((n) => this.#eligible(n, h.name));
        if (best && first !== best) this.#violate('I5', `${h.name} (automatic switchback) ends on ${first}, not on its best eligible node ${best}`);
      }
    }
  }

  /** Not expected to be in service: FAILED somewhere, held by an admin, or no node can run it. */
  #excused(h: string): boolean {
    for (const n of this.nodes.values()) {
      const rt = n.p?.state.h[h];
      if (rt?.phase === 'failed' || rt?.blocked || n.p?.state.adminStop.includes(h)) return true;
      // Held out of service, or unmanaged, by an admin (as this node has it).
      if (n.p && (isStopped(n.p.state.admin, h) || Object.keys(n.p.state.peers).concat(n.name).some((x) => unmanaged(n.p!.state.admin, h, x)))) return true;
      if (this.agents.stopFailed.has(`${n.name}/${h}`)) return true;
    }
    const hc = this.o.cluster.hierarchies.find((x) => x.name === h)!;
    return !Object.keys(hc.priorities).some((n) => this.#eligible(n, h));
  }

  #eligible(node: string, h: string): boolean {
    const n = this.nodes.get(node);
    if (!n?.p || n.p.state.shutdown) return false;
    if (this.agents.notInstalled.has(`${node}/${h}`)) return false;
    const hc = this.o.cluster.hierarchies.find((x) => x.name === h)!;
    if (hc.resources.some((r) => this.agents.isBroken(node, h, r.name))) return false;
    const rt = n.p.state.h[h];
    // Its own word: local recovery exhausted there (the failure window) counts too.
    return rt !== undefined && selfEligible(hc, node, rt, n.p.state);
  }

  #healthyAtQuiet(node: string, h: string): boolean {
    return this.#healthy.has(node) && this.#eligible(node, h);
  }

}

export { DEFAULTS };
