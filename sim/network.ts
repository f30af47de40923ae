// The simulated network: heartbeats between nodes, per directed link and path, with loss, delay
// (and so reordering), duplication, one-way cuts and partitions, and a recorder that can replay
// a node's old packets (an adversary, or a misbehaving switch). Packets are delivered as decoded
// heartbeats: encoding and HMAC are tested elsewhere; what matters here is who hears what, when.
import type { HeartbeatIn } from '../harness/liveness.ts';
import type { SimClock } from './clock.ts';
import type { Rng } from './rng.ts';

export interface LinkFault {
  loss: number;
  dup: number;
  /** Extra delay, uniform in [0, jitterMs]. */
  jitterMs: number;
}

export type Deliver = (to: string, hb: HeartbeatIn) => void;

export class SimNetwork {
  readonly #clock: SimClock;
  readonly #rng: Rng;
  readonly #deliver: Deliver;
  /** `from>to` (all paths) or `from>to#p`: cut. */
  readonly #cut = new Set<string>();
  readonly #faults = new Map<string, LinkFault>();
  /** Base one-way delay, ms. */
  baseDelayMs = 0.2;
  /** Last packets delivered on each link (`from>to`), for replay: a recording of what `to` saw. */
  readonly #recorded = new Map<string, HeartbeatIn[]>();
  /** The last packet on each link that carried the advert. */
  readonly #recordedAdvert = new Map<string, HeartbeatIn>();
  sent = 0;
  delivered = 0;

  constructor(clock: SimClock, rng: Rng, deliver: Deliver) {
    this.#clock = clock;
    this.#rng = rng;
    this.#deliver = deliver;
  }

  cut(from: string, to: string, path?: number): void {
    this.#cut.add(path === undefined ? `${from}>${to}` : `${from}>${to}#${path}`);
  }
  heal(from: string, to: string, path?: number): void {
    this.#cut.delete(path === undefined ? `${from}>${to}` : `${from}>${to}#${path}`);
  }
  /** Cut every link between the groups, both ways. */
  partition(groups: string[][]): void {
    for (const a of groups) for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.cut(x, y);
  }
  healAll(): void {
    this.#cut.clear();
    this.#faults.clear();
  }
  setFault(from: string, to: string, f: LinkFault | null): void {
    if (f) this.#faults.set(`${from}>${to}`, f);
    else this.#faults.delete(`${from}>${to}`);
  }
  /** Any fault at all (cuts, loss): the network is not "connected" for the unfenced invariant. */
  faulty(): boolean {
    return this.#cut.size > 0 || this.#faults.size > 0;
  }
  connected(from: string, to: string, path: number): boolean {
    return !this.#cut.has(`${from}>${to}`) && !this.#cut.has(`${from}>${to}#${path}`);
  }

  send(from: string, to: string, hb: HeartbeatIn): void {
    this.sent++;
    if (!this.connected(from, to, hb.path)) return;
    const f = this.#faults.get(`${from}>${to}`);
    if (f && this.#rng.chance(f.loss)) return;
    if (!f) {
      // The common case: every packet of this instant shares one delivery timer.
      if (this.#batch?.at !== this.#clock.now()) {
        const batch = { at: this.#clock.now(), items: [] as Array<[string, string, HeartbeatIn]> };
        this.#batch = batch;
        this.#clock.setTimeout(() => {
          if (this.#batch === batch) this.#batch = null;
          for (const [a, b, x] of batch.items) this.#arrive(a, b, x);
        }, this.baseDelayMs);
      }
      this.#batch.items.push([from, to, hb]);
      return;
    }
    const copies = this.#rng.chance(f.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.baseDelayMs + this.#rng.next() * f.jitterMs;
      this.#clock.setTimeout(() => this.#arrive(from, to, hb), delay);
    }
  }

  #batch: { at: number; items: Array<[string, string, HeartbeatIn]> } | null = null;

  #arrive(from: string, to: string, hb: HeartbeatIn): void {
    this.delivered++;
    this.#deliver(to, hb);
  }

  /**
   * `to` read this packet (a stalled node's full socket buffer drops some unread: those are not
   * recordings of what it saw, and replaying one would be a packet held back in the network,
   * another threat, see README).
   */
  record(from: string, to: string, hb: HeartbeatIn): void {
    const link = `${from}>${to}`;
    let rec = this.#recorded.get(link);
    if (!rec) this.#recorded.set(link, (rec = []));
    if (rec.length >= 8) rec.shift();
    rec.push(hb);
    // An attacker records everything: the last packet that carried the advert too (a replay of
    // summaries alone leaves the sender 'unknown', the weaker attack).
    if (hb.hierarchies !== undefined) this.#recordedAdvert.set(link, hb);
  }

  /** Deliver `from`'s recorded packets to `to` again (they are authentic, only old): the last advert-carrying one, then the last few. */
  replay(from: string, to: string): number {
    const link = `${from}>${to}`;
    const advert = this.#recordedAdvert.get(link);
    const rec = this.#recorded.get(link) ?? [];
    const all = advert && !rec.includes(advert) ? [advert, ...rec] : rec;
    for (const hb of all) this.#clock.setTimeout(() => this.#deliver(to, hb), this.baseDelayMs);
    return all.length;
  }
}
