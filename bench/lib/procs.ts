// Reading /proc from the host: which processes belong to a node (its pid namespace), their
// command lines, memory and CPU. Plain file reads, no `ps`: cheap enough to call during a run.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** argv, split on NUL. Empty for kernel threads and zombies. */
  argv: string[];
  /** Single-letter state from /proc/<pid>/stat (R, S, T, Z...). */
  state: string;
}

function readOr(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // the process exited between listing and reading: normal
  }
}

/** Fields of /proc/<pid>/stat after the command (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | null {
  const s = readOr(`/proc/${pid}/stat`);
  if (s === null) return null;
  const close = s.lastIndexOf(')');
  return close < 0 ? null : s.slice(close + 2).trim().split(' ');
}

export function procInfo(pid: number): ProcInfo | null {
  const f = statFields(pid);
  if (!f) return null;
  const cmd = readOr(`/proc/${pid}/cmdline`) ?? '';
  return { pid, ppid: Number(f[1]), state: f[0] ?? '?', argv: cmd.split('\0').filter((a) => a.length > 0) };
}

export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

export function childrenOf(ppid: number): number[] {
  return allPids().filter((p) => statFields(p)?.[1] === String(ppid));
}

/** "pid:[4026532xyz]" style identity of a namespace of a process, or null when it is gone. */
export function nsId(pid: number, kind: 'pid' | 'net' | 'mnt'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return null;
  }
}

/**
 * Every process inside the pid namespace whose init (PID 1) has host pid `initPid`, init
 * included. Processes that only entered other namespaces of the node (an `nsenter` parent)
 * are not in it.
 */
export function processesInPidNs(initPid: number): ProcInfo[] {
  const target = nsId(initPid, 'pid');
  if (target === null) return [];
  // /proc/<pid>/ns/pid of a process is the namespace it was born in: exactly what we want.
  const out: ProcInfo[] = [];
  for (const pid of allPids()) {
    if (nsId(pid, 'pid') !== target) continue;
    const info = procInfo(pid);
    if (info) out.push(info);
  }
  return out;
}

/** Every process whose network namespace is `netId` (see nsId). */
export function processesInNetNs(netId: string): number[] {
  return allPids().filter((p) => nsId(p, 'net') === netId);
}

/** Running (a zombie is dead: on a host whose PID 1 does not reap, they linger). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** Resident set size in bytes (VmRSS), null when the process is gone. */
export function rssBytes(pid: number): number | null {
  const s = readOr(`/proc/${pid}/status`);
  const m = s ? /^VmRSS:\s+(\d+)\s+kB/m.exec(s) : null;
  return m ? Number(m[1]) * 1024 : null;
}

/** Voluntary context switches of a process's main thread (its wake-ups), null when it is gone. */
export function voluntarySwitches(pid: number): number | null {
  const s = readOr(`/proc/${pid}/status`);
  const m = s ? /^voluntary_ctxt_switches:\s+(\d+)/m.exec(s) : null;
  return m ? Number(m[1]) : null;
}

/** CPU time in clock ticks: own (utime+stime) and of reaped children (cutime+cstime). */
export function cpuTicks(pid: number): { self: number; children: number } | null {
  const f = statFields(pid);
  if (!f) return null;
  // After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
  return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
}

/**
 * CPU time of a process in nanoseconds, exact: the sum of its threads' on-CPU time from
 * /proc/<pid>/task/<tid>/schedstat. utime/stime are sampled at the scheduler tick, too coarse
 * for an idle daemon that runs in bursts of tens of microseconds. Null when unavailable.
 */
export function cpuNs(pid: number): number | null {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* thread exited meanwhile */
      }
    }
    return Number.isFinite(total) ? total : null;
  } catch {
    return null;
  }
}

/** USER_HZ: always 100 on Linux/x86 and arm64 for /proc/<pid>/stat. */
export const CLOCK_TICKS_PER_S = 100;

/** Send a signal, ignoring processes that already exited. Returns whether it was delivered. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** CPU time the whole machine spent busy (everything but idle and iowait), ms, from /proc/stat. */
export function machineBusyMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is counted in user)
  const total = cpu.slice(0, 8).reduce((s, x) => s + x, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return ((total - idle) * 1000) / CLOCK_TICKS_PER_S;
}
