// Starting a process at a higher nice value than the daemon's without a nice(1) exec.
//
// The daemon runs boosted (harness/node.ts) and an agent must never run a single instruction at
// that priority. On Linux the nice value belongs to the thread, a forked child starts with its
// parent thread's, and Node forks inside spawn(), synchronously, on the calling thread. So the
// calling thread takes the child's nice value for the fork and goes straight back: the child is
// born at it, and the exec of nice(1) per agent is saved. Where the thread may not change its
// nice value, nice(1) does it as before.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** spawn(file, args, opts) with the child at nice value `nice` (undefined or not above ours: inherited). Throws as spawn does. */
export function spawnNiced(file: string, args: readonly string[], opts: SpawnOptions, nice: number | undefined): ChildProcess {
  const own = getPriority();
  if (nice === undefined || nice <= own) return spawn(file, args, opts);
  try {
    setPriority(nice);
  } catch {
    // nice(1) would turn a missing or non-executable file into exit 126/127: fail as spawn would.
    accessSync(file, fsConstants.X_OK);
    return spawn('nice', ['-n', String(nice - own), file, ...args], opts);
  }
  try {
    return spawn(file, args, opts);
  } finally {
    restore(own);
  }
}

function restore(own: number): void {
  try {
    setPriority(own);
  } catch (e) {
    // Not expected: a daemon that lowered its own nice value at start may raise it again. Say so
    // rather than lose the child just spawned.
    process.emitWarning(`could not restore the daemon's nice value ${own} after spawning an agent: ${(e as Error).message}`);
  }
}
