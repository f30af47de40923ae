// A worker of the simulation tier: runs the seeds it is given and reports each outcome.
import { parentPort, workerData } from 'node:worker_threads';
import { runSeed } from './run-seed.ts';
import type { MutantName } from '../harness/core/mutants.ts';

const { seeds, mutant, stopAtFirst, checkScope } = workerData as { seeds: number[]; mutant: MutantName | null; stopAtFirst: boolean; checkScope: boolean };
for (const seed of seeds) {
  const r = await runSeed(seed, { mutant, checkScope });
  parentPort!.postMessage({ seed, violations: r.violations, faults: r.faults, branches: r.branches, overlaps: r.overlaps, steps: r.steps, nodes: r.nodes });
  if (stopAtFirst && r.violations.length > 0) break;
}
parentPort!.postMessage({ done: true });
