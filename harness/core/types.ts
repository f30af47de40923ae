// The node's life cycle as data: its state, the events that change it and the effects it asks
// for. The reducer (step.ts) is the only code that turns one into the other; the daemon
// (node.ts) and the simulator (sim/) only execute effects and feed their results back as events.
// Everything here is plain, JSON-serialisable data (a failing simulation dumps it as is).
import type { HierarchyConfig, NodeName } from '../../hierarchies/model.ts';
import type { AdvertState, HierarchyRuntime, PeerView, ResourceState } from '../decide.ts';
import type { AdminDoc } from './admin.ts';

export type ActionKind = 'probe' | 'unregister' | 'acquire' | 'start' | 'restart' | 'stop' | 'halt';

/** One hierarchy on this node: the decision core's runtime plus what the reducer keeps for it. */
export interface HierarchyState extends HierarchyRuntime {
  /** Times (ms) of failures (monitor failures, failed starts) still inside the restart window. */
  failures: number[];
  /** Why nothing is done, or what this node is for it (status, logs). */
  note: string;
  /** The disk cannot be owned here (verify failed at start): ineligible, with the reason. */
  diskProblem: string | null;
  /** The last utility check verdict (false = ineligible). */
  utilityPass: boolean;
  /** Key that took our ownership away, when it was lost. */
  fencedBy: string | null;
  /** Key we own the disks with (informational, advertised). */
  ownerKey: string | null;
  /** Key generation of our last acquire (advertised as the epoch). */
  epoch: number;
  /** The action in flight, with the phase to return to and what a start may leave running. */
  action: { id: number; kind: ActionKind; prevPhase: HierarchyRuntime['phase']; starting: string[]; stop?: { release: boolean; urgent: boolean } } | null;
  /** Recurring monitors are armed. */
  monitored: boolean;
  /** Version of the last admin `clear` applied here (see admin.ts clearVersion). */
  clearSeen: number;
  /** Unmanaged here (maintenance of H or of this node), as last applied. */
  unmanaged: boolean;
  /** Re-probed by a `clear`: a resource the probe cannot place (neither running nor stopped) fails it again. */
  clearCheck: boolean;
  /** Why the hierarchy is FAILED here when not because a stop failed (status, logs). */
  failedWhy: string | null;
}

export interface CoreSettings {
  maxParallelHierarchies: number;
  raceDelayPerRankMs: number;
}

export interface NodeState {
  self: NodeName;
  /** Time of the last event (ms, the executor's clock). */
  now: number;
  settings: CoreSettings;
  hierarchies: HierarchyConfig[];
  /** Validated definitions waiting for their hierarchy to be idle here (null = removed). */
  pending: Record<string, HierarchyConfig | null>;
  h: Record<string, HierarchyState>;
  peers: Record<NodeName, PeerView>;
  shutdown: false | 'switchover' | 'stop';
  /** Hierarchies held out of service by `harness stop --mode stop` (this node only, while it is away). */
  adminStop: string[];
  /** The cluster-wide admin map (admin.ts): replicated in heartbeats, persisted in stateDir. */
  admin: AdminDoc;
  nextActionId: number;
  /** The last advert, guard plan and watch list sent out, per hierarchy (effects only on change). */
  sent: SentState;
  /** The earliest time something time-driven falls due (a back-off ends, a failure leaves its window). */
  nextDeadline: number;
  /** Hierarchies whose action waits for a free slot (maxParallelHierarchies), in definition order. */
  deferred: string[];
  /** `leave` was emitted: the node is done and going away. */
  left: boolean;
  /** Time of the last step that decided every hierarchy (scope.ts: the tick's safety net). */
  fullAt: number;
}

export type AdvertOut = { state: AdvertState; eligible: boolean; epoch: number; ownerKey?: string };

export interface SentState {
  /** Anything advertised yet / any guard plan written yet (the first always goes out). */
  started: boolean;
  guarded: boolean;
  adverts: Record<string, AdvertOut>;
  blocked: Record<string, string>;
  leaving: boolean;
  guard: Record<string, GuardPlan>;
  /** Hierarchies watched, in definition order. */
  watch: string[];
}

/** The typed outcome of an action, as its `done` event carries it. */
export type ActionResult =
  /** cannotRun: OCF 5 on this node; fatal: OCF 6 (the configuration is wrong everywhere). */
  | { kind: 'probe'; resources: Record<string, ResourceState>; cannotRun: string | null; fatal?: string | null }
  /** error: some disk could not be reached (a registration of ours may remain there). */
  | { kind: 'unregister'; error?: string }
  | { kind: 'acquire'; ok: true; key: string; generation: number; preempted?: string }
  | { kind: 'acquire'; ok: false; reason: 'held-by-reachable' | 'owner-alive-on-disk' | 'lost-race' | 'error'; detail: string }
  | { kind: 'start'; resources: Record<string, ResourceState>; failed?: string; reason?: string; fatal?: boolean; hard?: boolean }
  | { kind: 'restart'; resources: Record<string, ResourceState>; stopFailed?: string; failed?: string; reason?: string; fatal?: boolean; hard?: boolean }
  /** releaseError: everything stopped, but giving the disks back failed (the key is left to freeze). */
  | { kind: 'stop'; resources: Record<string, ResourceState>; failed?: string; reason?: string; releaseError?: string }
  | { kind: 'halt' }
  /** The executor itself failed (a bug or an unexpected exception): evidence in `detail`. */
  | { kind: 'error'; detail: string };

/** An admin's request, as the control socket hands it over (see admin-requests.ts). */
export type AdminRequest =
  | { target: 'hierarchy'; hierarchy: string; action: 'stop' | 'start' | 'maintenance-on' | 'maintenance-off' | 'clear' | 'move'; to?: NodeName | null }
  | { target: 'node'; node: NodeName; action: 'standby' | 'online' | 'maintenance-on' | 'maintenance-off' };

/** The request with who asked and when (wall clock, for status only); `id` pairs it with its answer. */
export interface AdminAsk {
  id: number;
  by: string;
  at: number;
  request: AdminRequest;
}

export type Event = { now: number } & (
  | { type: 'tick' }
  | { type: 'peers'; peers: Record<NodeName, PeerView> }
  | { type: 'done'; id: number; hierarchy: string; result: ActionResult }
  /** fatal: OCF 6 (blocked everywhere); hard: OCF 2-5 (this node cannot run it). */
  | { type: 'monitor-failed'; hierarchy: string; resource: string; reason: string; fatal?: boolean; hard?: boolean }
  /** The keeper's verdict on ownership we hold (lost: someone took it, or it cannot be proven). */
  | { type: 'ownership'; hierarchy: string; state: 'owned' | 'unverified' | 'lost'; by?: string | null; detail?: string }
  | { type: 'disk-unusable'; hierarchy: string; detail: string }
  | { type: 'utility'; hierarchy: string; ok: boolean }
  /** The suspect holder we watched on disk let go (its guard stopped and released). */
  | { type: 'holder-released'; hierarchy: string }
  | { type: 'admin'; ask: AdminAsk }
  /** A reload: the hierarchy definitions, and the settings in effect (maxParallelHierarchies is live). */
  | { type: 'config'; hierarchies: HierarchyConfig[]; settings?: CoreSettings }
  | { type: 'shutdown'; mode: 'switchover' | 'stop' }
);

/** An event as an executor hands it over: the reducer's caller stamps `now`. */
export type EventIn = Event extends infer E ? (E extends { now: number } ? Omit<E, 'now'> : never) : never;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** What the guard must be able to stop, per hierarchy (the executor renders the script). */
export interface GuardPlan {
  name: string;
  /** Agent resources that run or may run here (a start in flight counts from its launch). */
  resources: string[];
  /** We hold (or believe we hold) its disks: the guard keeps them and releases them after stopping. */
  owned: boolean;
  /** Release the disks after the stop: false while a start is in flight. */
  release: boolean;
}

export type Effect =
  | { kind: 'probe'; id: number; hierarchy: string; resources: string[]; reason: string }
  | { kind: 'unregister'; id: number; hierarchy: string; reason: string }
  | { kind: 'acquire'; id: number; hierarchy: string; delayMs: number; reason: string }
  | { kind: 'start'; id: number; hierarchy: string; levels: string[][]; reason: string }
  | { kind: 'restart'; id: number; hierarchy: string; resource: string; stop: string[][]; start: string[][]; reason: string }
  | { kind: 'stop'; id: number; hierarchy: string; levels: string[][]; release: boolean; urgent: boolean; reason: string }
  | { kind: 'halt'; id: number; hierarchy: string; reason: string }
  /** blocked: hierarchies blocked here (OCF rc 6) with the reason, for every node's status. */
  | { kind: 'advertise'; adverts: Record<string, AdvertOut>; leaving: boolean; blocked: Record<string, string> }
  | { kind: 'guard'; plan: GuardPlan[] }
  | { kind: 'monitor'; hierarchy: string; on: boolean }
  /** Sample these hierarchies' holder keys on disk (the suspect runner's liveness, see race.ts). */
  | { kind: 'watch'; hierarchies: string[] }
  /** Wake the reducer at this time (a back-off ends). */
  | { kind: 'timer'; at: number }
  /** H came into service here (the executor records the failover's timing). */
  | { kind: 'in-service'; hierarchy: string }
  /** The set of hierarchies in effect changed (a reload took effect). */
  | { kind: 'hierarchies'; list: HierarchyConfig[] }
  /** Shutdown complete: advertise leaving for a few heartbeats, then exit. */
  | { kind: 'leave' }
  /** The admin map changed (a request here, or learned from a peer): persist it, advertise it. */
  | { kind: 'admin-state'; doc: AdminDoc }
  /** The answer to an admin request: accepted (what was written) or refused (why). */
  | { kind: 'admin-answer'; askId: number; ok: boolean; message: string; version: number; to?: NodeName }
  | { kind: 'log'; level: LogLevel; event: string; msg: string; fields?: Record<string, unknown> };

export type ActionEffect = Extract<Effect, { id: number }>;

export function isAction(e: Effect): e is ActionEffect {
  return 'id' in e;
}
