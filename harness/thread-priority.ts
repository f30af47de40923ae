// Nice values are per thread on Linux, and setpriority(2) on the daemon's pid moves only its main
// thread. V8's helper threads (garbage collection, the optimizing compilers) start with the
// process and kept the old value: the main thread waits on them (the end of a garbage collection,
// the memory-map lock every fork takes) while they queued behind a takeover's agents, and a tuned
// 20-hierarchy takeover sent heartbeats up to 146 ms apart (peers found the taker suspect).
// Threads started later (libuv's pool) inherit the main thread's value.
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

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
