// Nice values are per thread on Linux, and setpriority(2) on the daemon's pid moves only its main
// thread: V8's helper threads (garbage collection, the optimizing compilers), started with the
// process, kept the old value, and the main thread waits on them (the end of a garbage
// collection, the memory-map lock every fork takes). Threads started later inherit the main
// thread's value.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { statFields } from '../agents/procgroup.ts';

/** Set every other thread of this process to `nice`; returns how many could not be (gone, or no permission). */
export function setOtherThreadsNice(nice: number): { threads: number; failed: number } {
  let threads = 0;
  let failed = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    if (Number(tid) === process.pid) continue;
    threads++;
    try {
      setPriority(Number(tid), nice);
    } catch {
      failed++;
    }
  }
  return { threads, failed };
}

/**
 * With the kernel's autogroup scheduling on (sched(7); the default of many distributions), CPU
 * time is shared between sessions first and by nice value only within one: every agent leads its
 * own session (it is forked detached, so its process group can be killed), so the daemon's nice
 * value alone ranked it no higher than any one of them. This gives the daemon's session the same
 * nice value, when the daemon leads its session (systemd starts it so,
 * `harness start` detaches it so): a daemon run in the foreground of someone's shell must not
 * raise that whole session. Tasks in a cgroup of the cpu controller other than the root are not
 * autogrouped, and there the per-thread values apply. Returns the value read back, or a reason.
 */
export function setAutogroupNice(nice: number): number | string {
  const file = '/proc/self/autogroup';
  if (Number(statFields('self')?.[3]) !== process.pid) return 'not a session leader';
  let before: string;
  try {
    before = readFileSync(file, 'utf8');
  } catch {
    return 'no autogroup in this kernel';
  }
  if (autogroupNice(before) !== nice) writeFileSync(file, String(nice));
  return autogroupNice(readFileSync(file, 'utf8')) ?? 'unreadable';
}

/** "/autogroup-42 nice -10" -> -10. */
function autogroupNice(text: string): number | null {
  const m = / nice (-?\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}
