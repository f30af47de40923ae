// Random schedules: a cluster (3 to 16 nodes, 1 to 3 hierarchies) and a timeline of faults, all
// drawn from one seed. The fault mix is biased toward the combinations that have broken HA
// clusters: a runner that stalls or loses its disk while partitioned, power-offs during a
// partition, stop failures before a shutdown, crashes in the middle of a start.
import type { HierarchyConfig, ResourceConfig } from '../hierarchies/model.ts';
import { DEFAULTS } from '../harness/defaults.ts';
import { Rng } from './rng.ts';
import type { Fault, TimedFault } from './faults.ts';
import type { WorldOptions } from './world.ts';

function resource(name: string, kind: 'agent' | 'disk', requires: string[], max: number): ResourceConfig {
  return {
    name,
    kind,
    ...(kind === 'agent' ? { provider: 'sim', type: name === 'ip' ? 'IPaddr2' : 'Dummy' } : {}),
    params: {},
    requires,
    timeouts: { startMs: 3000, stopMs: 3000 },
    monitors: kind === 'agent' ? [{ intervalMs: 1000, depth: 0 }] : [],
    restart: { max, windowMs: 600_000 },
    where: 'sim',
  };
}

/** A hierarchy app -> (ip, fs -> disk), or a smaller one. */
export function simHierarchy(name: string, priorities: Record<string, number>, opts: { fenced?: boolean; switchback?: 'intelligent' | 'automatic'; onLoss?: 'stop' | 'halt'; shape?: 'full' | 'small'; maxRestarts?: number; utility?: boolean; probe?: 'everywhere' | 'listed' } = {}): HierarchyConfig {
  const fenced = opts.fenced ?? true;
  const max = opts.maxRestarts ?? 2;
  const rs =
    opts.shape === 'small'
      ? [resource('app', 'agent', fenced ? ['disk'] : [], max), ...(fenced ? [resource('disk', 'disk', [], max)] : [])]
      : [resource('app', 'agent', ['ip', 'fs'], max), resource('ip', 'agent', [], max), resource('fs', 'agent', fenced ? ['disk'] : [], max), ...(fenced ? [resource('disk', 'disk', [], max)] : [])];
  return {
    file: `sim:${name}`,
    name,
    priorities,
    switchback: opts.switchback ?? 'intelligent',
    fenced,
    onLoss: opts.onLoss ?? 'stop',
    onStopFailure: 'block',
    probe: opts.probe ?? 'everywhere',
    resources: rs,
    utilityChecks: opts.utility ? [{ kind: 'ping', target: 'gateway' }] : [],
  };
}

export function randomSchedule(seed: number): WorldOptions {
  const rng = new Rng(seed);
  const count = rng.chance(0.7) ? rng.int(3, 5) : rng.int(6, 16);
  const nodes = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const hs: HierarchyConfig[] = [];
  const hierarchyCount = rng.int(1, 3);
  for (let i = 0; i < hierarchyCount; i++) {
    const listed = rng.shuffle([...nodes]).slice(0, Math.min(nodes.length, rng.int(2, 4)));
    const priorities = Object.fromEntries(listed.map((n, k) => [n, k + 1]));
    hs.push(
      simHierarchy(`h${i + 1}`, priorities, {
        fenced: !rng.chance(0.1),
        switchback: rng.chance(0.8) ? 'intelligent' : 'automatic',
        shape: rng.chance(0.5) ? 'full' : 'small',
        onLoss: rng.chance(0.1) ? 'halt' : 'stop',
        utility: rng.chance(0.5),
        probe: rng.chance(0.3) ? 'listed' : 'everywhere',
      }),
    );
  }
  const listedNodes = [...new Set(hs.flatMap((h) => Object.keys(h.priorities)))];
  const timeline: TimedFault[] = [];
  const quietAt = rng.int(8_000, 20_000);
  const faultCount = rng.int(1, 6);
  const at = () => rng.int(3_000, quietAt - 500);
  const runnerOf = (h: HierarchyConfig) => Object.entries(h.priorities).sort((a, b) => a[1] - b[1])[0]![0];
  const push = (t: number, fault: Fault) => timeline.push({ at: t, fault });
  const others = (n: string) => nodes.filter((x) => x !== n);
  const broken: string[] = [];
  const notInstalled: string[] = [];
  if (rng.chance(0.08)) {
    const h = rng.pick(hs);
    broken.push(`${rng.pick(Object.keys(h.priorities))}/${h.name}/app`);
  }
  if (rng.chance(0.05)) {
    const h = rng.pick(hs);
    notInstalled.push(`${rng.pick(Object.keys(h.priorities))}/${h.name}`);
  }
  for (let i = 0; i < faultCount; i++) {
    const t = at();
    const n = rng.chance(0.6) ? runnerOf(rng.pick(hs)) : rng.pick(listedNodes);
    const h = rng.pick(hs);
    const agentRs = h.resources.filter((r) => r.kind === 'agent').map((r) => r.name);
    const kind = rng.int(0, 20);
    const dur = rng.int(300, 6_000);
    switch (kind) {
      case 0:
        push(t, { do: 'power-off', node: n });
        if (rng.chance(0.6)) push(t + rng.int(1_000, 8_000), { do: 'power-on', node: n });
        break;
      case 1:
        push(t, { do: 'crash', node: n });
        if (rng.chance(0.7)) push(t + rng.int(200, 5_000), { do: 'start', node: n });
        break;
      case 2:
        push(t, { do: 'stall', node: n });
        push(t + dur, { do: 'resume', node: n });
        break;
      case 3: {
        const a = rng.shuffle([...nodes]);
        const k = rng.int(1, a.length - 1);
        push(t, { do: 'partition', groups: [a.slice(0, k), a.slice(k)] });
        push(t + dur, { do: 'heal-network' });
        break;
      }
      case 4: {
        const to = rng.pick(others(n));
        const path = rng.chance(0.5) ? rng.int(0, 1) : undefined;
        push(t, { do: 'cut', from: n, to, ...(path !== undefined ? { path } : {}) });
        push(t + dur, { do: 'heal', from: n, to, ...(path !== undefined ? { path } : {}) });
        break;
      }
      case 5:
        for (const to of others(n)) push(t, { do: 'link', from: n, to, loss: rng.next() * 0.5, dup: rng.next() * 0.3, jitterMs: rng.int(0, 60) });
        push(t + dur, { do: 'heal-network' });
        break;
      case 6:
        push(t, { do: rng.chance(0.7) ? 'disk-cut' : 'disk-hang', node: n, on: true } as Fault);
        push(t + dur, { do: 'disk-cut', node: n, on: false });
        push(t + dur, { do: 'disk-hang', node: n, on: false });
        break;
      case 7:
        push(t, { do: 'start-fails', node: n, hierarchy: h.name, resource: rng.pick(agentRs), on: true });
        push(t + dur, { do: 'start-fails', node: n, hierarchy: h.name, resource: rng.pick(agentRs), on: false });
        push(t + 10, { do: 'resource-dies', node: n, hierarchy: h.name, resource: rng.pick(agentRs) });
        break;
      case 8: {
        const r = rng.pick(agentRs);
        push(t, { do: 'stop-fails', node: n, hierarchy: h.name, resource: r, on: true });
        if (rng.chance(0.5)) push(t + 50, { do: 'shutdown', node: n, mode: 'switchover' });
        else push(t + 50, { do: 'resource-dies', node: n, hierarchy: h.name, resource: rng.pick(agentRs) });
        push(t + dur, { do: 'stop-fails', node: n, hierarchy: h.name, resource: r, on: false });
        break;
      }
      case 9:
        push(t, { do: 'agent-hangs', node: n, hierarchy: h.name, resource: rng.pick(agentRs), on: true });
        push(t + 20, { do: 'resource-dies', node: n, hierarchy: h.name, resource: rng.pick(agentRs) });
        break;
      case 10:
        push(t, { do: 'resource-dies', node: n, hierarchy: h.name, resource: rng.pick(agentRs) });
        break;
      case 11:
        push(t, { do: 'clock-jump', node: n, ms: rng.chance(0.5) ? -3_600_000 : 3_600_000 });
        push(t + 10, { do: 'crash', node: n });
        push(t + rng.int(500, 3_000), { do: 'start', node: n });
        break;
      case 12:
        push(t, { do: 'admin', node: n, request: { target: 'hierarchy', hierarchy: h.name, action: 'stop' } });
        push(t + dur, { do: 'admin', node: n, request: { target: 'hierarchy', hierarchy: h.name, action: 'start' } });
        break;
      case 13:
        push(t, { do: 'shutdown', node: n, mode: rng.chance(0.7) ? 'switchover' : 'stop' });
        push(t + rng.int(2_000, 6_000), { do: 'start', node: n });
        break;
      case 14: {
        // A runner isolated from everyone while it also loses (or keeps) its disk, or stalls.
        push(t, { do: 'partition', groups: [[n], others(n)] });
        const sub = rng.int(0, 2);
        if (sub === 0) push(t + rng.int(0, 300), { do: 'disk-cut', node: n, on: true });
        if (sub === 1) push(t + rng.int(0, 300), { do: 'stall', node: n }), push(t + dur, { do: 'resume', node: n });
        push(t + dur, { do: 'heal-network' });
        push(t + dur, { do: 'disk-cut', node: n, on: false });
        break;
      }
      case 17:
        push(t, { do: 'utility', node: n, ok: false });
        push(t + dur, { do: 'utility', node: n, ok: true });
        break;
      case 16:
        // A configuration error everywhere (OCF 6), fixed later: blocked, never ping-pong.
        push(t, { do: 'misconfigured', hierarchy: h.name, resource: rng.pick(agentRs), on: true });
        break;
      case 18: {
        // An admin moves H (to a node, or to the best other one), maybe while the network splits.
        const to = rng.chance(0.5) ? rng.pick(Object.keys(h.priorities)) : null;
        push(t, { do: 'admin', node: rng.pick(nodes), request: { target: 'hierarchy', hierarchy: h.name, action: 'move', ...(to ? { to } : {}) } });
        if (rng.chance(0.5)) {
          push(t + rng.int(0, 400), { do: 'partition', groups: [[n], others(n)] });
          push(t + dur, { do: 'heal-network' });
        }
        break;
      }
      case 19:
        // Patching a node: standby, then online (issued anywhere).
        push(t, { do: 'admin', node: rng.pick(nodes), request: { target: 'node', node: n, action: 'standby' } });
        push(t + dur, { do: 'admin', node: rng.pick(nodes), request: { target: 'node', node: n, action: 'online' } });
        break;
      case 20:
        // Maintenance of H or of a node, maybe with its runner crashing meanwhile (not taken over).
        push(t, { do: 'admin', node: rng.pick(nodes), request: rng.chance(0.5) ? { target: 'hierarchy', hierarchy: h.name, action: 'maintenance-on' } : { target: 'node', node: n, action: 'maintenance-on' } });
        if (rng.chance(0.3)) push(t + rng.int(100, 1_000), { do: 'crash', node: n }), push(t + rng.int(1_500, 3_000), { do: 'start', node: n });
        push(t + dur, { do: 'admin', node: rng.pick(nodes), request: { target: 'hierarchy', hierarchy: h.name, action: 'maintenance-off' } });
        push(t + dur, { do: 'admin', node: rng.pick(nodes), request: { target: 'node', node: n, action: 'maintenance-off' } });
        break;
      case 15: {
        // The runner dies while the survivors cannot hear each other: they race for the free disk.
        const rest = rng.shuffle(others(n));
        const k = Math.max(1, Math.floor(rest.length / 2));
        push(t, { do: 'partition', groups: [[n], rest.slice(0, k), rest.slice(k)].filter((g) => g.length > 0) });
        push(t + rng.int(0, 200), { do: 'power-off', node: n });
        if (rng.chance(0.5)) push(t + 1_500, { do: 'replay', from: n, to: rng.pick(rest) });
        push(t + dur, { do: 'heal-network' });
        break;
      }
    }
  }
  timeline.sort((a, b) => a.at - b.at);
  return {
    seed,
    cluster: {
      cluster: 'sim',
      nodes,
      paths: rng.chance(0.7) ? 2 : 1,
      heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs,
      deadTimeMs: DEFAULTS.deadTimeMs,
      maxParallelHierarchies: DEFAULTS.maxParallelHierarchies,
      hierarchies: hs,
      probeMs: 30,
      monitorMs: 1000,
    },
    timeline: timeline.filter((t) => t.at < quietAt),
    quietAt,
    endAt: 0, // set below
    broken,
    notInstalled,
    opMs: [10, rng.chance(0.3) ? 1500 : 300],
    diskLatencyMs: rng.chance(0.5) ? 0 : rng.int(1, 5),
    checkRecovery: true,
  };
}
