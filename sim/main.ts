// The simulation tier: `npm run test:sim [-- --seeds N | --seed N | --mutant NAME | --list-mutants]`.
//  (default)        N random schedules (default 10,000) on every core; prints how often each
//                   fault kind and decision branch was exercised, the longest excused overlaps,
//                   and last `sim: <passed> passed, <failed> failed`. Exit 1 on any violation,
//                   with the seed to replay.
//  --seed N         replay one schedule: the schedule, then its trace and violations.
//  --mutant NAME    the same run with a deliberately broken safety rule (harness/core/mutants.ts):
//                   stops at the first violation, which it must find (exit 1 = caught).
//  --list-mutants   the mutants' names, one per line and nothing else.
//  --check-scope    also run every reducer step deciding every hierarchy: a scoped step that
//                   comes out different is a failure (harness/core/scope.ts).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MUTANTS, type MutantName } from '../harness/core/mutants.ts';
import { DEFAULT_SEEDS, describeSchedule, runSeed } from './run-seed.ts';
import type { Violation } from './world.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function replay(seed: number, mutant: MutantName | null): Promise<number> {
  console.log(describeSchedule(seed).join('\n'));
  const r = await runSeed(seed, { trace: true, mutant, checkScope });
  const hs = new Set(r.violations.map((v) => /\b(h\d+)\b/.exec(v.detail)?.[1]).filter((x) => x !== undefined));
  for (const l of r.trace) {
    if (hs.size > 0 && l.node !== '*' && l.node !== '!' && ![...hs].some((h) => l.text.startsWith(`${h}:`) || l.text.startsWith(`${h}/`))) continue;
    console.log(`${(l.at / 1000).toFixed(3).padStart(8)} ${l.node.padEnd(4)} ${l.text}`);
  }
  for (const v of r.violations) console.log(`VIOLATION ${v.rule} at ${(v.at / 1000).toFixed(3)} s: ${v.detail}`);
  console.log(`sim: ${r.violations.length ? 0 : 1} passed, ${r.violations.length ? 1 : 0} failed`);
  return r.violations.length ? 1 : 0;
}

async function many(count: number, from: number, mutant: MutantName | null): Promise<number> {
  const jobs = Math.max(1, Math.min(Number(arg('--jobs') ?? availableParallelism()), count));
  const seeds = Array.from({ length: count }, (_, i) => from + i);
  const t0 = performance.now();
  const faults: Record<string, number> = {};
  const branches: Record<string, number> = {};
  const overlaps: Record<string, number> = {};
  const failed: Array<{ seed: number; v: Violation }> = [];
  let passed = 0;
  let steps = 0;
  const workers: Worker[] = [];
  await Promise.all(
    Array.from({ length: jobs }, (_, w) =>
      new Promise<void>((resolve, reject) => {
        const mine = seeds.filter((_, i) => i % jobs === w);
        const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: { seeds: mine, mutant, stopAtFirst: mutant !== null, checkScope } });
        workers.push(worker);
        worker.on('message', (m: { done?: true; seed: number; violations: Violation[]; faults: Record<string, number>; branches: Record<string, number>; overlaps: Record<string, number>; steps: number }) => {
          if (m.done) return resolve();
          for (const [k, v] of Object.entries(m.faults)) faults[k] = (faults[k] ?? 0) + v;
          for (const [k, v] of Object.entries(m.branches)) branches[k] = (branches[k] ?? 0) + v;
          for (const [k, v] of Object.entries(m.overlaps)) overlaps[k] = Math.max(overlaps[k] ?? 0, v);
          steps += m.steps;
          if (m.violations.length === 0) passed++;
          else {
            failed.push({ seed: m.seed, v: m.violations[0]! });
            console.log(`FAILED seed ${m.seed}: ${m.violations[0]!.rule} at ${(m.violations[0]!.at / 1000).toFixed(3)} s: ${m.violations[0]!.detail}`);
            console.log(`  replay: npm run test:sim -- --seed ${m.seed}${mutant ? ` --mutant ${mutant}` : ''}`);
            if (mutant) for (const x of workers) void x.terminate();
          }
        });
        worker.on('error', reject);
        worker.on('exit', () => resolve());
      }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  const table = (title: string, rec: Record<string, number>) => {
    console.log(title);
    for (const [k, v] of Object.entries(rec).sort((a, b) => b[1] - a[1])) console.log(`  ${String(v).padStart(8)}  ${k}`);
  };
  table('fault kinds exercised (times):', faults);
  table('decision branches exercised (times):', branches);
  console.log('longest excused overlap per kind, ms (I2: see the README):');
  for (const [k, v] of Object.entries(overlaps)) console.log(`  ${String(Math.round(v)).padStart(8)}  ${k}`);
  console.log(`${passed + failed.length} schedules (seeds ${from}..${from + count - 1}${mutant ? `, mutant ${mutant}` : ''}) in ${secs.toFixed(1)} s on ${jobs} workers, ${steps} reducer steps`);
  console.log(`sim: ${passed} passed, ${failed.length} failed`);
  return failed.length > 0 ? 1 : 0;
}

if (process.argv.includes('--list-mutants')) {
  process.stdout.write(Object.keys(MUTANTS).join('\n') + '\n');
  process.exit(0);
}
const mutantArg = arg('--mutant');
if (mutantArg !== undefined && !(mutantArg in MUTANTS)) {
  console.error(`unknown mutant ${JSON.stringify(mutantArg)}; --list-mutants lists them`);
  process.exit(2);
}
const mutant = (mutantArg ?? null) as MutantName | null;
const checkScope = process.argv.includes('--check-scope');
const seedArg = arg('--seed');
process.exitCode = seedArg !== undefined ? await replay(Number(seedArg), mutant) : await many(Number(arg('--seeds') ?? DEFAULT_SEEDS), Number(arg('--from') ?? 1), mutant);
