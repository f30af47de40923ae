// The "never two writers" check of the daemon tests: every ~200 ms, ask every node whether it
// claims H (in service, ownership owned or being re-verified) and try one O_DIRECT write through its path to H's disk. A sample where
// two nodes both claim H and both can write is a split brain.
//
// A node that does not answer (frozen by SIGSTOP, or too slow under emulation) keeps its last
// answer: a frozen holder still believes it runs H, and that is exactly the node whose writes
// must be refused once someone else took over.
import { NODE_NAMES } from './bed.ts';
import type { NodeName } from './bed.ts';
import { canWrite, claims, sleep } from './daemons.ts';
import type { ScsiCluster } from './daemons.ts';

export interface SampleReport {
  samples: number;
  /** Samples where two or more nodes claimed H AND could write: must be empty. */
  violations: string[];
  /** Most nodes that claimed H at once (a fenced node may claim it for a moment, unable to write). */
  maxClaims: number;
}

export function sampleWriters(c: ScsiCluster, h: string, everyMs = 200): { finish: () => Promise<SampleReport> } {
  const last = new Map<NodeName, boolean>();
  const report: SampleReport = { samples: 0, violations: [], maxClaims: 0 };
  let stop = false;
  const done = (async () => {
    while (!stop) {
      const t0 = Date.now();
      const rows = await Promise.all(
        NODE_NAMES.map(async (n) => {
          const [st, w] = await Promise.all([c.hierarchy(n, h, 400), canWrite(c.dev(n))]);
          if (st !== null) last.set(n, claims(st));
          return { node: n, claims: last.get(n) ?? false, answered: st !== null, writes: w };
        }),
      );
      report.samples++;
      const claiming = rows.filter((r) => r.claims);
      report.maxClaims = Math.max(report.maxClaims, claiming.length);
      const both = claiming.filter((r) => r.writes);
      if (both.length > 1) {
        report.violations.push(`${new Date(t0).toISOString().slice(11, 23)}: ${rows.map((r) => `${r.node} claims=${r.claims}${r.answered ? '' : ' (last known)'} writes=${r.writes}`).join(', ')}`);
      }
      await sleep(Math.max(0, everyMs - (Date.now() - t0)));
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return report;
    },
  };
}
