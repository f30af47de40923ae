// One fault, played out and measured: probes start, t0 is taken right before the fault, the
// run waits (bounded) for the service to come back or for the observation period to pass,
// then everything recorded is analysed and the faulted node is restored.
import {
  doubleAnswers,
  firstAnswer,
  httpDowntime,
  httpFailures,
  overlapMs,
  pingDowntime,
  type Gap,
} from './analyze.ts';
import type { Bed } from './bed.ts';
import { agentActionMedians, breakdown, failoversAfter, lastInService, manyRaces, notableEvents, type Breakdown } from './breakdown.ts';
import type { TestNode } from './cluster.ts';
import { DEFAULTS } from '../../harness/defaults.ts';
import { daemonPids, daemonStatus, guardTimes, logOffset, readEvents, stopDaemon, type LogEvent } from './daemon.ts';
import { AddressSampler, HttpProbe, PING_INTERVAL_MANY_S, PING_INTERVAL_QUIET_S, PING_INTERVAL_S, PingProbe, WatcherProbes } from './probes.ts';
import { CLOCK_TICKS_PER_S, cpuNs, cpuTicks, machineBusyMs, signal } from './procs.ts';
import { sleep } from './run.ts';

export const FAULTS = ['power-off', 'processes-killed', 'hang', 'path-cut', 'partition', 'graceful-stop'] as const;
export type FaultKind = (typeof FAULTS)[number];

/** Faults after which the service must run on another node. */
export const FAILOVER_FAULTS: readonly FaultKind[] = ['power-off', 'processes-killed', 'hang', 'partition', 'graceful-stop'];

/** A silence longer than this in a ~9 ms ping stream is an outage (5 probes lost). */
export const GAP_MS = 50;

export interface RunRecord {
  fault: FaultKind;
  profile: string;
  /** 'web' or 'many' (20 hierarchies). */
  bed: string;
  index: number;
  t0: number;
  /** Node the fault hit: it ran hierarchies[0] at t0. */
  owner: string;
  /** Node running hierarchies[0] at the end (from the logs), null if nobody took over. */
  taker: string | null;
  /** First node other than the owner whose watcher got an answer for the VIP after t0. */
  answeredBy: string | null;
  /** Client pinging the VIP: t0 → it answers again (s = 0 when it never stopped). */
  vipDowntimeMs: number | null;
  vipOutageMs: number;
  /** Every silence of the client's VIP pings, ms relative to t0. */
  vipGaps: Array<[number, number]>;
  /** Silences without any lost request: the prober was not scheduled (machine busy). */
  proberStalls: number;
  /** kind 'many': the last of the VIPs to answer again. */
  lastVipBackMs: number | null;
  /** kind 'many': the last hierarchy in service, from the logs. */
  lastInServiceMs: number | null;
  /** kind 'many': per hierarchy (config order), client downtime of its VIP and t0 → in service (logs). */
  perHierarchy?: Array<{ hierarchy: string; vipDowntimeMs: number | null; inServiceMs: number | null }>;
  /** kind 'many': t0 → the last ownership won (taker's log), the slowest race, the hierarchy in service last and its breakdown. */
  races?: { lastAcquiredMs: number | null; raceMaxMs: number | null; lastHierarchy: string | null; last: Breakdown | null; actionMs: Record<string, number> };
  httpDowntimeMs: number | null;
  /** Failed GETs after t0 (timeouts, refusals, non-2xx), outage or not. */
  httpFailures: number | null;
  logs: Breakdown;
  /** The VIP answered from two nodes (watchers): whole run, and after the takeover answered. */
  doubleVip: { samples: number; afterTakeover: number; window: Gap | null; nodes: string[] };
  /** The VIP configured on two nodes (even one that cannot be reached) after the takeover, ms. */
  configuredTwiceAfterTakeoverMs: number;
  /** t0 → the VIP was gone from the faulted node (null: it still had it at the end). */
  ownerReleasedMs: number | null;
  /** processes-killed: the old owner's guard, from the daemon's death to hierarchies[0] stopped and released (its log). */
  guardReleasedMs: number | null;
  /**
   * Where the CPU went from t0 until the bench saw every hierarchy in service elsewhere: the whole
   * machine (busy, any process), each surviving daemon itself (schedstat) and its reaped children
   * (agents, via nice; clock ticks), and this bench process (probes' parsing, status polls), ms.
   */
  cpu?: { windowMs: number; machineBusyMs: number; benchMs: number; daemons: Record<string, { selfMs: number; childrenMs: number }> };
  /** Hierarchies brought into service on another node after t0. */
  failovers: number;
  /** Failed starts/stops, ownership losses, errors the nodes logged after t0. */
  logNotes: string[];
  ok: boolean;
  notes: string[];
  error?: string;
}

export interface RunOptions {
  /** Longest wait for a takeover (default 20 s). */
  boundMs?: number;
  /** Time to keep watching once the service is back (default 1 s). */
  observeMs?: number;
}

/**
 * Wait until every hierarchy is in service on a node other than `owner` (by its own status). Polled
 * every TAKEOVER_POLL_MS: it only decides when the run moves on (every time measured comes from the
 * logs and probes), and each status answer costs the daemons CPU in the middle of the takeover.
 */
const TAKEOVER_POLL_MS = 200;
async function waitTakeover(bed: Bed, owner: TestNode, boundMs: number): Promise<number | null> {
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    const others = bed.cluster.nodes.filter((n) => n !== owner && bed.daemonsUp.has(n.name) && n.initPid !== null);
    const docs = await Promise.all(others.map((n) => daemonStatus(n, 500)));
    const inService = new Set<string>();
    for (const d of docs) for (const h of d?.hierarchies ?? []) if (h.phase === 'in-service') inService.add(h.name);
    if (bed.hierarchies.every((h) => inService.has(h))) return Date.now();
    await sleep(TAKEOVER_POLL_MS);
  }
  return null;
}

/** Wait until every probe has a reply newer than `after`. */
async function waitAnswering(probes: PingProbe[], after: number, boundMs: number): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    if (probes.every((p) => (p.latestReply() ?? 0) > after)) return true;
    await sleep(20);
  }
  return false;
}

async function waitUntil(cond: () => boolean, boundMs: number): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

interface CpuSample {
  at: number;
  machine: number;
  bench: number;
  daemons: Map<string, { pids: number[]; selfNs: number; childrenTicks: number }>;
}

function cpuSample(bed: Bed, owner: TestNode): CpuSample {
  const daemons = new Map<string, { pids: number[]; selfNs: number; childrenTicks: number }>();
  for (const n of bed.cluster.nodes) {
    if (n === owner || n.initPid === null) continue;
    const ps = daemonPids(bed.cluster, n);
    let selfNs = 0;
    let childrenTicks = 0;
    for (const p of ps) {
      selfNs += cpuNs(p) ?? 0;
      childrenTicks += cpuTicks(p)?.children ?? 0;
    }
    daemons.set(n.name, { pids: ps, selfNs, childrenTicks });
  }
  const u = process.cpuUsage();
  return { at: performance.now(), machine: machineBusyMs(), bench: (u.user + u.system) / 1000, daemons };
}

function cpuDelta(a: CpuSample, b: CpuSample): NonNullable<RunRecord['cpu']> {
  const daemons: Record<string, { selfMs: number; childrenMs: number }> = {};
  for (const [name, x] of a.daemons) {
    const y = b.daemons.get(name);
    if (!y) continue;
    daemons[name] = { selfMs: Math.round((y.selfNs - x.selfNs) / 1e6), childrenMs: Math.round(((y.childrenTicks - x.childrenTicks) * 1000) / CLOCK_TICKS_PER_S) };
  }
  return { windowMs: Math.round(b.at - a.at), machineBusyMs: Math.round(b.machine - a.machine), benchMs: Math.round(b.bench - a.bench), daemons };
}

export async function runFault(bed: Bed, fault: FaultKind, index: number, opts: RunOptions = {}): Promise<RunRecord> {
  const boundMs = opts.boundMs ?? 20_000;
  const observeMs = opts.observeMs ?? 1000;
  const { cluster } = bed;
  const notes: string[] = [];
  const owners = await bed.settle();
  const hier0 = bed.hierarchies[0] as string;
  const owner = cluster.node(owners.get(hier0) ?? '');
  const offsets = new Map(cluster.nodes.map((n) => [n.name, logOffset(n)]));

  const probeBoundS = Math.ceil((boundMs + 30_000) / 1000);
  // The many-hierarchy layout (1 or 20 VIPs alike, so the two compare) pings without busy-waiting,
  // its watchers too: three busy-waiting watchers took ~0.8 of this machine's 2 cores from the
  // agents of a takeover that is compared to a floor measured without them. Their replies ~16 ms
  // apart still form one answering interval (gaps up to 3 slots), so two nodes answering at once
  // is still seen.
  // Its VIP pingers every 50 ms, and its address sampler too (PING_INTERVAL_MANY_S says why).
  const manyLayout = bed.httpUrl === null;
  const pingEvery = manyLayout ? PING_INTERVAL_QUIET_S : PING_INTERVAL_S;
  const pings = bed.vips.map((v) => PingProbe.start(cluster, bed.client.netns, v, probeBoundS, manyLayout ? PING_INTERVAL_MANY_S : pingEvery));
  const http = bed.httpUrl ? HttpProbe.start(cluster, bed.client.netns, bed.httpUrl, probeBoundS) : null;
  const watch = new WatcherProbes(cluster, bed.watchers, bed.vips[0] as string, probeBoundS, pingEvery);
  const sampler = new AddressSampler(cluster, bed.vips[0] as string, manyLayout ? PING_INTERVAL_MANY_S * 1000 : 10);
  let stopping: Promise<unknown> | null = null;
  let cpuBefore: CpuSample | null = null;
  let cpu: RunRecord['cpu'];
  let error: string | undefined;
  let t0 = 0;
  try {
    if (!(await waitAnswering(pings, Date.now() - 1, 5000))) notes.push('VIP did not answer before the fault');
    if (http && !(await waitUntil(() => http.count() > 0, 15_000))) notes.push('HTTP probe did not start');
    await sleep(300);

    cpuBefore = cpuSample(bed, owner);
    t0 = Date.now();
    switch (fault) {
      case 'power-off':
        cluster.powerOff(owner);
        bed.markDown(owner);
        break;
      case 'processes-killed': {
        const pids = daemonPids(cluster, owner);
        if (pids.length === 0) notes.push(`no daemon process found on ${owner.name}`);
        for (const pid of pids) signal(pid, 'SIGKILL');
        bed.markDown(owner);
        break;
      }
      case 'hang':
        cluster.freeze(owner, true);
        break;
      case 'path-cut':
        cluster.setPath(owner, 1, false);
        break;
      case 'partition':
        cluster.partition(owner);
        break;
      case 'graceful-stop':
        stopping = stopDaemon(cluster, owner, bed.clusterFile, boundMs + 30_000).catch((e: unknown) => notes.push(`harness stop: ${(e as Error).message}`));
        bed.markDown(owner);
        break;
    }

    if (fault === 'path-cut') {
      // Long enough for the path to be declared lost and for any wrong reaction to show.
      await sleep(DEFAULTS.pathDeadTimeMs + 2000);
      cluster.setPath(owner, 1, true);
      await sleep(observeMs);
    } else {
      const tService = await waitTakeover(bed, owner, boundMs);
      if (tService !== null && cpuBefore) cpu = cpuDelta(cpuBefore, cpuSample(bed, owner));
      if (tService === null) notes.push(`no takeover within ${boundMs} ms`);
      else if (!(await waitAnswering(pings, tService, 5000))) notes.push('VIP not answering 5 s after the takeover');
      if (fault === 'hang') {
        cluster.freeze(owner, false);
        if (!(await waitUntil(() => !sampler.isConfigured(owner.name), 10_000))) notes.push(`${owner.name} kept the VIP 10 s after SIGCONT`);
      } else if (fault === 'partition') {
        // The isolated owner must give the service up on its own (utility check), then we heal.
        if (!(await waitUntil(() => !sampler.isConfigured(owner.name), 15_000))) notes.push(`isolated ${owner.name} kept the VIP`);
        cluster.heal(owner);
      }
      // However the old owner let go, the run is over when clients are answered again.
      const tQuiet = Date.now();
      if (!(await waitAnswering(pings, tQuiet, 15_000))) notes.push('VIP not answering 15 s after the fault played out');
      await sleep(observeMs);
    }
  } catch (e) {
    error = (e as Error).message;
  }
  const tEnd = Date.now();
  const [replies, httpSamples, perNode] = await Promise.all([Promise.all(pings.map((p) => p.stop())), http?.stop() ?? Promise.resolve(null), watch.stop()]);
  const configured = sampler.stop();

  const events: LogEvent[] = cluster.nodes.flatMap((n) => readEvents(n, offsets.get(n.name) ?? 0));
  const logs = breakdown(events, t0, owner.name, hier0);
  const failovers = failoversAfter(events, t0, owner.name);
  // Per-VIP times for the many-hierarchy layout, also when it holds a single hierarchy (baseline):
  // pinged every 50 ms, one lost reply must not count as an outage there.
  const gapMs = manyLayout ? Math.max(GAP_MS, 3 * PING_INTERVAL_MANY_S * 1000) : GAP_MS;
  const down = pingDowntime(replies[0] ?? [], t0, tEnd, gapMs);
  const manyDown = manyLayout ? replies.map((r) => pingDowntime(r, t0, tEnd, gapMs).downtimeMs) : [];
  const others = cluster.nodes.filter((n) => n !== owner).map((n) => n.name);
  const takeoverAnswer = firstAnswer(perNode, t0, others);
  const takeoverT = takeoverAnswer?.t ?? tEnd;
  const whole = doubleAnswers(perNode, t0 - 500, tEnd, 10);
  const after = doubleAnswers(perNode, takeoverT, tEnd, 10);
  const ownerIv = configured.get(owner.name) ?? [];
  const atT0 = ownerIv.find((g) => g.from <= t0 && g.to >= t0);
  const ownerReleasedMs = !atT0 ? 0 : atT0.to >= tEnd - 15 ? null : atT0.to - t0;

  const failoverExpected = FAILOVER_FAULTS.includes(fault);
  let ok = !error && (failoverExpected ? logs.taker !== null && down.downtimeMs !== null : failovers.length === 0);
  if (!failoverExpected && failovers.length > 0) notes.push(`FALSE FAILOVER: ${failovers.map((f) => `${f.hierarchy}→${f.node}`).join(', ')}`);
  if ((fault === 'partition' || fault === 'processes-killed') && after.samples > 0) notes.push(`double VIP after takeover: ${after.samples} samples`);
  if (manyLayout && manyDown.some((d) => d === null)) ok = false;

  // Put the faulted node back the way a real admin would: reboot it (or start the daemon again).
  try {
    if (fault === 'graceful-stop') {
      await stopping;
      bed.startDaemon(owner);
    } else if (fault !== 'path-cut') {
      await bed.rebootNode(owner);
    }
  } catch (e) {
    notes.push(`restoring ${owner.name}: ${(e as Error).message}`);
    ok = false;
  }

  return {
    fault,
    profile: bed.profile.name,
    // 'one': the 20-hierarchy layout with a single hierarchy, the like-for-like baseline of 'many'.
    bed: bed.httpUrl !== null ? 'web' : bed.vips.length > 1 ? 'many' : 'one',
    index,
    t0,
    owner: owner.name,
    taker: logs.taker,
    answeredBy: takeoverAnswer?.node ?? null,
    vipDowntimeMs: down.downtimeMs,
    vipOutageMs: down.outageMs,
    vipGaps: down.gaps.map((g) => [Math.round(g.from - t0), Math.round(g.to - t0)]),
    proberStalls: down.stalls,
    lastVipBackMs: manyDown.length === 0 ? null : manyDown.some((d) => d === null) ? null : Math.max(...(manyDown as number[])),
    lastInServiceMs: manyLayout ? lastInService(events, t0, bed.hierarchies, owner.name) : null,
    ...(bed.hierarchies.length > 1
      ? {
          races: (() => {
            const r = manyRaces(events, t0, bed.hierarchies, owner.name);
            return { ...r, last: r.lastHierarchy ? breakdown(events, t0, owner.name, r.lastHierarchy) : null, actionMs: logs.taker ? agentActionMedians(events, t0, logs.taker) : {} };
          })(),
          perHierarchy: bed.hierarchies.map((h, k) => ({
            hierarchy: h,
            vipDowntimeMs: manyDown[k] === undefined || manyDown[k] === null ? null : Math.round(manyDown[k]),
            inServiceMs: lastInService(events, t0, [h], owner.name),
          })),
        }
      : {}),
    httpDowntimeMs: httpSamples ? httpDowntime(httpSamples, t0) : null,
    httpFailures: httpSamples ? httpFailures(httpSamples, t0) : null,
    logs,
    doubleVip: { samples: whole.samples, afterTakeover: after.samples, window: whole.window, nodes: whole.nodes },
    configuredTwiceAfterTakeoverMs: Math.round(overlapMs(configured, takeoverT, tEnd)),
    ownerReleasedMs,
    guardReleasedMs: fault === 'processes-killed' ? guardTimes(owner, offsets.get(owner.name) ?? 0, hier0).releasedMs : null,
    ...(cpu ? { cpu } : {}),
    failovers: failovers.length,
    logNotes: notableEvents(events, t0),
    ok,
    notes,
    ...(error ? { error } : {}),
  };
}
