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
    ['node', 'running', 'peers', 'RSS MiB', 'CPU % (daemon+guard)', 'CPU % (agents)', 'window s'],
    fp.map((f) => [f.node, (f.running.join(',') || '-') + (f.monitorsPaused ? ' (maintenance: no monitors)' : ''), String(f.peers), f.rssMiB.toFixed(1), f.cpuPercent.toFixed(2), f.agentCpuPercent.toFixed(2), f.windowS.toFixed(1)]),
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
