// The daemon's side of the agent spawner (harness/spawn-helper.ts says why it exists): a run
// handed to it looks to agents/runner.ts like a ChildProcess (pid, stdout, stderr, 'exit' and
// 'error'), so the runner's timeouts, process-group kills and drains stay as they are. The
// runner signals the agent's group itself: the agent leads its own session whoever forked it.
//
// One helper per daemon process, started on the first run (after the daemon set its priority,
// which the helper inherits and the runner's nice(1) wrapper counts from) and again after it
// died. Its IPC channel is unref'd: it never keeps a process alive, and it exits when the daemon
// does.
//
// The runner sends only monitors here (runner.ts says why). Until the helper says 'spawned' (with
// the pid) or 'error' (not started), whether the agent runs is unknown, and the runner waits.
// When the helper dies (settled once its channel has drained too), the runs it left unanswered
// are looked up by the tag in their environment; those found, and those it had started, are
// watched until their leader is gone, then reported with an unknown exit status; those not found
// are reported not started (one that ran and ended within SETTLE_MS is counted so too: for a
// monitor, a failure reported where there was none). A helper that answers nothing for
// ANSWER_MS while a run waits past its timeout is stuck, and killed, which comes to the same. Its
// death also ends the pipes of the agents it had started: one that writes after it dies of SIGPIPE.
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { extname } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { leadersByEnv, monotonicMs, sameProcessAlive, startTimeOf } from '../agents/procgroup.ts';

const HELPER = fileURLToPath(new URL(`./spawn-helper${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
/** The helper holds only the runs in flight: a small heap, so that its own forks stay cheap. */
const HELPER_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=128'];
/** The variable that tags each agent run (`<daemon pid>.<run id>`), so it can be found in /proc. */
export const RUN_TAG = 'HARNESS_AGENT_RUN';
/** After the helper died, a fork it had begun has certainly reached exec (and its tag) by then. */
const SETTLE_MS = 200;
/** How often an orphaned run's leader is looked at. */
const WATCH_MS = 100;
/** A helper that has not said whether it started a run this long after the run's timeout is stuck. */
const ANSWER_MS = 2_000;

type Reply =
  | { t: 'spawned'; id: number; pid: number; startTime?: string }
  | { t: 'data'; id: number; fd: 1 | 2; data: Uint8Array }
  | { t: 'end'; id: number; fd: 1 | 2; dropped: number }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'error'; id: number; message: string; code?: string };

/** One agent run through the helper: what the runner uses of a ChildProcess, and `known()`. */
export class SpawnedAgent extends EventEmitter {
  pid: number | undefined;
  startTime: string | undefined;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  /** Both streams closed: by the runner (it stopped reading) or after the agent's side ended. */
  closed = false;
  exited = false;
  /** Not started, for sure ('error' was emitted). */
  failed = false;
  private readonly answered: Promise<void>;
  private answer!: () => void;
  private readonly stuck: () => void;

  constructor(onClosed: () => void, stuck: () => void) {
    super();
    this.stuck = stuck;
    this.answered = new Promise((resolve) => (this.answer = resolve));
    let open = 2;
    for (const s of [this.stdout, this.stderr]) {
      s.once('close', () => {
        if (--open > 0) return;
        this.closed = true;
        onClosed();
      });
    }
  }

  /** Resolves once it is known whether the agent started: `pid` set, or 'error' emitted. */
  known(): Promise<void> {
    if (this.pid !== undefined || this.failed) return Promise.resolve();
    const t = setTimeout(this.stuck, ANSWER_MS);
    return this.answered.finally(() => clearTimeout(t));
  }

  started(pid: number, startTime: string | undefined): void {
    this.pid = pid;
    this.startTime = startTime;
    this.answer();
  }

  notStarted(e: Error): void {
    this.failed = true;
    this.answer();
    this.emit('error', e);
  }
}

interface Run {
  id: number;
  agent: SpawnedAgent;
  helper: ChildProcess;
  tag: string;
}

class AgentSpawner {
  private helper: ChildProcess | undefined;
  private nextId = 1;
  private readonly runs = new Map<number, Run>();
  /** When each helper was last heard from (any message). */
  private readonly heard = new WeakMap<ChildProcess, number>();

  spawn(file: string, args: string[], env: Record<string, string>, timeoutMs: number): SpawnedAgent {
    const id = this.nextId++;
    let helper: ChildProcess;
    try {
      helper = this.helper ?? this.start();
    } catch (e) {
      // No helper (fork failed: EAGAIN, EMFILE...): nothing was started, and the next run tries again.
      const agent = new SpawnedAgent(() => undefined, () => undefined);
      process.nextTick(() => agent.notStarted(new Error(`not started: cannot start the agent spawner: ${(e as Error).message}`)));
      return agent;
    }
    const tag = `${process.pid}.${id}`;
    const agent = new SpawnedAgent(
      () => {
        this.settle(id);
        if (helper.connected) helper.send({ t: 'close', id });
      },
      () => {
        // Stuck, not merely busy: nothing heard from it for as long.
        if (this.helper === helper && performance.now() - (this.heard.get(helper) ?? 0) >= ANSWER_MS) helper.kill('SIGKILL');
      },
    );
    this.runs.set(id, { id, agent, helper, tag });
    // A failed send means a dying helper: its 'exit' settles the run.
    helper.send({ t: 'spawn', id, file, args, env: { ...env, [RUN_TAG]: tag }, deadline: monotonicMs() + timeoutMs }, () => undefined);
    return agent;
  }

  private start(): ChildProcess {
    // Detached, as the guard: signals to the daemon's process group (a Ctrl-C) are not for it.
    const helper = fork(HELPER, [], { execArgv: HELPER_NODE_FLAGS, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
    helper.on('error', () => undefined); // a failed send is settled by 'exit'; a failed fork, below
    if (helper.pid === undefined || typeof helper.send !== 'function') {
      if (helper.pid !== undefined) helper.kill('SIGKILL');
      throw new Error(helper.pid === undefined ? 'fork failed' : 'no IPC channel');
    }
    this.heard.set(helper, performance.now());
    helper.on('message', (m: Reply) => {
      this.heard.set(helper, performance.now());
      this.reply(m);
    });
    // Settled once it is dead and its channel drained: messages it sent before dying come first.
    let ends = 0;
    let how = '';
    const end = (): void => {
      if (++ends === 2) this.lost(helper, how);
    };
    helper.once('exit', (code, signal) => {
      how = signal ?? `code ${code}`;
      end();
    });
    helper.once('disconnect', end);
    helper.unref();
    (helper.channel as { unref?: () => void } | undefined)?.unref?.();
    this.helper = helper;
    return helper;
  }

  /** The helper died: settle every run it had, from what /proc still shows. */
  private lost(helper: ChildProcess, how: string): void {
    if (this.helper === helper) this.helper = undefined;
    helper.removeAllListeners('message');
    const mine = [...this.runs.entries()].filter(([, r]) => r.helper === helper);
    const why = `the agent spawner exited (${how})`;
    for (const [, r] of mine) if (r.agent.pid !== undefined && !r.agent.exited) this.orphan(r, why);
    const unanswered = mine.filter(([, r]) => r.agent.pid === undefined && !r.agent.failed);
    if (unanswered.length === 0) return;
    setTimeout(() => {
      const found = leadersByEnv(RUN_TAG, new Set(unanswered.map(([, r]) => r.tag)));
      for (const [id, r] of unanswered) {
        const pid = found.get(r.tag);
        if (pid === undefined) {
          r.agent.notStarted(new Error(`not started: ${why} before starting it`));
          this.settle(id);
          continue;
        }
        r.agent.started(pid, startTimeOf(pid));
        this.orphan(r, why);
      }
    }, SETTLE_MS).unref();
  }

  /** A run is done once the runner closed its streams and its end is known (exited, or never started): in either order. */
  private settle(id: number): void {
    const a = this.runs.get(id)?.agent;
    if (a?.closed && (a.exited || a.failed)) this.runs.delete(id);
  }

  /** A run whose helper is gone: its output is lost; it ends when its leader does, exit status unknown. */
  private orphan(r: Run, why: string): void {
    const a = r.agent;
    if (!a.stderr.writableEnded && !a.stderr.destroyed) a.stderr.end(`\n[harness: ${why} while this agent ran: its output stops here and its exit status is unknown]\n`);
    if (!a.stdout.writableEnded && !a.stdout.destroyed) a.stdout.end();
    const look = (): void => {
      if (a.startTime !== undefined && sameProcessAlive(a.pid!, a.startTime)) {
        setTimeout(look, WATCH_MS).unref();
        return;
      }
      a.exited = true;
      this.settle(r.id);
      a.emit('exit', null, null);
    };
    look();
  }

  private reply(m: Reply): void {
    const run = this.runs.get(m.id);
    if (!run) return;
    const a = run.agent;
    switch (m.t) {
      case 'spawned':
        a.started(m.pid, m.startTime);
        return;
      case 'data':
        (m.fd === 1 ? a.stdout : a.stderr).write(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        return;
      case 'end':
        (m.fd === 1 ? a.stdout : a.stderr).end(m.dropped > 0 ? `\n[harness: ${m.dropped} more bytes not read]` : undefined);
        return;
      case 'exit':
        a.exited = true;
        this.settle(m.id);
        a.emit('exit', m.code, m.signal);
        return;
      case 'error': {
        const e: NodeJS.ErrnoException = new Error(m.message);
        if (m.code !== undefined) e.code = m.code;
        a.notStarted(e);
        this.settle(m.id);
        return;
      }
    }
  }
}

let spawner: AgentSpawner | undefined;

/** The process's agent spawner, started on first use. */
export function agentSpawner(): { spawn: AgentSpawner['spawn'] } {
  spawner ??= new AgentSpawner();
  return spawner;
}
