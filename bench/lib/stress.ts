// No false failover under load (issue 12 item 5): stress-ng on both cores and the disk, run in
// the owner node for S seconds, then in a standby for S seconds, on a settled cluster. Counts
// false failovers (a hierarchy brought into service on a node other than the one it ran on),
// suspect flaps (the nodes' own log lines: comm's `peer-suspect` ("suspect (silent on every path)"), `peer-down`,
// `path-down`, `freeze-detected`) and the longest heartbeat gap any node saw.
//
// The gap comes from the daemons' status (`nodes[].lastHeardMs`: when that daemon last took in a
// valid heartbeat from the peer, stamped by itself), polled every GAP_POLL_MS (see GapPoller).
// The logs only speak once a silence passes the suspect threshold (dead time / 3).
import { join } from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import type { Bed } from './bed.ts';
import { failoversAfter } from './breakdown.ts';
import type { TestNode } from './cluster.ts';
import { daemonPids, daemonStatus, logOffset, readEvents, type LogEvent } from './daemon.ts';
import { statFields } from '../../agents/procgroup.ts';
import { runSync, sleep } from './run.ts';
import { readdirSync, writeFileSync } from 'node:fs';

const GAP_POLL_MS = 50;
/** The bench raises its own priority to the daemons' while polling (root): a starved poller would merge gaps. */
const POLLER_NICE = -10;

export interface StressPhase {
  /** The stressed node and its role at the start. */
  node: string;
  role: 'owner' | 'standby';
  seconds: number;
  stressArgv: string[];
  /** stress-ng's exit status and the tail of its output (its metrics). */
  stressRc: number;
  stressTail: string;
  /** Hierarchies brought into service elsewhere: "web→n2". */
  falseFailovers: string[];
  /** Log lines of all nodes during the phase, by kind. */
  suspects: number;
  peerDowns: number;
  pathDowns: number;
  freezes: number;
  /** Longest main-loop freeze a daemon logged (freeze-detected gapMs), ms. */
  longestFreezeMs: number;
  /** Longest heartbeat gap (upper bound, see header) and who saw it ("n2 from n1"). */
  maxGapMs: number;
  maxGapWho: string;
  /** Longest silence a poll caught in progress (lower bound). */
  maxSilenceMs: number;
  /** Largest lastHeardMs step between polls further apart than a heartbeat interval (upper bound only). */
  maxLooseStepMs: number;
  polls: number;
  /** Where each hierarchy runs after the phase (settled). */
  after: Record<string, string>;
}

/**
 * Poll every running daemon's view of its peers. A step of lastHeardMs between two answers of
 * the same daemon less than one heartbeat interval apart is one gap between two receptions (to
 * the poll's resolution); a longer step may hide receptions between the polls, so it only gives an
 * upper bound, kept apart. The silence a poll catches in progress is a lower bound.
 */
class GapPoller {
  private stopped = false;
  private readonly last = new Map<string, { heard: number; at: number }>();
  maxGapMs = 0;
  maxGapWho = '-';
  maxLooseStepMs = 0;
  maxSilenceMs = 0;
  polls = 0;
  private readonly loop: Promise<void>;
  private readonly intervalMs: number;

  constructor(nodes: TestNode[], heartbeatIntervalMs: number) {
    this.intervalMs = heartbeatIntervalMs;
    this.loop = this.run(nodes);
  }

  private note(gap: number, who: string): void {
    if (gap > this.maxGapMs) {
      this.maxGapMs = Math.round(gap);
      this.maxGapWho = who;
    }
  }

  private async run(nodes: TestNode[]): Promise<void> {
    while (!this.stopped) {
      const docs = await Promise.all(nodes.map((n) => daemonStatus(n, 2000)));
      for (const [i, d] of docs.entries()) {
        if (!d) continue;
        this.polls++;
        for (const p of d.nodes) {
          if (p.self || p.lastHeardMs === null) continue;
          const key = `${nodes[i]?.name} from ${p.name}`;
          const prev = this.last.get(key);
          if (prev !== undefined) {
            const step = p.lastHeardMs - prev.heard;
            if (d.time - prev.at <= this.intervalMs) this.note(step, key);
            else this.maxLooseStepMs = Math.max(this.maxLooseStepMs, Math.round(step));
          }
          this.last.set(key, { heard: p.lastHeardMs, at: d.time });
          const silence = d.time - p.lastHeardMs;
          this.maxSilenceMs = Math.max(this.maxSilenceMs, Math.round(silence));
          this.note(silence, key);
        }
      }
      await sleep(GAP_POLL_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

const SUSPECT = /suspect \(silent on every path\)/;

function count(events: readonly LogEvent[], f: (e: LogEvent) => boolean): number {
  return events.filter(f).length;
}

/**
 * Scheduling of the daemons for a comparison run (applied from the host once the cluster settled):
 * 'shipped' leaves them as they start (nice boost, DEFAULTS.daemonPriorityBoost); 'no-boost' puts
 * every thread of every process of the nodes that runs below nice 0 back to 0, and the daemons'
 * session autogroups too (what a daemon without root or CAP_SYS_NICE gets); 'rr' adds SCHED_RR 10
 * to every thread of each daemon, with reset-on-fork so that what it spawns from then on starts
 * SCHED_OTHER (chrt -R).
 */
export const STRESS_SCHED = ['shipped', 'no-boost', 'rr'] as const;
export type StressSched = (typeof STRESS_SCHED)[number];

export function applySched(bed: Bed, mode: StressSched): string[] {
  const notes: string[] = [];
  for (const n of bed.cluster.nodes) {
    if (n.initPid === null) continue;
    if (mode === 'no-boost') {
      let threads = 0;
      for (const p of bed.cluster.processes(n)) {
        let tids: string[] = [];
        try {
          tids = readdirSync(`/proc/${p.pid}/task`);
        } catch {
          continue;
        }
        for (const tid of tids) {
          try {
            const nice = Number(statFields(`${p.pid}/task/${tid}`)?.[16]);
            if (nice < 0) {
              setPriority(Number(tid), 0);
              threads++;
            }
          } catch {
            /* exited */
          }
        }
      }
      // And its session's autogroup (harness/thread-priority.ts): where the kernel shares CPU
      // between sessions first, that is the boost that ranks the daemon above its agents.
      const groups = daemonPids(bed.cluster, n).filter((pid) => {
        try {
          writeFileSync(`/proc/${pid}/autogroup`, '0');
          return true;
        } catch {
          return false;
        }
      }).length;
      notes.push(`${n.name}: ${threads} threads reniced to 0, ${groups} autogroup(s) to 0`);
    } else if (mode === 'rr') {
      for (const pid of daemonPids(bed.cluster, n)) {
        runSync(['chrt', '-r', '-R', '-a', '-p', '10', String(pid)]);
        notes.push(`${n.name}: ${runSync(['chrt', '-p', String(pid)]).stdout.trim().split('\n').join('; ')}`);
      }
    }
  }
  return notes;
}

/** stress-ng on both cores and the disk, inside `node` (its temp files on the host's disk). */
export function stressArgv(node: TestNode, seconds: number): string[] {
  return ['stress-ng', '--cpu', '2', '--hdd', '1', '--hdd-bytes', '512M', '--temp-path', join(node.dir, 'stress'), '--timeout', `${seconds}s`, '--metrics-brief'];
}

export async function runStressPhase(bed: Bed, role: 'owner' | 'standby', seconds: number): Promise<StressPhase> {
  const { cluster } = bed;
  const owners = await bed.settle(60_000);
  const hier0 = bed.hierarchies[0] as string;
  const owner = cluster.node(owners.get(hier0) ?? '');
  const target = role === 'owner' ? owner : (cluster.nodes.find((n) => n !== owner) as TestNode);
  const offsets = new Map(cluster.nodes.map((n) => [n.name, logOffset(n)]));
  const argv = stressArgv(target, seconds);
  mkdirSync(join(target.dir, 'stress'), { recursive: true });
  const base = getPriority();
  try {
    setPriority(Math.min(base, POLLER_NICE));
  } catch {
    // not root: the poller may then merge gaps (see maxLooseStepMs)
  }
  const poller = new GapPoller(cluster.nodes.filter((n) => n.initPid !== null), bed.profile.heartbeatIntervalMs);
  const t0 = Date.now();
  const res = await cluster.exec(target, argv, { timeoutMs: (seconds + 120) * 1000, allowFail: true });
  await sleep(3000); // anything the load set off shows up within a dead time or two
  await poller.stop();
  try {
    setPriority(base);
  } catch {
    // lowering it back cannot fail for root; ignore otherwise
  }
  rmSync(join(target.dir, 'stress'), { recursive: true, force: true });
  const events = cluster.nodes.flatMap((n) => readEvents(n, offsets.get(n.name) ?? 0)).filter((e) => e.time >= t0);
  const moved = [...owners].flatMap(([h, on]) => failoversAfter(events, t0, on).filter((f) => f.hierarchy === h).map((f) => `${h}→${f.node}`));
  const after = await bed.settle(60_000).catch(() => new Map<string, string>());
  for (const [h, on] of owners) if (after.get(h) !== on && !moved.some((m) => m.startsWith(`${h}→`))) moved.push(`${h}→${after.get(h) ?? '?'}`);
  const freezes = events.filter((e) => e.event === 'freeze-detected');
  return {
    node: target.name,
    role,
    seconds,
    stressArgv: argv,
    stressRc: res.code,
    stressTail: `${res.stdout}${res.stderr}`.trim().split('\n').slice(-6).join('\n'),
    falseFailovers: moved,
    suspects: count(events, (e) => e.event === 'peer-suspect' || (typeof e.msg === 'string' && SUSPECT.test(e.msg))),
    peerDowns: count(events, (e) => e.event === 'peer-down'),
    pathDowns: count(events, (e) => e.event === 'path-down'),
    freezes: freezes.length,
    longestFreezeMs: Math.max(0, ...freezes.map((e) => (typeof e.gapMs === 'number' ? e.gapMs : 0))),
    maxGapMs: poller.maxGapMs,
    maxGapWho: poller.maxGapWho,
    maxSilenceMs: poller.maxSilenceMs,
    maxLooseStepMs: poller.maxLooseStepMs,
    polls: poller.polls,
    after: Object.fromEntries(after),
  };
}

/** Table and last line of the stress scenario. */
export function stressReport(phases: readonly StressPhase[], profile: string): string[] {
  const header = ['stressed node (role)', 's', 'false failovers', 'suspect', 'peer-down', 'path-down', 'freeze-detected (longest ms)', 'longest heartbeat gap, ms (who)', 'longest silence caught, ms', 'loose step, ms', 'stress-ng rc'];
  const rows = phases.map((p) => [
    `${p.node} (${p.role})`,
    String(p.seconds),
    p.falseFailovers.length ? `${p.falseFailovers.length}: ${p.falseFailovers.join(', ')}` : '0',
    String(p.suspects),
    String(p.peerDowns),
    String(p.pathDowns),
    `${p.freezes} (${p.longestFreezeMs})`,
    `${p.maxGapMs} (${p.maxGapWho})`,
    String(p.maxSilenceMs),
    String(p.maxLooseStepMs),
    String(p.stressRc),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const ff = phases.reduce((s, p) => s + p.falseFailovers.length, 0);
  const flaps = phases.reduce((s, p) => s + p.suspects + p.peerDowns, 0);
  const gap = Math.max(0, ...phases.map((p) => p.maxGapMs));
  return [
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    `bench stress [${profile}]: false failovers ${ff}, suspect flaps ${flaps}, longest heartbeat gap ${gap} ms, ${phases.length} phases x ${phases[0]?.seconds ?? 0} s`,
  ];
}
