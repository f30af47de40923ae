// Scenario files for `harness simulate` (the admin's what-if tool, as Pacemaker's crm_simulate):
// a cluster and its hierarchies, inline or from a real configuration, plus a timeline of what
// happens. Parsed strictly: a mistake is reported with the file and the field.
//
//   cluster: { nodes: [n1, n2, n3], paths: 2 }           # or: config: ../etc/cluster.yaml
//   hierarchies:
//     - name: web
//       nodes: [n1, n2, n3]                               # priority order
//       switchback: intelligent                           # default; or automatic
//       fencing: disk                                     # default; none = not fenced
//       resources:
//         - { name: disk, disk: true }
//         - { name: fs, requires: [disk], start: 200ms, stop: 100ms }
//         - { name: ip }
//         - { name: app, requires: [fs, ip], restarts: 2 }
//   timeline:
//     - { at: 5s, power-off: n1 }
//     - { at: 6s, cut: [n2, n3] }                         # both ways; heal: [n2, n3] / heal: all
//     - { at: 9s, resource-dies: { node: n2, resource: web.app } }
//     - { at: 12s, admin: { node: n2, hierarchy: web, request: hold } }
//   until: 30s
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../hierarchies/duration.ts';
import { formatIssue, isError, loadCluster, loadHierarchies } from '../hierarchies/load.ts';
import type { HierarchyConfig, ResourceConfig } from '../hierarchies/model.ts';
import { DEFAULTS } from '../harness/defaults.ts';
import type { Fault, TimedFault } from './faults.ts';
import type { WorldOptions } from './world.ts';
import type { AdminRequest } from '../harness/core/types.ts';

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
const name = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only');
const nodeRes = z.object({ node: name, resource: z.string().regex(/^[^.]+\.[^.]+$/, 'written <hierarchy>.<resource>') }).strict();
const toggle = nodeRes.extend({ on: z.boolean().default(true) }).strict();

const Resource = z
  .object({
    name,
    disk: z.boolean().default(false),
    requires: z.array(name).default([]),
    start: duration.default(100),
    stop: duration.default(50),
    restarts: z.number().int().min(0).default(DEFAULTS.maxRestarts),
  })
  .strict();

const Hierarchy = z
  .object({
    name,
    nodes: z.array(name).min(1),
    switchback: z.enum(['intelligent', 'automatic']).default('intelligent'),
    fencing: z.enum(['disk', 'none']).default('disk'),
    onLoss: z.enum(['stop', 'halt']).default('stop'),
    probe: z.enum(['everywhere', 'listed']).default('everywhere'),
    /** Utility checks: a node must reach these (ping) to be eligible; `utility-fails` simulates a failure. */
    ping: z.array(z.string().min(1)).default([]),
    resources: z.array(Resource).min(1),
  })
  .strict();

const Step = z
  .object({
    at: duration,
    'power-off': name.optional(),
    'power-on': name.optional(),
    crash: name.optional(),
    start: name.optional(),
    stop: z.union([name, z.object({ node: name, mode: z.enum(['switchover', 'stop']) }).strict()]).optional(),
    stall: name.optional(),
    resume: name.optional(),
    cut: z.tuple([name, name]).optional(),
    'cut-one-way': z.object({ from: name, to: name, path: z.number().int().min(0).optional() }).strict().optional(),
    heal: z.union([z.literal('all'), z.tuple([name, name])]).optional(),
    partition: z.array(z.array(name).min(1)).min(2).optional(),
    loss: z.object({ from: name, to: name, loss: z.number().min(0).max(1), dup: z.number().min(0).max(1).default(0), jitter: duration.default(0) }).strict().optional(),
    'disk-cut': name.optional(),
    'disk-back': name.optional(),
    'disk-hang': name.optional(),
    'resource-dies': nodeRes.optional(),
    'start-fails': toggle.optional(),
    'stop-fails': toggle.optional(),
    'agent-hangs': toggle.optional(),
    misconfigured: z.object({ resource: z.string().regex(/^[^.]+\.[^.]+$/, 'written <hierarchy>.<resource>'), on: z.boolean().default(true) }).strict().optional(),
    'utility-fails': name.optional(),
    'utility-ok': name.optional(),
    'clock-jump': z.object({ node: name, by: z.union([duration, z.string().regex(/^-/)]) }).strict().optional(),
    // hold/release: the names of `stop`/`start` before they became cluster-wide.
    admin: z
      .object({
        node: name,
        hierarchy: name.optional(),
        target: name.optional(),
        request: z.enum(['hold', 'release', 'stop', 'start', 'move', 'clear', 'maintenance-on', 'maintenance-off', 'standby', 'online']),
        to: name.optional(),
      })
      .strict()
      .optional(),
    replay: z.object({ from: name, to: name }).strict().optional(),
  })
  .strict()
  .refine((s) => Object.keys(s).filter((k) => k !== 'at').length === 1, { message: 'each timeline entry has `at` and exactly one event' });

const Scenario = z
  .object({
    description: z.string().optional(),
    seed: z.number().int().default(1),
    config: z.string().optional(),
    cluster: z
      .object({
        nodes: z.array(name).min(1),
        paths: z.number().int().min(1).max(4).default(2),
        heartbeatInterval: duration.default(DEFAULTS.heartbeatIntervalMs),
        deadTime: duration.default(DEFAULTS.deadTimeMs),
      })
      .strict()
      .optional(),
    hierarchies: z.array(Hierarchy).optional(),
    timeline: z.array(Step).default([]),
    /** `node/hierarchy`: a probe there answers OCF 5 (not installed on that node). */
    notInstalled: z.array(z.string().regex(/^[^/]+\/[^/]+$/, 'written <node>/<hierarchy>')).default([]),
    /** `node/hierarchy/resource`: the resource dies shortly after every start on that node. */
    broken: z.array(z.string().regex(/^[^/]+\/[^/]+\/[^/]+$/, 'written <node>/<hierarchy>/<resource>')).default([]),
    until: duration.optional(),
  })
  .strict()
  .refine((s) => (s.config === undefined) !== (s.cluster === undefined), { message: 'give either `config` (a cluster.yaml) or `cluster` with `hierarchies`' });

export class ScenarioError extends Error {}

export interface LoadedScenario {
  file: string;
  description: string;
  options: WorldOptions;
}

function toFault(s: z.infer<typeof Step>): Fault {
  const [[k, v]] = Object.entries(s).filter(([key]) => key !== 'at') as [[string, never]];
  const h = (x: { resource: string }) => x.resource.split('.') as [string, string];
  switch (k) {
    case 'power-off':
    case 'power-on':
    case 'crash':
    case 'start':
    case 'stall':
    case 'resume':
      return { do: k, node: v };
    case 'stop': {
      const x = v as string | { node: string; mode: 'switchover' | 'stop' };
      return typeof x === 'string' ? { do: 'shutdown', node: x, mode: 'switchover' } : { do: 'shutdown', node: x.node, mode: x.mode };
    }
    case 'cut':
      return { do: 'partition', groups: [[(v as string[])[0]!], [(v as string[])[1]!]] };
    case 'cut-one-way': {
      const x = v as { from: string; to: string; path?: number };
      return { do: 'cut', from: x.from, to: x.to, ...(x.path !== undefined ? { path: x.path } : {}) };
    }
    case 'heal':
      return v === 'all' ? { do: 'heal-network' } : { do: 'heal-pair', a: (v as string[])[0]!, b: (v as string[])[1]! };
    case 'partition':
      return { do: 'partition', groups: v };
    case 'loss': {
      const x = v as { from: string; to: string; loss: number; dup: number; jitter: number };
      return { do: 'link', from: x.from, to: x.to, loss: x.loss, dup: x.dup, jitterMs: x.jitter };
    }
    case 'disk-cut':
      return { do: 'disk-cut', node: v, on: true };
    case 'disk-hang':
      return { do: 'disk-hang', node: v, on: true };
    case 'disk-back':
      return { do: 'disk-back', node: v };
    case 'resource-dies': {
      const x = v as { node: string; resource: string };
      return { do: 'resource-dies', node: x.node, hierarchy: h(x)[0], resource: h(x)[1] };
    }
    case 'start-fails':
    case 'stop-fails':
    case 'agent-hangs': {
      const x = v as { node: string; resource: string; on: boolean };
      return { do: k, node: x.node, hierarchy: h(x)[0], resource: h(x)[1], on: x.on };
    }
    case 'misconfigured': {
      const x = v as { resource: string; on: boolean };
      return { do: 'misconfigured', hierarchy: h(x)[0], resource: h(x)[1], on: x.on };
    }
    case 'utility-fails':
      return { do: 'utility', node: v, ok: false };
    case 'utility-ok':
      return { do: 'utility', node: v, ok: true };
    case 'clock-jump': {
      const x = v as { node: string; by: number | string };
      const ms = typeof x.by === 'string' ? -parseDuration(x.by.slice(1)) : x.by;
      return { do: 'clock-jump', node: x.node, ms };
    }
    case 'admin':
      return { do: 'admin', node: (v as { node: string }).node, request: adminRequestOf(v as AdminEntry) };
    case 'replay':
      return { do: 'replay', ...(v as { from: string; to: string }) };
  }
  throw new Error(`unknown event ${k}`);
}

type AdminEntry = { node: string; hierarchy?: string; target?: string; request: string; to?: string };

/** A timeline's admin entry as the request the control socket would hand the reducer. */
function adminRequestOf(a: AdminEntry): AdminRequest {
  const action = a.request === 'hold' ? 'stop' : a.request === 'release' ? 'start' : a.request;
  if (action === 'standby' || action === 'online' || ((action === 'maintenance-on' || action === 'maintenance-off') && a.target)) {
    return { target: 'node', node: a.target ?? a.node, action: action as 'standby' };
  }
  if (!a.hierarchy) throw new Error(`admin ${a.request}: needs a hierarchy`);
  return { target: 'hierarchy', hierarchy: a.hierarchy, action: action as 'stop', ...(a.to ? { to: a.to } : {}) };
}

function toHierarchy(h: z.infer<typeof Hierarchy>, file: string): HierarchyConfig {
  const resources: ResourceConfig[] = h.resources.map((r) => ({
    name: r.name,
    kind: r.disk ? 'disk' : 'agent',
    ...(r.disk ? {} : { provider: 'sim', type: r.name }),
    params: {},
    requires: r.requires,
    timeouts: { startMs: DEFAULTS.startTimeoutMs, stopMs: DEFAULTS.stopTimeoutMs },
    monitors: r.disk ? [] : [{ intervalMs: DEFAULTS.monitorIntervalMs, depth: 0 }],
    restart: { max: r.restarts, windowMs: DEFAULTS.restartWindowMs },
    where: file,
  }));
  return {
    file,
    name: h.name,
    priorities: Object.fromEntries(h.nodes.map((n, i) => [n, i + 1])),
    switchback: h.switchback,
    fenced: h.fencing === 'disk',
    onLoss: h.onLoss,
    onStopFailure: 'block',
    probe: h.probe,
    resources,
    utilityChecks: h.ping.map((target) => ({ kind: 'ping' as const, target })),
  };
}

function fail(file: string, e: z.ZodError): never {
  const lines = e.issues.map((i) => `${file}: ${i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)'}: ${i.message}`);
  throw new ScenarioError(lines.join('\n'));
}

/** Read and check a scenario file; every problem names the file and the field. */
export function loadScenario(file: string): LoadedScenario {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ScenarioError(`${file}: ${(e as Error).message}`);
  }
  const parsed = Scenario.safeParse(raw);
  if (!parsed.success) fail(file, parsed.error);
  const s = parsed.data;
  let nodes: string[];
  let paths: number;
  let heartbeatIntervalMs: number;
  let deadTimeMs: number;
  let hierarchies: HierarchyConfig[];
  const durations = new Map<string, { start: number; stop: number }>();
  if (s.config !== undefined) {
    const path = resolve(dirname(file), s.config);
    try {
      const cluster = loadCluster(path, { authKey: false });
      const loaded = loadHierarchies(cluster);
      const errors = loaded.issues.filter(isError);
      if (errors.length) throw new Error(errors.map(formatIssue).join('; '));
      nodes = cluster.nodes.map((n) => n.name);
      paths = cluster.nodes[0]?.addresses.length ?? 1;
      heartbeatIntervalMs = cluster.heartbeatIntervalMs;
      deadTimeMs = cluster.deadTimeMs;
      hierarchies = loaded.hierarchies;
    } catch (e) {
      throw new ScenarioError(`${file}: config: ${(e as Error).message}`);
    }
  } else {
    const c = s.cluster!;
    nodes = c.nodes;
    paths = c.paths;
    heartbeatIntervalMs = c.heartbeatInterval;
    deadTimeMs = c.deadTime;
    hierarchies = (s.hierarchies ?? []).map((h) => toHierarchy(h, file));
    for (const h of s.hierarchies ?? []) for (const r of h.resources) durations.set(`${h.name}/${r.name}`, { start: r.start, stop: r.stop });
  }
  const problems: string[] = [];
  const known = new Set(nodes);
  for (const [i, h] of hierarchies.entries()) {
    for (const n of Object.keys(h.priorities)) if (!known.has(n)) problems.push(`${file}: hierarchies[${i}].nodes: ${n} is not a cluster node`);
    const names = new Set(h.resources.map((r) => r.name));
    for (const r of h.resources) for (const q of r.requires) if (!names.has(q)) problems.push(`${file}: hierarchies[${i}] resource ${r.name}: requires unknown resource ${q}`);
  }
  const timeline: TimedFault[] = s.timeline.map((st) => ({ at: st.at, fault: toFault(st) }));
  for (const [i, t] of timeline.entries()) {
    const f = t.fault as Record<string, unknown>;
    for (const k of ['node', 'from', 'to', 'a', 'b']) if (typeof f[k] === 'string' && !known.has(f[k] as string)) problems.push(`${file}: timeline[${i}]: ${f[k]} is not a cluster node`);
    if (f.groups) for (const n of (f.groups as string[][]).flat()) if (!known.has(n)) problems.push(`${file}: timeline[${i}]: ${n} is not a cluster node`);
    if (typeof f.hierarchy === 'string') {
      const h = hierarchies.find((x) => x.name === f.hierarchy);
      if (!h) problems.push(`${file}: timeline[${i}]: no hierarchy ${f.hierarchy}`);
      else if (typeof f.resource === 'string' && !h.resources.some((r) => r.name === f.resource)) problems.push(`${file}: timeline[${i}]: hierarchy ${f.hierarchy} has no resource ${f.resource}`);
    }
  }
  if (problems.length) throw new ScenarioError(problems.join('\n'));
  const last = Math.max(0, ...timeline.map((t) => t.at));
  const until = s.until ?? last + 20_000;
  return {
    file,
    description: s.description ?? '',
    options: {
      seed: s.seed,
      cluster: { cluster: 'sim', nodes, paths, heartbeatIntervalMs, deadTimeMs, maxParallelHierarchies: DEFAULTS.maxParallelHierarchies, hierarchies, probeMs: 30, monitorMs: 1000 },
      timeline,
      notInstalled: s.notInstalled,
      broken: s.broken,
      quietAt: until + 1,
      endAt: until,
      opMsOf: (kind, key) => {
        const [, h, r] = key.split('/');
        const d = durations.get(`${h}/${r}`);
        return d ? (kind === 'start' ? d.start : d.stop) : kind === 'start' ? 100 : 50;
      },
      checkRecovery: false,
      trace: true,
    },
  };
}
