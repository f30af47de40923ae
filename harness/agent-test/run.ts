// `harness agent test`: an OCF conformance test of one agent on this machine, run exactly as the
// daemon runs agents (agents/runner.ts: same environment, process groups, kill at the timeout;
// timeouts from the agent's meta-data, else harness/defaults.ts). Each check is pass / warn /
// fail / skip with its evidence (command, rc, duration, output excerpts).
import { hostname } from 'node:os';
import type { AgentRef } from '../../agents/locate.ts';
import { defaultTimeoutMs, parseMetadata, runMetadataAction } from '../../agents/metadata.ts';
import type { AgentMetadata } from '../../agents/metadata.ts';
import { DEFAULT_RSCTMP, EXIT_REASON_PREFIX, runAgent } from '../../agents/runner.ts';
import type { RunRequest, RunResult } from '../../agents/runner.ts';
import { defaultOpTimeoutMs } from '../actions.ts';
import { DEFAULTS } from '../defaults.ts';
import { findResourceProcesses, killAndWait } from './processes.ts';
import type { AgentProcess } from './processes.ts';
import { validateMetadataXml } from './schema.ts';

export type Verdict = 'pass' | 'warn' | 'fail' | 'skip';

export interface Evidence {
  command: string;
  rc: number | null;
  result: string;
  durationMs: number;
  timeoutMs: number;
  exitReason?: string;
  stdout?: string;
  stderr?: string;
}

export interface Check {
  name: string;
  verdict: Verdict;
  summary: string;
  evidence: Evidence[];
}

export interface AgentTestOptions {
  agent: AgentRef;
  params: Record<string, string>;
  ocfRoot: string;
  /** Monitor depths to test: 'all' advertised ones, or one depth (default 0). */
  depth: 'all' | number;
  /** Kill the resource's processes after a start: monitor must notice. */
  kill: boolean;
  instance?: string;
  rscTmp?: string;
  nodeName?: string;
  /** OCF schema directory (tests point it elsewhere). */
  schemaDir?: string;
  /** A configured resource's own timeouts (ms), which win over the meta-data's. */
  timeouts?: { start?: number | undefined; stop?: number | undefined; monitor?: number | undefined };
}

export interface AgentTestReport {
  agent: string;
  path: string;
  instance: string;
  params: Record<string, string>;
  ok: boolean;
  counts: Record<Verdict, number>;
  durationMs: number;
  checks: Check[];
  /** Processes of the test instance still running at the end, which the tester killed. */
  cleanedUp: AgentProcess[];
}

/** The action no agent implements: it must answer OCF_ERR_UNIMPLEMENTED (3). */
export const UNKNOWN_ACTION = 'harness-no-such-action';
/** How long processes may take to disappear after a successful stop (they may be exiting). */
const LEFTOVER_GRACE_MS = 2_000;
const EXCERPT_CHARS = 600;
/** --kill: the processes a start leaves must stay unchanged this long to count as the resource's. */
const SETTLE_QUIET_MS = 500;
const SETTLE_MAX_MS = 5_000;

function excerpt(s: string): string | undefined {
  const t = s.trim();
  if (t === '') return undefined;
  return t.length > EXCERPT_CHARS ? `…${t.slice(-EXCERPT_CHARS)}` : t;
}

function rcText(r: RunResult): string {
  return r.timedOut ? `timed out after ${Math.round(r.durationMs)} ms` : r.rc === null ? r.result : `rc ${r.rc} (${r.result})`;
}

export async function testAgent(o: AgentTestOptions): Promise<AgentTestReport> {
  const t0 = performance.now();
  const instance = o.instance ?? `agent-test-${process.pid}`;
  const nodeName = o.nodeName ?? hostname();
  const rscTmp = o.rscTmp ?? process.env.HA_RSCTMP ?? DEFAULT_RSCTMP;
  const checks: Check[] = [];
  const runs: { r: RunResult; ev: Evidence; action: string }[] = [];
  const pgids = new Set<number>();
  let meta: AgentMetadata | undefined;

  const add = (name: string, verdict: Verdict, summary: string, evidence: Evidence[] = []): Check => {
    const c = { name, verdict, summary, evidence };
    checks.push(c);
    return c;
  };
  const record = (r: RunResult, command: string, timeoutMs: number, action: string): Evidence => {
    const ev: Evidence = { command, rc: r.rc, result: r.result, durationMs: Math.round(r.durationMs), timeoutMs };
    if (r.exitReason !== undefined) ev.exitReason = r.exitReason;
    const out = excerpt(r.stdout);
    const err = excerpt(r.stderr);
    if (out !== undefined) ev.stdout = out;
    if (err !== undefined) ev.stderr = err;
    if (r.pid !== undefined) pgids.add(r.pid);
    runs.push({ r, ev, action });
    return ev;
  };
  // As the daemon: the resource's YAML timeouts (--resource), else the meta-data's, else the defaults.
  const monitorDepthTimeout = (action: string, depth: number): number =>
    o.timeouts?.[action as 'start' | 'stop' | 'monitor'] ?? (meta ? defaultTimeoutMs(meta, action, depth) : undefined) ?? defaultOpTimeoutMs(action);
  /** One action, as the daemon runs it. */
  const op = async (
    action: string,
    opts: { intervalMs?: number; depth?: number; params?: Record<string, string> } = {},
  ): Promise<{ r: RunResult; ev: Evidence }> => {
    const timeoutMs = monitorDepthTimeout(action, opts.depth ?? 0);
    const req: RunRequest = {
      agent: o.agent,
      action,
      instance,
      params: opts.params ?? o.params,
      timeoutMs,
      intervalMs: opts.intervalMs ?? 0,
      depth: opts.depth ?? 0,
      nodeName,
      ocfRoot: o.ocfRoot,
      rscTmp,
    };
    const r = await runAgent(req);
    const how = action === 'monitor' ? ` (${(opts.intervalMs ?? 0) === 0 ? 'probe, interval 0' : `interval ${opts.intervalMs} ms`}, OCF_CHECK_LEVEL=${opts.depth ?? 0})` : '';
    return { r, ev: record(r, `${o.agent.path} ${action}${how}`, timeoutMs, action) };
  };
  const expect = async (name: string, action: string, want: number[], what: string, opts: Parameters<typeof op>[1] = {}): Promise<boolean> => {
    const { r, ev } = await op(action, opts);
    const ok = r.rc !== null && !r.timedOut && want.includes(r.rc);
    add(name, ok ? 'pass' : 'fail', `${what}: expected rc ${want.join(' or ')}, got ${rcText(r)}`, [ev]);
    return ok;
  };

  // 1. meta-data: runs, parses, validates against the OCF schema.
  const md = await runMetadataAction(o.agent, { ocfRoot: o.ocfRoot, nodeName });
  const mdEv = record(md, `${o.agent.path} meta-data`, 0, 'meta-data');
  if (md.result !== 'success') add('meta-data', 'fail', `meta-data must exit 0, got ${rcText(md)}`, [mdEv]);
  else {
    try {
      meta = parseMetadata(md.stdout, `${o.agent.path} meta-data`);
      add('meta-data', 'pass', `well-formed; agent ${meta.name}${meta.version ? ` ${meta.version}` : ''}, ${meta.parameters.length} parameters, ${meta.actions.length} actions`, [mdEv]);
    } catch (e) {
      add('meta-data', 'fail', (e as Error).message, [mdEv]);
    }
    const v = await validateMetadataXml(md.stdout, o.schemaDir);
    if (v.ok === 'unavailable') add('meta-data-schema', 'warn', `not checked: ${v.why}`);
    else if (v.ok) add('meta-data-schema', 'pass', `valid against ${v.schemas.join(' and ')}`);
    else add('meta-data-schema', 'fail', `not valid against ${v.schemas.join(' and ')}:\n${v.errors}`);
  }

  // 2. advertised actions.
  const advertised = new Set(meta?.actions.map((a) => a.name) ?? []);
  if (meta) {
    const missing = ['start', 'stop', 'monitor', 'meta-data'].filter((a) => !advertised.has(a));
    const noTimeout = ['start', 'stop', 'monitor'].filter((a) => advertised.has(a) && defaultTimeoutMs(meta as AgentMetadata, a) === undefined);
    const others = [...advertised].filter((a) => !['start', 'stop', 'monitor', 'meta-data', 'validate-all'].includes(a));
    const notes = [
      others.length ? `not exercised by harness: ${others.join(', ')}` : '',
      noTimeout.length ? `no advised timeout for ${noTimeout.join(', ')}: harness uses its default ${DEFAULTS.startTimeoutMs / 1000} s` : '',
    ].filter((s) => s !== '');
    if (missing.length) add('actions', 'fail', `meta-data does not advertise ${missing.join(', ')} (OCF requires start, stop, monitor, meta-data)`);
    else if (!advertised.has('validate-all')) add('actions', 'warn', ['validate-all is not advertised: harness cannot check the configuration before a start', ...notes].join('; '));
    else add('actions', noTimeout.length ? 'warn' : 'pass', ['start, stop, monitor, meta-data, validate-all advertised', ...notes].join('; '));
  } else add('actions', 'skip', 'no usable meta-data');

  // 3. validate-all with the given parameters, then without each required one.
  const va = await op('validate-all');
  let lifecycleBlocked: string | undefined;
  if (va.r.rc === 0) add('validate-all', 'pass', 'validate-all: rc 0 with the given parameters', [va.ev]);
  else if (va.r.rc === 3 && !advertised.has('validate-all')) add('validate-all', 'warn', 'validate-all is not implemented (rc 3)', [va.ev]);
  else {
    add('validate-all', 'fail', `validate-all: expected rc 0, got ${rcText(va.r)}${va.r.rc === 2 || va.r.rc === 6 ? ' (pass the parameters it needs with -p name=value)' : ''}`, [va.ev]);
    if (va.r.rc === 2 || va.r.rc === 5 || va.r.rc === 6) lifecycleBlocked = `validate-all failed with ${rcText(va.r)}`;
  }
  const required = meta?.parameters.filter((p) => p.required) ?? [];
  if (required.length === 0) add('required-params', 'skip', 'the agent declares no required parameter');
  else if (va.r.rc === 3) add('required-params', 'skip', 'validate-all is not implemented: cannot check without starting');
  else {
    const evs: Evidence[] = [];
    const lax: string[] = [];
    for (const p of required) {
      const params = { ...o.params };
      delete params[p.name];
      const { r, ev } = await op('validate-all', { params });
      ev.command = `${ev.command} (without ${p.name})`;
      evs.push(ev);
      if (r.rc !== 2 && r.rc !== 6) lax.push(`${p.name}: ${rcText(r)}`);
    }
    add('required-params', lax.length ? 'fail' : 'pass', lax.length ? `a missing required parameter must give rc 6 or 2: ${lax.join('; ')}` : `each of ${required.map((p) => p.name).join(', ')} missing → rc 6 or 2`, evs);
  }

  // 4. the life cycle.
  const depths = ((): number[] => {
    if (o.depth !== 'all') return [o.depth];
    const ds = new Set<number>([0]);
    for (const a of meta?.actions ?? []) if (a.name === 'monitor' && a.depth !== undefined) ds.add(a.depth);
    return [...ds].sort((a, b) => a - b);
  })();
  const intervalOf = (depth: number): number =>
    meta?.actions.find((a) => a.name === 'monitor' && (a.depth ?? 0) === depth && a.intervalMs)?.intervalMs ?? DEFAULTS.monitorIntervalMs;
  const lifecycle = ['probe-stopped', 'monitor-stopped', 'start', 'start-again', 'monitor-running', 'probe-running', 'stop', 'stop-again', 'monitor-after-stop', 'probe-after-stop', 'leftovers'];
  const skipRest = (from: string, why: string): void => {
    for (const name of lifecycle.slice(lifecycle.indexOf(from))) add(name, 'skip', why);
  };
  const waitLeftovers = async (): Promise<AgentProcess[]> => {
    const deadline = performance.now() + LEFTOVER_GRACE_MS;
    for (;;) {
      const left = findResourceProcesses(instance, pgids);
      if (left.length === 0 || performance.now() >= deadline) return left;
      await new Promise((res) => setTimeout(res, 50));
    }
  };

  if (lifecycleBlocked) skipRest('probe-stopped', `not run: ${lifecycleBlocked}`);
  else {
    const probe = await op('monitor', { intervalMs: 0 });
    const probeOk = probe.r.rc === 7;
    add('probe-stopped', probeOk ? 'pass' : 'fail', `probe (interval 0) of a stopped resource: expected rc 7, got ${rcText(probe.r)}${probe.r.rc === 0 ? ' — it is already running here: stop it, or use another --instance' : ''}`, [probe.ev]);
    if (probe.r.rc === 0 || probe.r.rc === 5) skipRest('monitor-stopped', probe.r.rc === 0 ? 'not run: the resource was already running' : 'not run: the agent cannot run on this node (rc 5)');
    else {
      await expect('monitor-stopped', 'monitor', [7], 'monitor of a stopped resource', { intervalMs: intervalOf(0) });
      const started = await expect('start', 'start', [0], 'start');
      if (!started) {
        skipRest('start-again', 'not run: start failed');
        await op('stop'); // clean up whatever a failed start left
      } else {
        await expect('start-again', 'start', [0], 'start of a running resource (idempotent)');
        const evs: Evidence[] = [];
        const bad: string[] = [];
        for (const depth of depths) {
          const { r, ev } = await op('monitor', { intervalMs: intervalOf(depth), depth });
          evs.push(ev);
          if (r.rc !== 0) bad.push(`depth ${depth}: ${rcText(r)}`);
        }
        add('monitor-running', bad.length ? 'fail' : 'pass', bad.length ? `monitor of a running resource must give rc 0: ${bad.join('; ')}` : `rc 0 at depth ${depths.join(', ')}`, evs);
        await expect('probe-running', 'monitor', [0], 'probe (interval 0) of a running resource', { intervalMs: 0 });
        const stopped = await expect('stop', 'stop', [0], 'stop');
        await expect('stop-again', 'stop', [0], 'stop of a stopped resource (idempotent)');
        await expect('monitor-after-stop', 'monitor', [7], 'monitor after stop', { intervalMs: intervalOf(0) });
        await expect('probe-after-stop', 'monitor', [7], 'probe (interval 0) after stop', { intervalMs: 0 });
        if (!stopped) add('leftovers', 'skip', 'not run: stop failed');
        else {
          const left = await waitLeftovers();
          add('leftovers', left.length ? 'fail' : 'pass', left.length ? `still running ${LEFTOVER_GRACE_MS} ms after a successful stop: ${left.map((p) => `pid ${p.pid} ${p.cmd}`).join('; ')}` : 'no process of the resource left after stop');
        }
      }
    }
  }

  // 5. optional: kill the resource's processes; monitor must notice.
  if (o.kill) {
    if (lifecycleBlocked || checks.find((c) => c.name === 'stop')?.verdict !== 'pass') add('kill', 'skip', 'not run: the life cycle did not get through start and stop');
    else {
      const start = await op('start');
      const victims = start.r.rc === 0 ? await settledProcesses(instance, pgids) : [];
      if (start.r.rc !== 0) add('kill', 'fail', `start before the kill: ${rcText(start.r)}`, [start.ev]);
      else if (victims.length === 0) add('kill', 'warn', 'the resource has no process of its own to kill: nothing to check', [start.ev]);
      else {
        await killAndWait(victims, LEFTOVER_GRACE_MS);
        const mon = await op('monitor', { intervalMs: intervalOf(0) });
        const noticed = mon.r.rc === 7 || mon.r.rc === 1;
        add('kill', noticed ? 'pass' : 'fail', `killed ${victims.map((v) => `pid ${v.pid} ${v.cmd}`).join('; ')}; monitor: expected rc 7 or 1, got ${rcText(mon.r)}`, [start.ev, mon.ev]);
      }
      await op('stop');
    }
  }

  // 6. every action within its timeout; exit reasons on stderr; unknown actions.
  const timedOut = runs.filter((x) => x.r.timedOut);
  add('timeouts', timedOut.length ? 'fail' : 'pass', timedOut.length ? `${timedOut.map((x) => `${x.action} did not finish within ${x.ev.timeoutMs} ms (killed with its process group)`).join('; ')}` : `every action finished within its timeout (longest: ${longest(runs)})`, timedOut.map((x) => x.ev));
  const unknown = await op(UNKNOWN_ACTION);
  add('unknown-action', unknown.r.rc === 3 ? 'pass' : 'fail', `an unknown action: expected rc 3, got ${rcText(unknown.r)}`, [unknown.ev]);
  const onStdout = runs.filter((x) => x.r.stdout.split('\n').some((l) => l.trimStart().startsWith(EXIT_REASON_PREFIX)));
  const silent = runs.filter((x) => x.r.rc !== null && ![0, 3, 7].includes(x.r.rc) && x.r.exitReason === undefined && x.action !== UNKNOWN_ACTION);
  if (onStdout.length) add('exit-reasons', 'fail', `"${EXIT_REASON_PREFIX}" on stdout (must be stderr: harness and Pacemaker read it there): ${onStdout.map((x) => x.action).join(', ')}`, onStdout.map((x) => x.ev));
  else if (silent.length) add('exit-reasons', 'warn', `failed without an "${EXIT_REASON_PREFIX}" line on stderr: ${silent.map((x) => `${x.action} ${rcText(x.r)}`).join(', ')}`, silent.map((x) => x.ev));
  else add('exit-reasons', 'pass', runs.some((x) => x.r.exitReason) ? 'exit reasons on stderr' : 'no failure needed an exit reason');

  // The test's own instance must not outlive it: whatever a failed stop left running is ended.
  const cleanedUp = findResourceProcesses(instance, pgids);
  await killAndWait(cleanedUp, LEFTOVER_GRACE_MS);

  const counts: Record<Verdict, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) counts[c.verdict]++;
  return {
    agent: `ocf:${o.agent.provider}:${o.agent.type}`,
    path: o.agent.path,
    instance,
    params: o.params,
    ok: counts.fail === 0,
    counts,
    durationMs: Math.round(performance.now() - t0),
    checks,
    cleanedUp,
  };
}

/**
 * The resource's own processes after a start: those that stay. A start's helpers (IPaddr2's
 * send_arp and the agent's subshell running it) exit on their own within a second or two; they
 * are not the resource, and killing them proves nothing about monitor. Waits until the set has
 * not changed for SETTLE_QUIET_MS, at most SETTLE_MAX_MS.
 */
async function settledProcesses(instance: string, pgids: ReadonlySet<number>): Promise<AgentProcess[]> {
  const key = (ps: AgentProcess[]) => ps.map((p) => p.pid).sort((a, b) => a - b).join(',');
  const deadline = performance.now() + SETTLE_MAX_MS;
  let procs = findResourceProcesses(instance, pgids);
  let since = performance.now();
  while (performance.now() - since < SETTLE_QUIET_MS && performance.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    const now = findResourceProcesses(instance, pgids);
    if (key(now) !== key(procs)) {
      procs = now;
      since = performance.now();
    }
  }
  return procs;
}

function longest(runs: { r: RunResult; action: string }[]): string {
  const top = runs.reduce<{ r: RunResult; action: string } | undefined>((a, b) => (a && a.r.durationMs >= b.r.durationMs ? a : b), undefined);
  return top ? `${top.action} ${Math.round(top.r.durationMs)} ms` : 'none';
}
