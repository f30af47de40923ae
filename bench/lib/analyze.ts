// Pure analysis of what the probes and the nodes' logs recorded during one fault. No I/O, no
// clocks: every function takes timestamps (epoch ms, the host's CLOCK_REALTIME, which every
// namespace shares) and returns numbers, so it is unit-tested on made-up data.

/** One `ping -D` reply line → receive time (epoch ms), or null for any other line. */
export function parsePingLine(line: string): { t: number; seq: number } | null {
  const m = /^\[(\d+\.\d+)\]\s+\d+ bytes from [^:]+: icmp_seq=(\d+)/.exec(line);
  return m ? { t: Number(m[1]) * 1000, seq: Number(m[2]) } : null;
}

/** Addresses that are local (`/32 host LOCAL`) in a /proc/<pid>/net/fib_trie dump. */
export function localAddresses(fibTrie: string): Set<string> {
  const out = new Set<string>();
  let current: string | null = null;
  for (const line of fibTrie.split('\n')) {
    const leaf = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (leaf) current = leaf[1] ?? null;
    else if (current && /^\s+\/32 host LOCAL/.test(line)) out.add(current);
    else if (!/^\s+\//.test(line)) current = null;
  }
  return out;
}

export interface Gap {
  from: number;
  to: number;
}

export interface PingReply {
  /** Receive time, epoch ms. */
  t: number;
  seq: number;
}

export interface Downtime {
  /** t0 → the reply that ended the last outage; 0 when there was none; null = never answered again. */
  downtimeMs: number | null;
  /** Sum of all outages after t0 (a flapping service has several). */
  outageMs: number;
  gaps: Gap[];
  /**
   * Silences with no request lost (consecutive icmp_seq): the prober itself was not scheduled
   * (a loaded machine), not the service. Not outages; counted so a noisy run is visible.
   */
  stalls: number;
}

/**
 * Client-observed downtime from ping replies. An outage is a silence longer than `gapMs` with at
 * least one request unanswered, ending after t0 (counted from t0 at the earliest). A service
 * still silent at `tEnd` for longer than `endSilenceMs` never came back: downtime null. (The
 * end needs its own, larger bound: with no later reply there is no icmp_seq to tell a lost
 * request from a prober that was merely not scheduled.)
 */
export function pingDowntime(replies: readonly PingReply[], t0: number, tEnd: number, gapMs: number, endSilenceMs = 500): Downtime {
  const rs = replies.filter((r) => r.t <= tEnd).sort((a, b) => a.t - b.t);
  const gaps: Gap[] = [];
  let stalls = 0;
  let prev: PingReply | null = null;
  for (const r of rs) {
    if (r.t >= t0) {
      const from = prev ? Math.max(prev.t, t0) : t0;
      const lost = prev ? r.seq - prev.seq - 1 : 1;
      if (r.t - from > gapMs) {
        if (lost > 0) gaps.push({ from, to: r.t });
        else stalls++;
      }
    }
    prev = r;
  }
  const outageMs = gaps.reduce((s, g) => s + (g.to - g.from), 0);
  const lastT = prev ? Math.max(prev.t, t0) : t0;
  if (tEnd - lastT > Math.max(gapMs, endSilenceMs)) return { downtimeMs: null, outageMs: outageMs + (tEnd - lastT), gaps: [...gaps, { from: lastT, to: tEnd }], stalls };
  const last = gaps[gaps.length - 1];
  return { downtimeMs: last ? last.to - t0 : 0, outageMs, gaps, stalls };
}

export interface HttpSample {
  /** Request sent (epoch ms). */
  start: number;
  /** Answer or failure (epoch ms). */
  end: number;
  ok: boolean;
}

/**
 * HTTP downtime: t0 → the end of the first successful request started after the last outage.
 * An outage is a run of consecutive failing requests (by start time) whose starts span at least
 * `minOutageMs`: a single slow or dropped request (a busy server's full accept queue) is a
 * failure, counted in `failures`, not an outage. 0 when there was no outage after t0, null
 * when the service never succeeded again.
 */
export function httpDowntime(samples: readonly HttpSample[], t0: number, minOutageMs = 250): number | null {
  const after = samples.filter((s) => s.start >= t0).sort((a, b) => a.start - b.start);
  if (after.length === 0) return null;
  let lastOutageStart: number | null = null;
  let runFirst: HttpSample | null = null;
  for (const s of after) {
    if (s.ok) {
      runFirst = null;
      continue;
    }
    runFirst ??= s;
    if (s.start - runFirst.start >= minOutageMs) lastOutageStart = s.start;
  }
  if (lastOutageStart === null) return after.some((s) => s.ok) ? 0 : null;
  const from = lastOutageStart;
  const oks = after.filter((s) => s.ok && s.start > from);
  if (oks.length === 0) return null;
  return Math.min(...oks.map((s) => s.end)) - t0;
}

/** Failed requests started after t0. */
export function httpFailures(samples: readonly HttpSample[], t0: number): number {
  return samples.filter((s) => s.start >= t0 && !s.ok).length;
}

/** Times (ms) covered by a node answering: replies closer than joinMs merge, each padded by padMs. */
export function answeringIntervals(replies: readonly number[], joinMs: number, padMs: number): Gap[] {
  const rs = [...replies].sort((a, b) => a - b);
  const out: Gap[] = [];
  for (const t of rs) {
    const last = out[out.length - 1];
    if (last && t - (last.to - padMs) <= joinMs) last.to = t + padMs;
    else out.push({ from: t - padMs, to: t + padMs });
  }
  return out;
}

export interface DoubleAnswer {
  /** 10 ms slots (slotMs) in which two or more nodes answered for the address. */
  samples: number;
  /** First and last such slot, or null. */
  window: Gap | null;
  /** Which nodes answered together. */
  nodes: string[];
}

/**
 * Slots of `slotMs` in [from, to) in which at least two nodes answered, from per-node reply
 * times of watchers that address each node directly (see probes.ts). A node counts as answering
 * in a slot when the slot's middle lies within one of its answering intervals.
 */
export function doubleAnswers(perNode: ReadonlyMap<string, readonly number[]>, from: number, to: number, slotMs: number): DoubleAnswer {
  const intervals = new Map<string, Gap[]>();
  for (const [node, rs] of perNode) intervals.set(node, answeringIntervals(rs, 3 * slotMs, slotMs / 2));
  let samples = 0;
  let window: Gap | null = null;
  const nodes = new Set<string>();
  for (let t = from; t < to; t += slotMs) {
    const mid = t + slotMs / 2;
    const answering = [...intervals].filter(([, iv]) => iv.some((g) => g.from <= mid && mid <= g.to)).map(([n]) => n);
    if (answering.length < 2) continue;
    samples++;
    answering.forEach((n) => nodes.add(n));
    window = window ? { from: window.from, to: t + slotMs } : { from: t, to: t + slotMs };
  }
  return { samples, window, nodes: [...nodes].sort() };
}

/** First reply time after `after` among the given nodes' watchers, with the node. */
export function firstAnswer(perNode: ReadonlyMap<string, readonly number[]>, after: number, nodes?: readonly string[]): { node: string; t: number } | null {
  let best: { node: string; t: number } | null = null;
  for (const [node, rs] of perNode) {
    if (nodes && !nodes.includes(node)) continue;
    const t = rs.find((x) => x > after);
    if (t !== undefined && (!best || t < best.t)) best = { node, t };
  }
  return best;
}

export interface Stats {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function stats(values: readonly number[]): Stats | null {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  return { n: v.length, min: v[0] as number, median, max: v[v.length - 1] as number };
}

/** Total length of the union of intervals (parallel agent starts count once). */
export function unionLength(intervals: readonly Gap[]): number {
  const iv = [...intervals].sort((a, b) => a.from - b.from);
  let total = 0;
  let cur: Gap | null = null;
  for (const g of iv) {
    if (cur && g.from <= cur.to) cur.to = Math.max(cur.to, g.to);
    else {
      if (cur) total += cur.to - cur.from;
      cur = { ...g };
    }
  }
  if (cur) total += cur.to - cur.from;
  return total;
}

/** Milliseconds in [from, to] during which two or more nodes' intervals overlap. */
export function overlapMs(perNode: ReadonlyMap<string, readonly Gap[]>, from: number, to: number): number {
  // Sweep over interval edges, clipped to [from, to].
  const edges: Array<[number, number]> = [];
  for (const iv of perNode.values()) {
    for (const g of iv) {
      const a = Math.max(g.from, from);
      const b = Math.min(g.to, to);
      if (b > a) edges.push([a, 1], [b, -1]);
    }
  }
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let depth = 0;
  let since = 0;
  let total = 0;
  for (const [t, d] of edges) {
    if (depth >= 2 && depth + d < 2) total += t - since;
    if (depth < 2 && depth + d >= 2) since = t;
    depth += d;
  }
  return total;
}
