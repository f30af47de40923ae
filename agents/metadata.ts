// OCF meta-data: what parameters an agent takes and its advised operation timeouts. Used to
// check the admin's YAML before anything runs, and as the default timeouts when the YAML says
// nothing.

import { hostname } from 'node:os';
import type { AgentRef } from './locate.ts';
import { runAgent } from './runner.ts';
import type { RunResult } from './runner.ts';
import { childrenNamed, parseXml, XmlError } from './xml.ts';
import type { XmlElement } from './xml.ts';

export interface ParamMeta {
  name: string;
  required: boolean;
  /** content type: string, integer, boolean, time, select, ... (string when not given). */
  type: string;
  default?: string;
  unique?: boolean;
  /** Allowed values of a `select` parameter. */
  options?: string[];
}

export interface ActionMeta {
  name: string;
  timeoutMs?: number;
  intervalMs?: number;
  depth?: number;
  /** Role the action applies to (promotable agents list per-role monitors). */
  role?: string;
}

export interface AgentMetadata {
  /** The agent's name (resource-agent@name). */
  name: string;
  /** The agent's own version (resource-agent@version). */
  version?: string;
  parameters: ParamMeta[];
  actions: ActionMeta[];
}

export class MetadataError extends Error {
  readonly source: string;
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'MetadataError';
    this.source = source;
  }
}

/** How long `meta-data` may take (stock agents answer in well under a second). */
export const METADATA_TIMEOUT_MS = 15_000;

// Pacemaker's rules: a bare number is seconds; units ms/msec, us/usec, s/sec, m/min, h/hr.
const UNIT_MS: Record<string, number> = {
  '': 1_000,
  ms: 1,
  msec: 1,
  us: 0.001,
  usec: 0.001,
  s: 1_000,
  sec: 1_000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
};

/** Milliseconds of a meta-data time such as "20s", "20", "2m", "500ms"; undefined if malformed. */
export function parseOcfDuration(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(value);
  if (!m) return undefined;
  const unit = UNIT_MS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

function isOne(v: string | undefined): boolean {
  return v === '1' || v === 'true' || v === 'yes';
}

export function parseMetadata(xml: string, source: string): AgentMetadata {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (e) {
    if (e instanceof XmlError) throw new MetadataError(source, `meta-data is not well-formed XML: ${e.message}`);
    throw e;
  }
  if (root.name !== 'resource-agent') {
    throw new MetadataError(source, `meta-data root element is <${root.name}>, expected <resource-agent>`);
  }
  const name = root.attrs.name;
  if (!name) throw new MetadataError(source, `<resource-agent> on line ${root.line} has no name attribute`);

  const parameters: ParamMeta[] = [];
  const seen = new Set<string>();
  for (const group of childrenNamed(root, 'parameters')) {
    for (const p of childrenNamed(group, 'parameter')) {
      const pname = p.attrs.name;
      if (!pname) throw new MetadataError(source, `<parameter> on line ${p.line} has no name attribute`);
      if (seen.has(pname)) throw new MetadataError(source, `parameter ${pname} is declared twice (line ${p.line})`);
      seen.add(pname);
      const content = childrenNamed(p, 'content')[0];
      const param: ParamMeta = { name: pname, required: isOne(p.attrs.required), type: content?.attrs.type || 'string' };
      const dflt = content?.attrs.default;
      if (dflt !== undefined) param.default = dflt;
      if (p.attrs.unique !== undefined) param.unique = isOne(p.attrs.unique);
      const options = content ? childrenNamed(content, 'option').map((o) => o.attrs.value ?? '') : [];
      if (options.length > 0) param.options = options;
      parameters.push(param);
    }
  }

  const actions: ActionMeta[] = [];
  for (const group of childrenNamed(root, 'actions')) {
    for (const a of childrenNamed(group, 'action')) {
      const aname = a.attrs.name;
      if (!aname) throw new MetadataError(source, `<action> on line ${a.line} has no name attribute`);
      const action: ActionMeta = { name: aname };
      const time = (attr: 'timeout' | 'interval'): number | undefined => {
        const raw = a.attrs[attr];
        if (raw === undefined) return undefined;
        const ms = parseOcfDuration(raw);
        if (ms === undefined) {
          throw new MetadataError(source, `action ${aname} (line ${a.line}): ${attr}="${raw}" is not a time like "20s", "2m" or "500ms"`);
        }
        return ms;
      };
      const timeoutMs = time('timeout');
      const intervalMs = time('interval');
      if (timeoutMs !== undefined) action.timeoutMs = timeoutMs;
      if (intervalMs !== undefined) action.intervalMs = intervalMs;
      const depth = a.attrs.depth;
      if (depth !== undefined) {
        if (!/^\s*\d+\s*$/.test(depth)) throw new MetadataError(source, `action ${aname} (line ${a.line}): depth="${depth}" is not a number`);
        action.depth = Number(depth);
      }
      const role = a.attrs.role;
      if (role) action.role = role;
      actions.push(action);
    }
  }
  const meta: AgentMetadata = { name, parameters, actions };
  const version = root.attrs.version;
  if (version) meta.version = version;
  return meta;
}

// One fetch per agent path for the life of the process: meta-data does not change while we
// run, and concurrent callers share the same in-flight run. Failures are not cached.
const cache = new Map<string, Promise<AgentMetadata>>();

/** Forget cached meta-data (after an agent was upgraded, and for tests). */
export function clearMetadataCache(): void {
  cache.clear();
}

export function readMetadata(agent: AgentRef, opts: { ocfRoot: string; nodeName?: string }): Promise<AgentMetadata> {
  const hit = cache.get(agent.path);
  if (hit) return hit;
  const p = fetchMetadata(agent, opts);
  cache.set(agent.path, p);
  p.catch(() => cache.delete(agent.path));
  return p;
}

/** The `meta-data` action exactly as harness runs it (the daemon, `harness validate`, `harness agent test`). */
export function runMetadataAction(agent: AgentRef, opts: { ocfRoot: string; nodeName?: string }): Promise<RunResult> {
  return runAgent({
    agent,
    action: 'meta-data',
    // Agents that see OCF_RA_VERSION_MAJOR without an instance name exit 2, even for meta-data.
    instance: agent.type,
    params: {},
    timeoutMs: METADATA_TIMEOUT_MS,
    nodeName: opts.nodeName ?? hostname(),
    ocfRoot: opts.ocfRoot,
  });
}

async function fetchMetadata(agent: AgentRef, opts: { ocfRoot: string; nodeName?: string }): Promise<AgentMetadata> {
  const source = `${agent.path} meta-data`;
  const r = await runMetadataAction(agent, opts);
  if (r.result !== 'success') {
    const why = r.exitReason ?? (r.stderr.trim().split('\n').pop() || (r.timedOut ? `timed out after ${METADATA_TIMEOUT_MS} ms` : ''));
    throw new MetadataError(source, `failed (${r.result}${r.rc !== null ? `, exit ${r.rc}` : ''})${why ? `: ${why}` : ''}`);
  }
  return parseMetadata(r.stdout, source);
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'n', 'off']);

/**
 * Check the admin's parameters against the meta-data. Missing required parameters and values
 * that do not fit a boolean/integer type are errors; parameters the agent does not declare are
 * warnings (agents may read undeclared ones, but it is most often a typo).
 */
export function checkParams(meta: AgentMetadata, params: Record<string, string>): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const declared = new Map(meta.parameters.map((p) => [p.name, p]));
  for (const p of meta.parameters) {
    const v = params[p.name];
    if (p.required && (v === undefined || v === '')) {
      errors.push(`agent ${meta.name} requires parameter "${p.name}"`);
    }
  }
  for (const [name, value] of Object.entries(params)) {
    const p = declared.get(name);
    if (!p) {
      const known = meta.parameters.map((q) => q.name);
      const near = known.find((k) => k.toLowerCase() === name.toLowerCase());
      warnings.push(
        `agent ${meta.name} has no parameter "${name}"` +
          (near ? ` (did you mean "${near}"?)` : known.length > 0 ? ` (it takes: ${known.join(', ')})` : ' (it takes none)'),
      );
      continue;
    }
    if (p.type === 'boolean' && !TRUE_WORDS.has(value.toLowerCase()) && !FALSE_WORDS.has(value.toLowerCase())) {
      errors.push(`parameter "${name}" of agent ${meta.name} is boolean: "${value}" is not one of true/false, yes/no, on/off, 1/0`);
    } else if (p.type === 'integer' && !/^[+-]?\d+$/.test(value.trim())) {
      errors.push(`parameter "${name}" of agent ${meta.name} is an integer: "${value}" is not`);
    } else if (p.type === 'select' && p.options && !p.options.includes(value)) {
      warnings.push(`parameter "${name}" of agent ${meta.name}: "${value}" is not one of ${p.options.join(', ')}`);
    }
  }
  return { errors, warnings };
}

/**
 * The agent's advised timeout for `action` (monitor: the entry of that depth, default 0, else
 * any monitor entry; an entry without a role wins over role-specific ones). Undefined when the
 * agent gives no timeout for that action.
 */
export function defaultTimeoutMs(meta: AgentMetadata, action: string, depth?: number): number | undefined {
  const named = meta.actions.filter((a) => a.name === action && a.timeoutMs !== undefined);
  const wanted = depth ?? 0;
  const sameDepth = named.filter((a) => (a.depth ?? 0) === wanted);
  // A depth the agent does not list falls back to its other monitor entries: better than none.
  const pool = sameDepth.length > 0 ? sameDepth : named;
  const pick = pool.find((a) => a.role === undefined) ?? pool[0];
  return pick?.timeoutMs;
}
