// Signalling and watching a whole process group (an agent run as the leader of its own group,
// plus whatever it forked). Used to end a timed-out agent *and* its children.

import { readdirSync, readFileSync } from 'node:fs';

/** Send `signal` to every process of group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false; // never -0 / -1: that would hit far more than the group
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nobody left (EPERM cannot happen for our own children)
  }
}

/**
 * The fields of /proc/<pid>/stat after the command name (0: state, 2: process group, 19: start
 * time; 3: session), or null when the process is gone. The name may hold spaces and ')': split after the last.
 */
export function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * True while some process of group `pgid` is still alive. Zombies do not count: in containers
 * PID 1 often never reaps orphans, and a `kill(-pgid, 0)` would report their corpses as alive
 * forever. Reads /proc; without /proc falls back to kill(0), which may over-report.
 */
export function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return signalGroup(pgid, 0);
  }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue; // only numeric entries are processes
    const fields = statFields(e); // null: exited while we looked
    if (fields && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Process state letter from /proc (R, S, D, Z, ...), or null when the process is gone. */
export function processState(pid: number): string | null {
  return statFields(pid)?.[0] ?? null;
}

/** Field 22 of /proc/<pid>/stat (start time): with the pid, it names one process for its whole life, where the pid alone is reused. */
export function startTimeOf(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Is the process that had this pid and start time still there (and not a zombie)? */
export function sameProcessAlive(pid: number, startTime: string): boolean {
  const f = statFields(pid);
  return f !== null && f[0] !== 'Z' && f[0] !== 'X' && f[19] === startTime;
}

/** CLOCK_MONOTONIC in ms: one clock for every process of the machine (deadlines handed between processes). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/**
 * The group leaders (pid = process group) whose environment sets `name` to one of `values`: an
 * agent tagged at its spawn, found again when whoever forked it could not say its pid. Zombies
 * do not count. What the agent forked carries the tag too; a daemon it started with setsid even
 * leads a group of its own, but started later: of several, the earliest is the agent.
 */
export function leadersByEnv(name: string, values: ReadonlySet<string>): Map<string, number> {
  const found = new Map<string, number>();
  const since = new Map<string, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const fields = statFields(e);
    if (!fields || fields[2] !== e || fields[0] === 'Z' || fields[0] === 'X') continue;
    try {
      for (const kv of readFileSync(`/proc/${e}/environ`, 'latin1').split('\0')) {
        const v = kv.slice(name.length + 1);
        if (!kv.startsWith(`${name}=`) || !values.has(v)) continue;
        const start = Number(fields[19]);
        if (!(start >= (since.get(v) ?? Infinity))) {
          found.set(v, Number(e));
          since.set(v, start);
        }
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
