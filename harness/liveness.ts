// The liveness rule of comm: pure, no I/O, no timers, no logging, no clock of its own (`now`, in
// ms on any monotonic scale, is a parameter everywhere). Comm (comm.ts) feeds it authenticated
// heartbeats and turns what it reports into logs and events; a simulator can drive it directly.
// State is plain data (JSON-serialisable apart from the frozen adverts).
//
// API (kept stable for the simulator):
//   new Liveness({ self, selfIncarnation, peers, paths, timers })  timers: commTimers(cluster)
//   start(now)                  start-up grace counts from here (before it, every peer is in grace)
//   receive(hb, now)            accept or drop a decoded, authenticated heartbeat (its node and path
//                               already checked against the source address: a node that is not a
//                               peer or a path out of range throws). Returns
//                               { ok: true, changed, changes, restartedFrom? } or
//                               { ok: false, reason: 'replayed' | 'unconfirmed', detail, changed, changes }
//   evaluate(now)               LivenessChange[] since the last evaluate/receive (what Comm logs/emits)
//   view(now)                   Record<node, PeerInfo>, what Comm.view() returns; a peer shows
//                               'down' only once evaluate() or receive() has reported it
//   nextDeadline(now)           earliest threshold crossing after now, or null
//   heard()                     node -> incarnation echo map for our outgoing heartbeats
//   wantsEveryPath(now)         peers not heard on every path lately (they get every path)
//   wanted()                    peers whose current advert we miss (the `want` of our heartbeats)
//   doubts(now)                 peers we do not hear lately (the `doubts` of our heartbeats)
//   calm(node, now)             that peer is up, not suspect, and its last heartbeat did not doubt us
//   contested(nodes, now, h?)   one of those nodes (or a peer advertising h eligible) is not calm with us
// `changed` is true when the view moved (incarnation, leaving and advert included); 'degraded' and
// 'recovered' changes are log-only and do not count.
//
// Liveness, all computed from the last accepted heartbeat per path:
//   path  up      heard within pathDeadTimeMs
//   peer  up      heard on some path within deadTimeMs
//   peer  suspect silent on every path for suspectAfterMs (= deadTimeMs / 3; while a path to it is
//                 down or late, pathStride + 2 intervals: see suspectAfter)
//   peer  down    silent on every path for deadTimeMs, or its last heartbeat said `leaving`
//   unknown       never heard yet and still inside the startup grace (= deadTimeMs), or its
//                 authentic heartbeats keep coming without echoing our incarnation
// A heartbeat counts as life only once its sender echoes our current incarnation (`heard`): a
// recording replayed to a node that has restarted since cannot.
//
// Adverts (wire format 2, packet.ts): a heartbeat carries the sender's advert version and digest,
// and the advert itself only on news or on request. A copy is replaced only by a newer one
// (incarnation, version), so copies that crossed on two paths cannot roll it back. A summary we
// have no copy of makes the sender `wanted()` (and receive() says `need` the first time: ask at
// once); a heartbeat whose `want` names us says `request` (answer with the advert). A peer heard
// alive while our copy of its advert is not the one its heartbeats name is 'unknown', not 'up':
// "is it alive" and "what does it run" still arrive together. A sender of format 1 (no version) carries its
// advert in every heartbeat, taken as before.

import { DEFAULTS } from './defaults.ts';
import { mutant } from './core/mutants.ts';
import { sameHierarchyAdvert, type HierarchyAdvert, type NodeMeta } from './packet.ts';

export type PeerState = 'up' | 'down' | 'unknown'; // unknown = never heard yet and still inside startup grace
export type PathState = 'up' | 'down' | 'unknown';

export interface PeerInfo {
  node: string;
  state: PeerState;
  suspect: boolean;
  /** When any path last delivered an accepted heartbeat, in `now` terms; null = never. */
  lastHeardMs: number | null;
  paths: PathState[];
  incarnation?: number;
  leaving: boolean;
  /** The peer's last advert (kept when it goes down: stale, but the last word it said). */
  advert?: Record<string, HierarchyAdvert>;
  /** Its last admin map and configuration fingerprint. */
  meta?: NodeMeta;
}

/** The comm timers derived from the cluster's heartbeat interval and dead time. */
export function commTimers(c: { heartbeatIntervalMs: number; deadTimeMs: number; startupGraceMs?: number }) {
  return {
    heartbeatIntervalMs: c.heartbeatIntervalMs,
    deadTimeMs: c.deadTimeMs,
    // Early on purpose: being suspect only makes challengers start reading the holder's key on
    // disk, so the frozen-key window overlaps most of the dead time (2 missed heartbeats here).
    suspectAfterMs: c.deadTimeMs / 3,
    pathDeadTimeMs: c.deadTimeMs,
    startupGraceMs: c.startupGraceMs ?? c.deadTimeMs,
    /** Send period and routine re-evaluation; threshold crossings between two ticks get a precise
     *  one-shot timer (nextDeadline), so detection stays at deadTimeMs + event-loop lag while an idle
     *  node wakes up only once per heartbeat (idle CPU). */
    tickMs: Math.max(5, c.heartbeatIntervalMs),
    /** Routine heartbeats rotate over the paths, each path used every pathStride-th tick: as many
     *  as there are paths, but each path must still carry heartbeatsPerPathDeadTime per dead time
     *  (1 = every path every tick). Capped by the path count. */
    pathStride: Math.max(1, Math.floor(c.deadTimeMs / (DEFAULTS.heartbeatsPerPathDeadTime * c.heartbeatIntervalMs))),
  };
}

export interface LivenessTimers {
  heartbeatIntervalMs: number;
  deadTimeMs: number;
  suspectAfterMs: number;
  pathDeadTimeMs: number;
  startupGraceMs: number;
  pathStride: number;
  /** Comm's tick; not used here. */
  tickMs?: number;
}

/** A decoded, authenticated heartbeat (packet.ts Heartbeat minus what Comm already checked). */
export interface HeartbeatIn {
  node: string;
  path: number;
  incarnation: number;
  seq: number;
  heard?: Record<string, number>;
  leaving?: boolean;
  /** The advert: always from a format-1 sender; from a format-2 one only on news or request. */
  hierarchies?: Record<string, HierarchyAdvert>;
  /** Part of the advert (as the hierarchies: in format 2 only when the advert is carried). */
  meta?: NodeMeta;
  /** Format 2: the sender's advert version (per incarnation) and digest; absent from format 1. */
  advertVersion?: number;
  advertDigest?: string;
  /** Format 2: nodes whose advert the sender misses. */
  want?: string[];
  /** Format 3: peers the sender does not hear lately; absent from an earlier release (may doubt us). */
  doubts?: string[];
}

export interface PathRx {
  lastHeard: number | null;
  /** Highest accepted (incarnation, seq) on this path. */
  inc: number;
  seq: number;
  /** State last reported (changes are reported on changes of this). */
  shown: PathState;
  /** 'degraded' was reported for this path and not yet followed by 'recovered'. */
  warned: boolean;
}

export interface PeerLiveness {
  name: string;
  rx: PathRx[];
  lastHeard: number | null;
  /** Start of the current stretch of being heard (first heartbeat after being down or never heard). */
  aliveSince: number | null;
  incarnation: number | null;
  /** Latest incarnation seen in an authentic heartbeat, confirmed or not: what we echo to it. */
  seenIncarnation: number | null;
  /** Its incarnation that echoed ours: only heartbeats of it count as life (see receive). */
  confirmedIncarnation: number | null;
  /** When an authentic heartbeat that did not echo us last came in (see derive: 'unknown'). */
  lastUnconfirmed: number | null;
  leaving: boolean;
  advert: Record<string, HierarchyAdvert> | null;
  /** Which advert `advert` is: the sender's incarnation, and its (version, digest) when format 2. */
  advertOf: { inc: number; version: number | null; digest: string | null } | null;
  /** A format-2 summary named an advert newer than ours: we want it (see wanted()). */
  missing: boolean;
  meta: NodeMeta | null;
  /** meta as JSON: compared to tell news from a repeat. */
  metaKey: string;
  /** Local count of advert changes (the view moved). */
  advertVersion: number;
  /** Its last accepted heartbeat named us among its doubts; null: it did not say (an earlier release). */
  doubtsUs: boolean | null;
  shown: { state: PeerState; suspect: boolean; incarnation: number | null; leaving: boolean; advertVersion: number };
}

export interface Derived {
  state: PeerState;
  suspect: boolean;
  paths: PathState[];
  silentMs: number;
}

/** What evaluate()/receive() report, in order: per peer its paths, then state, suspect, info. */
export type LivenessChange =
  /** A path's state moved (Comm emits 'path' unless `to` is 'unknown'). */
  | { kind: 'path'; node: string; path: number; from: PathState; to: PathState }
  /** Log-only: this path is down while the peer is clearly alive on another one. */
  | { kind: 'degraded'; node: string; path: number; silentMs: number | null; neverHeard: boolean }
  /** Log-only: a path reported degraded is up again. */
  | { kind: 'recovered'; node: string; path: number }
  /** The peer's state moved. `cause` is set when `to` is 'down'. */
  | {
      kind: 'state';
      node: string;
      from: PeerState;
      to: PeerState;
      cause?: 'leaving' | 'silent' | 'never-heard';
      silentMs: number;
      paths: PathState[];
      incarnation: number | null;
    }
  | { kind: 'suspect'; node: string; suspect: boolean; state: PeerState; silentMs: number }
  /** Incarnation, leaving flag or advert moved (no log; the view changed). */
  | { kind: 'info'; node: string; incarnation: number | null; leaving: boolean; advertVersion: number };

export type ReceiveResult =
  | {
      ok: true;
      changed: boolean;
      changes: LivenessChange[];
      /** Set when the peer restarted: its previous incarnation. */ restartedFrom?: number;
      /** The sender wants our advert: send it, to it, now. */
      request?: boolean;
      /** We just found we miss the sender's current advert: ask it now (later heartbeats keep asking). */
      need?: boolean;
      /** Whether the sender doubts us changed with this heartbeat (calm() may have moved). */
      doubtChanged?: boolean;
    }
  | { ok: false; reason: 'replayed' | 'unconfirmed'; detail: string; changed: boolean; changes: LivenessChange[] };

/** True when the changes moved the view (everything but the log-only 'degraded'/'recovered'). */
export function changesView(changes: readonly LivenessChange[]): boolean {
  return changes.some((c) => c.kind !== 'degraded' && c.kind !== 'recovered');
}

export interface LivenessOptions {
  self: string;
  selfIncarnation: number;
  /** Peer names (without self), in the order views and changes list them. */
  peers: string[];
  paths: number;
  timers: LivenessTimers;
}

export class Liveness {
  readonly self: string;
  readonly selfIncarnation: number;
  readonly paths: number;
  readonly timers: LivenessTimers;
  /** null until start(): every peer is inside the startup grace until then. */
  startedAt: number | null = null;
  readonly peers: PeerLiveness[];

  constructor(opts: LivenessOptions) {
    if (!Number.isInteger(opts.paths) || opts.paths < 1) throw new Error(`liveness: paths must be a positive integer (got ${opts.paths})`);
    if (opts.peers.includes(opts.self)) throw new Error(`liveness: peers include this node ${opts.self}`);
    if (new Set(opts.peers).size !== opts.peers.length) throw new Error(`liveness: a peer name appears twice (${opts.peers.join(', ')})`);
    this.self = opts.self;
    this.selfIncarnation = opts.selfIncarnation;
    this.paths = opts.paths;
    this.timers = { ...opts.timers };
    this.peers = opts.peers.map((name) => ({
      name,
      rx: Array.from({ length: opts.paths }, () => ({ lastHeard: null, inc: -1, seq: -1, shown: 'unknown' as PathState, warned: false })),
      lastHeard: null,
      aliveSince: null,
      incarnation: null,
      seenIncarnation: null,
      confirmedIncarnation: null,
      lastUnconfirmed: null,
      leaving: false,
      advert: null,
      advertOf: null,
      missing: false,
      meta: null,
      metaKey: '',
      advertVersion: 0,
      doubtsUs: null,
      shown: { state: 'unknown', suspect: false, incarnation: null, leaving: false, advertVersion: 0 },
    }));
  }

  start(now: number): void {
    this.startedAt = now;
  }

  /** The echo map for our outgoing heartbeats: each peer's latest incarnation we received. */
  heard(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const peer of this.peers) if (peer.seenIncarnation !== null) out[peer.name] = peer.seenIncarnation;
    return out;
  }

  /** Peers whose current advert we miss: the `want` of our outgoing heartbeats. */
  wanted(): string[] {
    return this.peers.filter((p) => p.missing).map((p) => p.name);
  }

  /** Peers we do not hear lately (suspect, down or unknown): the `doubts` of our heartbeats. */
  doubts(now: number): string[] {
    return this.peers.filter((peer) => !this.heardWell(peer, now)).map((p) => p.name);
  }

  /**
   * True when neither side doubts the other: we hear the peer (up, not suspect) and its last
   * heartbeat said it hears us. Only then can it not be watching our key on a disk to preempt it.
   */
  calm(node: string, now: number): boolean {
    const peer = this.peers.find((x) => x.name === node);
    return peer !== undefined && peer.doubtsUs === false && this.heardWell(peer, now);
  }

  /** One of these nodes (a hierarchy's list; this node is skipped) is not calm with us: it may be
   *  watching our keys to preempt them, so they must keep moving (fencing/ownership.ts). With the
   *  hierarchy's name, so is any peer whose last advert says it may run it: its configuration lists
   *  it though ours does not (the files differ for a while, during a change), and it races as well. */
  contested(nodes: Iterable<string>, now: number, hierarchy?: string): boolean {
    for (const n of nodes) if (n !== this.self && !this.calm(n, now)) return true;
    if (hierarchy === undefined) return false;
    for (const p of this.peers) {
      const a = p.advert !== null && Object.hasOwn(p.advert, hierarchy) ? p.advert[hierarchy] : undefined;
      if (a?.eligible === true && !this.calm(p.name, now)) return true;
    }
    return false;
  }

  private heardWell(peer: PeerLiveness, now: number): boolean {
    const d = this.derivePeer(peer, now);
    return d.state === 'up' && !d.suspect;
  }

  /** Peers not heard on every path lately: a broken path must not halve how often they hear us. */
  wantsEveryPath(now: number): string[] {
    return this.peers.filter((peer) => !peer.rx.every((rx) => this.pathHeard(rx, now))).map((p) => p.name);
  }

  receive(hb: HeartbeatIn, now: number): ReceiveResult {
    const peer = this.peers.find((x) => x.name === hb.node);
    if (!peer) throw new Error(`liveness: heartbeat of ${JSON.stringify(hb.node)}, not a peer of ${this.self}`);
    const rx = peer.rx[hb.path];
    if (!rx) throw new Error(`liveness: heartbeat of ${hb.node} on path ${hb.path} (paths 0..${this.paths - 1})`);
    if (peer.incarnation !== null && hb.incarnation < peer.incarnation) {
      const detail = `old incarnation ${hb.incarnation} < ${peer.incarnation} (replay, or ${hb.node} restarted with its clock set back)`;
      return { ok: false, reason: 'replayed', detail, changed: false, changes: [] };
    }
    if (hb.incarnation < rx.inc || (hb.incarnation === rx.inc && hb.seq <= rx.seq)) {
      return { ok: false, reason: 'replayed', detail: `seq ${hb.seq} not above ${rx.seq}`, changed: false, changes: [] };
    }

    // Evidence that the sender is alive now, not a recording: it echoes our current incarnation.
    // Every packet, not only the first of an incarnation: one sent before the sender heard us
    // proves nothing, and a recording of it replayed on a path that had not carried that
    // incarnation yet passes the per-path (incarnation, seq) check above (found by the
    // simulator). A sender of an earlier release sends no echo at all: trusted as before.
    if (peer.seenIncarnation === null || hb.incarnation > peer.seenIncarnation) peer.seenIncarnation = hb.incarnation;
    const echoes = hb.heard === undefined || hb.heard[this.self] === this.selfIncarnation || mutant('accept-replay');
    if (echoes) peer.confirmedIncarnation = hb.incarnation;
    if (!echoes) {
      const first = peer.lastUnconfirmed === null;
      peer.lastUnconfirmed = now;
      const changes = first ? this.evaluatePeer(peer, now) : [];
      const detail = `heartbeat of ${hb.node} (incarnation ${hb.incarnation}) does not echo our incarnation ${this.selfIncarnation}`;
      return { ok: false, reason: 'unconfirmed', detail, changed: changesView(changes), changes };
    }

    rx.inc = hb.incarnation;
    rx.seq = hb.seq;
    rx.lastHeard = now;
    if (peer.lastHeard === null || now - peer.lastHeard >= this.timers.deadTimeMs) peer.aliveSince = now;
    peer.lastHeard = now;
    const previous = peer.incarnation;
    peer.incarnation = hb.incarnation;
    peer.leaving = hb.leaving === true;
    const of = { inc: hb.incarnation, version: hb.advertVersion ?? null, digest: hb.advertDigest ?? null };
    if (hb.hierarchies !== undefined && (of.version === null || newerAdvert(of, peer.advertOf))) {
      if (!peer.advert || !sameAdverts(peer.advert, hb.hierarchies)) {
        peer.advert = frozenAdverts(hb.hierarchies);
        peer.advertVersion++;
      }
      // The meta is part of the advert: in format 2 the whole of it comes with the hierarchies
      // (absent: none); a format-1 sender of this lineage sent it in every heartbeat, or not at all.
      const meta = hb.meta ?? (of.version === null ? peer.meta : null);
      const key = meta === null ? '' : JSON.stringify(meta);
      if (key !== peer.metaKey) {
        peer.meta = meta;
        peer.metaKey = key;
        peer.advertVersion++;
      }
      peer.advertOf = of;
    }
    let need = false;
    if (of.version !== null) {
      const had = peer.missing;
      const mine = peer.advertOf;
      // Missing: its summary names a newer advert, or the same version with another digest.
      peer.missing = newerAdvert(of, mine) || (mine !== null && mine.inc === of.inc && mine.version === of.version && mine.digest !== of.digest);
      need = peer.missing && !had;
    } else {
      peer.missing = false;
    }
    const doubtsUs = hb.doubts === undefined ? null : hb.doubts.includes(this.self);
    const doubtChanged = doubtsUs !== peer.doubtsUs;
    peer.doubtsUs = doubtsUs;
    const changes = this.evaluatePeer(peer, now);
    const out: ReceiveResult = { ok: true, changed: changesView(changes), changes };
    if (doubtChanged) out.doubtChanged = true;
    if (previous !== null && hb.incarnation > previous) out.restartedFrom = previous;
    if (hb.want?.includes(this.self)) out.request = true;
    if (need) out.need = true;
    return out;
  }

  /** Every peer compared to what was last reported; marks the new state as reported. */
  evaluate(now: number): LivenessChange[] {
    const out: LivenessChange[] = [];
    for (const peer of this.peers) out.push(...this.evaluatePeer(peer, now));
    return out;
  }

  /** Every peer's state as seen from here at `now`. */
  view(now: number): Record<string, PeerInfo> {
    const out: Record<string, PeerInfo> = {};
    for (const peer of this.peers) {
      const d = this.derivePeer(peer, now);
      // 'down' only once evaluate() has reported it: Comm evaluates after reading its sockets, and
      // a decision made right after a stall of the process must not act on unread heartbeats.
      const state = d.state === 'down' && peer.shown.state !== 'down' ? peer.shown.state : d.state;
      const info: PeerInfo = { node: peer.name, state, suspect: d.suspect, lastHeardMs: peer.lastHeard, paths: d.paths, leaving: peer.leaving };
      if (peer.incarnation !== null) info.incarnation = peer.incarnation;
      if (peer.advert !== null) info.advert = peer.advert;
      if (peer.meta !== null) info.meta = peer.meta;
      out[peer.name] = info;
    }
    return out;
  }

  /** The earliest suspect/dead/path-dead/grace threshold crossing after `now`, or null: evaluate then. */
  nextDeadline(now: number): number | null {
    const t = this.timers;
    let next = Infinity;
    const consider = (at: number) => {
      if (at > now && at < next) next = at;
    };
    if (this.startedAt !== null) consider(this.startedAt + t.startupGraceMs);
    for (const peer of this.peers) {
      if (peer.lastHeard !== null) {
        const after = this.suspectAfter(peer, now);
        consider(peer.lastHeard + after);
        // Relaxed (paths disagree): it ends when the paths still on time fall late too (a
        // power-off, every path silent): be there then, the silence is already past suspicion.
        if (after > t.suspectAfterMs) for (const rx of peer.rx) if (rx.lastHeard !== null) consider(rx.lastHeard + this.onTimeMs() + 1);
        consider(peer.lastHeard + t.deadTimeMs);
      }
      for (const rx of peer.rx) if (rx.lastHeard !== null) consider(rx.lastHeard + t.pathDeadTimeMs);
    }
    return next === Infinity ? null : next;
  }

  /** The peer's state at `now`, without reporting anything. */
  derive(node: string, now: number): Derived {
    const peer = this.peers.find((x) => x.name === node);
    if (!peer) throw new Error(`liveness: ${JSON.stringify(node)} is not a peer of ${this.self}`);
    return this.derivePeer(peer, now);
  }

  // --- rules -------------------------------------------------------------------------------------

  /** Paths taking turns: at most one per path. */
  private stride(): number {
    return Math.min(this.timers.pathStride, this.paths);
  }

  /**
   * Silence after which a peer is suspect. A path may be broken one way only, which its sender
   * cannot see: it keeps taking turns over the paths and we hear it only every pathStride intervals
   * (300 ms with the defaults: the suspect threshold itself). A single lost path must not make a
   * live peer suspect: while one path is down and another up, or one path has missed its turn
   * (not heard for pathStride + 1/10 intervals) while another is on time, the threshold is
   * pathStride + 2 intervals (room for a loaded machine's jitter). When every path falls silent
   * together (a power-off) the last path is on time a tenth of an interval longer at most (15 ms
   * with the defaults): suspicion, and the disk watch it starts, come that much later at most.
   */
  private suspectAfter(peer: PeerLiveness, now: number): number {
    const t = this.timers;
    const within = (rx: PathRx, ms: number) => rx.lastHeard !== null && now - rx.lastHeard <= ms;
    const onTime = this.onTimeMs();
    const split = (ms: number) => peer.rx.some((rx) => within(rx, ms)) && peer.rx.some((rx) => !within(rx, ms));
    if (!split(t.pathDeadTimeMs) && !split(onTime)) return t.suspectAfterMs;
    return Math.max(t.suspectAfterMs, (this.stride() + 2) * t.heartbeatIntervalMs);
  }

  /** A path taking turns is heard at least this often (pathStride intervals and a tenth). */
  private onTimeMs(): number {
    return (this.stride() + 0.1) * this.timers.heartbeatIntervalMs;
  }

  /** A path is up while the peer was heard on it within pathDeadTimeMs. */
  private pathHeard(rx: PathRx, now: number): boolean {
    return rx.lastHeard !== null && now - rx.lastHeard < this.timers.pathDeadTimeMs;
  }

  private derivePeer(peer: PeerLiveness, now: number): Derived {
    const t = this.timers;
    const since = this.startedAt ?? now;
    const inGrace = now - since < t.startupGraceMs;
    const paths = peer.rx.map((rx): PathState => {
      if (rx.lastHeard === null) return inGrace ? 'unknown' : 'down';
      return this.pathHeard(rx, now) ? 'up' : 'down';
    });
    // Authentic heartbeats that do not echo us keep coming: a peer that cannot hear us (a link
    // broken one way), or a recording. Not alive by their evidence, but not provably gone either:
    // 'unknown', which keeps every decision it could be part of waiting, the safe side.
    const unconfirmed = peer.lastUnconfirmed !== null && now - peer.lastUnconfirmed < t.deadTimeMs;
    if (peer.lastHeard === null) {
      if (unconfirmed && !inGrace) return { state: 'unknown', suspect: true, paths, silentMs: now - since };
      return { state: inGrace ? 'unknown' : 'down', suspect: !inGrace, paths, silentMs: now - since };
    }
    const silentMs = now - peer.lastHeard;
    let state: PeerState = peer.leaving || silentMs >= t.deadTimeMs ? 'down' : 'up';
    if (state === 'down' && !peer.leaving && unconfirmed) state = 'unknown';
    // Alive, but our copy of its advert is not the one its heartbeats name (it restarted, or news
    // was lost, or it comes back after a partition): what it runs now is not known, so every
    // decision it is part of waits, about one round trip (the advert is asked for at once).
    if (state === 'up' && (peer.advertOf?.inc !== peer.incarnation || peer.missing)) state = 'unknown';
    // A leaving peer is not silent: it is down because it said so, not suspected of anything.
    return { state, suspect: silentMs >= this.suspectAfter(peer, now), paths, silentMs };
  }

  /** Compare the derived state to the last reported one, report the differences, remember them. */
  private evaluatePeer(peer: PeerLiveness, now: number): LivenessChange[] {
    const t = this.timers;
    const d = this.derivePeer(peer, now);
    const shown = peer.shown;
    const out: LivenessChange[] = [];
    const node = peer.name;

    for (const [p, rx] of peer.rx.entries()) {
      const st = d.paths[p] ?? 'unknown';
      if (st !== rx.shown) {
        out.push({ kind: 'path', node, path: p, from: rx.shown, to: st });
        rx.shown = st;
      }
      // Degraded redundancy: this path is down while the peer is clearly alive on another one,
      // and has been for a whole path dead time (so the path had its chance). A condition, not
      // an edge: when a node dies its paths cross the threshold microseconds apart, and when it
      // comes back its first packet arrives on one path microseconds before the other; neither
      // is a lost path.
      const aliveElsewhere =
        peer.lastHeard !== null && now - peer.lastHeard <= 2 * t.heartbeatIntervalMs && peer.aliveSince !== null && now - peer.aliveSince >= t.pathDeadTimeMs;
      if (st === 'down' && !rx.warned && aliveElsewhere) {
        rx.warned = true;
        out.push({ kind: 'degraded', node, path: p, silentMs: rx.lastHeard === null ? null : now - rx.lastHeard, neverHeard: rx.lastHeard === null });
      } else if (st === 'up' && rx.warned) {
        rx.warned = false;
        out.push({ kind: 'recovered', node, path: p });
      }
    }

    if (d.state !== shown.state) {
      const change: LivenessChange = { kind: 'state', node, from: shown.state, to: d.state, silentMs: d.silentMs, paths: d.paths, incarnation: peer.incarnation };
      if (d.state === 'down') {
        change.cause = peer.lastHeard === null ? 'never-heard' : peer.leaving && d.silentMs < t.deadTimeMs ? 'leaving' : 'silent';
      }
      out.push(change);
      shown.state = d.state;
    }
    if (d.suspect !== shown.suspect) {
      out.push({ kind: 'suspect', node, suspect: d.suspect, state: d.state, silentMs: d.silentMs });
      shown.suspect = d.suspect;
    }
    if (peer.incarnation !== shown.incarnation || peer.leaving !== shown.leaving || peer.advertVersion !== shown.advertVersion) {
      shown.incarnation = peer.incarnation;
      shown.leaving = peer.leaving;
      shown.advertVersion = peer.advertVersion;
      out.push({ kind: 'info', node, incarnation: peer.incarnation, leaving: peer.leaving, advertVersion: peer.advertVersion });
    }
    return out;
  }
}

// --- helpers -------------------------------------------------------------------------------------

/** A frozen copy: the view hands these out, and the caller's object stays its own. */
function frozenAdverts(h: Record<string, HierarchyAdvert>): Record<string, HierarchyAdvert> {
  // fromEntries defines own properties, so a hierarchy named "__proto__" stays one.
  return Object.freeze(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Object.freeze(cleanAdvert(v))])));
}

/** True when `a` (incarnation, version) is a later advert than `b`'s (a copy of format 1, no version, is older than any versioned one of its incarnation). */
function newerAdvert(a: { inc: number; version: number | null }, b: { inc: number; version: number | null } | null): boolean {
  if (b === null || a.inc > b.inc) return true;
  if (a.inc < b.inc || a.version === null) return false;
  return b.version === null || a.version > b.version;
}

export function cleanAdvert(a: HierarchyAdvert): HierarchyAdvert {
  const out: HierarchyAdvert = { state: a.state, epoch: a.epoch, eligible: a.eligible };
  if (a.ownerKey !== undefined) out.ownerKey = a.ownerKey;
  return out;
}

export function sameAdverts(a: Record<string, HierarchyAdvert>, b: Record<string, HierarchyAdvert>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k];
    const y = Object.hasOwn(b, k) ? b[k] : undefined;
    if (!x || !y || !sameHierarchyAdvert(x, y)) return false;
  }
  return true;
}
