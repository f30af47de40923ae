// Runs one action of an OCF resource agent the way agents expect it (OCF 1.1 environment, see
// shared field notes §1) and turns whatever happens into a RunResult. Never throws for an
// agent's failure: the daemon must keep running whatever an agent does.
//
// Three things real agents do that a naive runner gets wrong:
//  - they hang: a timeout must end the agent AND everything it forked, so the agent runs as
//    the leader of its own process group (session) and the whole group is signalled;
//  - `start` forks a daemon that inherits the agent's stdout/stderr: waiting for EOF on the
//    pipes would wait for the daemon to exit. We resolve when the agent process itself exits,
//    read what is already in the pipes for a short drain, then close our ends (as Pacemaker
//    does; a daemon that keeps writing to them gets EPIPE, which agents already avoid);
//  - they parse `ocf_is_probe` from CRM_meta_interval, size waits from CRM_meta_timeout and
//    log to syslog unless told otherwise: we set all of it explicitly.

import { spawn } from 'node:child_process';
import { spawnTurn } from '../harness/spawn-turn.ts';
import { agentSpawner } from '../harness/agent-spawner.ts';
import { accessSync, constants as fsConstants, mkdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { DEFAULTS } from '../harness/defaults.ts';
import type { AgentRef } from './locate.ts';
import { groupAlive, signalGroup } from './procgroup.ts';

export type OcfResult =
  | 'success'
  | 'error'
  | 'bad-args'
  | 'unimplemented'
  | 'no-privilege'
  | 'not-installed'
  | 'not-configured'
  | 'not-running'
  | 'running-promoted'
  | 'failed-promoted'
  | 'degraded'
  | 'degraded-promoted'
  | 'timeout'
  | 'spawn-failed'
  | 'unknown';

export interface RunRequest {
  agent: AgentRef;
  /** start|stop|monitor|meta-data|validate-all|... (the agent's only argument). */
  action: string;
  /** OCF_RESOURCE_INSTANCE. */
  instance: string;
  /** Passed as OCF_RESKEY_<name> in the environment only, never through a shell. */
  params: Record<string, string>;
  /** Operation timeout; also CRM_meta_timeout (ms). */
  timeoutMs: number;
  /** CRM_meta_interval in ms: the recurring monitor's interval, 0 (default) for a one-off probe. */
  intervalMs?: number;
  /** OCF_CHECK_LEVEL (monitor depth: 0, 10, 20). */
  depth?: number;
  /** CRM_meta_on_node. */
  nodeName: string;
  /** OCF_ROOT. */
  ocfRoot: string;
  /** HA_RSCTMP (default /run/resource-agents); created if missing. */
  rscTmp?: string;
  /** SIGTERM -> SIGKILL grace on timeout (default DEFAULTS.killGraceMs). */
  killGraceMs?: number;
  /** Applied last: may override anything above (e.g. a PATH with helper shims). */
  extraEnv?: Record<string, string>;
}

export interface RunResult {
  action: string;
  /** Exit status, null when the agent was killed by a signal or never ran. */
  rc: number | null;
  result: OcfResult;
  /** Last `ocf-exit-reason:` line of stderr (or why the agent could not be run at all). */
  exitReason?: string;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  /** Signal that ended the agent, if any. */
  signal?: string;
  /** The agent's pid, which is also its process group and session id (what it forked stays in them unless it calls setsid). */
  pid?: number;
}

export const DEFAULT_RSCTMP = '/run/resource-agents';
export const EXIT_REASON_PREFIX = 'ocf-exit-reason:';

/**
 * After the agent exits, we keep reading its pipes until they close, but not for a child it left
 * holding them (IPaddr2's background ARP sender: before the quiet rule, 200 ms more on every start
 * before anything above the VIP could start). A child of our own: what it wrote before exiting was
 * in the pipe before its exit was reported, and the loop reads every readable pipe in the poll
 * phase after that report, so DRAIN_TURNS turns of the loop take it all (a 20 ms quiet period
 * here was 20 ms on every hierarchy's critical path). A run relayed by the agent spawner: its
 * output and its exit come as separate messages, so until the pipes were quiet for
 * DRAIN_QUIET_MS, never longer than DRAIN_MS.
 */
const DRAIN_TURNS = 2;
const DRAIN_MS = 200;
const DRAIN_QUIET_MS = 20;
/**
 * Nice value for agents, set by a daemon that raised its own priority (harness/node.ts): agents
 * must not inherit it, or the daemon's edge over them is gone. Undefined: leave as inherited.
 */
let agentNice: number | undefined;
export function setAgentNice(nice: number | undefined): void {
  agentNice = nice;
}
/** How much nicer than the daemon other helpers it runs must be (alert agents): 0 when not boosted. */
export function agentNiceIncrement(): number {
  return agentNice === undefined ? 0 : Math.max(0, agentNice - getPriority());
}

/**
 * Fork monitors (recurring and probes) through the agent spawner (harness/spawn-helper.ts) rather
 * than from this process once it is larger than `aboveRssMiB` (DEFAULTS.spawnerAboveRssMiB says
 * why): the daemon turns it on, where a fork of its own large heap cost its loop 3-6 ms per
 * agent, and monitors are nearly all of an idle daemon's forks and of a cold start's. Only
 * monitors: they change nothing, so the spawner's own failures (it dies, it stalls) can cost at
 * most a spurious monitor failure or a probe retried; a start or a stop, whose outcome says what
 * runs where, is forked here. A one-shot command (agent-test) forks directly.
 */
let spawnerAboveRss: number | undefined;
export function useAgentSpawner(on: boolean, aboveRssMiB: number = DEFAULTS.spawnerAboveRssMiB): void {
  spawnerAboveRss = on ? aboveRssMiB * 2 ** 20 : undefined;
}

/** What the runner uses of a child process: a ChildProcess, or a run of the agent spawner. */
interface AgentProcess {
  pid?: number | undefined;
  /** The spawner's run: resolves once it is known whether the agent started (pid set, or 'error'). */
  known?: () => Promise<void>;
  stdout: Readable | null;
  stderr: Readable | null;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
}

/** After SIGKILL, how long we wait for the group leader to be reaped before giving up on it. */
const REAP_MS = 1_000;
/** How often the group is checked for survivors during the kill grace. */
const GROUP_POLL_MS = 50;
/** After SIGKILL: how often to look whether the group is gone (it takes a few ms). */
const KILLED_POLL_MS = 5;
/** Output kept per stream (meta-data of the largest stock agents is ~60 KiB). */
const MAX_CAPTURE_BYTES = 1 << 20;

// OCF 1.1 exit codes.
const RC_RESULT: ReadonlyMap<number, OcfResult> = new Map<number, OcfResult>([
  [0, 'success'],
  [1, 'error'],
  [2, 'bad-args'],
  [3, 'unimplemented'],
  [4, 'no-privilege'],
  [5, 'not-installed'],
  [6, 'not-configured'],
  [7, 'not-running'],
  [8, 'running-promoted'],
  [9, 'failed-promoted'],
  [190, 'degraded'],
  [191, 'degraded-promoted'],
]);

/** OCF result of an exit status (codes outside OCF 1.1 are 'unknown'). */
export function resultOfRc(rc: number): OcfResult {
  return RC_RESULT.get(rc) ?? 'unknown';
}

/**
 * The resource is active and healthy enough to count as running: success, degraded and the
 * promoted variants. 'failed-promoted' is active but failed: it needs recovery, so it is not
 * "running" here (and not stopped either: it must still be stopped).
 */
export function isRunning(r: RunResult): boolean {
  return r.result === 'success' || r.result === 'degraded' || r.result === 'running-promoted' || r.result === 'degraded-promoted';
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ACTION_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

function requestProblem(req: RunRequest): string | undefined {
  if (!ACTION_NAME.test(req.action)) return `invalid action ${JSON.stringify(req.action)}`;
  if (!req.instance) return 'empty resource instance name';
  if (!Number.isFinite(req.timeoutMs) || req.timeoutMs <= 0) return `invalid timeout ${req.timeoutMs} ms`;
  for (const [name, value] of Object.entries(req.params)) {
    // Agents read parameters as shell variables: a name that is not an identifier cannot be read.
    if (!PARAM_NAME.test(name)) return `invalid parameter name ${JSON.stringify(name)} (letters, digits and '_' only)`;
    if (value.includes('\0')) return `parameter ${name} contains a NUL byte`;
  }
  return undefined;
}

/** Keep the daemon's PATH (it may hold shims) and make sure the system directories are there. */
function agentPath(inherited: string | undefined): string {
  const parts = (inherited ?? '').split(':').filter((p) => p !== '');
  for (const sys of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (!parts.includes(sys)) parts.push(sys);
  return parts.join(':');
}

export function buildAgentEnv(req: RunRequest): Record<string, string> {
  const env: Record<string, string> = {
    PATH: agentPath(process.env.PATH),
    HOME: process.env.HOME ?? '/',
    // Agents parse the output of system tools; keep it untranslated.
    LANG: 'C',
    OCF_ROOT: req.ocfRoot,
    OCF_FUNCTIONS_DIR: `${req.ocfRoot}/lib/heartbeat`,
    OCF_RA_VERSION_MAJOR: '1',
    OCF_RA_VERSION_MINOR: '1',
    OCF_RESOURCE_INSTANCE: req.instance,
    OCF_RESOURCE_TYPE: req.agent.type,
    OCF_RESOURCE_PROVIDER: req.agent.provider,
    OCF_CHECK_LEVEL: String(req.depth ?? 0),
    OCF_EXIT_REASON_PREFIX: EXIT_REASON_PREFIX,
    // ocf-shellfuncs turns "none" into "no syslog"; with no HA_LOGFILE and no tty it then logs
    // to stderr, which we capture and log. HA_debug=0 keeps ocf_log debug quiet.
    HA_LOGFACILITY: 'none',
    HA_debug: '0',
    HA_RSCTMP: req.rscTmp ?? DEFAULT_RSCTMP,
  };
  for (const [name, value] of Object.entries(req.params)) env[`OCF_RESKEY_${name}`] = value;
  // Set after the parameters so a parameter can never masquerade as a meta attribute.
  env.OCF_RESKEY_CRM_meta_timeout = String(Math.round(req.timeoutMs));
  env.OCF_RESKEY_CRM_meta_interval = String(Math.round(req.intervalMs ?? 0));
  env.OCF_RESKEY_CRM_meta_on_node = req.nodeName;
  env.OCF_RESKEY_CRM_meta_name = req.action;
  return { ...env, ...req.extraEnv };
}

/** Collects one output stream: bounded text, complete lines to the log, exit reasons. */
class StreamCapture {
  private readonly decoder = new StringDecoder('utf8');
  private text = '';
  private dropped = 0;
  private partial = '';
  exitReason: string | undefined;
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.onLine = onLine;
  }

  push(chunk: Buffer): void {
    this.add(this.decoder.write(chunk));
  }

  finish(): string {
    this.add(this.decoder.end());
    if (this.partial !== '') this.line(this.partial);
    this.partial = '';
    return this.dropped > 0 ? `${this.text}\n[harness: ${this.dropped} more characters not kept]` : this.text;
  }

  private add(s: string): void {
    if (s === '') return;
    const room = MAX_CAPTURE_BYTES - this.text.length;
    if (room >= s.length) this.text += s;
    else {
      this.text += s.slice(0, Math.max(0, room));
      this.dropped += s.length - Math.max(0, room);
    }
    const lines = (this.partial + s).split('\n');
    this.partial = lines.pop() ?? '';
    // An endless line must not grow without bound either.
    if (this.partial.length > MAX_CAPTURE_BYTES) this.partial = this.partial.slice(0, MAX_CAPTURE_BYTES);
    for (const l of lines) this.line(l);
  }

  private line(l: string): void {
    const line = l.endsWith('\r') ? l.slice(0, -1) : l;
    if (line.startsWith(EXIT_REASON_PREFIX)) {
      const reason = line.slice(EXIT_REASON_PREFIX.length).trim();
      if (reason !== '') this.exitReason = reason;
    }
    this.onLine(line);
  }
}

type Exit = { code: number | null; signal: NodeJS.Signals | null } | { spawnError: Error };

/** Resolves with `p`'s value, or undefined after `ms` (the timer never outlives the race). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((resolve) => {
    // setTimeout fires at once beyond 2^31-1 ms: clamp (24.8 days is "forever" for an agent).
    timer = setTimeout(resolve, Math.min(Math.max(0, ms), 2 ** 31 - 1), undefined);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function streamDone(s: Readable | null): Promise<void> {
  if (!s || s.readableEnded || s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}

/** Until both streams end, or the output is all read (see DRAIN_TURNS): `relayed` for the spawner's runs. */
async function drain(streams: (Readable | null)[], lastDataAt: () => number, relayed: boolean): Promise<void> {
  let ended = false;
  const done = Promise.all(streams.map(streamDone)).then(() => {
    ended = true;
  });
  if (!relayed) {
    for (let i = 0; i < DRAIN_TURNS && !ended; i++) await Promise.race([done, new Promise<void>((r) => setImmediate(r))]);
    return;
  }
  const deadline = performance.now() + DRAIN_MS;
  // Always wait one quiet period from now: the 'exit' message may come before the last 'data'.
  const quietFrom = performance.now();
  while (!ended) {
    const now = performance.now();
    const wait = Math.min(DRAIN_QUIET_MS - (now - Math.max(quietFrom, lastDataAt())), deadline - now);
    if (wait <= 0) return;
    await within(done, wait);
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function runAgent(req: RunRequest, log?: Logger): Promise<RunResult> {
  const t0 = performance.now();
  const failed = (why: string, result: OcfResult = 'spawn-failed'): RunResult => {
    log?.error({ instance: req.instance, action: req.action, agent: req.agent.path }, `cannot run agent: ${why}`);
    return {
      action: req.action,
      rc: null,
      result,
      exitReason: why,
      stdout: '',
      stderr: '',
      durationMs: performance.now() - t0,
      timedOut: false,
    };
  };

  const problem = requestProblem(req);
  if (problem) return failed(`${req.agent.path} ${req.action} (${req.instance}): ${problem}`);
  const rscTmp = req.rscTmp ?? DEFAULT_RSCTMP;
  try {
    // Synchronous, as the access() check below: one local syscall each, where a thread-pool round
    // trip per agent cost more CPU (and a wake-up of a pool thread) in a takeover's burst.
    mkdirSync(rscTmp, { recursive: true });
  } catch (e) {
    return failed(`cannot create HA_RSCTMP ${rscTmp}: ${errorMessage(e)}`);
  }

  const fields = { instance: req.instance, action: req.action };
  const out = new StreamCapture((line) => log?.debug({ ...fields, stream: 'stdout' }, line));
  const err = new StreamCapture((line) => log?.debug({ ...fields, stream: 'stderr' }, line));
  let lastDataAt = performance.now();

  let child: AgentProcess;
  const spawner = spawnerAboveRss !== undefined && req.action === 'monitor' && process.memoryUsage.rss() > spawnerAboveRss;
  // A fork here blocks the loop: one per turn, so timers run between two (spawn-turn.ts).
  if (!spawner) await spawnTurn();
  // Through nice(1), so the agent never runs a single instruction at the daemon's boosted priority.
  const inc = agentNice === undefined ? 0 : agentNice - getPriority();
  const [file, args] = inc > 0 ? ['nice', ['-n', String(inc), req.agent.path, req.action]] : [req.agent.path, [req.action]];
  if (inc > 0) {
    // nice(1) would turn a missing or non-executable agent into exit 126/127: say it as a direct spawn would.
    try {
      accessSync(req.agent.path, fsConstants.X_OK);
    } catch (e) {
      return failed(`${req.agent.path}: ${errorMessage(e)}`);
    }
  }
  try {
    // Only this environment: the daemon's (HA_LOGFILE, OCF_* of a shell...) must not leak in.
    const env = buildAgentEnv(req);
    // node:child_process directly, not execa: execa's own setup cost ~0.7 ms of the daemon's CPU
    // per spawn on top of the fork, and none of its features is used here. The spawner forks the
    // same way (spawn-helper.ts).
    child = spawner
      ? agentSpawner().spawn(file, args, env, req.timeoutMs)
      : spawn(file, args, {
          env,
          stdio: ['ignore', 'pipe', 'pipe'], // we read the pipes ourselves and do not wait for EOF, see the header
          detached: true, // setsid(): the agent leads its own process group, which we kill on timeout
          cwd: '/',
        });
  } catch (e) {
    return failed(`${req.agent.path}: ${errorMessage(e)}`);
  }

  child.stdout?.on('data', (c: Buffer) => {
    lastDataAt = performance.now();
    out.push(c);
  });
  child.stderr?.on('data', (c: Buffer) => {
    lastDataAt = performance.now();
    err.push(c);
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (e) => {
      // Before spawn (ENOENT, EACCES, ENOEXEC) there will be no 'exit': report it.
      if (child.pid === undefined) resolve({ spawnError: e });
    });
  });

  let exit: Exit | undefined = await within(exited, req.timeoutMs);
  if (exit === undefined && child.pid === undefined && child.known) {
    // Through the spawner the pid comes in a message: until it has, whether the agent started is
    // not known, and a run must not be given up as not started while it may run.
    await child.known();
    if (child.pid === undefined) exit = await exited; // the spawner said it never started
  }
  let timedOut = false;
  const pgid = child.pid;
  if (exit === undefined && pgid !== undefined) {
    timedOut = true;
    const grace = req.killGraceMs ?? DEFAULTS.killGraceMs;
    log?.warn({ ...fields, agent: req.agent.path, timeoutMs: req.timeoutMs }, 'agent timed out: SIGTERM to its process group');
    signalGroup(pgid, 'SIGTERM');
    const deadline = performance.now() + grace;
    exit = await within(exited, grace);
    // The leader may be gone while its children linger: give them the rest of the grace.
    while (groupAlive(pgid) && performance.now() < deadline) {
      await sleep(GROUP_POLL_MS);
    }
    if (exit === undefined || groupAlive(pgid)) {
      log?.warn({ ...fields, graceMs: grace }, 'agent process group still alive after grace: SIGKILL');
      signalGroup(pgid, 'SIGKILL');
      const reapBy = performance.now() + REAP_MS;
      exit ??= await within(exited, REAP_MS);
      // Its other members take a moment to die too: the run ends with the group gone (the drain
      // below no longer waits on the pipes they held).
      while (groupAlive(pgid) && performance.now() < reapBy) await sleep(KILLED_POLL_MS);
    }
  }

  // Short drain: take what the agent wrote before exiting, then stop listening.
  await drain([child.stdout, child.stderr], () => lastDataAt, spawner);
  child.stdout?.destroy();
  child.stderr?.destroy();
  const stdout = out.finish();
  const stderr = err.finish();
  const durationMs = performance.now() - t0;

  if (exit !== undefined && 'spawnError' in exit) {
    return { ...failed(`${req.agent.path}: ${errorMessage(exit.spawnError)}`), stdout, stderr, durationMs };
  }
  const rc = exit?.code ?? null;
  const signal = exit?.signal ?? undefined;
  let result: OcfResult;
  if (timedOut) result = 'timeout';
  else if (rc !== null) result = resultOfRc(rc);
  else result = 'error'; // killed by a signal nobody here sent: a crash
  const r: RunResult = { action: req.action, rc, result, stdout, stderr, durationMs, timedOut };
  const reason = err.exitReason;
  if (reason !== undefined) r.exitReason = reason;
  if (signal !== undefined) r.signal = signal;
  if (pgid !== undefined) r.pid = pgid;
  log?.debug({ ...fields, rc, result, durationMs: Math.round(durationMs), exitReason: reason }, 'agent finished');
  return r;
}
