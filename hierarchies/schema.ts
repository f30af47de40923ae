// Zod schemas of the two YAML files as the admin writes them (cluster.yaml and one
// hierarchies/<name>.yaml per hierarchy). They check shape and single-field syntax only;
// rules spanning fields or files (unique names, priorities vs. nodes, dependency cycles,
// auth key mode) live in hierarchies/load.ts, which also turns these shapes into the
// normalised model of hierarchies/model.ts. Every object is strict: a misspelt key is an
// error, never silently ignored (a typo in `fencing:` must not quietly disable fencing).

import { isIP } from 'node:net';
import * as z from 'zod';
import { parseAgentSpec } from '../agents/locate.ts';
import { parseDuration } from './duration.ts';

// Hierarchy and resource names end up in OCF_RESOURCE_INSTANCE (`<hierarchy>.<resource>`) and
// in file names, so no dots, slashes or spaces.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Becomes OCF_RESKEY_<name> in the agent's environment.
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const name = (what: string) =>
  z.string().regex(NAME, { error: `${what} must be letters, digits, "-" or "_" (starting with a letter or digit)` });

const path = z.string().min(1, { error: 'expected a non-empty path' });

/** A duration in milliseconds (see hierarchies/duration.ts). */
export const duration = z.unknown().transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.issues.push({ code: 'custom', message: (e as Error).message, input: v });
    return z.NEVER;
  }
});

const positiveDuration = duration.refine((ms) => ms > 0, { error: 'must be longer than 0' });

/** "ip:port" or "[ipv6]:port": heartbeats never depend on name resolution. */
export function parseAddress(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  const family = isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6) || port < 1 || port > 65535) return null;
  return { host, port };
}

/**
 * A utility check's ping target: an IP address, or a host name (RFC 1123 labels of letters,
 * digits and "-", none starting or ending with "-", dots between, at most 253 characters). Never
 * anything else: the target is an argument of root's ping, and "-f" there is a flood option.
 */
export function isPingTarget(s: string): boolean {
  if (isIP(s) !== 0) return true;
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  return name.length >= 1 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

const pingTarget = z.string().refine(isPingTarget, {
  error: 'expected an IP address or a host name (letters, digits, "-" and "." only, no label starting or ending with "-")',
});

const address = z.string().refine((s) => parseAddress(s) !== null, {
  error: 'expected "ip:port" (IPv4, or [IPv6]:port) with port 1-65535',
});

// YAML gives numbers and booleans their own types; agents only ever see strings.
const scalar = z.unknown().transform((v, ctx) => {
  if (typeof v === 'string') return v;
  if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return String(v);
  const got = v === null || v === undefined ? 'nothing' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : String(v);
  ctx.issues.push({ code: 'custom', message: `expected a single value (string, number or true/false), got ${got}`, input: v });
  return z.NEVER;
});

export const ClusterFileSchema = z.strictObject({
  cluster: z.string().regex(/^[a-z0-9-]+$/, { error: 'cluster name must match [a-z0-9-]+' }),
  nodes: z
    .array(
      z.strictObject({
        name: z.string().regex(NODE_NAME, { error: 'node name must be letters, digits, ".", "-" or "_"' }),
        addresses: z.array(address).min(1, { error: 'expected at least one address (one per comm path)' }),
        controlSocket: path.optional(),
        metrics: z.strictObject({ listen: address }).optional(),
      }),
    )
    .min(1, { error: 'expected at least one node' }),
  heartbeat: z.strictObject({ interval: positiveDuration.optional(), deadTime: positiveDuration.optional(), startupGrace: positiveDuration.optional() }).optional(),
  authKeyFile: path,
  stateDir: path.optional(),
  hierarchyDir: path.optional(),
  ownership: z.discriminatedUnion('backend', [
    z.strictObject({ backend: z.literal('file'), dir: path }),
    z.strictObject({ backend: z.literal('scsi') }),
  ]),
  agentDirs: z.array(path).optional(),
  ocfRoot: path.optional(),
  maxParallelHierarchies: z.number().int().min(1).optional(),
  onStop: z.enum(['switchover', 'stop']).optional(),
  controlGroup: z.string().min(1).optional(),
  haltCommand: z.string().min(1).optional(),
  // Pacemaker-style alert agents run on every event (harness/alerts.ts).
  alerts: z.array(z.strictObject({ path, timeout: positiveDuration.optional(), recipient: z.string().optional() })).optional(),
  // Prometheus metrics endpoint (harness/metrics.ts): off unless set.
  metrics: z.strictObject({ listen: address }).optional(),
});

export type ClusterFile = z.infer<typeof ClusterFileSchema>;

const MonitorSchema = z.strictObject({
  interval: positiveDuration,
  depth: z.union([z.literal(0), z.literal(10), z.literal(20)], { error: 'expected depth 0, 10 or 20' }).optional(),
  timeout: positiveDuration.optional(),
});

export const ResourceSchema = z.strictObject({
  name: name('resource name'),
  agent: z
    .string()
    // One definition of a valid spec, shared with the agent runner, so what loads also runs.
    .refine((s) => parseAgentSpec(s) !== null, {
      error: 'expected an agent spec "ocf:<provider>:<type>", e.g. ocf:heartbeat:IPaddr2',
    })
    .optional(),
  disk: z.strictObject({ paths: z.array(path), wwn: z.string().min(1).optional() }).optional(),
  // A generic application: the admin's own commands (hierarchies/app.ts).
  app: z
    .strictObject({
      start: z.string().min(1, { error: 'expected a command' }),
      stop: z.string().min(1, { error: 'expected a command' }),
      monitor: z.string().min(1, { error: 'expected a command' }),
      user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, { error: 'expected a user name' }).optional(),
      env: z.record(z.string().regex(PARAM_NAME, { error: 'environment variable names must be letters, digits or "_"' }), scalar).optional(),
      cwd: path.refine((p) => p.startsWith('/'), { error: 'expected an absolute path' }).optional(),
      shell: z.boolean().optional(),
    })
    .optional(),
  params: z
    .record(z.string().regex(PARAM_NAME, { error: 'parameter names must be letters, digits or "_"' }), scalar)
    .optional(),
  requires: z.array(z.string()).optional(),
  timeouts: z
    .strictObject({
      start: positiveDuration.optional(),
      stop: positiveDuration.optional(),
      monitor: positiveDuration.optional(),
    })
    .optional(),
  monitor: z.array(MonitorSchema).optional(),
  restart: z.strictObject({ max: z.number().int().min(0).optional(), window: positiveDuration.optional() }).optional(),
});

export type ResourceFile = z.infer<typeof ResourceSchema>;

export const HierarchyFileSchema = z.strictObject({
  hierarchy: name('hierarchy name'),
  priority: z.record(z.string(), z.number().int().min(1, { error: 'priorities are whole numbers >= 1 (1 = most preferred)' })),
  switchback: z.enum(['intelligent', 'automatic']).optional(),
  fencing: z.enum(['disk', 'none']).optional(),
  onLoss: z.enum(['stop', 'halt']).optional(),
  onStopFailure: z.enum(['block', 'halt']).optional(),
  probe: z.enum(['everywhere', 'listed']).optional(),
  utilityChecks: z.array(z.strictObject({ ping: pingTarget })).optional(),
  resources: z.array(ResourceSchema).min(1, { error: 'expected at least one resource' }),
});

export type HierarchyFile = z.infer<typeof HierarchyFileSchema>;
