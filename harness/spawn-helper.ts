// The agent spawner's process (harness/agent-spawner.ts starts it): forks the agents for the
// daemon, which only sends it a message per run.
//
// Why a process of its own: a fork costs in proportion to the forking process's memory, and Node
// forks synchronously in the calling thread. The daemon (200-300 MiB at hundreds of hierarchies)
// spent 3-6 ms of its loop per agent; this process is a fraction of that size, and its forks
// block only itself. It keeps no state beyond the runs in flight, so the daemon simply starts a
// new one if it dies.
//
// Messages in: {t:'spawn', id, file, args, env, deadline} and {t:'close', id} (the daemon stopped
// reading: close our ends of the pipes, as the runner does for a direct spawn). Out: spawned (pid
// and start time), data, end, exit, error (not started: the spawn failed or came too late).
import { spawn, type ChildProcess } from 'node:child_process';
import { monotonicMs, startTimeOf } from '../agents/procgroup.ts';

/** Output forwarded per stream of one run; the runner keeps 1 MiB, and the rest is counted only. */
const MAX_FORWARD_BYTES = 2 << 20;

type Request = { t: 'spawn'; id: number; file: string; args: string[]; env: Record<string, string>; deadline: number } | { t: 'close'; id: number };

const runs = new Map<number, ChildProcess>();

function send(m: object): void {
  // The daemon is gone: nothing to report to, and 'disconnect' ends this process.
  if (process.connected) process.send!(m);
}

function start(m: Extract<Request, { t: 'spawn' }>): void {
  // Queued here past its timeout: the runner has given up on it, so it must not start now.
  if (monotonicMs() > m.deadline) {
    send({ t: 'error', id: m.id, message: 'not started: its timeout passed while it waited for the agent spawner', code: 'ETIMEDOUT' });
    return;
  }
  let child: ChildProcess;
  try {
    child = spawn(m.file, m.args, { env: m.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: '/' });
  } catch (e) {
    send({ t: 'error', id: m.id, message: e instanceof Error ? e.message : String(e), code: (e as NodeJS.ErrnoException).code });
    return;
  }
  runs.set(m.id, child);
  // Read before this loop can reap it: the process is ours until then.
  if (child.pid !== undefined) send({ t: 'spawned', id: m.id, pid: child.pid, startTime: startTimeOf(child.pid) });
  for (const [fd, stream] of [[1, child.stdout], [2, child.stderr]] as const) {
    let forwarded = 0;
    let dropped = 0;
    stream?.on('data', (chunk: Buffer) => {
      const room = MAX_FORWARD_BYTES - forwarded;
      if (room <= 0) {
        dropped += chunk.length;
        return;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      dropped += chunk.length - part.length;
      forwarded += part.length;
      send({ t: 'data', id: m.id, fd, data: part });
    });
    stream?.once('end', () => send({ t: 'end', id: m.id, fd, dropped }));
    stream?.on('error', () => undefined); // EPIPE and the like after a close: the exit says what matters
  }
  child.once('error', (e: NodeJS.ErrnoException) => {
    // Before the fork (ENOENT, EACCES...) there is no exit to wait for.
    if (child.pid !== undefined) return;
    runs.delete(m.id);
    send({ t: 'error', id: m.id, message: e.message, code: e.code });
  });
  child.once('exit', (code, signal) => send({ t: 'exit', id: m.id, code, signal }));
  child.once('close', () => runs.delete(m.id));
}

process.on('message', (m: Request) => {
  if (m.t === 'spawn') start(m);
  else if (m.t === 'close') {
    const child = runs.get(m.id);
    runs.delete(m.id);
    child?.stdout?.destroy();
    child?.stderr?.destroy();
  }
});
// The daemon's own signals are not ours: a Ctrl-C on `harness start --foreground` reaches the
// whole group, and the daemon's graceful stops that follow need this process (it is in a session
// of its own too, as the guard is). It ends when the daemon does: the channel closes.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.on(sig, () => undefined);
process.on('disconnect', () => process.exit(0));
