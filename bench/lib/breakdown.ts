// Where the time of one failover went, from the nodes' own JSON logs (harness/log.ts): the
// taking node logs `peer-down` (detection), `acquired` (ownership race, durationMs) and
// `in-service` (agentMs = time inside agents, startMs, totalMs since the peer was last heard).
// Pure: takes the parsed events of every node.
import type { LogEvent } from './daemon.ts';
import { isReleasedKey, parseKey } from '../../fencing/keys.ts';

export interface Breakdown {
  /** Node that brought the hierarchy into service after t0 (null: nobody did). */
  taker: string | null;
  /** t0 → the taker logged the faulted node down (null: it never did, e.g. a switchover). */
  detectMs: number | null;
  /** The ownership race on the taker (acquired.durationMs). */
  ownershipMs: number | null;
  /** Time inside agents while starting the hierarchy (in-service.agentMs). */
  agentsMs: number | null;
  /** t0 → the taker logged the hierarchy in service: "runs elsewhere", from the logs alone. */
  runsElsewhereMs: number | null;
  /** Everything that is neither detection nor agents (the issue's definition: includes the race). */
  overheadMs: number | null;
  /** overheadMs without the ownership race: the harness's own bookkeeping. */
  overheadExclOwnershipMs: number | null;
  /** How the taker got the disks: a free disk, a handed-over (released) key, or a preempted live-format (frozen) one. */
  took: 'free' | 'released' | 'frozen' | null;
}

function tookFrom(acquired: LogEvent | undefined): Breakdown['took'] {
  if (!acquired) return null;
  if (typeof acquired.preempted !== 'string') return 'free';
  try {
    return isReleasedKey(parseKey(acquired.preempted)) ? 'released' : 'frozen';
  } catch {
    return null;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function breakdown(events: readonly LogEvent[], t0: number, faulted: string, hierarchy: string): Breakdown {
  const after = events.filter((e) => e.time >= t0).sort((a, b) => a.time - b.time);
  const inService = after.find((e) => e.event === 'in-service' && e.hierarchy === hierarchy && e.node !== faulted);
  if (!inService) {
    return { taker: null, detectMs: null, ownershipMs: null, agentsMs: null, runsElsewhereMs: null, overheadMs: null, overheadExclOwnershipMs: null, took: null };
  }
  const taker = inService.node;
  const mine = after.filter((e) => e.node === taker && e.time <= inService.time);
  const down = mine.find((e) => e.event === 'peer-down' && e.peer === faulted);
  const acquired = mine.filter((e) => e.event === 'acquired' && e.hierarchy === hierarchy).pop();
  const detectMs = down ? down.time - t0 : null;
  const ownershipMs = num(acquired?.durationMs) ?? num(inService.acquireMs);
  const agentsMs = num(inService.agentMs);
  const runsElsewhereMs = inService.time - t0;
  const overheadMs = agentsMs === null ? null : runsElsewhereMs - (detectMs ?? 0) - agentsMs;
  return {
    taker,
    detectMs,
    ownershipMs,
    agentsMs,
    runsElsewhereMs,
    overheadMs,
    overheadExclOwnershipMs: overheadMs === null ? null : overheadMs - (ownershipMs ?? 0),
    took: tookFrom(acquired),
  };
}

/** Hierarchies brought into service after t0 on a node other than `owner` (false failovers when none was due). */
export function failoversAfter(events: readonly LogEvent[], t0: number, owner: string): Array<{ node: string; hierarchy: string; time: number }> {
  return events
    .filter((e) => e.event === 'in-service' && e.time >= t0 && e.node !== owner && typeof e.hierarchy === 'string')
    .map((e) => ({ node: e.node, hierarchy: e.hierarchy as string, time: e.time }));
}

/** Latest in-service time per hierarchy after t0 (for "the last of 20 back"). */
export function lastInService(events: readonly LogEvent[], t0: number, hierarchies: readonly string[], exclude: string): number | null {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  let last = 0;
  for (const h of hierarchies) {
    const e = sorted.find((x) => x.event === 'in-service' && x.hierarchy === h && x.time >= t0 && x.node !== exclude);
    if (!e) return null;
    last = Math.max(last, e.time - t0);
  }
  return last;
}

/** Events worth a look when a run goes wrong (failed starts and stops, losses, errors). */
const NOTABLE = new Set(['start-failed', 'stop-failed', 'fenced', 'acquire-failed', 'monitor-failed', 'halt', 'action-error', 'start-refused']);

/** One line per notable event after t0 (at most `max`), ms relative to t0. */
export function notableEvents(events: readonly LogEvent[], t0: number, max = 10): string[] {
  return events
    .filter((e) => e.time >= t0 && typeof e.event === 'string' && NOTABLE.has(e.event))
    .sort((a, b) => a.time - b.time)
    .slice(0, max)
    .map((e) => {
      const what = [e.hierarchy, e.resource].filter((x) => typeof x === 'string').join('/');
      const why = typeof e.reason === 'string' ? e.reason : typeof e.msg === 'string' ? e.msg : '';
      return `+${e.time - t0}ms ${e.node} ${e.event}${what ? ` ${what}` : ''}${why ? `: ${why.slice(0, 160)}` : ''}`;
    });
}

/**
 * Many hierarchies taken over at once: t0 → the last of them won its ownership on a node other
 * than `exclude` (the moment its agents could start at the earliest), the slowest race
 * (acquired.durationMs), and which hierarchy came into service last.
 */
export function manyRaces(
  events: readonly LogEvent[],
  t0: number,
  hierarchies: readonly string[],
  exclude: string,
): { lastAcquiredMs: number | null; raceMaxMs: number | null; lastHierarchy: string | null } {
  const sorted = [...events].filter((e) => e.time >= t0 && e.node !== exclude).sort((a, b) => a.time - b.time);
  let lastAcquired = 0;
  let raceMax = 0;
  let last: { h: string; t: number } | null = null;
  for (const h of hierarchies) {
    const ins = sorted.find((x) => x.event === 'in-service' && x.hierarchy === h);
    if (!ins) return { lastAcquiredMs: null, raceMaxMs: null, lastHierarchy: null };
    const acq = sorted.filter((x) => x.event === 'acquired' && x.hierarchy === h && x.node === ins.node && x.time <= ins.time).pop();
    if (acq) {
      lastAcquired = Math.max(lastAcquired, acq.time - t0);
      raceMax = Math.max(raceMax, num(acq.durationMs) ?? 0);
    }
    if (!last || ins.time > last.t) last = { h, t: ins.time };
  }
  return { lastAcquiredMs: lastAcquired, raceMaxMs: raceMax, lastHierarchy: last?.h ?? null };
}

/** Median wall time per resource and action ("vip start") of the agent runs `node` logged after t0. */
export function agentActionMedians(events: readonly LogEvent[], t0: number, node: string): Record<string, number> {
  const by = new Map<string, number[]>();
  for (const e of events) {
    if (e.node !== node || e.time < t0 || typeof e.event !== 'string' || !e.event.startsWith('agent-') || typeof e.resource !== 'string') continue;
    const ms = num(e.durationMs);
    if (ms === null || e.intervalMs) continue; // recurring monitors are not part of a takeover
    const k = `${e.resource} ${e.event.slice('agent-'.length)}`;
    by.set(k, [...(by.get(k) ?? []), ms]);
  }
  return Object.fromEntries([...by].map(([k, xs]) => [k, Math.round(xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? 0)]));
}
