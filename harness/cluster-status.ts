// `harness status --all`: every node's own status, gathered over SSH (ssh2) from one place, and
// compared. There is no leader to ask: each node decides for itself, so the only cluster-wide
// view is the set of all node views. The admin tool reaches a node over any of its comm-path
// addresses (the first that answers), independently of the cluster's own heartbeats, so it
// still works — and shows the disagreement — when the cluster's communication is broken.
//
// Each node is asked with `<remote harness> status --json --config <same file> --node <name>`;
// the node this command runs on (if it is one) is asked on its local control socket instead.
//
// A node's answer is input from elsewhere, judged before it is used: at most `maxAnswerBytes`
// are read, it must be JSON of the shape this report reads (RemoteStatusSchema), from the node
// asked. An answer that fails makes that node "unusable answer: <why>"; the others are reported
// as usual and the verdict is not ok. Every line printed is passed through `printable` (every
// string a node sends — names, states, its error output — could carry terminal escape sequences).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2, { type ConnectConfig } from 'ssh2';
import * as z from 'zod';
import type { ClusterConfig, NodeConfig } from '../hierarchies/model.ts';
import type { StatusDoc } from './status.ts';
import { controlRequest } from './control.ts';
import { shq } from './guard.ts';
import { parseAddress } from '../hierarchies/schema.ts';
import { checkHostKey, loadKnownHosts, type KnownHosts } from './known-hosts.ts';

export interface SshOptions {
  user: string;
  port: number;
  /** Private key file; unset: SSH agent ($SSH_AUTH_SOCK) if any, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  identity?: string;
  knownHosts: string;
  /** Command that runs harness on the nodes (may contain arguments, e.g. "node /opt/harness/dist/bin/harness.js"). */
  remoteHarness: string;
  /** Per address: connect + authenticate + run. */
  timeoutMs: number;
  /** A node's answer (its stdout) longer than this is not read further: unusable. */
  maxAnswerBytes?: number;
}

/** 4 MiB: a status document is ~1 KiB per hierarchy. */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** Of a failing remote command's stderr, only the end is kept (its last line is reported). */
const MAX_STDERR_BYTES = 16 * 1024;

export const SSH_DEFAULTS = { user: 'root', port: 22, remoteHarness: 'harness', timeoutMs: 8_000, knownHosts: join(homedir(), '.ssh', 'known_hosts'), maxAnswerBytes: MAX_ANSWER_BYTES };

/**
 * What this report reads of a node's status (harness/status.ts StatusDoc), checked before use.
 * Loose: fields it does not read pass through untouched (to --json) and may change freely.
 */
export const RemoteStatusSchema = z.looseObject({
  node: z.string(),
  shuttingDown: z.union([z.literal(false), z.string()], { error: 'expected false or a reason' }),
  nodes: z.array(z.looseObject({ name: z.string(), self: z.boolean(), state: z.string(), suspect: z.boolean() })),
  hierarchies: z.array(z.looseObject({ name: z.string(), phase: z.string() })),
});

/** The node's answer, parsed and checked: its status, or why it cannot be used. */
export function checkAnswer(text: string, node: string): { status: StatusDoc } | { unusable: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { unusable: `not JSON: ${text.slice(0, 200)}` };
  }
  const r = RemoteStatusSchema.safeParse(doc);
  if (!r.success) {
    const where = (p: readonly PropertyKey[]) => p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('').replace(/^\./, '') || '(root)';
    const shown = r.error.issues.slice(0, 3).map((i) => `${where(i.path)}: ${i.message}`);
    if (r.error.issues.length > 3) shown.push(`and ${r.error.issues.length - 3} more`);
    return { unusable: shown.join('; ') };
  }
  if (r.data.node !== node) return { unusable: `it is the status of node "${r.data.node}", not of ${node}` };
  return { status: r.data as unknown as StatusDoc };
}

/** An answer that arrived but cannot be used (too long, not JSON, wrong shape). */
class UnusableAnswer extends Error {}

// C0 and C1 controls, DEL, and Unicode's invisible direction and line/paragraph separators.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;

/** A remote-provided string made safe for a terminal: controls shown escaped (\x1b, \n, \u202e), backslash doubled. */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** JSON text whose every character is printable: JSON.stringify escapes C0 controls, this also the rest of UNPRINTABLE. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export interface NodeAnswer {
  node: string;
  /** "local socket" or the address that answered. */
  via?: string;
  status?: StatusDoc;
  /** Why no status: one reason per address tried. */
  error?: string;
  /** Set when an address answered, but with something that cannot be used (see checkAnswer). */
  unusable?: boolean;
}

/** "10.0.0.1:5405" -> 10.0.0.1, "[fd00::1]:5405" -> fd00::1 (the config's own address syntax). */
export function hostOf(address: string): string {
  return parseAddress(address)?.host ?? address;
}

function authOf(opts: SshOptions): Pick<ConnectConfig, 'privateKey' | 'agent'> {
  if (opts.identity) return { privateKey: readFileSync(opts.identity) };
  if (process.env.SSH_AUTH_SOCK) return { agent: process.env.SSH_AUTH_SOCK };
  for (const f of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const p = join(homedir(), '.ssh', f);
    if (existsSync(p)) return { privateKey: readFileSync(p) };
  }
  throw new Error('no SSH identity: give --identity <file>, run an SSH agent, or create ~/.ssh/id_ed25519');
}

/** Run one command on host over SSH; resolves with its stdout, rejects with a one-line reason. */
function sshExec(host: string, command: string, opts: SshOptions, kh: KnownHosts, auth: Pick<ConnectConfig, 'privateKey' | 'agent'>): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let hostKeyProblem: string | undefined;
    let settled = false;
    const finish = (err: Error | null, out?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      if (err) reject(err);
      else resolve(out ?? '');
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return finish(err);
        const out: Buffer[] = [];
        let outBytes = 0;
        let errText = Buffer.alloc(0);
        const cap = opts.maxAnswerBytes ?? MAX_ANSWER_BYTES;
        stream.on('data', (c: Buffer) => {
          outBytes += c.length;
          if (outBytes > cap) return finish(new UnusableAnswer(`longer than ${cap} bytes: not read further`));
          out.push(c);
        });
        stream.stderr.on('data', (c: Buffer) => {
          errText = Buffer.concat([errText, c]);
          if (errText.length > MAX_STDERR_BYTES) errText = errText.subarray(errText.length - MAX_STDERR_BYTES);
        });
        stream.on('close', (code: number | null) => {
          if (code === 0) finish(null, Buffer.concat(out).toString('utf8'));
          else finish(new Error(`remote command exited ${code ?? 'by a signal'}: ${errText.toString('utf8').trim().split('\n').pop() ?? ''}`));
        });
      });
    });
    conn.on('error', (e) => finish(new Error(hostKeyProblem ?? e.message)));
    conn.connect({
      host,
      port: opts.port,
      username: opts.user,
      ...auth,
      readyTimeout: opts.timeoutMs,
      hostVerifier: (key: Buffer) => {
        const v = checkHostKey(kh, host, opts.port, key);
        if (!v.ok) hostKeyProblem = v.reason;
        return v.ok;
      },
    });
  });
}

async function askNode(cluster: ClusterConfig, node: NodeConfig, self: string | undefined, opts: SshOptions, kh: () => KnownHosts, auth: () => Pick<ConnectConfig, 'privateKey' | 'agent'>): Promise<NodeAnswer> {
  if (node.name === self && existsSync(node.controlSocket)) {
    let answer: unknown;
    try {
      answer = await controlRequest(node.controlSocket, { cmd: 'status' });
    } catch (e) {
      return { node: node.name, error: `local socket ${node.controlSocket}: ${(e as Error).message}` };
    }
    const checked = checkAnswer(JSON.stringify(answer) ?? '', node.name);
    if ('unusable' in checked) return { node: node.name, unusable: true, error: `local socket ${node.controlSocket}: unusable answer: ${checked.unusable}` };
    return { node: node.name, via: 'local socket', status: checked.status };
  }
  const command = `${opts.remoteHarness} status --json --config ${shq(cluster.file)} --node ${shq(node.name)}`;
  const reasons: string[] = [];
  let keys: KnownHosts;
  let identity: Pick<ConnectConfig, 'privateKey' | 'agent'>;
  try {
    keys = kh();
    identity = auth();
  } catch (e) {
    return { node: node.name, error: (e as Error).message };
  }
  // Every comm path is a way in: the first address that answers usably wins.
  let unusable = false;
  for (const host of [...new Set(node.addresses.map(hostOf))]) {
    let out: string;
    try {
      out = await sshExec(host, command, opts, keys, identity);
    } catch (e) {
      if (e instanceof UnusableAnswer) unusable = true;
      reasons.push(`${host}: ${e instanceof UnusableAnswer ? 'unusable answer: ' : ''}${(e as Error).message}`);
      continue;
    }
    const checked = checkAnswer(out, node.name);
    if ('status' in checked) return { node: node.name, via: host, status: checked.status };
    unusable = true;
    reasons.push(`${host}: unusable answer: ${checked.unusable}`);
  }
  return { node: node.name, error: reasons.join('; '), ...(unusable ? { unusable } : {}) };
}

/** Ask every node at once. `self`: the node this runs on, if any (asked on its local socket). */
export async function gatherClusterStatus(cluster: ClusterConfig, self: string | undefined, opts: SshOptions): Promise<NodeAnswer[]> {
  let kh: KnownHosts | undefined;
  let auth: Pick<ConnectConfig, 'privateKey' | 'agent'> | undefined;
  // Loaded on first use: a one-node cluster asked locally needs neither.
  const knownHosts = () => (kh ??= loadKnownHosts(opts.knownHosts));
  const identity = () => (auth ??= authOf(opts));
  return Promise.all(cluster.nodes.map((n) => askNode(cluster, n, self, opts, knownHosts, identity)));
}

export interface ClusterVerdict {
  /** Every node answered, no hierarchy is in service on two nodes, and the nodes agree (config, peer views). */
  ok: boolean;
  hierarchies: Array<{ name: string; inServiceOn: string[]; verdict: string }>;
  /** Where the nodes disagree: configuration fingerprints, or who is up (a partition). */
  divergences: string[];
}

/** Configurations that differ, and peers some answering node sees up while another does not. */
function divergences(answers: NodeAnswer[]): string[] {
  const out: string[] = [];
  const answered = answers.filter((a) => a.status);
  const byConfig = new Map<string, string[]>();
  for (const a of answered) {
    const mine = a.status!.nodes.find((n) => n.self)?.config;
    if (typeof mine !== 'string') continue; // an earlier release: no fingerprint
    byConfig.set(mine, [...(byConfig.get(mine) ?? []), a.node]);
  }
  if (byConfig.size > 1) out.push(`CONFIGURATIONS DIFFER: ${[...byConfig].map(([f, ns]) => `${ns.join(', ')}: ${f}`).join('; ')}`);
  const peers = [...new Set(answered.flatMap((a) => a.status!.nodes.map((n) => n.name)))].sort();
  for (const p of peers) {
    const views = answered.filter((a) => a.node !== p).map((a) => ({ from: a.node, state: a.status!.nodes.find((n) => n.name === p)?.state ?? 'unknown' }));
    const up = views.filter((v) => v.state === 'up').map((v) => v.from);
    const notUp = views.filter((v) => v.state !== 'up');
    if (up.length > 0 && notUp.length > 0) out.push(`VIEWS DIFFER on ${p}: up for ${up.join(', ')}; ${notUp.map((v) => `${v.state} for ${v.from}`).join(', ')} (a partition?)`);
  }
  return out;
}

/** Where each hierarchy runs, by each node's own word. */
export function judge(answers: NodeAnswer[]): ClusterVerdict {
  const names = [...new Set(answers.flatMap((a) => a.status?.hierarchies.map((h) => h.name) ?? []))].sort();
  const silent = answers.filter((a) => !a.status).map((a) => a.node);
  const hierarchies = names.map((name) => {
    const inServiceOn = answers.filter((a) => a.status?.hierarchies.find((h) => h.name === name)?.phase === 'in-service').map((a) => a.node);
    const unknown = silent.length ? ` (no answer from ${silent.join(', ')})` : '';
    const verdict =
      inServiceOn.length > 1 ? `IN SERVICE ON ${inServiceOn.join(' AND ')}` : inServiceOn.length === 1 ? `in service on ${inServiceOn[0]}${unknown}` : `not in service on any node that answered${unknown}`;
    return { name, inServiceOn, verdict };
  });
  const diverged = divergences(answers);
  return { ok: silent.length === 0 && hierarchies.every((h) => h.inServiceOn.length <= 1) && diverged.length === 0, hierarchies, divergences: diverged };
}

export function formatClusterStatus(answers: NodeAnswer[], v: ClusterVerdict = judge(answers)): string {
  const out: string[] = [];
  out.push('NODES (each one\'s own view of its peers)');
  for (const a of answers) {
    if (!a.status) {
      out.push(`  ${a.node}: ${a.unusable ? 'UNUSABLE ANSWER' : 'NO ANSWER'} — ${a.error ?? 'unknown error'}`);
      continue;
    }
    const peers = a.status.nodes.filter((n) => !n.self).map((n) => `${n.name} ${n.state}${n.suspect && n.state === 'up' ? ' (suspect)' : ''}`);
    out.push(`  ${a.node} (via ${a.via}): sees ${peers.join(', ') || 'no peers'}${a.status.shuttingDown ? `; SHUTTING DOWN (${a.status.shuttingDown})` : ''}`);
    // Admin settings as this node has them (an earlier release sends none).
    const settings = (a.status.nodes ?? []).flatMap((n) => Object.entries(n.admin ?? {}).map(([k, v]) => `node ${n.name} ${k.toUpperCase()} (by ${v.by}${v.at ? ` at ${new Date(v.at).toISOString()}` : ''})`));
    for (const h of a.status.hierarchies) for (const [k, v] of Object.entries(h.admin ?? {})) settings.push(`${h.name} ${k === 'move' ? `moved to ${v.value}` : k.toUpperCase()} (by ${v.by}${v.at ? ` at ${new Date(v.at).toISOString()}` : ''})`);
    if (settings.length) out.push(`    admin: ${settings.join('; ')}`);
  }
  out.push('');
  out.push('HIERARCHIES (by each node\'s own word)');
  for (const h of v.hierarchies) {
    const phases = answers.filter((a) => a.status).map((a) => `${a.node}: ${a.status?.hierarchies.find((x) => x.name === h.name)?.phase ?? '-'}`);
    out.push(`  ${h.name}: ${h.verdict}   [${phases.join(', ')}]`);
  }
  for (const d of v.divergences) out.push(`  ${d}`);
  out.push('');
  out.push(v.ok ? 'cluster: every node answered; no hierarchy runs twice; configurations and views agree' : 'cluster: NOT OK (see above)');
  // Line by line: names, states and error texts all come from the nodes.
  return out.map(printable).join('\n');
}
