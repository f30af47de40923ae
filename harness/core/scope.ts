// Which hierarchies an event can change the decisions of. The reducer decides only those, so a
// step costs what the event touches, not the whole cluster: at 1000 hierarchies a peer's advert
// change is a handful of hierarchies, not a thousand decisions, adverts and guard entries.
//
// A hierarchy's decision depends on its own runtime, on the peers' entries for it, and on
// node-wide inputs (peer liveness, the admin map, shutdown, settings, time). An event that moves
// a node-wide input is 'all'; so is a periodic tick once every DEFAULTS.fullDecideMs, so a missed
// dependency would delay a decision by at most that (tested: a scoped step equals the full one,
// over simulated schedules).
import type { PeerView } from '../decide.ts';
import { DEFAULTS } from '../defaults.ts';
import type { Event, NodeState } from './types.ts';

export type Scope = 'all' | Set<string>;

export function scopeOf(prev: NodeState, ev: Event): Scope {
  // Something time-driven falls due (a back-off ends, a failure leaves the window), nothing was
  // advertised yet, or a changed definition waits to take effect: decide all.
  if (ev.now >= prev.nextDeadline || !prev.sent.started) return 'all';
  for (const _ in prev.pending) return 'all';
  switch (ev.type) {
    case 'peers':
      return peersScope(prev, ev.peers);
    case 'done':
      // A slot frees: the first hierarchies that waited for one may go now. Only as many as
      // there are free slots can (they come first, in definition order, as when deciding all).
      return new Set([ev.hierarchy, ...prev.deferred.slice(0, freeSlots(prev))]);
    case 'monitor-failed':
    case 'ownership':
    case 'disk-unusable':
    case 'utility':
    case 'holder-released':
      return new Set([ev.hierarchy]);
    case 'tick':
      return ev.now - prev.fullAt >= DEFAULTS.fullDecideMs ? 'all' : new Set();
    case 'admin':
    case 'config':
    case 'shutdown':
      return 'all';
  }
}

/**
 * The hierarchies whose entry changed in some peer's advert. A peer's liveness (up, down,
 * suspect, leaving) or blocked list moving concerns the hierarchies that list it, and those it
 * says anything but out-of-service about (it may run, hold or block them); its admin map or
 * configuration moving, or a peer coming or going, concerns all.
 */
function peersScope(s: NodeState, next: Record<string, PeerView>): Scope {
  const prev = s.peers;
  const names = Object.keys(next);
  if (names.length !== Object.keys(prev).length) return 'all';
  const out = new Set<string>();
  for (const node of names) {
    const a = prev[node];
    const b = next[node]!;
    if (a === b) continue;
    if (!a || a.admin !== b.admin || a.config !== b.config) return 'all';
    if (a.state !== b.state || a.leaving !== b.leaving || a.suspect !== b.suspect || !sameBlocked(a.blocked, b.blocked)) {
      for (const h of s.hierarchies) if (h.priorities[node] !== undefined) out.add(h.name);
      for (const v of [a, b]) {
        for (const [h, x] of Object.entries(v.hierarchies)) if (x.state !== 'out-of-service') out.add(h);
        for (const h of Object.keys(v.blocked ?? {})) out.add(h);
      }
    }
    if (a.hierarchies === b.hierarchies) continue;
    for (const [h, x] of Object.entries(b.hierarchies)) {
      const y = a.hierarchies[h];
      if (!y || y.state !== x.state || y.eligible !== x.eligible) out.add(h);
    }
    for (const h of Object.keys(a.hierarchies)) if (!(h in b.hierarchies)) out.add(h);
  }
  return out;
}

function sameBlocked(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  if (a === b) return true;
  return JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
}

/** Slots free once the finishing action's is given back. */
function freeSlots(s: NodeState): number {
  let busy = 0;
  for (const k in s.h) if (s.h[k]!.busy) busy++;
  return Math.max(0, s.settings.maxParallelHierarchies - busy + 1);
}
