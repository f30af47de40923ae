// `npm run bench:local` — the core's failover benchmark on one machine (not a test): three real
// daemons on loopback (harness/local-cluster.ts), the shared-file ownership backend, Debian's
// ocf:heartbeat:Dummy (or the bundled hang agent without resource-agents).
//
//  1. RUNS x kill -9 of the master (daemon and agents): min/median/max of detection, ownership
//     race, recovery (agents' start) and harness overhead (time from detection to in-service that
//     is not spent inside agents), from the surviving node's own failover record.
//  2. 100 independent hierarchies failing over at once vs one: time until the last is back, ratio.
// Output: a table; JSON of every run in bench/results/local.json.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { LocalCluster } from '../harness/local-cluster.ts';

const RUNS = Number(process.env.RUNS ?? 10);
const MANY = Number(process.env.MANY ?? 100);
const agent = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy') ? 'ocf:heartbeat:Dummy' : 'ocf:harness:hang';

function hierarchy(name: string): string {
  return `hierarchy: ${name}
priority: { n1: 1, n2: 2, n3: 3 }
resources:
  - name: disk
    disk: { paths: [] }
  - name: app
    agent: ${agent}
    requires: [disk]
    monitor: [ { interval: 5s } ]
`;
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, median: s[Math.floor((s.length - 1) / 2)] ?? NaN, max: s[s.length - 1] ?? NaN };
}
const f = (v: number) => `${(v / 1000).toFixed(3)} s`;

interface Run {
  run: number;
  observedMs: number;
  detectMs: number;
  acquireMs: number;
  startMs: number;
  agentMs: number;
  totalMs: number;
  overheadMs: number;
}

async function killRuns(): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const c = new LocalCluster({ net: 90, hierarchies: { 'h.yaml': hierarchy('h') } });
    try {
      for (const n of c.nodes) c.start(n, { HARNESS_LOG_LEVEL: 'info' });
      await c.waitFor('h on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      c.signalNode('n1', 'SIGKILL');
      await c.waitFor('h on n2', async () => (await c.runners('h', ['n2'])).join() === 'n2', 20_000, 10);
      const observedMs = Date.now() - t0;
      const rec = (await c.status('n2')).hierarchies[0]!.lastFailover!;
      const detect = rec.detectMs ?? NaN;
      const total = rec.totalMs ?? NaN;
      const run: Run = {
        run: i,
        observedMs,
        detectMs: Math.round(detect),
        acquireMs: rec.acquireMs,
        startMs: rec.startMs,
        agentMs: rec.agentMs,
        totalMs: Math.round(total),
        overheadMs: Math.round(total - detect - rec.agentMs - rec.acquireMs),
      };
      runs.push(run);
      console.log(`run ${i}: observed ${f(observedMs)}; node record: total ${f(run.totalMs)} = detect ${f(run.detectMs)} + ownership ${f(run.acquireMs)} + agents ${f(run.agentMs)} + overhead ${run.overheadMs} ms`);
    } finally {
      await c.teardown();
    }
  }
  return runs;
}

async function many(count: number): Promise<number> {
  const hs: Record<string, string> = {};
  for (let i = 0; i < count; i++) hs[`h${String(i).padStart(3, '0')}.yaml`] = hierarchy(`h${String(i).padStart(3, '0')}`);
  const c = new LocalCluster({ net: 91, hierarchies: hs });
  try {
    for (const n of c.nodes) c.start(n, { HARNESS_LOG_LEVEL: 'info' });
    const all = async (node: string) => {
      const s = await c.tryStatus(node, 3000);
      return s !== null && s.hierarchies.every((h) => h.phase === 'in-service' && h.ownership === 'owned');
    };
    await c.waitFor(`${count} on n1`, () => all('n1'), 120_000, 200);
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    c.signalNode('n1', 'SIGKILL');
    await c.waitFor(`${count} on n2`, () => all('n2'), 120_000, 20);
    return Date.now() - t0;
  } finally {
    await c.teardown();
  }
}

console.log(`local failover benchmark: ${RUNS} x kill -9 of the master, agent ${agent}`);
const runs = await killRuns();
const table: Array<[string, number[]]> = [
  ['client-side (status poll)', runs.map((r) => r.observedMs)],
  ['total (last heard -> in service)', runs.map((r) => r.totalMs)],
  ['detection', runs.map((r) => r.detectMs)],
  ['ownership race', runs.map((r) => r.acquireMs)],
  ['recovery (agents start)', runs.map((r) => r.agentMs)],
  ['harness overhead', runs.map((r) => r.overheadMs)],
];
console.log('\nmetric                              min        median     max');
for (const [name, xs] of table) {
  const s = stats(xs);
  console.log(`${name.padEnd(34)}  ${f(s.min).padEnd(9)}  ${f(s.median).padEnd(9)}  ${f(s.max)}`);
}
const one = await many(1);
const hundred = await many(MANY);
console.log(`\n1 hierarchy failing over: ${f(one)}; ${MANY} at once: ${f(hundred)} (last one back); ratio ${(hundred / one).toFixed(2)}`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/local.json', import.meta.url), JSON.stringify({ agent, runs, one, many: { count: MANY, ms: hundred } }, null, 2));
