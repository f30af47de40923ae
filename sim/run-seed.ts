// One random schedule, run and checked: the unit of the simulation tier.
import { setMutant, type MutantName } from '../harness/core/mutants.ts';
import { setScopeCheck } from '../harness/core/step.ts';
import { randomSchedule } from './schedule.ts';
import { SETTLE_WINDOW_MS, World, type RunResult } from './world.ts';
import { describeFault } from './faults.ts';


/** Schedules per run of the tier (`npm run test:sim`). */
export const DEFAULT_SEEDS = 10_000;

export async function runSeed(seed: number, opts: { mutant?: MutantName | null; trace?: boolean; checkScope?: boolean } = {}): Promise<RunResult & { nodes: number; hierarchies: number }> {
  setMutant(opts.mutant ?? null);
  setScopeCheck(opts.checkScope ?? false);
  try {
    const o = randomSchedule(seed);
    o.trace = opts.trace ?? false;
    const probe = new World({ ...o, endAt: 0 });
    o.endAt = o.quietAt + probe.recoveryBoundMs() + SETTLE_WINDOW_MS;
    const r = await new World(o).run();
    return { ...r, nodes: o.cluster.nodes.length, hierarchies: o.cluster.hierarchies.length };
  } finally {
    setMutant(null);
    setScopeCheck(false);
  }
}

/** The schedule itself, readable: what a failing seed was made of. */
export function describeSchedule(seed: number): string[] {
  const o = randomSchedule(seed);
  const lines = [
    `seed ${seed}: ${o.cluster.nodes.length} nodes (${o.cluster.paths} path${o.cluster.paths > 1 ? 's' : ''}), faults stop at ${o.quietAt} ms`,
    ...o.cluster.hierarchies.map((h) => `  ${h.name}: ${Object.entries(h.priorities).sort((a, b) => a[1] - b[1]).map(([n]) => n).join(' > ')}; ${h.resources.map((r) => r.name).join(', ')}; ${h.fenced ? 'fenced' : 'NOT fenced'}, switchback ${h.switchback}, onLoss ${h.onLoss}, probe ${h.probe}`),
    ...(o.broken?.length ? [`  broken: ${o.broken.join(', ')}`] : []),
    ...(o.notInstalled?.length ? [`  not installed: ${o.notInstalled.join(', ')}`] : []),
    ...o.timeline.map((t) => `  ${(t.at / 1000).toFixed(3)} s  ${describeFault(t.fault)}`),
  ];
  return lines;
}
