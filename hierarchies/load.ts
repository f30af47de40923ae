// Loading cluster.yaml and hierarchies/*.yaml into the normalised model (hierarchies/model.ts).
//
// Every problem becomes a ConfigIssue naming the file, line and column, the field path as the
// admin would write it (`resources[2].params.port`) and what was expected. Problems are
// collected, not thrown one at a time: an admin fixing a config wants the whole list, and one
// broken hierarchy file must not hide the errors of the others. Bad input never produces a
// stack trace; only ConfigError (a plain list of issues) leaves this module.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { checkTrustedPath, ownerReason } from '../harness/safe-files.ts';
import { dirname, join, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type * as z from 'zod';
import { DEFAULTS } from '../harness/defaults.ts';
import type {
  ClusterConfig,
  Config,
  HierarchyConfig,
  MonitorOp,
  NodeConfig,
  OwnershipConfig,
  ResourceConfig,
} from './model.ts';
import { APP_PROVIDER, APP_TYPE, appParams, appSyntaxProblems } from './app.ts';
import { parseAgentSpec } from '../agents/locate.ts';
import { ClusterFileSchema, HierarchyFileSchema, parseAddress } from './schema.ts';
import type { ClusterFile, HierarchyFile, ResourceFile } from './schema.ts';
import { findCycle, formatCycle } from './tree.ts';
import { ConfigError, formatIssue, isError, type ConfigIssue } from './issues.ts';

// Re-exported: the issue types live in issues.ts so that the daemon can use them without loading
// the YAML parser and the schema library (memory footprint).
export { ConfigError, formatIssue, isError, type ConfigIssue };

// Path defaults (not timers, so they live here rather than in harness/defaults.ts).
export const DEFAULT_CONTROL_SOCKET = '/run/harness/harness.sock';
export const DEFAULT_STATE_DIR = '/var/lib/harness/{node}';
export const DEFAULT_OCF_ROOT = '/usr/lib/ocf';
/** The auth key is an HMAC key: shorter than this is guessable. */
export const MIN_AUTH_KEY_BYTES = 16;

// ---------------------------------------------------------------------------------------------
// Issues

/** One file's issues top to bottom, as the admin reads the file (stable for equal positions). */
function byPosition(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.toSorted((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}


// ---------------------------------------------------------------------------------------------
// YAML with positions

type Path = (string | number)[];

interface Source {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  data: unknown;
}

/** `resources[2].params.port` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

function readYaml(file: string): { src?: Source; issues: ConfigIssue[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return { issues: [{ file, field: '', message: `cannot read file: ${(e as Error).message}` }] };
  }
  const lines = new LineCounter();
  // logLevel 'error': YAML warnings (e.g. a list used as a key) must not go to the daemon's
  // stderr; whatever they point at fails the schema and is reported with a position anyway.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  if (doc.errors.length > 0) {
    return {
      issues: doc.errors.map((e) => {
        const p = lines.linePos(e.pos[0]);
        return { file, line: p.line, column: p.col, field: '', message: `YAML syntax error: ${e.message}` };
      }),
    };
  }
  const reserved = reservedKeyIssues(file, doc, lines);
  if (reserved.length > 0) return { issues: reserved };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { issues: [{ file, line: 1, column: 1, field: '', message: `cannot read YAML: ${(e as Error).message}` }] };
  }
  return { src: { file, doc, lines, data }, issues: [] };
}

/** Keys that name parts of every JavaScript object rather than data. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Every mapping key of the file that is a RESERVED_KEYS name, wherever it is (params, priority…).
 * `__proto__` was silently dropped on the way to the model (an assignment of it sets an object's
 * prototype instead of a field), and none of them can be a real parameter, node or field name.
 */
function reservedKeyIssues(file: string, doc: Document.Parsed, lines: LineCounter): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const walk = (node: unknown, path: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
        if (typeof key === 'string' && RESERVED_KEYS.has(key)) {
          const range = (pair.key as YamlNode | null)?.range;
          const p = range ? lines.linePos(range[0]) : { line: 1, col: 1 };
          out.push({
            file,
            line: p.line,
            column: p.col,
            field: formatPath([...path, key]),
            message: `"${key}" cannot be used as a key (${[...RESERVED_KEYS].join(', ')} are reserved names)`,
          });
        }
        if (typeof key === 'string' || typeof key === 'number') walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
  return out;
}

function keyMatches(key: unknown, seg: string | number): boolean {
  const v = isScalar(key) ? key.value : key;
  return v === seg || String(v) === String(seg);
}

/**
 * Position of `path` in the document: of the value, or with `key` of the map key naming the
 * last segment (for "unknown key" and "unknown node" messages). When the path does not exist
 * (a missing field) this is the deepest existing ancestor, which is where the field belongs.
 */
function positionOf(src: Source, path: readonly PropertyKey[], key = false): { line: number; column: number } {
  let node: unknown = src.doc.contents;
  let found: unknown = node;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isAlias(node)) node = node.resolve(src.doc);
    let next: unknown;
    if (isMap(node) && (typeof seg === 'string' || typeof seg === 'number')) {
      const pair = node.items.find((p) => keyMatches(p.key, seg));
      if (pair && key && i === path.length - 1) next = pair.key;
      else next = pair?.value ?? pair?.key;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    if (next === undefined || next === null) break;
    node = next;
    found = next;
  }
  const range = (found as YamlNode | null | undefined)?.range;
  if (!range) return { line: 1, column: 1 };
  const p = src.lines.linePos(range[0]);
  return { line: p.line, column: p.col };
}

function issueAt(src: Source, path: readonly PropertyKey[], message: string, key = false): ConfigIssue {
  return { file: src.file, ...positionOf(src, path, key), field: formatPath(path), message };
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return String(v);
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping (key: value)',
  record: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/** Zod's issues, reworded for an admin reading a YAML file, each with its position. */
function schemaIssues(src: Source, error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of error.issues) {
    const path = iss.path;
    const value = valueAt(src.data, path);
    switch (iss.code) {
      case 'unrecognized_keys':
        for (const k of iss.keys) out.push(issueAt(src, [...path, k], `unknown key "${k}"`, true));
        break;
      case 'invalid_type': {
        const expected = TYPE_NAMES[iss.expected] ?? iss.expected;
        out.push(
          issueAt(
            src,
            path,
            value === undefined ? `is required (expected ${expected})` : `expected ${expected}, got ${describeValue(value)}`,
          ),
        );
        break;
      }
      case 'invalid_value':
        out.push(
          issueAt(src, path, `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(value)}`),
        );
        break;
      case 'invalid_union': {
        const options = (iss as { options?: unknown[] }).options;
        const msg = options
          ? `expected one of ${options.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(value)}`
          : `${iss.message}; got ${describeValue(value)}`;
        out.push(issueAt(src, path, msg));
        break;
      }
      case 'invalid_key':
        out.push(issueAt(src, path, `${iss.issues[0]?.message ?? 'invalid key'}; got "${String(path[path.length - 1])}"`, true));
        break;
      case 'too_small':
      case 'too_big': {
        // Our own messages say what is wanted; zod's ("Too small: expected number to be >=0") do not read well.
        const bound = iss.code === 'too_small' ? iss.minimum : iss.maximum;
        const op = iss.code === 'too_small' ? (iss.inclusive ? '>=' : '>') : iss.inclusive ? '<=' : '<';
        const msg = /^Too (small|big)/.test(iss.message)
          ? iss.origin === 'array'
            ? `expected ${op} ${String(bound)} entries`
            : `must be ${op} ${String(bound)}`
          : iss.message;
        out.push(issueAt(src, path, `${msg}; got ${Array.isArray(value) ? `${value.length} entries` : describeValue(value)}`));
        break;
      }
      case 'invalid_format':
        out.push(issueAt(src, path, `${iss.message}; got ${describeValue(value)}`));
        break;
      default:
        // Our own refinements (durations, scalars) already say what they got.
        out.push(issueAt(src, path, /\bgot\b/.test(iss.message) ? iss.message : `${iss.message}; got ${describeValue(value)}`));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// cluster.yaml

/** Replace `{node}`; the only placeholder, so the nodes of a demo can share one machine. */
export function substituteNode(template: string, node: string): string {
  return template.replaceAll('{node}', node);
}

function checkPlaceholders(src: Source, path: Path, value: string | undefined, issues: ConfigIssue[]): void {
  if (value === undefined) return;
  const bad = /\{(?!node\})[^}]*\}/.exec(value);
  if (bad) issues.push(issueAt(src, path, `unknown placeholder ${bad[0]}; only {node} is replaced`));
}

function checkAuthKey(src: Source, keyFile: string, issues: ConfigIssue[]): void {
  const at = (msg: string) => issues.push(issueAt(src, ['authKeyFile'], msg));
  let st;
  try {
    st = statSync(keyFile);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    at(
      code === 'ENOENT'
        ? `auth key file ${keyFile} does not exist (generate one with \`harness keygen\`)`
        : `cannot read auth key file ${keyFile}: ${(e as Error).message}`,
    );
    return;
  }
  if (!st.isFile()) return void at(`auth key file ${keyFile} is not a regular file`);
  const owner = ownerReason(keyFile, st, 'auth key file');
  if (owner) at(owner);
  // Owner-only (0600, or the stricter 0400): anyone else able to read the key can forge heartbeats.
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    at(`auth key file ${keyFile} has mode 0${mode.toString(8)}; it must be 0600 (chmod 600 ${keyFile})`);
  }
  if (st.size < MIN_AUTH_KEY_BYTES) {
    at(`auth key file ${keyFile} holds ${st.size} bytes; at least ${MIN_AUTH_KEY_BYTES} are needed`);
  }
}

function clusterChecks(src: Source, c: ClusterFile, dir: string, authKey: boolean): ConfigIssue[] {
  const issues: ConfigIssue[] = [];

  const names = new Map<string, number>();
  c.nodes.forEach((n, i) => {
    const first = names.get(n.name);
    if (first !== undefined) issues.push(issueAt(src, ['nodes', i, 'name'], `duplicate node name "${n.name}" (also nodes[${first}])`));
    else names.set(n.name, i);
  });

  // Comm path i is the i-th address of every node: a node with a different count has no
  // partner on some path.
  const first = c.nodes[0];
  if (first) {
    c.nodes.forEach((n, i) => {
      if (n.addresses.length !== first.addresses.length) {
        issues.push(
          issueAt(
            src,
            ['nodes', i, 'addresses'],
            `node ${n.name} has ${n.addresses.length} address(es) but node ${first.name} has ${first.addresses.length}; every node needs one address per comm path`,
          ),
        );
      }
    });
  }

  const seen = new Map<string, string>();
  c.nodes.forEach((n, i) => {
    n.addresses.forEach((a, j) => {
      const p = parseAddress(a);
      const norm = p ? `${p.host.toLowerCase()}:${p.port}` : a;
      const prev = seen.get(norm);
      if (prev !== undefined) issues.push(issueAt(src, ['nodes', i, 'addresses', j], `address ${a} is already used by ${prev}`));
      else seen.set(norm, `node ${n.name} (nodes[${i}].addresses[${j}])`);
    });
    checkPlaceholders(src, ['nodes', i, 'controlSocket'], n.controlSocket, issues);
  });

  const interval = c.heartbeat?.interval ?? DEFAULTS.heartbeatIntervalMs;
  const dead = c.heartbeat?.deadTime ?? DEFAULTS.deadTimeMs;
  if (dead < 3 * interval) {
    // Fewer than three missed heartbeats would declare a peer dead on ordinary packet loss.
    const field = c.heartbeat?.deadTime !== undefined ? 'deadTime' : c.heartbeat?.interval !== undefined ? 'interval' : undefined;
    issues.push(
      issueAt(
        src,
        field ? ['heartbeat', field] : ['heartbeat'],
        `deadTime (${dead}ms) must be at least 3 x interval (3 x ${interval}ms = ${3 * interval}ms)`,
      ),
    );
  }
  const grace = c.heartbeat?.startupGrace;
  if (grace !== undefined && grace < dead) {
    // Shorter, a starting node would take peers for dead before it could have heard them die.
    issues.push(issueAt(src, ['heartbeat', 'startupGrace'], `startupGrace (${grace}ms) must be at least deadTime (${dead}ms)`));
  }

  checkPlaceholders(src, ['stateDir'], c.stateDir, issues);
  if (authKey) {
    checkAuthKey(src, resolve(dir, c.authKeyFile), issues);
    issues.push(...localPathChecks(src, c, dir));
  }
  return issues;
}

/**
 * The directories a daemon on this machine trusts (harness/safe-files.ts): every node's state
 * directory and control socket directory, and the hierarchy directory. Those that exist here
 * must be root's when running as root, and writable by nobody else; one that does not exist yet
 * is created by the daemon with a safe mode.
 */
function localPathChecks(src: Source, c: ClusterFile, dir: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  const check = (path: string, what: string, field: Path) => {
    if (seen.has(path)) return;
    seen.add(path);
    const why = checkTrustedPath(path, what);
    if (why) issues.push(issueAt(src, field, why));
  };
  const stateDir = resolve(dir, c.stateDir ?? DEFAULT_STATE_DIR);
  c.nodes.forEach((n, i) => {
    check(substituteNode(stateDir, n.name), 'state directory', ['stateDir']);
    const socket = substituteNode(resolve(dir, n.controlSocket ?? DEFAULT_CONTROL_SOCKET), n.name);
    check(dirname(socket), 'control socket directory', n.controlSocket !== undefined ? ['nodes', i, 'controlSocket'] : ['nodes', i, 'name']);
  });
  check(resolve(dir, c.hierarchyDir ?? 'hierarchies'), 'hierarchy directory', ['hierarchyDir']);
  return issues;
}

/**
 * Load and check cluster.yaml; throws ConfigError listing every problem. `authKey: false` skips
 * the checks of this machine's files (the auth key, the directories of localPathChecks), for
 * commands that run no node here (status): an admin station running `status --all` has the
 * cluster file but not the nodes' secret, and needs none.
 */
export function loadCluster(clusterFile: string, opts: { authKey?: boolean } = {}): ClusterConfig {
  const file = resolve(clusterFile);
  const dir = dirname(file);
  const { src, issues } = readYaml(file);
  if (!src) throw new ConfigError(issues);
  const parsed = ClusterFileSchema.safeParse(src.data);
  if (!parsed.success) throw new ConfigError(byPosition(schemaIssues(src, parsed.error)));
  const c = parsed.data;
  const more = clusterChecks(src, c, dir, opts.authKey ?? true);
  if (more.length > 0) throw new ConfigError(byPosition(more));

  const stateDir = resolve(dir, c.stateDir ?? DEFAULT_STATE_DIR);
  const nodes: NodeConfig[] = c.nodes.map((n) => ({
    name: n.name,
    addresses: [...n.addresses],
    controlSocket: substituteNode(resolve(dir, n.controlSocket ?? DEFAULT_CONTROL_SOCKET), n.name),
    stateDir: substituteNode(stateDir, n.name),
    ...(n.metrics ? { metricsListen: n.metrics.listen } : {}),
  }));
  const ownership: OwnershipConfig =
    c.ownership.backend === 'file' ? { backend: 'file', dir: resolve(dir, c.ownership.dir) } : { backend: 'scsi' };
  const cluster: ClusterConfig = {
    file,
    cluster: c.cluster,
    nodes,
    heartbeatIntervalMs: c.heartbeat?.interval ?? DEFAULTS.heartbeatIntervalMs,
    deadTimeMs: c.heartbeat?.deadTime ?? DEFAULTS.deadTimeMs,
    authKeyFile: resolve(dir, c.authKeyFile),
    stateDir,
    hierarchyDir: resolve(dir, c.hierarchyDir ?? 'hierarchies'),
    ownership,
    agentDirs: (c.agentDirs ?? []).map((d) => resolve(dir, d)),
    ocfRoot: resolve(dir, c.ocfRoot ?? DEFAULT_OCF_ROOT),
    maxParallelHierarchies: c.maxParallelHierarchies ?? DEFAULTS.maxParallelHierarchies,
    onStop: c.onStop ?? 'switchover',
    haltCommand: c.haltCommand ?? DEFAULTS.haltCommand,
    alerts: (c.alerts ?? []).map((a) => ({ path: resolve(dir, a.path), timeoutMs: a.timeout ?? DEFAULTS.alertTimeoutMs, ...(a.recipient !== undefined ? { recipient: a.recipient } : {}) })),
  };
  if (c.heartbeat?.startupGrace !== undefined) cluster.startupGraceMs = c.heartbeat.startupGrace;
  if (c.controlGroup !== undefined) cluster.controlGroup = c.controlGroup;
  if (c.metrics) cluster.metricsListen = c.metrics.listen;
  return cluster;
}

/** This node's state directory (`stateDir` with `{node}` replaced). */
export function stateDirFor(cluster: ClusterConfig, node: string): string {
  return cluster.nodes.find((n) => n.name === node)?.stateDir ?? substituteNode(cluster.stateDir, node);
}

// ---------------------------------------------------------------------------------------------
// hierarchies/*.yaml

function resourceChecks(src: Source, h: HierarchyFile, cluster: ClusterConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = new Map<string, number>();
  h.resources.forEach((r, i) => {
    const prev = names.get(r.name);
    if (prev !== undefined) {
      issues.push(issueAt(src, ['resources', i, 'name'], `duplicate resource name "${r.name}" (also resources[${prev}])`));
    } else names.set(r.name, i);
  });

  h.resources.forEach((r, i) => {
    const at = (path: Path, msg: string) => issues.push(issueAt(src, ['resources', i, ...path], msg));
    const kinds = (['agent', 'disk', 'app'] as const).filter((k) => r[k] !== undefined);
    if (kinds.length === 0) at([], 'a resource needs one of `agent:` (ocf:<provider>:<type>), `disk:` or `app:` (start/stop/monitor commands)');
    if (kinds.length > 1) at([kinds[1] as string], `a resource has one of \`agent:\`, \`disk:\` or \`app:\`, not ${kinds.join(' and ')}`);
    if (r.app !== undefined) {
      if (r.params !== undefined) at(['params'], 'an `app:` resource takes no `params` (its commands, `env:` and `cwd:` say everything)');
      for (const p of appSyntaxProblems(r.app)) at(['app', ...p.field.split('.')], p.message);
    }
    if (r.disk !== undefined) {
      for (const k of ['params', 'timeouts', 'monitor', 'restart'] as const) {
        if (r[k] !== undefined) at([k], `disk resources have no agent, so \`${k}\` does not apply`);
      }
      if (cluster.ownership.backend === 'scsi' && r.disk.paths.length === 0) {
        at(['disk', 'paths'], 'the scsi ownership backend needs at least one device path');
      }
    }
    const seenReq = new Set<string>();
    (r.requires ?? []).forEach((d, j) => {
      if (d === r.name) at(['requires', j], `resource "${r.name}" cannot require itself`);
      else if (!names.has(d)) at(['requires', j], `requires "${d}", but this hierarchy has no resource of that name (have: ${[...names.keys()].join(', ')})`);
      else if (seenReq.has(d)) at(['requires', j], `"${d}" is listed twice`);
      seenReq.add(d);
    });
    const intervals = new Map<number, number>();
    (r.monitor ?? []).forEach((m, j) => {
      // An operation is identified by (action, interval), as in Pacemaker.
      const prev = intervals.get(m.interval);
      if (prev !== undefined) at(['monitor', j, 'interval'], `two monitors with interval ${m.interval}ms (also monitor[${prev}])`);
      else intervals.set(m.interval, j);
    });
  });
  return issues;
}

function hierarchyChecks(src: Source, h: HierarchyFile, cluster: ClusterConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const nodeNames = cluster.nodes.map((n) => n.name);
  const byValue = new Map<number, string>();
  for (const [node, prio] of Object.entries(h.priority)) {
    if (!nodeNames.includes(node)) {
      issues.push(issueAt(src, ['priority', node], `unknown node "${node}" (cluster ${cluster.file} has: ${nodeNames.join(', ')})`, true));
    }
    const prev = byValue.get(prio);
    if (prev !== undefined) issues.push(issueAt(src, ['priority', node], `priority ${prio} is also given to ${prev}; priorities must be unique`));
    else byValue.set(prio, node);
  }
  if (Object.keys(h.priority).length === 0) issues.push(issueAt(src, ['priority'], 'no node is eligible: list at least one node'));

  const resourceIssues = resourceChecks(src, h, cluster);
  issues.push(...resourceIssues);

  // Only look for cycles once names resolve; otherwise the cycle message would be noise.
  if (resourceIssues.length === 0) {
    const cycle = findCycle(toHierarchy(src, h));
    if (cycle) {
      const i = h.resources.findIndex((r) => r.name === cycle[0]);
      issues.push(issueAt(src, ['resources', i, 'requires'], `dependency cycle: ${formatCycle(cycle)}`));
    }
  }

  if ((h.fencing ?? 'disk') === 'disk' && !h.resources.some((r) => r.disk !== undefined)) {
    issues.push(
      issueAt(
        src,
        h.fencing !== undefined ? ['fencing'] : ['resources'],
        'no own-able resource: add a resource with `disk:` so the hierarchy can be fenced, or opt out explicitly with `fencing: none`',
      ),
    );
  }
  return issues;
}

function toResource(src: Source, r: ResourceFile, i: number): ResourceConfig {
  const pos = positionOf(src, ['resources', i]);
  const where = `${src.file}:${pos.line}`;
  const restart = { max: r.restart?.max ?? DEFAULTS.maxRestarts, windowMs: r.restart?.window ?? DEFAULTS.restartWindowMs };
  if (r.disk !== undefined) {
    const disk: { paths: string[]; wwn?: string } = { paths: [...r.disk.paths] };
    if (r.disk.wwn !== undefined) disk.wwn = r.disk.wwn;
    return { name: r.name, kind: 'disk', params: {}, requires: [...(r.requires ?? [])], timeouts: {}, monitors: [], restart, disk, where };
  }
  const spec = r.app !== undefined ? { provider: APP_PROVIDER, type: APP_TYPE } : parseAgentSpec(r.agent ?? '');
  const timeouts: ResourceConfig['timeouts'] = {};
  if (r.timeouts?.start !== undefined) timeouts.startMs = r.timeouts.start;
  if (r.timeouts?.stop !== undefined) timeouts.stopMs = r.timeouts.stop;
  if (r.timeouts?.monitor !== undefined) timeouts.monitorMs = r.timeouts.monitor;
  const monitors: MonitorOp[] = (r.monitor ?? [{ interval: DEFAULTS.monitorIntervalMs }]).map((op) => {
    const out: MonitorOp = { intervalMs: op.interval, depth: op.depth ?? 0 };
    if (op.timeout !== undefined) out.timeoutMs = op.timeout;
    return out;
  });
  const res: ResourceConfig = {
    name: r.name,
    kind: 'agent',
    params: r.app !== undefined ? appParams(r.app) : { ...(r.params ?? {}) },
    requires: [...(r.requires ?? [])],
    timeouts,
    monitors,
    restart,
    where,
  };
  if (spec) {
    res.provider = spec.provider;
    res.type = spec.type;
  }
  return res;
}

function toHierarchy(src: Source, h: HierarchyFile): HierarchyConfig {
  return {
    file: src.file,
    name: h.hierarchy,
    priorities: { ...h.priority },
    switchback: h.switchback ?? 'intelligent',
    fenced: (h.fencing ?? 'disk') === 'disk',
    onLoss: h.onLoss ?? 'stop',
    onStopFailure: h.onStopFailure ?? 'block',
    probe: h.probe ?? 'everywhere',
    resources: h.resources.map((r, i) => toResource(src, r, i)),
    utilityChecks: (h.utilityChecks ?? []).map((u) => ({ kind: 'ping' as const, target: u.ping })),
  };
}

/** Load one hierarchy file; `hierarchy` is set only when the file has no errors. */
export function loadHierarchyFile(
  file: string,
  cluster: ClusterConfig,
): { hierarchy?: HierarchyConfig; issues: ConfigIssue[]; issueAt?: (path: Path, message: string) => ConfigIssue } {
  const { src, issues } = readYaml(resolve(file));
  if (!src) return { issues };
  const parsed = HierarchyFileSchema.safeParse(src.data);
  if (!parsed.success) return { issues: byPosition(schemaIssues(src, parsed.error)) };
  const more = byPosition(hierarchyChecks(src, parsed.data, cluster));
  if (more.some(isError)) return { issues: more };
  // issueAt lets the caller report cross-file problems (duplicate names, shared disks) in place.
  return { hierarchy: toHierarchy(src, parsed.data), issues: more, issueAt: (path, message) => issueAt(src, path, message) };
}

/** Load every hierarchies/*.yaml (and *.yml); the good ones are returned even when others fail. */
export function loadHierarchies(cluster: ClusterConfig): { hierarchies: HierarchyConfig[]; issues: ConfigIssue[] } {
  const dir = cluster.hierarchyDir;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    return {
      hierarchies: [],
      issues: [{ file: cluster.file, field: 'hierarchyDir', message: `cannot read hierarchy directory ${dir}: ${(e as Error).message}` }],
    };
  }
  const files = entries.filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.')).sort();
  const hierarchies: HierarchyConfig[] = [];
  const issues: ConfigIssue[] = [];
  const byName = new Map<string, string>();
  const disks = new Map<string, string>();
  for (const f of files) {
    const file = join(dir, f);
    const r = loadHierarchyFile(file, cluster);
    issues.push(...r.issues);
    const h = r.hierarchy;
    if (!h || !r.issueAt) continue;
    const prev = byName.get(h.name);
    if (prev !== undefined) {
      issues.push(r.issueAt(['hierarchy'], `hierarchy name "${h.name}" is already used by ${prev}`));
      continue;
    }
    // Two hierarchies reserving the same LUN would fence each other.
    const clash = diskClash(h, disks);
    if (clash) {
      issues.push(r.issueAt(['resources', clash.index, 'disk'], clash.message));
      continue;
    }
    byName.set(h.name, file);
    hierarchies.push(h);
  }
  return { hierarchies, issues };
}

function diskClash(h: HierarchyConfig, seen: Map<string, string>): { index: number; message: string } | null {
  const mine: [string, string][] = [];
  for (const [index, r] of h.resources.entries()) {
    if (!r.disk) continue;
    const ids = [...r.disk.paths.map((p) => `path ${p}`), ...(r.disk.wwn ? [`wwn ${r.disk.wwn.toLowerCase()}`] : [])];
    for (const id of ids) {
      const prev = seen.get(id);
      if (prev !== undefined) return { index, message: `disk ${id} is already used by ${prev}` };
      mine.push([id, `hierarchy ${h.name} (${r.where})`]);
    }
  }
  for (const [id, who] of mine) seen.set(id, who);
  return null;
}

/** "file:line" of ResourceConfig.where back into its parts. */
export function splitWhere(where: string): [string, number | undefined] {
  const m = /^(.*):(\d+)$/.exec(where);
  return m ? [m[1] ?? where, Number(m[2])] : [where, undefined];
}

/** cluster.yaml plus every hierarchy; throws ConfigError with all errors found. */
export function loadConfig(clusterFile: string): Config {
  const cluster = loadCluster(clusterFile);
  const { hierarchies, issues } = loadHierarchies(cluster);
  if (issues.some(isError)) throw new ConfigError(issues);
  return { cluster, hierarchies };
}
