// Shared by the unit tests that run whole Comm objects over the in-memory transport with mocked
// timers (comm-memory, recv-budget): the cluster they share, a log that keeps its lines, and the
// mocked clock's step.
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { ClusterConfig } from '../../../hierarchies/model.ts';
import { commCluster } from '../../lib/comm-cluster.ts';

/** Every node on two paths (10.0.1.x and 10.0.2.x), the shipped heartbeat timings. */
export function memoryCluster(names: string[], heartbeatIntervalMs = 150, deadTimeMs = 900): ClusterConfig {
  return commCluster(names.map((name, i) => ({ name, addresses: [`10.0.1.${i + 1}:7400`, `10.0.2.${i + 1}:7400`] })), heartbeatIntervalMs, deadTimeMs);
}

/** A debug-level logger whose lines are kept, parsed. */
export function capture(): { log: pino.Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/** Move the mocked clock 1 ms at a time (`each` first); after each step every queued delivery happens. */
export async function advance(t: TestContext, ms: number, each?: () => void): Promise<void> {
  for (let i = 0; i < ms; i++) {
    each?.();
    t.mock.timers.tick(1);
    await new Promise((r) => setImmediate(r)); // real: after every microtask (deliveries)
  }
}
