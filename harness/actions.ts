// Executes the resource side of the reducer's effects: probe, start, stop, restart of resources
// through their OCF agents. Ownership is not touched here (node.ts does that), and nothing is
// decided here: every outcome is returned as data and fed back to the reducer as an event.
import type { HierarchyConfig, ResourceConfig } from '../hierarchies/model.ts';
import type { ResourceState } from './decide.ts';
import type { AgentRef } from '../agents/locate.ts';
import { runAgent, isRunning, type RunResult } from '../agents/runner.ts';
import { tapOnly } from './log.ts';
import { DEFAULTS } from './defaults.ts';
import type { Logger } from './log.ts';
import type { EarlyValidations } from './early-validate.ts';

export interface ResourceInfo {
  lastAction?: string;
  lastResult?: string;
  exitReason?: string;
  lastDurationMs?: number;
}

export interface AgentContext {
  node: string;
  ocfRoot: string;
  rscTmp: string;
  log: Logger;
  agents: Map<string, AgentRef>; // key `${hierarchy}/${resource}`
  info: Map<string, ResourceInfo>;
  /** validate-all run ahead of a takeover (early-validate.ts); a start uses one that passed. */
  early?: EarlyValidations;
}

export function instanceName(h: HierarchyConfig, r: ResourceConfig): string {
  return `${h.name}.${r.name}`;
}

/** The timeout of an operation when neither the YAML nor the agent's meta-data gives one. */
export function defaultOpTimeoutMs(action: string): number {
  return action === 'start' ? DEFAULTS.startTimeoutMs : action === 'stop' ? DEFAULTS.stopTimeoutMs : DEFAULTS.monitorTimeoutMs;
}

export async function runOp(
  ctx: AgentContext,
  h: HierarchyConfig,
  r: ResourceConfig,
  action: 'start' | 'stop' | 'monitor' | 'validate-all',
  opts: { intervalMs?: number; depth?: number; timeoutMs?: number; early?: boolean } = {},
): Promise<RunResult> {
  const agent = ctx.agents.get(`${h.name}/${r.name}`);
  if (!agent) throw new Error(`${h.name}/${r.name}: no agent resolved (configuration bug)`);
  const timeoutMs =
    opts.timeoutMs ??
    (action === 'start' ? r.timeouts.startMs : action === 'stop' ? r.timeouts.stopMs : r.timeouts.monitorMs) ??
    defaultOpTimeoutMs(action);
  const result = await runAgent(
    {
      agent,
      action,
      instance: instanceName(h, r),
      params: r.params,
      timeoutMs,
      intervalMs: opts.intervalMs ?? 0,
      depth: opts.depth ?? 0,
      nodeName: ctx.node,
      ocfRoot: ctx.ocfRoot,
      rscTmp: ctx.rscTmp,
    },
    ctx.log,
  );
  const key = `${h.name}/${r.name}`;
  const info: ResourceInfo = ctx.info.get(key) ?? {};
  // Recurring monitors that succeed are not interesting enough to overwrite a start/stop record,
  // nor is a validate-all ahead of a takeover that may never come (early-validate.ts).
  if (!(action === 'monitor' && (opts.intervalMs ?? 0) > 0 && isRunning(result)) && !opts.early) {
    info.lastAction = action;
    info.lastResult = result.result;
    info.exitReason = result.exitReason;
    info.lastDurationMs = result.durationMs;
    ctx.info.set(key, info);
  }
  // Starts and stops at info (alerts, metrics and the history observe them); monitors that find
  // what they expect at debug.
  const level = result.result !== 'success' && !(action === 'monitor' && result.result === 'not-running') ? 'warn' : action === 'monitor' ? 'debug' : 'info';
  const fields = { event: `agent-${action}`, hierarchy: h.name, resource: r.name, result: result.result, rc: result.rc, exitReason: result.exitReason, durationMs: result.durationMs, timedOut: result.timedOut, intervalMs: opts.intervalMs ?? 0, ...(opts.early ? { early: true } : {}) };
  const msg = `${h.name}/${r.name}: ${action} -> ${result.result}${result.exitReason ? ` (${result.exitReason})` : ''}`;
  // Every operation reaches the observers (metrics time routine monitors too), logged or not.
  if (ctx.log.isLevelEnabled(level)) ctx.log[level](fields, msg);
  else tapOnly(ctx.log, level, fields, msg);
  return result;
}

function resourceOf(h: HierarchyConfig, name: string): ResourceConfig {
  const r = h.resources.find((x) => x.name === name);
  if (!r) throw new Error(`${h.name}: unknown resource ${name}`);
  return r;
}

/**
 * OCF hard errors (Pacemaker's "hard" class): invalid arguments (2), unimplemented (3), not
 * enough privileges (4), not installed (5). They say this node cannot run the resource, so
 * restarting it here is pointless: the node becomes ineligible for the hierarchy (it fails over).
 */
export function isHardError(r: RunResult): boolean {
  return r.result === 'bad-args' || r.result === 'unimplemented' || r.result === 'no-privilege' || r.result === 'not-installed';
}

/** Probe every agent resource (monitor, interval 0) so a running resource is found, not started twice. */
export async function probe(ctx: AgentContext, h: HierarchyConfig): Promise<{ resources: Record<string, ResourceState>; cannotRun: string | null; fatal: string | null }> {
  const rt: { resources: Record<string, ResourceState>; cannotRun: string | null; fatal: string | null } = { resources: {}, cannotRun: null, fatal: null };
  await Promise.all(
    h.resources.map(async (r) => {
      if (r.kind === 'disk') {
        rt.resources[r.name] = 'stopped';
        return;
      }
      const res = await runOp(ctx, h, r, 'monitor', { intervalMs: 0 });
      if (isHardError(res) || res.result === 'not-configured') {
        // OCF: on a probe, hard errors and 6 mean "cannot be running here": not a failure to
        // clean up with a stop (which would fail the same way and leave H FAILED, blocking every
        // peer). 2-5: this node cannot run it (ineligible here); 6: the configuration itself is
        // wrong, on every node (fatal: blocked cluster-wide until an admin fixes it).
        rt.resources[r.name] = 'stopped';
        const why = `${r.name}: ${res.result} (rc ${res.rc}${res.exitReason ? `: ${res.exitReason}` : ''})`;
        if (res.result === 'not-configured') rt.fatal = why;
        else rt.cannotRun = why;
        return;
      }
      rt.resources[r.name] = isRunning(res) ? 'running' : res.result === 'not-running' ? 'stopped' : 'failed';
    }),
  );
  return rt;
}

export interface WalkResult {
  failed?: string;
  reason?: string;
  /** The failed resource answered OCF_ERR_CONFIGURED (6): fatal, on every node. */
  fatal?: boolean;
  /** The failed resource answered a hard error (OCF 2, 3, 4, 5): it cannot run on this node. */
  hard?: boolean;
  /** Wall time spent waiting for agents (levels run one after another). */
  agentMs: number;
}

/**
 * Walk levels in order, each level's resources in parallel, and stop at the first level with a
 * failure: nothing above a failed start may start, nothing below a failed stop may stop.
 * Disk resources have no agent: ownership is handled by the caller, so they just change state.
 */
async function walkLevels(
  ctx: AgentContext,
  h: HierarchyConfig,
  resources: Record<string, ResourceState>,
  levels: string[][],
  action: 'start' | 'stop',
  timeoutMs?: number,
): Promise<WalkResult> {
  const done = action === 'start' ? 'running' : 'stopped';
  const broken = action === 'start' ? 'failed' : 'stop-failed';
  let agentMs = 0;
  for (const level of levels) {
    const t0 = performance.now();
    const results = await Promise.all(
      level.map(async (name) => {
        const r = resourceOf(h, name);
        if (r.kind === 'disk') {
          resources[name] = done;
          return { name, ok: true, fatal: false, reason: '' };
        }
        // OCF: validate-all before every start; a failing one blocks the start with its exit reason.
        const checked = action === 'start' ? await validateBeforeStart(ctx, h, r) : undefined;
        const res = checked ?? (await runOp(ctx, h, r, action, timeoutMs ? { timeoutMs } : {}));
        const ok = res.result === 'success';
        resources[name] = ok ? done : broken;
        return { name, ok, fatal: res.result === 'not-configured', hard: isHardError(res), reason: `${checked ? 'validate-all: ' : ''}${res.result}${res.exitReason ? `: ${res.exitReason}` : ''}` };
      }),
    );
    agentMs += performance.now() - t0;
    const bad = results.find((x) => !x.ok);
    if (bad) return { failed: bad.name, reason: bad.reason, agentMs, ...(bad.fatal ? { fatal: true } : {}), ...(bad.hard ? { hard: true } : {}) };
  }
  return { agentMs };
}

/**
 * The agent's validate-all, run before its start: undefined when it passed (rc 0) or the agent
 * does not implement it (rc 3), else its failed result, which then stands for the start's (rc 6
 * is fatal as from a start). Its timeout is the monitor's: the meta-data's validate-all entry
 * is not kept, and both are quick checks. One that passed ahead of a takeover stands for it
 * (early-validate.ts).
 */
async function validateBeforeStart(ctx: AgentContext, h: HierarchyConfig, r: ResourceConfig): Promise<RunResult | undefined> {
  const early = (await ctx.early?.take(h, r)) ?? null;
  if (early) ctx.log.info({ event: 'validate-early-used', hierarchy: h.name, resource: r.name, result: early.result }, `${h.name}/${r.name}: validate-all run while the holder was suspect stands for the start's (${early.result})`);
  const res = early ?? (await runOp(ctx, h, r, 'validate-all'));
  return res.result === 'success' || res.result === 'unimplemented' ? undefined : res;
}

/** Start levels in order (children first), each level's resources in parallel. */
export function startLevels(ctx: AgentContext, h: HierarchyConfig, resources: Record<string, ResourceState>, levels: string[][]): Promise<WalkResult> {
  return walkLevels(ctx, h, resources, levels, 'start');
}

/** Stop levels in order (already reversed by the core). A failed stop ends the walk: nothing below it may stop. */
export function stopLevels(ctx: AgentContext, h: HierarchyConfig, resources: Record<string, ResourceState>, levels: string[][], timeoutMs?: number): Promise<WalkResult> {
  return walkLevels(ctx, h, resources, levels, 'stop', timeoutMs);
}
