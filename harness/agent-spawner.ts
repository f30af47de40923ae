// The daemon's side of the agent spawner (harness/spawn-helper.ts says why it exists): a run
// handed to it looks to agents/runner.ts like a ChildProcess (pid, stdout, stderr, 'exit' and
// 'error'), so the runner's timeouts, process-group kills and drains stay as they are. The
// runner signals the agent's group itself: the agent leads its own session whoever forked it.
//
// One helper per daemon process, started on the first run (after the daemon set its priority,
// which the helper inherits and the runner's nice(1) wrapper counts from) and again after it
// died. Its IPC channel is unref'd: it never keeps a process alive, and it exits when the daemon
// does.
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { extname } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';

const HELPER = fileURLToPath(new URL(`./spawn-helper${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
/** The helper holds only the runs in flight: a small heap, so that its own forks stay cheap. */
const HELPER_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=64'];

type Reply =
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'data'; id: number; fd: 1 | 2; data: Uint8Array }
  | { t: 'end'; id: number; fd: 1 | 2; dropped: number }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'error'; id: number; message: string; code?: string };

/** One agent run through the helper: what the runner uses of a ChildProcess. */
export class SpawnedAgent extends EventEmitter {
  pid: number | undefined;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  /** Both streams closed: by the runner (it stopped reading) or after the agent's side ended. */
  closed = false;
  exited = false;

  constructor(onClosed: () => void) {
    super();
    let open = 2;
    for (const s of [this.stdout, this.stderr]) {
      s.once('close', () => {
        if (--open > 0) return;
        this.closed = true;
        onClosed();
      });
    }
  }
}

class AgentSpawner {
  private helper: ChildProcess | undefined;
  private nextId = 1;
  private readonly runs = new Map<number, SpawnedAgent>();

  spawn(file: string, args: string[], env: Record<string, string>): SpawnedAgent {
    const helper = this.helper ?? this.start();
    const id = this.nextId++;
    const run = new SpawnedAgent(() => {
      // The pipes may end before the exit is reported: the run is done when both happened.
      // A helper gone reports nothing more.
      if (run.exited || run.pid === undefined || this.helper !== helper) this.runs.delete(id);
      if (this.helper === helper && helper.connected) helper.send({ t: 'close', id });
    });
    this.runs.set(id, run);
    helper.send({ t: 'spawn', id, file, args, env }, (err) => {
      if (err) this.fail(id, `cannot hand the run to the agent spawner: ${err.message}`);
    });
    return run;
  }

  private start(): ChildProcess {
    const helper = fork(HELPER, [], { execArgv: HELPER_NODE_FLAGS, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    helper.on('message', (m: Reply) => this.reply(m));
    helper.once('exit', (code, signal) => {
      if (this.helper === helper) this.helper = undefined;
      // A run not yet forked never will be. One already forked runs on, unwatched: the runner's
      // timeout ends its group and reports it as timed out.
      for (const [id, run] of this.runs) {
        if (run.pid === undefined) this.fail(id, `the agent spawner exited (${signal ?? `code ${code}`}) before starting it`);
        else if (run.closed) this.runs.delete(id);
      }
    });
    helper.on('error', () => undefined); // a failed send says so in its callback; a dead helper, in 'exit'
    helper.unref();
    (helper.channel as { unref?: () => void } | undefined)?.unref?.();
    this.helper = helper;
    return helper;
  }

  private fail(id: number, message: string): void {
    const run = this.runs.get(id);
    if (!run || run.pid !== undefined) return;
    this.runs.delete(id);
    run.emit('error', new Error(message));
  }

  private reply(m: Reply): void {
    const run = this.runs.get(m.id);
    if (!run) return;
    switch (m.t) {
      case 'spawned':
        run.pid = m.pid;
        return;
      case 'data':
        (m.fd === 1 ? run.stdout : run.stderr).write(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        return;
      case 'end':
        (m.fd === 1 ? run.stdout : run.stderr).end(m.dropped > 0 ? `\n[harness: ${m.dropped} more bytes not read]` : undefined);
        return;
      case 'exit':
        run.exited = true;
        if (run.closed) this.runs.delete(m.id);
        run.emit('exit', m.code, m.signal);
        return;
      case 'error': {
        this.runs.delete(m.id);
        const e: NodeJS.ErrnoException = new Error(m.message);
        if (m.code !== undefined) e.code = m.code;
        run.emit('error', e);
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
