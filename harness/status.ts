// The status document served on the control socket (`harness status --json`): this node's view
// of the cluster — nodes and their paths, every hierarchy with where it runs, its ownership, its
// resources and the last failover with its timing. Plain JSON, stable field names.
import type { NodeDaemon } from './node.ts';
import { formatKey } from '../fencing/keys.ts';
import { entryOf, hierarchyKey, maxVersion, nodeKeyOf, type AdminDoc, type AdminEntry } from './core/admin.ts';
import { advertedState } from './decide.ts';

/** An admin setting in effect, with who set it and when (wall clock ms). */
export interface AdminSetting {
  value: true | string;
  by: string;
  at: number;
}

function setting(doc: AdminDoc, key: string): AdminSetting | undefined {
  const e: AdminEntry | undefined = entryOf(doc, key);
  return e && e.value !== null ? { value: e.value, by: e.by, at: e.at } : undefined;
}

export interface FailoverRecord {
  at: number;
  /** Peer whose loss led here (null: cold start, admin move, local decision). */
  from: string | null;
  detectMs: number | null;
  totalMs: number | null;
  acquireMs: number;
  startMs: number;
  agentMs: number;
}

export interface StatusDoc {
  node: string;
  cluster: string;
  time: number;
  uptimeMs: number;
  shuttingDown: false | string;
  ownershipBackend: string;
  ioFencing: boolean;
  key: string;
  nodes: Array<{
    name: string;
    self: boolean;
    state: string;
    suspect: boolean;
    paths: string[];
    addresses: string[];
    lastHeardMs: number | null;
    /** Admin settings of this node (standby, maintenance), as this node's admin map has them. */
    admin: { standby?: AdminSetting; maintenance?: AdminSetting };
    /** The newest admin entry that node has (a request reached it when this is at least its version). */
    adminVersion: number | null;
    /** Fingerprint of that node's configuration; null: not heard (or an earlier release). */
    config: string | null;
  }>;
  /** The newest version in this node's admin map. */
  adminVersion: number;
  hierarchies: Array<{
    name: string;
    fenced: boolean;
    phase: string;
    runningOn: string[];
    ownership: string;
    ownerKey: string | null;
    fencedBy: string | null;
    note: string;
    priorities: Record<string, number>;
    /** What each node says about it (this node included), as seen from here; down nodes' last word. */
    states: Record<string, { state: string; up: boolean }>;
    /** Admin settings in effect for it, with who and when. */
    admin: { stop?: AdminSetting; maintenance?: AdminSetting; move?: AdminSetting; clear?: AdminSetting };
    resources: Array<{ name: string; kind: string; agent: string | null; state: string; lastAction?: string; lastResult?: string; exitReason?: string }>;
    lastFailover: FailoverRecord | null;
  }>;
  counters: unknown;
  /** The daemon process itself: for footprint checks. */
  process: { pid: number; rssMiB: number; heapTotalMiB: number; heapUsedMiB: number; externalMiB: number };
}

/** Only the settings in effect (JSON without undefined keys, for readers that test with `in`). */
function strip<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function buildStatus(d: NodeDaemon): StatusDoc {
  const cfg = d.config;
  const admin = d.state.admin;
  const view = d.commView();
  const nodes = cfg.cluster.nodes.map((n) => {
    const p = view[n.name];
    return {
      name: n.name,
      self: n.name === d.node,
      state: n.name === d.node ? 'self' : p?.state ?? 'unknown',
      suspect: p?.suspect ?? false,
      paths: n.name === d.node ? n.addresses.map(() => 'self') : (p?.paths ?? []).map(String),
      addresses: n.addresses,
      lastHeardMs: p?.lastHeardMs ?? null,
      admin: strip({ standby: setting(admin, nodeKeyOf(n.name, 'standby')), maintenance: setting(admin, nodeKeyOf(n.name, 'maintenance')) }),
      adminVersion: n.name === d.node ? maxVersion(admin) : p?.meta ? maxVersion(p.meta.admin) : null,
      config: n.name === d.node ? d.fingerprint : p?.meta?.config ?? null,
    };
  });
  const hierarchies = d.state.hierarchies.map((h) => {
    const rt = d.state.h[h.name]!;
    const runningOn: string[] = [];
    if (rt.phase === 'in-service' || rt.phase === 'restarting') runningOn.push(d.node);
    for (const [peer, p] of Object.entries(view)) {
      if (p.state === 'up' && p.advert?.[h.name]?.state === 'in-service') runningOn.push(peer);
    }
    const own = d.ownershipOf(h.name);
    return {
      name: h.name,
      fenced: h.fenced,
      phase: rt.phase,
      runningOn,
      ownership: h.fenced ? own.state : 'not fenced',
      ownerKey: own.state === 'owned' || own.state === 'unverified' ? formatKey(own.key) : null,
      fencedBy: rt.fencedBy,
      note: rt.note,
      priorities: h.priorities,
      states: {
        [d.node]: { state: advertedState(h.name, rt, d.state), up: true },
        ...Object.fromEntries(Object.entries(view).flatMap(([peer, p]) => (p.advert?.[h.name] ? [[peer, { state: p.advert[h.name]!.state, up: p.state === 'up' }]] : []))),
      },
      admin: strip({ stop: setting(admin, hierarchyKey(h.name, 'stop')), maintenance: setting(admin, hierarchyKey(h.name, 'maintenance')), move: setting(admin, hierarchyKey(h.name, 'move')), clear: setting(admin, hierarchyKey(h.name, 'clear')) }),
      resources: h.resources.map((r) => {
        const info = d.resourceInfo(h.name, r.name);
        return {
          name: r.name,
          kind: r.kind,
          agent: r.kind === 'agent' ? `ocf:${r.provider}:${r.type}` : null,
          state: rt.resources[r.name] ?? 'unknown',
          ...(info ?? {}),
        };
      }),
      lastFailover: d.failovers.get(h.name) ?? null,
    };
  });
  return {
    node: d.node,
    cluster: cfg.cluster.cluster,
    time: Date.now(),
    uptimeMs: Date.now() - d.startedAt,
    shuttingDown: d.isShuttingDown(),
    ownershipBackend: d.backendName(),
    ioFencing: d.backendIoFencing(),
    key: d.myKey(),
    nodes,
    adminVersion: maxVersion(admin),
    hierarchies,
    counters: { ...d.commCounters(), decisions: d.decisionStats() },
    process: (() => {
      const m = process.memoryUsage();
      const mib = (v: number) => Math.round((v / 1048576) * 10) / 10;
      return { pid: process.pid, rssMiB: mib(m.rss), heapTotalMiB: mib(m.heapTotal), heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external) };
    })(),
  };
}
