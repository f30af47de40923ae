// Per-node footprint of the harness on an idle cluster: resident memory of the daemon, its guard
// and its agent spawner, and their CPU over a window. "Agents" is the CPU of reaped children (recurring
// monitors), counted apart: it is what the configured monitors cost, not the daemon. Starting a
// monitor also costs the daemon (spawn, reading its output): a second window with the running
// hierarchies in maintenance (monitors off, everything else as before) measures the daemon apart
// from its monitors, the "daemon apart from agent monitors".
// In the same window, a bare Node process that only wakes up about as often as an idle daemon
// gives this machine's floor for that many wake-ups (it drifts by 2x within an hour on a virtual
// machine): the daemon's own work per wake-up is the rest.
import { spawn } from 'node:child_process';
import type { Bed } from './bed.ts';
import { daemonPids, guardPids, HARNESS_TS, spawnerPids } from './daemon.ts';
import { CLOCK_TICKS_PER_S, cpuNs, cpuTicks, rssBytes, voluntarySwitches } from './procs.ts';
import { sleep } from './run.ts';

export interface Footprint {
  node: string;
  /** Hierarchies in service on this node during the window. */
  running: string[];
  peers: number;
  rssMiB: number;
  /** Daemon + guard + agent spawner CPU, percent of one core. */
  cpuPercent: number;
  /** CPU of reaped children (agent monitors) over the same window, percent of one core. */
  agentCpuPercent: number;
  windowS: number;
  /** Measured with the hierarchies in maintenance: no monitors (the daemon apart from them). */
  monitorsPaused?: boolean;
  /** Voluntary context switches of the daemon's main thread per second: its wake-ups. */
  wakeupsPerS?: number;
  /** Not a node: a bare Node process waking up `wakeupsPerS` times a second (the floor, same window). */
  bareNode?: boolean;
}

/** Bare-Node wake-ups per second for the floor row: about what an idle daemon does (150 ms heartbeats to 2 peers). */
const BARE_WAKEUPS_PER_S = 20;

/** The footprint, then again with every running hierarchy in maintenance (monitors paused). */
export async function measureFootprint(bed: Bed, windowS: number, running: Map<string, string>): Promise<Footprint[]> {
  const normal = await measureWindow(bed, windowS, running);
  const owners = [...new Set(running.values())];
  const node = bed.cluster.nodes.find((n) => n.name === owners[0]);
  if (!node || owners.length === 0) return normal;
  const admin = (h: string, onOff: 'on' | 'off') =>
    bed.cluster.exec(node, [process.execPath, HARNESS_TS, 'hierarchy', h, 'maintenance', onOff, '--config', bed.clusterFile, '--node', node.name], { timeoutMs: 30_000 });
  const hs = [...running.keys()];
  try {
    for (const h of hs) await admin(h, 'on');
    await sleep(3000); // the CLI's own start-up, and the requests' echo on every node, pass first
    const paused = await measureWindow(bed, windowS, running);
    return [...normal, ...paused.filter((f) => f.running.length > 0 && !f.bareNode).map((f) => ({ ...f, monitorsPaused: true }))];
  } finally {
    for (const h of hs) await admin(h, 'off');
    await sleep(3000);
  }
}

async function measureWindow(bed: Bed, windowS: number, running: Map<string, string>): Promise<Footprint[]> {
  const nodes = bed.cluster.nodes.filter((n) => bed.daemonsUp.has(n.name));
  const pidsOf = new Map(nodes.map((n) => [n.name, [...daemonPids(bed.cluster, n), ...guardPids(bed.cluster, n), ...spawnerPids(bed.cluster, n)]]));
  // self: exact on-CPU nanoseconds (schedstat); children: reaped agents, only known in ticks.
  const ticks = (pids: number[]): { selfNs: number; children: number } =>
    pids.reduce(
      (acc, p) => {
        const t = cpuTicks(p);
        const ns = cpuNs(p) ?? (t ? (t.self * 1e9) / CLOCK_TICKS_PER_S : 0);
        return t ? { selfNs: acc.selfNs + ns, children: acc.children + t.children } : acc;
      },
      { selfNs: 0, children: 0 },
    );
  // The daemon's main thread: daemonPids come first in pidsOf.
  const wakeups = (n: string) => {
    const pid = pidsOf.get(n)?.[0];
    return (pid === undefined ? null : voluntarySwitches(pid)) ?? 0;
  };
  const bare = spawn(process.execPath, ['-e', `setInterval(() => {}, ${Math.round(1000 / BARE_WAKEUPS_PER_S)})`], { stdio: 'ignore' });
  await sleep(1000); // its start-up is not part of the floor
  const bareBefore = bare.pid !== undefined ? cpuNs(bare.pid) : null;
  const before = new Map(nodes.map((n) => [n.name, ticks(pidsOf.get(n.name) ?? [])]));
  const wakeBefore = new Map(nodes.map((n) => [n.name, wakeups(n.name)]));
  const t0 = performance.now();
  await sleep(windowS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const bareAfter = bare.pid !== undefined ? cpuNs(bare.pid) : null;
  bare.kill('SIGKILL');
  const floor: Footprint[] =
    bareBefore !== null && bareAfter !== null
      ? [{ node: '-', running: [], peers: 0, rssMiB: 0, cpuPercent: ((bareAfter - bareBefore) / 1e9 / seconds) * 100, agentCpuPercent: 0, windowS: seconds, wakeupsPerS: BARE_WAKEUPS_PER_S, bareNode: true }]
      : [];
  const perNode = nodes.map((n) => {
    const pids = pidsOf.get(n.name) ?? [];
    const a = before.get(n.name) ?? { selfNs: 0, children: 0 };
    const b = ticks(pids);
    const rss = pids.reduce((s, p) => s + (rssBytes(p) ?? 0), 0);
    return {
      node: n.name,
      running: [...running].filter(([, on]) => on === n.name).map(([h]) => h),
      peers: nodes.length - 1,
      rssMiB: rss / 1024 / 1024,
      cpuPercent: ((b.selfNs - a.selfNs) / 1e9 / seconds) * 100,
      agentCpuPercent: ((b.children - a.children) / CLOCK_TICKS_PER_S / seconds) * 100,
      windowS: seconds,
      wakeupsPerS: (wakeups(n.name) - (wakeBefore.get(n.name) ?? 0)) / seconds,
    };
  });
  return [...perNode, ...floor];
}

