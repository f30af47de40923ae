// What a heartbeat may cost before it is known to be authentic: a token bucket per source IP, in
// two size classes, charged only by packets that turn out not to be authentic.
//
// Why: checking the HMAC is the first expensive step of receiving (~2 µs for a small packet,
// ~30-60 µs for a 60 KiB one, more with the inflate and JSON parse of a replayed advert), and a
// packet whose source is spoofed to be a configured peer's address reaches it. About 100k such
// packets a second starved the event loop and real heartbeats were lost. Packets from any other
// source never get here: comm.ts drops them on a map lookup, before any of this (so junk from
// unknown sources is the first thing dropped, and costs the least).
//
// How:
//   - Per source IP (not port: one host can use every port). comm.ts asks only for configured
//     peers' addresses, so the number of buckets is bounded by the configuration; the map is
//     capped anyway (maxSources, oldest evicted) so that no caller can grow it without bound.
//   - Two classes per source: `small` (a routine heartbeat, which fits one Ethernet frame) and
//     `large` (adverts, previous-release heartbeats carrying every hierarchy). A flood of large
//     junk spoofing a peer cannot use up the budget of that peer's routine heartbeats, which are
//     all liveness needs.
//   - A packet takes a token before its HMAC is checked; comm.ts gives it back (refund) when the
//     packet turned out authentic and fresh. So a peer's own traffic never spends its budget,
//     however bursty (a failover's news, answers to requests), and the rate only bounds what
//     junk can cost: rate x per-packet cost per source.
//   - What it cannot do: before the HMAC, junk with a peer's exact source is indistinguishable
//     from the peer, so while such a flood lasts that peer's heartbeats on that path compete with
//     it for the tokens and most are lost. The peer stays up through its other paths (degraded
//     redundancy, logged), every other peer and path is untouched, and a peer wrongly thought dead
//     still refreshes its key on disk, which its challengers watch before they preempt (fencing).
//
// Pure: the clock is passed in (ms), no timers.

export interface BucketSpec {
  /** Tokens added per second. */
  perSecond: number;
  /** Most tokens held (the burst allowed after a quiet spell). */
  burst: number;
}

export interface RecvBudgetOptions {
  small: BucketSpec;
  large: BucketSpec;
  /** Packets above this many bytes are in the large class. */
  smallMaxBytes: number;
  /** Most sources tracked; past it the least recently seen is forgotten (it starts again full). */
  maxSources: number;
  /** source IP -> how many configured addresses share it (their buckets are that much bigger). Default 1. */
  weight?: (ip: string) => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface Source {
  small: Bucket;
  large: Bucket;
  weight: number;
}

export type SizeClass = 'small' | 'large';

export class RecvBudget {
  private readonly opts: RecvBudgetOptions;
  private readonly sources = new Map<string, Source>();
  /** Sources forgotten to stay within maxSources (for tests and status). */
  evicted = 0;

  constructor(opts: RecvBudgetOptions) {
    if (!(opts.maxSources >= 1)) throw new Error(`recv budget: maxSources must be >= 1 (got ${opts.maxSources})`);
    for (const k of ['small', 'large'] as const) {
      const b = opts[k];
      if (!(b.perSecond > 0) || !(b.burst >= 1)) throw new Error(`recv budget: ${k} needs perSecond > 0 and burst >= 1 (got ${b.perSecond}, ${b.burst})`);
    }
    this.opts = opts;
  }

  classOf(bytes: number): SizeClass {
    return bytes > this.opts.smallMaxBytes ? 'large' : 'small';
  }

  /** Take one token of `ip`'s class for a packet of `bytes`; false: over budget, drop it unread. */
  take(ip: string, bytes: number, now: number): boolean {
    const b = this.bucket(ip, this.classOf(bytes), now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Give back the token a packet took: it was authentic and fresh. */
  refund(ip: string, bytes: number, now: number): void {
    const s = this.sources.get(ip);
    if (!s) return;
    const cls = this.classOf(bytes);
    const b = s[cls];
    this.fill(b, cls, s.weight, now);
    b.tokens = Math.min(this.opts[cls].burst * s.weight, b.tokens + 1);
  }

  /** Tracked sources (bounded by maxSources). */
  get size(): number {
    return this.sources.size;
  }

  private bucket(ip: string, cls: SizeClass, now: number): Bucket {
    let s = this.sources.get(ip);
    if (s) {
      // Most recently seen last: Map order is insertion order, so the first entry is the oldest.
      this.sources.delete(ip);
      this.sources.set(ip, s);
    } else {
      if (this.sources.size >= this.opts.maxSources) {
        const oldest = this.sources.keys().next().value;
        if (oldest !== undefined) this.sources.delete(oldest);
        this.evicted++;
      }
      const weight = Math.max(1, this.opts.weight?.(ip) ?? 1);
      s = {
        small: { tokens: this.opts.small.burst * weight, at: now },
        large: { tokens: this.opts.large.burst * weight, at: now },
        weight,
      };
      this.sources.set(ip, s);
    }
    const b = s[cls];
    this.fill(b, cls, s.weight, now);
    return b;
  }

  private fill(b: Bucket, cls: SizeClass, weight: number, now: number): void {
    const spec = this.opts[cls];
    const dt = now - b.at;
    // A clock that went back (or did not move) adds nothing.
    if (dt > 0) {
      b.tokens = Math.min(spec.burst * weight, b.tokens + (dt / 1000) * spec.perSecond * weight);
      b.at = now;
    }
  }
}
