// An admin's request, checked against what this node knows and written into the admin map
// (admin.ts). Pure: the reducer calls it for an `admin` event; the answer goes back to the
// control socket as an `admin-answer` effect. A refused request changes nothing.
//
// A new request is a case here, a rule in decide.ts that reads the setting, and its command in
// bin/harness.ts (with the socket schema in control.ts). The executor does not change.
import type { HierarchyConfig, NodeName } from '../../hierarchies/model.ts';
import { byPriority, type PeerView } from '../decide.ts';
import { clearVersion, hierarchyInMaintenance, hierarchyKey, isStandby, isStopped, moveTarget, nodeInMaintenance, nodeKeyOf, writeAdmin, type AdminDoc } from './admin.ts';
import type { AdminAsk, NodeState } from './types.ts';

/** `to`: where a move goes (the request may leave it to the cluster to choose). */
export type AdminOutcome = { ok: true; doc: AdminDoc; message: string; to?: NodeName } | { ok: false; message: string };

/** Where H is in service (or on its way), as this node sees it. */
export function runnersOf(s: Pick<NodeState, 'self' | 'h' | 'peers'>, h: string): NodeName[] {
  const out: NodeName[] = [];
  const rt = s.h[h];
  if (rt && (rt.phase === 'in-service' || rt.phase === 'restarting' || rt.phase === 'starting' || rt.phase === 'acquiring')) out.push(s.self);
  for (const [n, v] of Object.entries(s.peers) as Array<[NodeName, PeerView]>) {
    const st = v.hierarchies[h]?.state;
    if (v.state === 'up' && (st === 'in-service' || st === 'starting')) out.push(n);
  }
  return out;
}

function failedOn(s: NodeState, h: string): NodeName[] {
  const out: NodeName[] = [];
  if (s.h[h]?.phase === 'failed') out.push(s.self);
  for (const [n, v] of Object.entries(s.peers) as Array<[NodeName, PeerView]>) if (v.hierarchies[h]?.state === 'failed' || v.hierarchies[h]?.state === 'blocked') out.push(n);
  return out;
}

/** Why node n cannot take H now, or null. */
function cannotTake(s: NodeState, h: HierarchyConfig, n: NodeName): string | null {
  if (h.priorities[n] === undefined) return `${n} is not in ${h.name}'s priority list (${byPriority(h).join(', ')})`;
  if (isStandby(s.admin, n)) return `${n} is in standby`;
  if (nodeInMaintenance(s.admin, n)) return `${n} is in maintenance`;
  if (n === s.self) {
    const rt = s.h[h.name];
    if (s.shutdown) return `${n} is shutting down`;
    if (rt && (rt.blocked !== null || rt.cannotRun !== null || rt.diskError !== null || rt.diskProblem !== null || !rt.utilityPass)) return `${n} is not eligible for ${h.name} (${rt.blocked ?? rt.cannotRun ?? rt.diskError ?? rt.diskProblem ?? 'utility check failed'})`;
    return null;
  }
  const v = s.peers[n];
  if (!v || v.state !== 'up') return `${n} is ${v?.state ?? 'unknown'} (not reachable from ${s.self})`;
  if (v.leaving) return `${n} is shutting down`;
  const ph = v.hierarchies[h.name];
  if (!ph) return `${n} has not loaded ${h.name}`;
  if (!ph.eligible && ph.state !== 'in-service') return `${n} says it is not eligible for ${h.name} (see its status)`;
  return null;
}

function hierarchyRequest(s: NodeState, ask: AdminAsk & { request: { target: 'hierarchy' } }): AdminOutcome {
  const r = ask.request;
  const h = s.hierarchies.find((x) => x.name === r.hierarchy);
  if (!h) return { ok: false, message: `no hierarchy ${JSON.stringify(r.hierarchy)} (known: ${s.hierarchies.map((x) => x.name).join(', ') || 'none'})` };
  const who = { node: s.self, by: ask.by, at: ask.at };
  const maint = hierarchyInMaintenance(s.admin, h.name);
  switch (r.action) {
    case 'stop':
      if (maint) return { ok: false, message: `${h.name} is in maintenance: turn maintenance off first (a stop would not be carried out while it is unmanaged)` };
      return { ok: true, doc: writeAdmin(s.admin, hierarchyKey(h.name, 'stop'), true, who), message: `${h.name}: out of service cluster-wide` };
    case 'start':
      return { ok: true, doc: writeAdmin(s.admin, hierarchyKey(h.name, 'stop'), null, who), message: `${h.name}: back in service (managed as usual)` };
    case 'maintenance-on':
      return { ok: true, doc: writeAdmin(s.admin, hierarchyKey(h.name, 'maintenance'), true, who), message: `${h.name}: maintenance on (unmanaged everywhere)` };
    case 'maintenance-off':
      return { ok: true, doc: writeAdmin(s.admin, hierarchyKey(h.name, 'maintenance'), null, who), message: `${h.name}: maintenance off (every node re-probes it, then manages it)` };
    case 'clear': {
      if (maint) return { ok: false, message: `${h.name} is in maintenance: turn maintenance off first` };
      let doc = writeAdmin(s.admin, hierarchyKey(h.name, 'clear'), true, who);
      if (moveTarget(doc, h.name) !== null) doc = writeAdmin(doc, hierarchyKey(h.name, 'move'), null, who);
      return { ok: true, doc, message: `${h.name}: clear (v${clearVersion(doc, h.name)}): every node forgets its failures and re-probes it` };
    }
    case 'move': {
      if (maint) return { ok: false, message: `${h.name} is in maintenance: a move is not carried out while it is unmanaged` };
      if (isStopped(s.admin, h.name)) return { ok: false, message: `${h.name} is out of service (hierarchy stop): \`hierarchy ${h.name} start\` first` };
      const failed = failedOn(s, h.name);
      if (failed.length > 0) return { ok: false, message: `${h.name} is FAILED or BLOCKED on ${failed.join(', ')}: fix the cause and \`hierarchy ${h.name} clear\` first` };
      const runners = runnersOf(s, h.name);
      for (const n of runners) if (nodeInMaintenance(s.admin, n)) return { ok: false, message: `${h.name} runs on ${n}, which is in maintenance: it cannot be moved off it` };
      let to = r.to ?? null;
      if (to === null) {
        to = byPriority(h).find((n) => !runners.includes(n) && cannotTake(s, h, n) === null) ?? null;
        if (to === null) return { ok: false, message: `${h.name}: no other node can take it now (${byPriority(h).filter((n) => !runners.includes(n)).map((n) => cannotTake(s, h, n) ?? n).join('; ') || 'no other node in its list'})` };
      } else {
        const why = cannotTake(s, h, to);
        if (why) return { ok: false, message: `${h.name} cannot move to ${to}: ${why}` };
      }
      // An automatic hierarchy moved to its first node needs no pin: switchback takes it there.
      const home = h.switchback === 'automatic' && byPriority(h).find((n) => !isStandby(s.admin, n)) === to;
      const doc = writeAdmin(s.admin, hierarchyKey(h.name, 'move'), home ? null : to, who);
      const already = runners.includes(to) ? ` (already in service there)` : '';
      return { ok: true, doc, to, message: `${h.name}: move to ${to}${already}${home ? '' : h.switchback === 'automatic' ? '; it stays there until `move` without a node or `clear`' : ''}` };
    }
  }
}

function nodeRequest(s: NodeState, ask: AdminAsk & { request: { target: 'node' } }): AdminOutcome {
  const r = ask.request;
  const known = [s.self, ...Object.keys(s.peers)];
  if (!known.includes(r.node)) return { ok: false, message: `no node ${JSON.stringify(r.node)} (nodes: ${known.join(', ')})` };
  const who = { node: s.self, by: ask.by, at: ask.at };
  switch (r.action) {
    case 'standby':
      if (nodeInMaintenance(s.admin, r.node)) return { ok: false, message: `${r.node} is in maintenance: its hierarchies cannot be moved off it; \`node ${r.node} maintenance off\` first` };
      return { ok: true, doc: writeAdmin(s.admin, nodeKeyOf(r.node, 'standby'), true, who), message: `${r.node}: standby (everything moves off it; it runs nothing until online)` };
    case 'online':
      return { ok: true, doc: writeAdmin(s.admin, nodeKeyOf(r.node, 'standby'), null, who), message: `${r.node}: online (eligible again)` };
    case 'maintenance-on':
      return { ok: true, doc: writeAdmin(s.admin, nodeKeyOf(r.node, 'maintenance'), true, who), message: `${r.node}: maintenance on (every hierarchy on it unmanaged)` };
    case 'maintenance-off':
      return { ok: true, doc: writeAdmin(s.admin, nodeKeyOf(r.node, 'maintenance'), null, who), message: `${r.node}: maintenance off (its hierarchies re-probed, then managed)` };
  }
}

export function adminRequest(s: NodeState, ask: AdminAsk): AdminOutcome {
  return ask.request.target === 'hierarchy' ? hierarchyRequest(s, ask as AdminAsk & { request: { target: 'hierarchy' } }) : nodeRequest(s, ask as AdminAsk & { request: { target: 'node' } });
}
