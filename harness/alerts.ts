// Alerts through Pacemaker's alert-agent interface, so an admin's existing alert scripts (and
// Debian's samples in /usr/share/pacemaker/alerts/) run unmodified: each agent is run with no
// arguments and the event in CRM_alert_* variables (field notes §6).
//
// Events come from the daemon's own log records (harness/log.ts tapLog): the same words the admin
// reads in the journal. alertOf() maps a record to an alert (pure); Alerts runs the agents: one at
// a time per agent, in event order, off the daemon's path (the tap only queues), each with its
// timeout (its process group is killed), a failure logged, a bounded queue.
import { spawn } from 'node:child_process';
import type { AlertConfig } from '../hierarchies/model.ts';
import { DEFAULTS } from './defaults.ts';
import type { Logger, LogRecord } from './log.ts';
import { tapLog } from './log.ts';
import { spawnTurn } from './spawn-turn.ts';
import { signalGroup } from '../agents/procgroup.ts';
import { agentNiceIncrement } from '../agents/runner.ts';
import { VERSION } from './version.ts';

export type AlertKind = 'node' | 'resource' | 'fencing' | 'attribute';

/** One event, as Pacemaker describes it (the variables without their CRM_alert_ prefix). */
export interface Alert {
  kind: AlertKind;
  node: string;
  desc: string;
  rsc?: string;
  task?: string;
  rc?: number;
  targetRc?: number;
  status?: number;
  interval?: number;
  execTime?: number;
  attributeName?: string;
  attributeValue?: string;
}

// Pacemaker's execution status (CRM_alert_status): done, timed out, error.
const EXEC_DONE = 0;
const EXEC_TIMEOUT = 2;
const EXEC_ERROR = 4;

const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

/**
 * The alert a log record stands for, or null. `self` is this node's name (the node an event on a
 * hierarchy or resource happened on). Resources are named as their agent sees them
 * (OCF_RESOURCE_INSTANCE: <hierarchy>.<resource>); hierarchy events use the hierarchy's name.
 */
export function alertOf(rec: LogRecord, self: string): Alert | null {
  const f = rec.fields;
  const h = str(f.hierarchy);
  const hier = (task: string, desc: string, rc = 0): Alert => ({ kind: 'resource', node: self, rsc: h, task, desc, rc, targetRc: 0, status: rc === 0 ? EXEC_DONE : EXEC_ERROR, interval: 0 });
  switch (f.event) {
    case 'node-started':
      return { kind: 'node', node: self, desc: 'member' };
    case 'node-stopped':
      return { kind: 'node', node: self, desc: 'lost' };
    case 'peer-down':
      return { kind: 'node', node: str(f.peer), desc: f.leaving ? 'lost (leaving)' : 'lost' };
    case 'peer-up':
      return { kind: 'node', node: str(f.peer), desc: 'member' };
    case 'path-down':
    case 'path-up':
      return { kind: 'attribute', node: str(f.node), desc: `path ${str(f.path)} ${f.event === 'path-up' ? 'up' : 'down'}`, attributeName: `harness-path-${str(f.path)}`, attributeValue: f.event === 'path-up' ? 'up' : 'down' };
    case 'agent-start':
    case 'agent-stop':
    case 'agent-monitor': {
      const ok = f.result === 'success';
      // A monitor that finds what it expects (running; a probe finding nothing) is no news.
      if (f.event === 'agent-monitor' && (ok || (f.result === 'not-running' && !f.intervalMs))) return null;
      const rc = typeof f.rc === 'number' ? f.rc : 1;
      return {
        kind: 'resource',
        node: self,
        rsc: `${h}.${str(f.resource)}`,
        task: str(f.event).slice('agent-'.length),
        desc: ok ? 'ok' : `${str(f.result)}${f.exitReason ? `: ${str(f.exitReason)}` : ''}`,
        rc,
        targetRc: 0,
        status: f.timedOut ? EXEC_TIMEOUT : rc === 0 || ok ? EXEC_DONE : EXEC_ERROR,
        interval: typeof f.intervalMs === 'number' ? f.intervalMs : 0,
        ...(typeof f.durationMs === 'number' ? { execTime: Math.round(f.durationMs) } : {}),
      };
    }
    case 'in-service':
      return hier('in-service', f.from ? `in service (failed over from ${str(f.from)})` : 'in service');
    case 'stopped':
      return hier('out-of-service', 'out of service');
    case 'start-failed':
    case 'stop-failed':
    case 'blocked':
    case 'leaving-failed':
      return hier('failed', `FAILED: ${rec.msg}`, 1);
    case 'fenced':
      return { kind: 'fencing', node: self, task: 'ownership-lost', rc: 0, desc: `${h}: ownership lost${f.by ? ` (fenced by ${str(f.by)})` : ''} on ${self}` };
    case 'acquired':
      return f.preempted ? { kind: 'fencing', node: self, task: 'preempt', rc: 0, desc: `${h}: ${self} preempted ${str(f.preempted)} and owns its disks` } : null;
    case 'admin': {
      // An accepted admin request (harness hierarchy … / harness node …), as the reducer logged it.
      const r = (f.request ?? {}) as { target?: string; hierarchy?: string; node?: string; action?: string; to?: string | null };
      const desc = `admin request${f.by ? ` by ${str(f.by)}` : ''}: ${str(r.action)}${r.to ? ` to ${r.to}` : ''}`;
      if (r.target === 'node') return { kind: 'node', node: str(r.node), desc };
      return { kind: 'resource', node: self, rsc: str(r.hierarchy), task: `admin-${str(r.action)}`, desc, rc: 0, targetRc: 0, status: EXEC_DONE, interval: 0 };
    }
    default:
      return null;
  }
}

/** Pacemaker's formatted timestamp (its default format: %H:%M:%S.%06N) and the rest of the environment. */
export function alertEnv(a: Alert, ctx: { recipient: string; sequence: number; at: number }): Record<string, string> {
  const d = new Date(ctx.at);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const env: Record<string, string> = {
    CRM_alert_version: VERSION,
    CRM_alert_recipient: ctx.recipient,
    CRM_alert_node_sequence: String(ctx.sequence),
    CRM_alert_timestamp: `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}000`,
    CRM_alert_timestamp_epoch: String(Math.floor(ctx.at / 1000)),
    CRM_alert_timestamp_usec: String((ctx.at % 1000) * 1000),
    CRM_alert_kind: a.kind,
    CRM_alert_node: a.node,
    CRM_alert_nodeid: a.node,
    CRM_alert_desc: a.desc,
  };
  if (a.rsc !== undefined) env.CRM_alert_rsc = a.rsc;
  if (a.task !== undefined) env.CRM_alert_task = a.task;
  if (a.rc !== undefined) env.CRM_alert_rc = String(a.rc);
  if (a.targetRc !== undefined) env.CRM_alert_target_rc = String(a.targetRc);
  if (a.status !== undefined) env.CRM_alert_status = String(a.status);
  if (a.interval !== undefined) env.CRM_alert_interval = String(a.interval);
  if (a.execTime !== undefined) env.CRM_alert_exec_time = String(a.execTime);
  if (a.attributeName !== undefined) env.CRM_alert_attribute_name = a.attributeName;
  if (a.attributeValue !== undefined) env.CRM_alert_attribute_value = a.attributeValue;
  return env;
}

interface Queued {
  env: Record<string, string>;
}

/** Runs the configured alert agents on every alert-worthy log record. */
export class Alerts {
  private readonly queues: Queued[][];
  private readonly busy: boolean[];
  private sequence = 0;
  private readonly untap: () => void;
  private readonly agents: AlertConfig[];
  private readonly self: string;
  private readonly log: Logger;

  constructor(agents: AlertConfig[], self: string, log: Logger) {
    this.agents = agents;
    this.self = self;
    this.log = log;
    this.queues = agents.map(() => []);
    this.busy = agents.map(() => false);
    this.untap = tapLog(log, (rec) => this.onRecord(rec));
  }

  private onRecord(rec: LogRecord): void {
    if (rec.fields.event === 'alert-failed' || rec.fields.event === 'alert-dropped') return;
    const a = alertOf(rec, this.self);
    if (!a) return;
    const sequence = ++this.sequence;
    this.agents.forEach((agent, i) => {
      const q = this.queues[i]!;
      if (q.length >= DEFAULTS.alertQueueMax) {
        q.shift();
        this.log.warn({ event: 'alert-dropped', alert: agent.path }, `alert ${agent.path}: queue full (${DEFAULTS.alertQueueMax}): oldest alert dropped`);
      }
      q.push({ env: alertEnv(a, { recipient: (agent.recipient ?? '').replaceAll('{node}', this.self), sequence, at: rec.at }) });
      if (!this.busy[i]) void this.drain(i);
    });
  }

  private async drain(i: number): Promise<void> {
    this.busy[i] = true;
    try {
      for (let next = this.queues[i]!.shift(); next; next = this.queues[i]!.shift()) await this.runOne(this.agents[i]!, next);
    } finally {
      this.busy[i] = false;
    }
  }

  private async runOne(agent: AlertConfig, q: Queued): Promise<void> {
    await spawnTurn();
    const t0 = performance.now();
    const inc = agentNiceIncrement();
    const [file, args] = inc > 0 ? ['nice', ['-n', String(inc), agent.path]] : [agent.path, []];
    const outcome = await new Promise<{ code: number | null; signal: string | null; timedOut: boolean; err?: string; stderr: string }>((resolve) => {
      let stderr = '';
      let timedOut = false;
      const child = spawn(file, args, { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...q.env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true, cwd: '/' });
      child.stderr?.on('data', (c: Buffer) => {
        if (stderr.length < 4096) stderr += c.toString();
      });
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) signalGroup(child.pid, 'SIGKILL');
      }, agent.timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        resolve({ code: null, signal: null, timedOut, err: e.message, stderr });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, timedOut, stderr });
      });
    });
    const ms = Math.round(performance.now() - t0);
    if (outcome.code !== 0) {
      const why = outcome.err ?? (outcome.timedOut ? `timed out after ${agent.timeoutMs} ms` : outcome.signal ? `killed by ${outcome.signal}` : `exit ${outcome.code}`);
      this.log.warn({ event: 'alert-failed', alert: agent.path, reason: why, stderr: outcome.stderr.trim() || undefined, durationMs: ms }, `alert ${agent.path} failed: ${why}`);
    }
  }

  /** No more alerts are queued; the ones running finish on their own (each has its timeout). */
  stop(): void {
    this.untap();
    for (const q of this.queues) q.length = 0;
  }
}
