// `npm run bench` (as root): client-observed failover of the harness on a namespace cluster
// with real agents and real faults (issue #4). Builds the cluster itself, runs every fault,
// tears everything down even on failure, prints min/median/max tables and saves every run to
// bench/results/latest.json. The last line is:
//   bench power-off: median X.XXX s, max X.XXX s, n=N
//
// Options: --quick (or BENCH_QUICK=1) for a short run; --runs N power-offs per profile;
// --faults a,b; --profiles default,tuned; --beds web,many (many = 20 hierarchies); --footprint S;
// --floor N (shell-floor samples after each 20-hierarchy phase, default 3; 0 = none);
// --stress (opt-in: stress-ng in the owner, then in a standby, default profile, web bed; 2 x
// --stress-seconds, default 300: it does not fit the full run's budget; --faults none runs it alone;
// --stress-sched shipped|no-boost|rr to compare the daemons' scheduling);
// --keep (keep work dirs and node logs for a post-mortem).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Bed } from './lib/bed.ts';
import { DEFAULT_PROFILE, TUNED_PROFILE, type TimingProfile } from './lib/config.ts';
import { measureFloor, type FloorSample } from './lib/floor.ts';
import { measureFootprint, type Footprint } from './lib/footprint.ts';
import { breakdownTable, clientTable, floorLines, floorTable, footprintTable, summaryLine } from './lib/report.ts';
import { FAULTS, runFault, type FaultKind, type RunRecord } from './lib/scenario.ts';
import { applySched, runStressPhase, STRESS_SCHED, stressReport, type StressPhase, type StressSched } from './lib/stress.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results', 'latest.json');
/** The issue's budget is 15 minutes; stop starting new runs after this. */
const BUDGET_MS = 14 * 60_000;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
    runs: { type: 'string' },
    faults: { type: 'string' },
    profiles: { type: 'string', default: 'default,tuned' },
    beds: { type: 'string', default: 'web,many' },
    footprint: { type: 'string' },
    floor: { type: 'string' },
    stress: { type: 'boolean', default: false },
    'stress-seconds': { type: 'string', default: '300' },
    'stress-sched': { type: 'string', default: 'shipped' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string', default: RESULTS },
  },
});

function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

if (process.getuid?.() !== 0) fail('must run as root (it builds network, pid and mount namespaces)');
const quick = args.quick ?? false;
const powerOffRuns = args.runs !== undefined ? Number(args.runs) : quick ? 3 : 10;
if (!Number.isInteger(powerOffRuns) || powerOffRuns < 1) fail(`--runs: expected a whole number >= 1, got "${args.runs}"`);
const otherRuns = quick ? 1 : 3;
const manyRuns = quick ? 1 : 3;
const floorSamples = args.floor !== undefined ? Number(args.floor) : quick ? 1 : 3;
if (!Number.isInteger(floorSamples) || floorSamples < 0) fail(`--floor: expected a whole number >= 0, got "${args.floor}"`);
const footprintS = args.footprint !== undefined ? Number(args.footprint) : quick ? 5 : 10;
if (!(footprintS > 0)) fail(`--footprint: expected seconds > 0, got "${args.footprint}"`);
const faults = args.faults === 'none' ? [] : (args.faults ?? FAULTS.join(',')).split(',').map((f) => f.trim());
const stressS = Number(args['stress-seconds']);
const stressSched = args['stress-sched'] as StressSched;
if (!(STRESS_SCHED as readonly string[]).includes(stressSched)) fail(`--stress-sched: expected one of ${STRESS_SCHED.join(', ')}, got "${stressSched}"`);
if (!(stressS > 0)) fail(`--stress-seconds: expected seconds > 0, got "${args['stress-seconds']}"`);
for (const f of faults) if (!(FAULTS as readonly string[]).includes(f)) fail(`--faults: unknown fault "${f}" (known: ${FAULTS.join(', ')})`);
const beds = (args.beds ?? '').split(',').map((b) => b.trim());
for (const b of beds) if (b !== 'web' && b !== 'many') fail(`--beds: unknown bed "${b}" (known: web, many)`);
const profiles: TimingProfile[] = (args.profiles ?? '').split(',').map((p) => {
  if (p === 'default') return DEFAULT_PROFILE;
  if (p === 'tuned') return TUNED_PROFILE;
  return fail(`--profiles: unknown profile "${p}" (known: default, tuned)`);
});

const started = Date.now();
const doc = {
  startedAt: new Date(started).toISOString(),
  finishedAt: null as string | null,
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', kernel: release(), node: process.version },
  options: { quick, powerOffRuns, otherRuns, manyRuns, footprintS, floorSamples, faults, beds, profiles },
  method:
    'namespace cluster (3 nodes, 2 comm paths); client pings the VIP every ~9 ms (ping -D -i 0.009; the many-hierarchy bed every ~16 ms, -i 0.01, without busy-waiting) and GETs http://VIP:8080/ every 10 ms; ' +
    'watchers ping the VIP pinned to each node\'s MAC (double-VIP samples = 10 ms slots with 2+ nodes answering); times from t0 = just before the fault',
  daemon: null as string | null,
  footprint: [] as Footprint[],
  runs: [] as RunRecord[],
  skipped: [] as string[],
  /** 20 hierarchies vs 1 of the same layout, per profile (the issue's 1.3x target). */
  ratios: [] as string[],
  /** The shell floor, per profile, measured at the end of that profile's 20-hierarchy phase. */
  floors: [] as Array<{ profile: string; node: string; samples: FloorSample[] }>,
  /** Last in service = detect + race + floor + overhead, and the acceptance line, per profile. */
  floorLines: [] as string[],
  /** --stress: the no-false-failover-under-load scenario. */
  stress: [] as StressPhase[],
  stressSched: null as { mode: string; notes: string[] } | null,
};

function save(): void {
  mkdirSync(dirname(args.out ?? RESULTS), { recursive: true });
  writeFileSync(args.out ?? RESULTS, `${JSON.stringify(doc, null, 2)}\n`);
}

const fmt = (ms: number | null): string => (ms === null ? 'never' : `${(ms / 1000).toFixed(3)}s`);

function progress(r: RunRecord): void {
  const l = r.logs;
  const parts = [
    `[${r.fault}${r.bed === 'many' ? ' x20' : ''} ${r.profile} #${r.index}] ${r.owner} -> ${r.taker ?? '-'}`,
    `VIP ${fmt(r.bed === 'many' ? r.lastVipBackMs : r.vipDowntimeMs)}`,
    r.httpDowntimeMs !== null ? `HTTP ${fmt(r.httpDowntimeMs)}` : '',
    r.lastInServiceMs !== null ? `last in service ${fmt(r.lastInServiceMs)}` : '',
    l.runsElsewhereMs !== null ? `logs ${fmt(l.runsElsewhereMs)} (detect ${l.detectMs ?? '-'} race ${l.ownershipMs ?? '-'} agents ${l.agentsMs ?? '-'} overhead ${l.overheadMs ?? '-'} ms)` : '',
    `double ${r.doubleVip.samples}/${r.doubleVip.afterTakeover}`,
    r.failovers ? `failovers ${r.failovers}` : '',
    r.ok ? '' : 'FAILED',
    r.notes.join('; '),
    r.error ?? '',
    // Only when something went wrong: a failed run, or anything but the expected loss of a frozen node.
    !r.ok && r.logNotes.length ? `\n    log: ${r.logNotes.join('\n    log: ')}` : '',
  ];
  console.log(parts.filter(Boolean).join('  '));
}

interface Plan {
  fault: FaultKind;
  count: number;
}

async function phase(label: string, profile: TimingProfile, kind: 'web' | 'many', plan: Plan[], withFootprint: boolean, many?: number, floor = 0): Promise<void> {
  if (Date.now() - started > BUDGET_MS) {
    doc.skipped.push(`${label}: time budget used up`);
    return;
  }
  console.log(`\n== ${label}: building the namespace cluster (profile ${profile.name}: heartbeat ${profile.heartbeatIntervalMs} ms, dead time ${profile.deadTimeMs} ms)`);
  // HARNESS_LOG_LEVEL=debug (with --keep) records every agent call in the nodes' logs.
  const daemonEnv = process.env.HARNESS_LOG_LEVEL ? { HARNESS_LOG_LEVEL: process.env.HARNESS_LOG_LEVEL } : {};
  const bed = await Bed.create({ profile, kind, keepWorkDir: args.keep, daemonEnv, ...(many !== undefined ? { many } : {}) });
  doc.daemon = `${bed.daemon.path} (${bed.daemon.why})`;
  console.log(`daemon: ${doc.daemon}`);
  try {
    const running = await bed.settle(60_000);
    if (withFootprint) {
      // Let start-up work (module loading, first monitors) pass: the footprint is of an idle node.
      await new Promise((r) => setTimeout(r, 3000));
      console.log(`measuring footprint for ${footprintS} s (idle, ${bed.cluster.nodes.length - 1} peers each)`);
      doc.footprint = await measureFootprint(bed, footprintS, running);
      save();
    }
    for (const { fault, count } of plan) {
      for (let i = 1; i <= count; i++) {
        if (Date.now() - started > BUDGET_MS) {
          doc.skipped.push(`${label}: ${fault} #${i}..${count}: time budget used up`);
          break;
        }
        const rec = await runFault(bed, fault, i);
        doc.runs.push(rec);
        progress(rec);
        save();
      }
    }
    if (floor > 0) {
      // The floor on the node that took the hierarchies over, booted fresh with every node of the
      // bed powered off: no daemon, no probes, no resources; only the shell and its agents.
      const last = doc.runs.filter((r) => r.bed === 'many' && r.profile === profile.name && r.taker).pop();
      const node = bed.cluster.nodes.find((n) => n.name === last?.taker) ?? bed.cluster.nodes[1]!;
      for (const n of bed.cluster.nodes) {
        if (n.initPid !== null) bed.cluster.powerOff(n);
        bed.markDown(n);
      }
      await bed.cluster.reboot(node);
      const samples = await measureFloor(bed, node, floor);
      doc.floors.push({ profile: profile.name, node: node.name, samples });
      console.log(`floor on ${node.name} (plain shell, no harness): ${samples.map((x) => `start ${x.startMs.toFixed(0)} ms, stop ${x.stopMs.toFixed(0)} ms${x.failed.length ? ` FAILED ${x.failed.join(', ')}` : ''}`).join('; ')}`);
      save();
    }
  } catch (e) {
    // A cluster that cannot be brought back to a settled state ends this phase, not the bench.
    const msg = `${label}: aborted: ${(e as Error).message}`;
    console.log(msg);
    doc.skipped.push(msg);
    process.exitCode = 1;
  } finally {
    if (args.keep) console.log(`work dir kept: ${bed.cluster.workDir}`);
    bed.teardown();
  }
}

try {
  for (const profile of profiles) {
    const isDefault = profile.name === 'default';
    const plan: Plan[] = faults.map((f) => ({ fault: f as FaultKind, count: f === 'power-off' ? powerOffRuns : otherRuns }));
    // Every fault with the shipped defaults; only power-off (the headline number) when tuned.
    if (beds.includes('web') && faults.length > 0) {
      await phase(`${profile.name} profile`, profile, 'web', isDefault ? plan : plan.filter((p) => p.fault === 'power-off'), isDefault);
    }
    if (beds.includes('many') && faults.includes('power-off')) {
      // The same layout with one hierarchy first: the baseline the 20-hierarchy time is compared to.
      await phase(`1 hierarchy (baseline of 20), ${profile.name} profile`, profile, 'many', [{ fault: 'power-off', count: manyRuns }], false, 1);
      await phase(`20 hierarchies, ${profile.name} profile`, profile, 'many', [{ fault: 'power-off', count: manyRuns }], false, undefined, floorSamples);
    }
  }
  if (args.stress) {
    // Not bounded by BUDGET_MS: opt-in, and its length is the point (2 x --stress-seconds).
    console.log(`\n== stress: building the namespace cluster (web bed, profile default), stress-ng ${stressS} s in the owner, then ${stressS} s in a standby`);
    const bed = await Bed.create({ profile: DEFAULT_PROFILE, kind: 'web', keepWorkDir: args.keep });
    try {
      await bed.settle(60_000);
      doc.stressSched = { mode: stressSched, notes: applySched(bed, stressSched) };
      console.log(`daemon scheduling: ${stressSched}${doc.stressSched.notes.length ? ` (${doc.stressSched.notes.join('; ')})` : ''}`);
      for (const role of ['owner', 'standby'] as const) {
        const p = await runStressPhase(bed, role, stressS);
        doc.stress.push(p);
        console.log(`[stress ${p.node} (${role}) ${p.seconds} s] false failovers ${p.falseFailovers.length}, suspect ${p.suspects}, peer-down ${p.peerDowns}, path-down ${p.pathDowns}, freezes ${p.freezes}, longest gap ${p.maxGapMs} ms (${p.maxGapWho}); stress-ng rc ${p.stressRc}`);
        save();
      }
    } catch (e) {
      doc.skipped.push(`stress: aborted: ${(e as Error).message}`);
      process.exitCode = 1;
    } finally {
      if (args.keep) console.log(`work dir kept: ${bed.cluster.workDir}`);
      bed.teardown();
    }
  } else {
    doc.skipped.push(`stress: not run (opt-in: --stress; 2 x ${stressS} s does not fit the full run's budget)`);
  }
} catch (e) {
  console.error(`bench: ${(e as Error).stack ?? String(e)}`);
  doc.skipped.push(`aborted: ${(e as Error).message}`);
  process.exitCode = 1;
}

doc.finishedAt = new Date().toISOString();
save();
console.log(`\nClient-observed (seconds from t0 = just before the fault; ${doc.runs.length} runs, ${((Date.now() - started) / 1000).toFixed(0)} s total)`);
console.log(clientTable(doc.runs));
for (const profile of profiles) {
  const med = (bed: string, f: (r: (typeof doc.runs)[number]) => number | null) => {
    const xs = doc.runs.filter((r) => r.bed === bed && r.profile === profile.name && r.fault === 'power-off').map(f).filter((x): x is number => x !== null).sort((a, b) => a - b);
    return xs.length ? xs[Math.floor((xs.length - 1) / 2)]! : null;
  };
  const one = med('one', (r) => r.lastVipBackMs);
  const many = med('many', (r) => r.lastVipBackMs);
  const oneLog = med('one', (r) => r.lastInServiceMs);
  const manyLog = med('many', (r) => r.lastInServiceMs);
  if (one && many) {
    const line = `20 hierarchies vs 1 [${profile.name}]: last VIP back ${(many / 1000).toFixed(3)} s vs ${(one / 1000).toFixed(3)} s = ${(many / one).toFixed(2)}x` + (oneLog && manyLog ? `; last in service (logs) ${(manyLog / 1000).toFixed(3)} s vs ${(oneLog / 1000).toFixed(3)} s = ${(manyLog / oneLog).toFixed(2)}x` : '');
    console.log(line);
    doc.ratios.push(line);
    save();
  }
}
if (doc.floors.length) {
  console.log('\nShell floor: 20 hierarchies\' validate-all + start from a plain bash script, all in parallel, on the taking node booted fresh (nothing else running)');
  console.log(floorTable(doc.floors));
  doc.floorLines = floorLines(doc.runs, doc.floors);
  for (const l of doc.floorLines) console.log(l);
  save();
}
console.log('\nBreakdown from the nodes\' logs (taking node; overhead = runs elsewhere - detect - agents)');
console.log(breakdownTable(doc.runs));
if (doc.footprint.length) {
  console.log(`\nFootprint (idle, default profile; daemon ${doc.daemon})`);
  console.log(footprintTable(doc.footprint));
}
const stressLines = doc.stress.length ? stressReport(doc.stress, `${DEFAULT_PROFILE.name}, daemons ${doc.stressSched?.mode ?? 'shipped'}`) : [];
if (stressLines.length) {
  console.log(`\nStress (stress-ng ${doc.stress[0]?.stressArgv.slice(1).join(' ')}; default profile, web bed; daemons: ${doc.stressSched?.mode ?? 'shipped'})`);
  for (const l of stressLines.slice(0, -1)) console.log(l);
}
for (const s of doc.skipped) console.log(`skipped: ${s}`);
console.log(`results: ${args.out}`);
// The power-off line stays last; a stress-only run ends with the stress line.
if (stressLines.length && doc.runs.length > 0) console.log(stressLines[stressLines.length - 1]);
console.log(doc.runs.length === 0 && stressLines.length ? stressLines[stressLines.length - 1] : summaryLine(doc.runs));
