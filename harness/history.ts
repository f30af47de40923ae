// Failover history and availability (seed: downtime is what users feel, shown as a class of nines).
//
// HistoryWriter observes the daemon's log records (harness/log.ts tapLog) and appends every
// transition of a hierarchy on this node to <stateDir>/history.jsonl: in service (with its cause,
// and for a failover the detect, race and recover milliseconds), out of service, failed. One JSON
// object per line, appended (O_APPEND|O_NOFOLLOW); past DEFAULTS.historyMaxBytes the file becomes
// history.jsonl.1 (the one before is dropped). readHistory() streams both files line by line and
// keeps only the records asked for, never a whole file.
//
// Downtime is counted from the nodes' own records: a failover here counts from the moment the
// lost node was last heard to in service here (`downMs` of the record: detect + race + recover +
// harness's own bookkeeping); with every node's history merged (--all), a hand-over counts from
// out of service on one node to in service on the next.
import { closeSync, createReadStream, existsSync, openSync, renameSync, statSync, writeSync, constants as fsc } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { DEFAULTS } from './defaults.ts';
import { tapLog, type Logger, type LogRecord } from './log.ts';

export interface HistoryRecord {
  /** epoch ms of the transition */
  at: number;
  hierarchy: string;
  node: string;
  transition: 'in-service' | 'out-of-service' | 'failed';
  /** why: failover from <node>, start, stop, the failure's message */
  cause: string;
  /** The node whose loss led here (failovers only). */
  from?: string;
  detectMs?: number;
  raceMs?: number;
  recoverMs?: number;
  /** Downtime this record closes, by this node's own clock: lost node last heard -> in service here. */
  downMs?: number;
}

export const HISTORY_FILE = 'history.jsonl';

/** The record a log record stands for (pure), or null. */
export function historyOf(rec: LogRecord, node: string): HistoryRecord | null {
  const f = rec.fields;
  const hierarchy = typeof f.hierarchy === 'string' ? f.hierarchy : '';
  const base = { at: rec.at, hierarchy, node };
  const ms = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : undefined);
  switch (f.event) {
    case 'in-service': {
      const from = typeof f.from === 'string' ? f.from : undefined;
      const down = ms(f.totalMs);
      if (from && down !== undefined) {
        return { ...base, transition: 'in-service', cause: `failover from ${from}`, from, detectMs: ms(f.detectMs) ?? 0, raceMs: ms(f.acquireMs) ?? 0, recoverMs: ms(f.startMs) ?? 0, downMs: down };
      }
      return { ...base, transition: 'in-service', cause: 'start', raceMs: ms(f.acquireMs) ?? 0, recoverMs: ms(f.startMs) ?? 0 };
    }
    case 'stopped':
      return { ...base, transition: 'out-of-service', cause: 'stop' };
    case 'fenced':
      return { ...base, transition: 'out-of-service', cause: rec.msg || 'ownership lost' };
    case 'start-failed':
    case 'stop-failed':
    case 'blocked':
    case 'leaving-failed':
      return { ...base, transition: 'failed', cause: rec.msg };
    default:
      return null;
  }
}

export class HistoryWriter {
  private readonly file: string;
  private readonly untap: () => void;
  private readonly node: string;
  private readonly log: Logger;
  private readonly maxBytes: number;

  constructor(opts: { stateDir: string; node: string; log: Logger; maxBytes?: number }) {
    this.file = join(opts.stateDir, HISTORY_FILE);
    this.node = opts.node;
    this.log = opts.log;
    this.maxBytes = opts.maxBytes ?? DEFAULTS.historyMaxBytes;
    this.untap = tapLog(opts.log, (rec) => {
      const h = historyOf(rec, this.node);
      if (h) this.append(h);
    });
  }

  append(rec: HistoryRecord): void {
    try {
      if (existsSync(this.file) && statSync(this.file).size >= this.maxBytes) renameSync(this.file, `${this.file}.1`);
      const fd = openSync(this.file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, JSON.stringify(rec) + '\n');
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      this.log.error({ event: 'history-error', err: (e as Error).message }, `failover history: cannot append to ${this.file}: ${(e as Error).message}`);
    }
  }

  stop(): void {
    this.untap();
  }
}

/** Stream a node's history (the rotated file first), keeping records of `hierarchy` since `since`. */
export async function readHistory(stateDir: string, opts: { since?: number; hierarchy?: string } = {}): Promise<HistoryRecord[]> {
  const out: HistoryRecord[] = [];
  for (const f of [join(stateDir, `${HISTORY_FILE}.1`), join(stateDir, HISTORY_FILE)]) {
    if (!existsSync(f)) continue;
    const lines = createInterface({ input: createReadStream(f, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.trim()) continue;
      let r: HistoryRecord;
      try {
        r = JSON.parse(line) as HistoryRecord;
      } catch {
        continue; // a line cut by a crash mid-write
      }
      if (typeof r.at !== 'number' || typeof r.hierarchy !== 'string') continue;
      if (opts.since !== undefined && r.at < opts.since) continue;
      if (opts.hierarchy !== undefined && r.hierarchy !== opts.hierarchy) continue;
      out.push(r);
    }
  }
  return out;
}

export interface Outage {
  hierarchy: string;
  /** epoch ms, clipped to the window */
  from: number;
  to: number;
  /** the record that ended it */
  record: HistoryRecord;
}

export interface Availability {
  hierarchy: string;
  windowMs: number;
  downMs: number;
  /** percent, not rounded */
  percent: number;
  /** class of nines: 99.9 % -> 3; no downtime -> null (better than anything measurable) */
  nines: number | null;
  failovers: number;
  outages: Outage[];
}

/**
 * Availability of each hierarchy over [since, now] from records (one node's or all nodes').
 * An outage is: for a failover record, [at - downMs, at]; with records of several nodes, an
 * out-of-service or failed record on one node followed by in service on another (a hand-over)
 * is an outage from the first to the second. Overlapping outages count once.
 */
export function availability(records: HistoryRecord[], since: number, now: number): Availability[] {
  const by = new Map<string, HistoryRecord[]>();
  for (const r of [...records].sort((a, b) => a.at - b.at)) {
    if (!by.has(r.hierarchy)) by.set(r.hierarchy, []);
    by.get(r.hierarchy)!.push(r);
  }
  const windowMs = now - since;
  const result: Availability[] = [];
  for (const [hierarchy, rs] of [...by].sort(([a], [b]) => a.localeCompare(b))) {
    const spans: Outage[] = [];
    let lastDown: HistoryRecord | undefined;
    for (const r of rs) {
      if (r.transition === 'in-service') {
        if (r.downMs !== undefined) spans.push({ hierarchy, from: r.at - r.downMs, to: r.at, record: r });
        else if (lastDown && lastDown.node !== r.node) spans.push({ hierarchy, from: lastDown.at, to: r.at, record: r });
        lastDown = undefined;
      } else if (!lastDown) {
        lastDown = r;
      }
    }
    // Union of the spans, clipped to the window.
    const clipped = spans.map((s) => ({ ...s, from: Math.max(s.from, since), to: Math.min(s.to, now) })).filter((s) => s.to > s.from).sort((a, b) => a.from - b.from);
    let downMs = 0;
    let reach = -Infinity;
    for (const s of clipped) {
      const start = Math.max(s.from, reach);
      if (s.to > start) downMs += s.to - start;
      reach = Math.max(reach, s.to);
    }
    const percent = windowMs > 0 ? 100 * (1 - downMs / windowMs) : 100;
    result.push({ hierarchy, windowMs, downMs, percent, nines: ninesOf(downMs, windowMs), failovers: spans.filter((s) => s.record.downMs !== undefined).length, outages: clipped });
  }
  return result;
}

/** Class of nines: how many leading nines the availability has (99.95 % -> 3). */
export function ninesOf(downMs: number, windowMs: number): number | null {
  if (downMs <= 0 || windowMs <= 0) return null;
  const unavailable = downMs / windowMs;
  // The epsilon keeps 99.9 % exactly at 3 against floating point (log10(0.001) = -2.9999999999999996).
  return Math.max(0, Math.floor(-Math.log10(unavailable) + 1e-9));
}

const fmtMs = (ms: number) => (ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(2)} h` : ms >= 60_000 ? `${(ms / 60_000).toFixed(2)} min` : ms >= 1000 ? `${(ms / 1000).toFixed(3)} s` : `${ms} ms`);

/** Human-readable report: the transitions, then per hierarchy its availability. */
export function formatHistory(records: HistoryRecord[], av: Availability[], since: number, now: number): string {
  const lines: string[] = [];
  lines.push(`window: ${new Date(since).toISOString()} .. ${new Date(now).toISOString()} (${fmtMs(now - since)})`);
  for (const r of [...records].sort((a, b) => a.at - b.at)) {
    const timing = r.downMs !== undefined ? `  down ${r.downMs} ms = detect ${r.detectMs} + race ${r.raceMs} + recover ${r.recoverMs} + other ${r.downMs - (r.detectMs ?? 0) - (r.raceMs ?? 0) - (r.recoverMs ?? 0)}` : '';
    lines.push(`${new Date(r.at).toISOString()}  ${r.hierarchy}  ${r.node}  ${r.transition}  ${r.cause}${timing}`);
  }
  for (const a of av) {
    lines.push(`${a.hierarchy}: availability ${a.percent.toFixed(6)} % (${a.nines === null ? 'no downtime' : `${a.nines} nine${a.nines === 1 ? '' : 's'}`}), downtime ${a.downMs} ms in ${a.outages.length} outage(s), ${a.failovers} failover(s)`);
  }
  return lines.join('\n');
}
