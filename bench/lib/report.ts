// Text tables of a benchmark's runs: what clients saw (min / median / max), where the time went
// (from the nodes' logs), double-VIP samples and false failovers; and the footprint.
import { stats, type Stats } from './analyze.ts';
import type { Footprint } from './footprint.ts';
import { FAILOVER_FAULTS, type RunRecord } from './scenario.ts';

const s3 = (ms: number): string => (ms / 1000).toFixed(3);

function mmm(values: Array<number | null>): string {
  const st: Stats | null = stats(values.filter((v): v is number => v !== null));
  const missing = values.filter((v) => v === null).length;
  const body = st ? `${s3(st.min)} / ${s3(st.median)} / ${s3(st.max)}` : '-';
  return missing ? `${body} (${missing} never)` : body;
}

function med(values: Array<number | null>): string {
  const st = stats(values.filter((v): v is number => v !== null));
  return st ? `${Math.round(st.median)}` : '-';
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Group key: bed (web / many), profile, fault, in first-seen order. */
function groups(runs: readonly RunRecord[]): Array<{ key: string; runs: RunRecord[] }> {
  const out = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const key = `${r.fault}${r.bed === 'many' ? ' (20 hier.)' : r.bed === 'one' ? ' (1 hier.)' : ''} [${r.profile}]`;
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return [...out].map(([key, rs]) => ({ key, runs: rs }));
}

export function clientTable(runs: readonly RunRecord[]): string {
  const sum = (rs: RunRecord[], f: (r: RunRecord) => number | null): string => String(rs.reduce((s, r) => s + (f(r) ?? 0), 0));
  const rows = groups(runs).map(({ key, runs: rs }) => {
    const failover = rs.some((r) => FAILOVER_FAULTS.includes(r.fault));
    const http = rs.some((r) => r.httpFailures !== null);
    return [
      key,
      `${rs.filter((r) => r.ok).length}/${rs.length}`,
      mmm(rs.map((r) => (r.bed !== 'web' ? r.lastVipBackMs : r.vipDowntimeMs))),
      http ? mmm(rs.map((r) => r.httpDowntimeMs)) : '-',
      failover ? mmm(rs.map((r) => (r.bed !== 'web' ? r.lastInServiceMs : r.logs.runsElsewhereMs))) : '-',
      `${sum(rs, (r) => r.doubleVip.samples)} / ${sum(rs, (r) => r.doubleVip.afterTakeover)}`,
      sum(rs, (r) => r.failovers),
      http ? sum(rs, (r) => r.httpFailures) : '-',
    ];
  });
  return table(
    ['fault [profile]', 'ok/n', 'VIP answers again, s (min/med/max)', 'HTTP answers, s', 'runs elsewhere (logs), s', 'double-VIP all/after', 'failovers', 'failed GETs'],
    rows,
  );
}

export function breakdownTable(runs: readonly RunRecord[]): string {
  const rows = groups(runs)
    .filter(({ runs: rs }) => rs.some((r) => r.logs.taker !== null))
    .map(({ key, runs: rs }) => [
      key,
      med(rs.map((r) => r.logs.detectMs)),
      med(rs.map((r) => r.logs.ownershipMs)),
      med(rs.map((r) => r.logs.agentsMs)),
      med(rs.map((r) => r.logs.overheadMs)),
      med(rs.map((r) => r.logs.overheadExclOwnershipMs)),
      med(rs.map((r) => r.ownerReleasedMs)),
      med(rs.map((r) => r.guardReleasedMs ?? null)),
      med(rs.map((r) => r.configuredTwiceAfterTakeoverMs)),
    ]);
  return table(
    ['median ms [profile]', 'detect', 'ownership race', 'agents', 'overhead', 'overhead w/o race', 'old owner dropped VIP', 'guard stopped + released', 'VIP on 2 nodes after'],
    rows,
  );
}

export function footprintTable(fp: readonly Footprint[]): string {
  return table(
    ['node', 'running', 'peers', 'RSS MiB', 'CPU % (daemon+guard+spawner)', 'CPU % (agents)', 'wake-ups/s', 'window s'],
    fp.map((f) =>
      f.bareNode
        ? ['-', `bare Node, ${f.wakeupsPerS} wake-ups/s (this machine's floor)`, '-', '-', f.cpuPercent.toFixed(2), '-', String(f.wakeupsPerS), f.windowS.toFixed(1)]
        : [f.node, (f.running.join(',') || '-') + (f.monitorsPaused ? ' (maintenance: no monitors)' : ''), String(f.peers), f.rssMiB.toFixed(1), f.cpuPercent.toFixed(2), f.agentCpuPercent.toFixed(2), f.wakeupsPerS === undefined ? '-' : f.wakeupsPerS.toFixed(1), f.windowS.toFixed(1)],
    ),
  );
}

/** The last line of `npm run bench`. */
export function summaryLine(runs: readonly RunRecord[]): string {
  const v = runs.filter((r) => r.fault === 'power-off' && r.bed === 'web' && r.profile === 'default');
  const st = stats(v.map((r) => r.vipDowntimeMs).filter((x): x is number => x !== null));
  if (!st) return `bench power-off: median n/a, max n/a, n=0`;
  const never = v.length - st.n;
  return `bench power-off: median ${s3(st.median)} s, max ${never ? 'never' : s3(st.max)} s, n=${v.length}`;
}

/** The shell floor per profile: min / median / max of its samples (ms). */
export function floorTable(floors: ReadonlyArray<{ profile: string; node: string; samples: ReadonlyArray<{ startMs: number; stopMs: number; machineBusyMs: number; failed: string[] }> }>): string {
  const m = (xs: number[]): string => {
    const st = stats(xs);
    return st ? `${Math.round(st.min)} / ${Math.round(st.median)} / ${Math.round(st.max)}` : '-';
  };
  return table(
    ['profile (phase)', 'node', 'n', 'floor: all started, ms (min/med/max)', 'machine CPU busy meanwhile, ms', 'all stopped again, ms', 'failed actions'],
    floors.map((f) => [f.profile, f.node, String(f.samples.length), m(f.samples.map((x) => x.startMs)), m(f.samples.map((x) => x.machineBusyMs)), m(f.samples.map((x) => x.stopMs)), String(f.samples.reduce((s, x) => s + x.failed.length, 0))]),
  );
}

/**
 * The 20-hierarchy power-offs against the floor of the same phase: last in service = detect
 * (t0 → peer-down) + race (peer-down → the last ownership won) + floor + harness overhead (the
 * rest), per run and as medians, then the acceptance: last ≤ detect + race + 1.2 × floor.
 */
export function floorLines(runs: readonly RunRecord[], floors: ReadonlyArray<{ profile: string; samples: ReadonlyArray<{ startMs: number; failed: string[]; actionMs?: Record<string, number> }> }>): string[] {
  const out: string[] = [];
  // One agent action's wall time, median over runs/samples: alone with the shell vs under the harness.
  const actRows: string[][] = [];
  for (const f of floors) {
    const rs = runs.filter((r) => r.bed === 'many' && r.profile === f.profile && r.fault === 'power-off' && r.races?.actionMs);
    const keys = [...new Set(f.samples.flatMap((x) => Object.keys(x.actionMs ?? {})))];
    for (const k of keys) {
      const fl = stats(f.samples.map((x) => x.actionMs?.[k]).filter((v): v is number => v !== undefined));
      const hs = stats(rs.map((r) => r.races?.actionMs[k]).filter((v): v is number => v !== undefined));
      actRows.push([`${f.profile}: ${k}`, fl ? String(Math.round(fl.median)) : '-', hs ? String(Math.round(hs.median)) : '-']);
    }
  }
  if (actRows.length) out.push(table(['agent action [profile]', 'shell floor, median ms', 'under the harness, median ms'], actRows), '');
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const f of floors) {
    const fst = stats(f.samples.filter((x) => x.failed.length === 0).map((x) => x.startMs));
    const rs = runs.filter((r) => r.bed === 'many' && r.profile === f.profile && r.fault === 'power-off');
    if (!fst || rs.length === 0) continue;
    const floor = fst.median;
    const per = rs.flatMap((r) => {
      const last = r.lastInServiceMs;
      const detect = r.logs.detectMs;
      const acq = r.races?.lastAcquiredMs ?? null;
      if (last === null || detect === null || acq === null) return [];
      const race = acq - detect;
      const bar = detect + race + 1.2 * floor;
      rows.push([
        `${f.profile} #${r.index}`,
        s3(last),
        String(Math.round(detect)),
        String(Math.round(race)),
        String(r.races?.raceMaxMs ?? '-'),
        String(Math.round(floor)),
        String(Math.round(last - detect - race - floor)),
        `${r.races?.lastHierarchy ?? '-'} (agents ${r.races?.last?.agentsMs ?? '-'})`,
        r.cpu ? `${r.cpu.machineBusyMs} / ${r.cpu.windowMs}` : '-',
        r.cpu && r.logs.taker && r.cpu.daemons[r.logs.taker] ? `${r.cpu.daemons[r.logs.taker]!.selfMs} + ${r.cpu.daemons[r.logs.taker]!.childrenMs}` : '-',
        r.cpu ? String(r.cpu.benchMs) : '-',
        s3(bar),
        last <= bar ? 'yes' : 'NO',
      ]);
      return [{ last, detect, race, under: last <= bar }];
    });
    if (per.length === 0) continue;
    const med = (xs: number[]): number => stats(xs)?.median ?? 0;
    const last = med(per.map((p) => p.last));
    const detect = med(per.map((p) => p.detect));
    const race = med(per.map((p) => p.race));
    const bar = detect + race + 1.2 * floor;
    verdicts.push(
      `20 hierarchies [${f.profile}]: last in service ${s3(last)} s = detect ${Math.round(detect)} + race ${Math.round(race)} + floor ${Math.round(floor)} + harness overhead ${Math.round(last - detect - race - floor)} ms (medians); ` +
        `bar detect + race + 1.2 x floor = ${s3(bar)} s: ${last <= bar ? 'PASS' : 'FAIL'} (${per.filter((p) => p.under).length}/${per.length} runs under)`,
    );
  }
  if (rows.length) {
    out.push(
      table(
        ['run', 'last in service, s', 'detect', 'race (to last acquired)', 'slowest race', 'floor (median)', 'harness overhead', 'last hierarchy (its agent ms)', 'machine CPU busy / window ms', 'taker daemon + agents CPU ms', 'bench CPU ms', 'bar, s', 'under'],
        rows,
      ),
    );
  }
  return [...out, ...verdicts];
}
