// Cluster communication: authenticated UDP heartbeats over redundant comm paths.
//
// Each node binds one endpoint per comm path (its own address on that path; a UDP socket by
// default, see transport.ts) and, every heartbeatIntervalMs, sends a heartbeat to every peer. The
// paths take turns when they can afford to (commTimers' pathStride: each path still carries
// DEFAULTS.heartbeatsPerPathDeadTime heartbeats per dead time, so a path is judged as before, and
// the peer still hears us every interval): with two paths and the default timings, each path
// carries one every 300 ms. That halves the packets, the main idle cost of a node. To a peer not
// heard on every path lately (a path is broken, or the peer just started) and for news (an advert
// change) every path is used at every send. (A path broken one way only is not seen by its sender:
// the peer then hears us every pathStride intervals, still well inside the dead time, and its
// suspect threshold allows for that gap: liveness.ts suspectAfter.)
// A heartbeat carries a summary of this node's advert (version + digest, wire format 2): the advert
// itself goes out at once on news (every peer, every path), at start, and to a peer that asks for
// it (its heartbeats' `want` names us, because its copy does not match our summary); a peer
// lacking our current advert counts us 'unknown', not 'up' (liveness.ts), so "is it alive" and
// "what does it run" still arrive together. A peer heard speaking format 1 (the previous release,
// in a rolling upgrade) gets format 1 from us: the whole advert in every heartbeat.
// Receiving is where all the trust decisions are made:
//   - the source address:port must be a configured node's address on the receiving path,
//   - the HMAC must verify (packet.ts),
//   - the sender named in the body must be the node owning that source address (nobody speaks
//     for another node), on the path it was received on,
//   - (incarnation, seq) must strictly increase per sender and path (no replays), and the sender
//     must echo our incarnation to count as alive (liveness.ts).
// Bad packets are counted and logged (rate-limited); they never throw and never change a view.
//
// Liveness (up/down/unknown, suspect, per-path state, start-up grace) is liveness.ts, a pure
// rule against `now()` (monotonic by default, so a wall-clock step cannot kill or revive
// anybody); this file feeds it and turns what it reports into logs and events.
// One timer per Comm ticks every heartbeatIntervalMs: it sends and re-evaluates; a threshold
// crossed between two ticks gets a one-shot timer (armDeadline), so a death is seen at deadTimeMs.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../hierarchies/model.ts';
import { changesView, cleanAdvert, commTimers, Liveness, type LivenessChange, type PeerInfo } from './liveness.ts';
import { decode, encode, MAX_DATAGRAM_BYTES, sameHierarchyAdvert, UNFRAGMENTED_BYTES, type DecodeFailure, type Heartbeat, type HierarchyAdvert, type NodeMeta } from './packet.ts';
import { OwnAdvert } from './advert.ts';
import { parseAddress, UdpTransport, type PathAddress, type Transport } from './transport.ts';
import { RecvBudget } from './recv-budget.ts';
import { DEFAULTS } from './defaults.ts';

export { commTimers };
export type { PathState, PeerInfo, PeerState } from './liveness.ts';

export interface CommCounters {
  sent: number;
  received: number;
  /** Bytes of the heartbeats counted in sent / received (UDP payload). */
  sentBytes: number;
  receivedBytes: number;
  /** Authentic heartbeats not counted as life: the sender did not echo our incarnation (yet). */
  unconfirmed: number;
  sendErrors: number;
  dropped: {
    truncated: number;
    badMagic: number;
    badMac: number;
    malformed: number;
    wrongCluster: number;
    tooLarge: number;
    unknownNode: number;
    wrongPath: number;
    replayed: number;
    self: number;
    /** From a configured peer's source IP, over that source's budget before the HMAC (recv-budget.ts). */
    overBudget: number;
  };
}

export type DropReason = keyof CommCounters['dropped'];

export interface CommEvents {
  change: [];
  path: [node: string, path: number, state: 'up' | 'down'];
  drop: [reason: DropReason, from: string];
  /** Who is calm with us (calm()) may have changed. */
  calm: [];
  /** Once per heartbeat interval, after the heartbeats went out (the daemon's own tick can ride on it). */
  tick: [];
}

export interface CommOptions {
  cluster: ClusterConfig;
  self: string;
  key: Buffer;
  log: Logger;
  /** Clock for liveness (ms). Default: monotonic, epoch-based. */
  now?: () => number;
  /** This run's incarnation. Default: wall-clock start time in ms (a rebooted node sends a higher one). */
  incarnation?: number;
  /** Test seam only: return true to drop the heartbeat this node would send to `peer` on `path`. */
  dropSend?: (path: number, peer: string) => boolean;
  /** Where packets go. Default: UDP sockets. The Comm owns it: stop() closes it. */
  transport?: Transport;
}

const DECODE_REASON: Record<DecodeFailure, DropReason> = {
  truncated: 'truncated',
  'bad-magic': 'badMagic',
  'bad-mac': 'badMac',
  malformed: 'malformed',
  'wrong-cluster': 'wrongCluster',
  'too-large': 'tooLarge',
};

/**
 * Drops (and send errors) are logged at most once per second per (reason, source IP: not port, or
 * one host using 1024 source ports gets 1024 lines); quiet entries are forgotten.
 */
const DROP_LOG_INTERVAL_MS = 1_000;
const DROP_LOG_FORGET_MS = 10_000;
/** Bound on remembered (reason, source) pairs: a spoofed-source flood must not grow memory. */
const DROP_LOG_MAX_KEYS = 1_024;
/**
 * And on lines per second per reason, whatever the sources: one host using 1024 source ports got
 * 1.7k lines/s through the per-source limit. Past it, a count per second says how many were held.
 */
const DROP_LOG_PER_REASON = 10;

interface Peer {
  name: string;
  addrs: PathAddress[];
}

export class Comm extends EventEmitter<CommEvents> {
  private readonly cluster: ClusterConfig;
  private readonly selfName: string;
  private readonly key: Buffer;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly dropSend: ((path: number, peer: string) => boolean) | undefined;
  private readonly timers: ReturnType<typeof commTimers>;
  private readonly transport: Transport;
  private readonly liveness: Liveness;
  private readonly selfAddrs: PathAddress[];
  private readonly peers: Peer[];
  private readonly peerByName = new Map<string, Peer>();
  /** Per path: source "host:port" -> node name. */
  private readonly byPath: Array<Map<string, string>>;
  /** Any path: source "host:port" -> [node, path], to tell a cross-wired path from a stranger. */
  private readonly anyPath = new Map<string, [string, number]>();

  private readonly incarnation: number;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private tickCount = 0;
  private phase: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  private readonly own = new OwnAdvert();
  /** Peers whose last authentic heartbeat was of an earlier wire format (1 or 2): they get that format. */
  private readonly olderFormat = new Map<string, 1 | 2>();
  /** Our doubts as last sent (joined names): a change goes out at once. */
  private doubtsSent = '';
  /** Answers due this loop turn (see queueAnswer): path -> peers, with our advert or only our `want`. */
  private readonly answers = { advert: new Map<number, Set<string>>(), want: new Map<number, Set<string>>(), queued: false };
  private sendQueued = false;
  private warnedFragmented = false;
  private readonly c: CommCounters = {
    sent: 0,
    received: 0,
    sentBytes: 0,
    receivedBytes: 0,
    unconfirmed: 0,
    sendErrors: 0,
    dropped: { truncated: 0, badMagic: 0, badMac: 0, malformed: 0, wrongCluster: 0, tooLarge: 0, unknownNode: 0, wrongPath: 0, replayed: 0, self: 0, overBudget: 0 },
  };
  private readonly dropLog = new Map<string, { last: number; suppressed: number; what: string; from: string }>();
  /** What a packet from a peer's source may cost before it is known authentic (recv-budget.ts). */
  private readonly recvBudget: RecvBudget;
  private lastDropSweep = 0;

  constructor(opts: CommOptions) {
    super();
    const { cluster, self } = opts;
    this.cluster = cluster;
    this.selfName = self;
    this.key = opts.key;
    this.log = opts.log.child({ comp: 'comm' });
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.dropSend = opts.dropSend;
    this.incarnation = opts.incarnation ?? Date.now();
    this.timers = commTimers(cluster);
    const where = `cluster file ${cluster.file}`;

    if (!(cluster.heartbeatIntervalMs > 0)) throw new Error(`${where}: heartbeatIntervalMs must be > 0 (got ${cluster.heartbeatIntervalMs})`);
    if (!(cluster.deadTimeMs >= 2 * cluster.heartbeatIntervalMs)) {
      throw new Error(
        `${where}: deadTimeMs (${cluster.deadTimeMs}) must be at least twice heartbeatIntervalMs (${cluster.heartbeatIntervalMs}), ` +
          `or a single late packet declares a live node dead`,
      );
    }
    if (opts.key.length === 0) throw new Error(`${where}: empty auth key`);
    const me = cluster.nodes.find((n) => n.name === self);
    if (!me) throw new Error(`${where}: this node ${JSON.stringify(self)} is not one of its nodes (${cluster.nodes.map((n) => n.name).join(', ')})`);
    const pathCount = me.addresses.length;
    if (pathCount === 0) throw new Error(`${where}: node ${self} has no comm path addresses`);
    if (pathCount > 256) throw new Error(`${where}: node ${self} has ${pathCount} comm paths (at most 256)`);

    this.byPath = Array.from({ length: pathCount }, () => new Map<string, string>());
    const parsed = new Map<string, PathAddress[]>();
    for (const n of cluster.nodes) {
      if (parsed.has(n.name)) throw new Error(`${where}: node name ${n.name} appears twice`);
      if (n.addresses.length !== pathCount) {
        throw new Error(`${where}: node ${n.name} has ${n.addresses.length} comm path addresses but node ${self} has ${pathCount}: every node needs one per path`);
      }
      const addrs = n.addresses.map((text, p) => {
        const a = parseAddress(text, `${where}: node ${n.name} path ${p}`);
        const taken = this.anyPath.get(a.key);
        if (taken) throw new Error(`${where}: address ${text} is used twice (node ${taken[0]} path ${taken[1]} and node ${n.name} path ${p})`);
        const family = me.addresses[p] === undefined ? a.family : parseAddress(me.addresses[p], `${where}: node ${self} path ${p}`).family;
        if (a.family !== family) throw new Error(`${where}: node ${n.name} path ${p}: address ${text} is IPv${a.family} but node ${self} path ${p} is IPv${family}: a path is one network`);
        this.anyPath.set(a.key, [n.name, p]);
        this.byPath[p]?.set(a.key, n.name);
        return a;
      });
      parsed.set(n.name, addrs);
    }
    this.selfAddrs = parsed.get(self) ?? [];
    this.peers = cluster.nodes.filter((n) => n.name !== self).map((n) => ({ name: n.name, addrs: parsed.get(n.name) ?? [] }));
    for (const p of this.peers) this.peerByName.set(p.name, p);
    this.liveness = new Liveness({ self, selfIncarnation: this.incarnation, peers: this.peers.map((p) => p.name), paths: pathCount, timers: this.timers });
    // A source IP shared by several configured addresses (nodes on one host, ports apart) gets a
    // bucket that much bigger: one bucket per IP, as many tokens as per address.
    const perIp = new Map<string, number>();
    for (const key of this.anyPath.keys()) perIp.set(hostOf(key), (perIp.get(hostOf(key)) ?? 0) + 1);
    this.recvBudget = new RecvBudget({
      small: { perSecond: DEFAULTS.recvBudgetSmallPerSec, burst: DEFAULTS.recvBudgetSmallBurst },
      large: { perSecond: DEFAULTS.recvBudgetLargePerSec, burst: DEFAULTS.recvBudgetLargeBurst },
      // A routine heartbeat fits one Ethernet frame (packet.ts); bigger ones are adverts.
      smallMaxBytes: UNFRAGMENTED_BYTES,
      maxSources: DEFAULTS.recvBudgetMaxSources,
      weight: (ip) => perIp.get(ip) ?? 1,
    });
    this.transport = opts.transport ?? new UdpTransport();
    this.transport.onPacket((p, msg, srcKey, from) => this.onMessage(p, msg, srcKey, from));
    this.transport.onError((p, a, err) => this.log.error({ err, path: p, address: a.text }, 'comm socket error'));
  }

  /** Bind one endpoint per path on this node's address; rejects naming the address on failure. */
  async start(): Promise<void> {
    if (this.phase !== 'new') throw new Error(`comm of node ${this.selfName}: start() called twice (a Comm runs once)`);
    this.phase = 'starting';
    try {
      for (const [p, a] of this.selfAddrs.entries()) {
        try {
          await this.transport.bind(p, a);
        } catch (err) {
          throw new Error(`comm path ${p} of node ${this.selfName}: cannot bind ${a.text} (cluster file ${this.cluster.file}): ${(err as Error).message}`);
        }
        if (this.phase !== 'starting') throw new Error(`comm of node ${this.selfName}: stopped while starting`);
      }
    } catch (err) {
      await this.transport.close();
      this.phase = 'stopped';
      throw err;
    }
    this.phase = 'running';
    this.logReceiveBuffers();
    this.liveness.start(this.now());
    this.log.info(
      { node: this.selfName, incarnation: this.incarnation, paths: this.selfAddrs.map((a) => a.text), peers: this.peers.map((p) => p.name), ...this.timers },
      'comm started',
    );
    this.sendRound(true); // peers learn about us at once, not one interval later
    this.timer = setInterval(() => this.tick(), this.timers.tickMs);
  }

  /** Say what receive buffer each path got; warn when the kernel capped it (junk or a stall then overflows it sooner). */
  private logReceiveBuffers(): void {
    for (const p of this.selfAddrs.keys()) {
      const b = this.transport.receiveBuffer?.(p);
      if (!b) continue;
      if (!b.capped) {
        this.log.info({ path: p, bytes: b.got }, `comm: UDP receive buffer on path ${p}: ${b.got} bytes`);
        continue;
      }
      this.log.warn(
        { path: p, asked: b.asked, got: b.got, err: b.error },
        `comm: UDP receive buffer on path ${p} is ${b.got} bytes, not the ${b.asked} asked for: the kernel caps it at net.core.rmem_max ` +
          `(sysctl -w net.core.rmem_max=${b.asked}); a burst of junk or a stall of this process then overflows it sooner, and real heartbeats are lost with it`,
      );
    }
  }

  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    await this.transport.close();
    this.log.info({ node: this.selfName }, 'comm stopped');
  }

  /**
   * Set what this node advertises. Included in every heartbeat; a change (or a change of
   * `leaving`) is also sent at once. Throws when the advert cannot be encoded (bad field or
   * over the UDP limit): better to fail the caller than to go silent to every peer.
   */
  setAdvert(h: Record<string, HierarchyAdvert>, opts: { leaving?: boolean } = {}): void {
    // An unchanged entry stays the same frozen object: its wire form is remembered (packet.ts).
    const prev = this.own.hierarchies;
    const next = Object.freeze(
      Object.fromEntries(
        Object.entries(h).map(([k, v]) => {
          const p = Object.hasOwn(prev, k) ? prev[k] : undefined;
          return [k, p && sameHierarchyAdvert(p, v) ? p : Object.freeze(cleanAdvert(v))];
        }),
      ),
    );
    const leaving = opts.leaving === true;
    const trial = new OwnAdvert();
    trial.meta = this.own.meta; // before set(): one digest, of the advert as it will be
    trial.set(next, leaving);
    this.checkEncodable(trial);
    if (this.own.set(next, leaving)) this.sendNews();
  }

  /** Set the node-level news (admin map, configuration fingerprint): part of the advert, a change goes out at once. */
  setMeta(meta: NodeMeta): void {
    // Frozen: the advert's digest is remembered per (hierarchies, meta) object (packet.ts).
    meta = Object.freeze({ ...meta });
    const trial = new OwnAdvert();
    trial.meta = meta;
    trial.set(this.own.hierarchies, this.own.leaving);
    this.checkEncodable(trial);
    if (this.own.setMeta(meta)) this.sendNews();
  }

  /** Throws when the advert cannot be encoded; says once when it no longer fits one frame. */
  private checkEncodable(trial: OwnAdvert): void {
    // The format-1 encoding (for peers of the previous release) is as big.
    const size = encode({ ...this.heartbeat(0, this.seq, trial, true), want: this.liveness.wanted() }, this.key).length;
    if (size > UNFRAGMENTED_BYTES && !this.warnedFragmented) {
      this.warnedFragmented = true;
      this.log.info(
        { node: this.selfName, bytes: size, hierarchies: Object.keys(trial.hierarchies).length },
        `advert is larger than ${UNFRAGMENTED_BYTES} bytes: it goes out as IP fragments (only on change and on request: routine heartbeats carry its digest)`,
      );
    }
  }

  private sendNews(): void {
    if (this.phase === 'running' && !this.sendQueued) {
      // Coalesce a burst of synchronous setAdvert calls into one immediate round.
      this.sendQueued = true;
      queueMicrotask(() => {
        this.sendQueued = false;
        if (this.phase === 'running') this.sendRound(true);
      });
    }
  }

  /** Every peer's state as seen from here, computed at now(). */
  view(): Record<string, PeerInfo> {
    return this.liveness.view(this.now());
  }

  counters(): CommCounters {
    return { ...this.c, dropped: { ...this.c.dropped } };
  }

  // --- sending ---------------------------------------------------------------------------------

  /** A format-3 heartbeat (with the advert when `carry`); format 2 without our doubts; format 1 always carries the advert. */
  private heartbeat(path: number, seq: number, own: OwnAdvert, carry: boolean, format: 1 | 2 | 3 = 3): Heartbeat {
    const heard = this.liveness.heard();
    const base = { cluster: this.cluster.cluster, node: this.selfName, incarnation: this.incarnation, path, seq, heard, ...(own.leaving ? { leaving: true } : {}) };
    // Format 1 without the meta: the previous release does not know that field.
    if (format === 1) return { ...base, hierarchies: own.hierarchies as Record<string, HierarchyAdvert> };
    const want = this.liveness.wanted();
    const hb: Heartbeat = { ...base, ...own.summary(carry), ...(want.length > 0 ? { want } : {}) };
    if (format === 3) hb.doubts = this.liveness.doubts(this.now());
    return hb;
  }

  /**
   * Heartbeats to every peer: on every path (`all`: start-up, news), or routinely on this tick's
   * share of the paths (see the file comment) — except to a peer not heard on every path lately,
   * which gets all of them: a broken path must not halve how often the peer hears us. The bytes
   * do not depend on the receiver, so one encode per path serves all peers, and the seq is per
   * round (same on every path).
   */
  private sendRound(all: boolean, carry = all): void {
    this.seq++;
    const stride = Math.min(this.timers.pathStride, this.selfAddrs.length);
    const turn = this.tickCount % stride;
    const wantsAll = all ? this.peers : this.liveness.wantsEveryPath(this.now()).flatMap((n) => this.peerByName.get(n) ?? []);
    for (const p of this.selfAddrs.keys()) {
      const onTurn = all || p % stride === turn;
      const to = onTurn ? this.peers : wantsAll;
      if (to.length === 0) continue;
      // News and start carry the advert; routine heartbeats only its summary.
      this.sendTo(p, to, this.seq, carry);
    }
  }

  /** One heartbeat on path `p` to `to`: one encode per format, the same bytes for every peer. */
  private sendTo(p: number, to: readonly Peer[], seq: number, carry: boolean): void {
    const bufs: Partial<Record<1 | 2 | 3, Buffer | null>> = {};
    for (const peer of to) {
      const format = this.olderFormat.get(peer.name) ?? 3;
      let buf = bufs[format];
      if (buf === undefined) {
        try {
          buf = encode(this.heartbeat(p, seq, this.own, carry, format), this.key);
        } catch (err) {
          // setAdvert already encoded this advert, so this is a bug: say so, keep running.
          buf = null;
          this.c.sendErrors++;
          this.log.error({ err, path: p, format }, 'comm: cannot encode heartbeat');
        }
        bufs[format] = buf;
      }
      if (buf === null) continue;
      if (this.dropSend?.(p, peer.name)) continue;
      const addr = peer.addrs[p];
      if (!addr) continue;
      const bytes = buf;
      try {
        this.transport.send(p, addr, bytes, (err) => {
          if (err) this.sendFailed(p, peer.name, addr.text, err);
          else {
            this.c.sent++;
            this.c.sentBytes += bytes.length;
          }
        });
      } catch (err) {
        this.sendFailed(p, peer.name, addr.text, err as Error);
      }
    }
  }

  /**
   * A peer asked for our advert (`advert`), or we found we miss its advert (`want`): answer on the
   * path it came on, in this loop turn. Answers due in one turn share one heartbeat per path.
   */
  private queueAnswer(kind: 'advert' | 'want', peer: string, p: number): void {
    const m = this.answers[kind];
    let set = m.get(p);
    if (!set) m.set(p, (set = new Set()));
    set.add(peer);
    if (this.answers.queued) return;
    this.answers.queued = true;
    setImmediate(() => {
      this.answers.queued = false;
      const { advert, want } = this.answers;
      const paths = new Set([...advert.keys(), ...want.keys()]);
      if (this.phase !== 'running' || paths.size === 0) return advert.clear(), want.clear();
      this.seq++;
      for (const path of paths) {
        const full = [...(advert.get(path) ?? [])].flatMap((n) => this.peerByName.get(n) ?? []);
        const ask = [...(want.get(path) ?? [])].filter((n) => !advert.get(path)?.has(n)).flatMap((n) => this.peerByName.get(n) ?? []);
        if (full.length > 0) this.sendTo(path, full, this.seq, true);
        if (ask.length > 0) this.sendTo(path, ask, this.seq, false);
      }
      advert.clear();
      want.clear();
    });
  }

  private sendFailed(path: number, peer: string, to: string, err: Error): void {
    this.c.sendErrors++;
    // Same rate limit as drops: an unplugged interface fails every send, every interval.
    if (this.shouldLog(`send|${to}|${(err as NodeJS.ErrnoException).code ?? err.message}`, 'send error', to)) {
      this.log.warn({ peer, path, to, err: err.message }, 'comm: heartbeat send failed');
    }
  }

  // --- receiving -------------------------------------------------------------------------------

  private onMessage(p: number, msg: Buffer, srcKey: string, from: string): void {
    if (this.phase !== 'running') return;
    try {
      this.receive(p, msg, srcKey, from);
    } catch (err) {
      // Nothing a packet contains may take the daemon down.
      this.log.error({ err, path: p, from }, 'comm: error handling a packet (ignored)');
    }
  }

  private receive(p: number, msg: Buffer, srcKey: string, from: string): void {
    // Nothing above the UDP limit is ours (encode refuses it): dropped unread. No tighter size cap
    // is safe: an advert's admin map (up to DEFAULTS.adminMaxEntries entries) and blocked reasons
    // do not depend on the configuration's size, so any cluster may send adverts up to the limit.
    // The receive budget below keeps large packets in their own class instead.
    if (msg.length > MAX_DATAGRAM_BYTES) return this.drop('tooLarge', from, p, `${msg.length} bytes: over the ${MAX_DATAGRAM_BYTES}-byte UDP limit`);
    // Source next: cheap, and a stranger's packet is not worth an HMAC.
    const srcNode = this.byPath[p]?.get(srcKey);
    if (srcNode === undefined) {
      const elsewhere = this.anyPath.get(srcKey);
      if (elsewhere) return this.drop('wrongPath', from, p, `source is node ${elsewhere[0]}'s address on path ${elsewhere[1]}, received on path ${p} (cross-wired networks?)`);
      return this.drop('unknownNode', from, p, 'source address is not a configured node address on this path');
    }
    // A peer's source, but possibly spoofed: within that source IP's budget, or dropped unread.
    const ip = hostOf(srcKey);
    if (!this.recvBudget.take(ip, msg.length, this.now())) {
      return this.drop('overBudget', from, p, `more unauthenticated ${this.recvBudget.classOf(msg.length)} packets from node ${srcNode}'s address than its budget (a flood spoofing it?)`);
    }
    const r = decode(msg, this.key, this.cluster.cluster);
    if (!r.ok) {
      const detail =
        r.reason === 'bad-mac' ? 'HMAC does not verify: different auth key on that node, or forged' : r.reason === 'wrong-cluster' ? 'heartbeat of another cluster' : undefined;
      return this.drop(DECODE_REASON[r.reason], from, p, detail);
    }
    const hb = r.hb;
    if (hb.node === this.selfName) return this.drop('self', from, p, `claims to be this node (${hb.node}): two nodes configured with the same name?`);
    if (hb.node !== srcNode) return this.drop('unknownNode', from, p, `claims to be node ${JSON.stringify(hb.node)} but the source address is node ${srcNode}'s`);
    if (hb.path !== p) return this.drop('wrongPath', from, p, `says path ${hb.path}, received on path ${p}`);

    const res = this.liveness.receive(hb, this.now());
    if (!res.ok && res.reason === 'replayed') return this.drop('replayed', from, p, res.detail);
    // Authentic and fresh: the peer's own traffic does not spend its budget.
    this.recvBudget.refund(ip, msg.length, this.now());
    // Speak the format the peer speaks, decided on any authentic fresh packet, echo or not: a
    // node of an earlier release cannot read our format, so it never hears us, and its packets
    // never echo us, until we speak its format to it.
    if (hb.advertVersion === undefined) this.olderFormat.set(srcNode, 1);
    else if (hb.doubts === undefined) this.olderFormat.set(srcNode, 2);
    else this.olderFormat.delete(srcNode);
    if (res.ok && res.doubtChanged) this.emitSafe('calm');
    if (!res.ok) {
      this.c.unconfirmed++;
      this.report(res.changes);
      if (this.shouldLog(`unconfirmed|${from}`, 'unconfirmed', from)) {
        this.log.info({ node: srcNode, from, path: p, incarnation: hb.incarnation }, `comm: heartbeat of ${srcNode} does not echo our incarnation yet: not counted as alive (a just-started peer, or a replay)`);
      }
      return;
    }
    this.c.received++;
    this.c.receivedBytes += msg.length;
    if (res.request) this.queueAnswer('advert', srcNode, p);
    if (res.need) this.queueAnswer('want', srcNode, p);
    if (res.restartedFrom !== undefined) {
      this.log.warn({ node: srcNode, incarnation: hb.incarnation, previous: res.restartedFrom }, 'comm: peer restarted (new incarnation)');
    }
    this.report(res.changes);
  }

  private drop(reason: DropReason, from: string, path: number, detail?: string): void {
    this.c.dropped[reason]++;
    this.emitSafe('drop', reason, from);
    const host = hostOf(from);
    if (this.shouldLog(`${reason}|${host}`, reason, host)) this.log.warn({ reason, from, path, detail }, `comm: dropped packet (${reason})`);
  }

  /** Rate limit: true at most once per DROP_LOG_INTERVAL_MS per key, and within the reason's budget; counts the rest. */
  private shouldLog(key: string, what: string, from: string): boolean {
    const now = this.now();
    let e = this.dropLog.get(key);
    if (!e) {
      if (this.dropLog.size >= DROP_LOG_MAX_KEYS) key = `${what}|*`;
      e = this.dropLog.get(key);
      if (!e) {
        this.dropLog.set(key, { last: now, suppressed: 0, what, from: key.endsWith('|*') ? '*' : from });
        return this.budget(what, now);
      }
    }
    if (now - e.last >= DROP_LOG_INTERVAL_MS) {
      if (e.suppressed > 0 && this.budget(e.what, now, e.suppressed)) this.log.warn({ what: e.what, from: e.from, suppressed: e.suppressed }, `comm: ${e.suppressed} more (${e.what}) not logged one by one`);
      e.last = now;
      e.suppressed = 0;
      return this.budget(what, now);
    }
    e.suppressed++;
    return false;
  }

  private readonly reasonBudget = new Map<string, { start: number; lines: number; held: number }>();
  /** True while `what` has lines left this second (and counts one); else adds `n` to what it held back. */
  private budget(what: string, now: number, n = 1): boolean {
    let b = this.reasonBudget.get(what);
    if (!b || now - b.start >= DROP_LOG_INTERVAL_MS) {
      this.flushBudget(what, b);
      b = { start: now, lines: 0, held: 0 };
      this.reasonBudget.set(what, b);
    }
    if (b.lines < DROP_LOG_PER_REASON) {
      b.lines++;
      return true;
    }
    b.held += n;
    return false;
  }

  private flushBudget(what: string, b: { held: number } | undefined): void {
    if (b && b.held > 0) this.log.warn({ what, suppressed: b.held }, `comm: ${b.held} more (${what}) not logged: over ${DROP_LOG_PER_REASON} lines a second for this reason`);
  }

  /** Report counts held back by the rate limit, and forget sources that went quiet. */
  private sweepDropLog(now: number): void {
    if (now - this.lastDropSweep < DROP_LOG_INTERVAL_MS) return;
    this.lastDropSweep = now;
    for (const [key, e] of this.dropLog) {
      if (e.suppressed > 0 && now - e.last >= DROP_LOG_INTERVAL_MS) {
        if (this.budget(e.what, now, e.suppressed)) this.log.warn({ what: e.what, from: e.from, suppressed: e.suppressed }, `comm: ${e.suppressed} more (${e.what}) not logged one by one`);
        e.last = now;
        e.suppressed = 0;
      } else if (e.suppressed === 0 && now - e.last >= DROP_LOG_FORGET_MS) {
        this.dropLog.delete(key);
      }
    }
    for (const [what, b] of this.reasonBudget) {
      if (now - b.start < DROP_LOG_INTERVAL_MS) continue;
      this.flushBudget(what, b);
      this.reasonBudget.delete(what);
    }
  }

  // --- liveness timing -------------------------------------------------------------------------

  private lastTickAt: number | undefined;
  private tick(): void {
    try {
      const at = performance.now();
      const lagMs = this.lastTickAt === undefined ? 0 : at - (this.lastTickAt + this.timers.tickMs);
      this.lastTickAt = at;
      this.tickCount++;
      this.sendRound(false);
      this.evaluateSoon(lagMs);
      this.emitSafe('tick');
    } catch (err) {
      this.log.error({ err }, 'comm: tick failed (continuing)');
    }
  }

  /**
   * Judge the peers, but only after the heartbeats already waiting in our sockets are read. Timers
   * run before I/O in an event-loop turn: after a stall of this process (CPU storm, GC, a short
   * freeze) the overdue timer fired first and declared peers dead whose heartbeats sat unread in
   * the socket buffer — and the node then raced its live peers for their disks. An immediate
   * queued from inside an immediate runs in the NEXT loop turn, after that turn's poll phase has
   * read what arrived during the stall (a single setImmediate is not enough: it may run right
   * after the stalled callback in the same check phase). Only when the timer fired late: on time,
   * nothing can be waiting unread that matters, and the two extra loop turns per heartbeat were a
   * measurable part of an idle node's CPU.
   */
  private evaluateQueued = false;
  private evaluateSoon(lagMs: number): void {
    if (this.evaluateQueued) return;
    if (lagMs <= this.timers.heartbeatIntervalMs / 2) {
      this.evaluateNow();
      return;
    }
    this.evaluateQueued = true;
    setImmediate(() =>
      setImmediate(() => {
        this.evaluateQueued = false;
        if (this.phase === 'running') this.evaluateNow();
      }),
    );
  }

  private evaluateNow(): void {
    try {
      const now = this.now();
      this.report(this.liveness.evaluate(now));
      this.sweepDropLog(now);
      this.armDeadline(now);
    } catch (err) {
      this.log.error({ err }, 'comm: peer evaluation failed (continuing)');
    }
  }

  /** Wake up exactly when the next suspect/dead/path-dead threshold is crossed, if before the next tick. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  private armDeadline(now: number): void {
    const next = this.liveness.nextDeadline(now);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    if (next === null || next - now >= this.timers.tickMs) return;
    const delay = Math.ceil(next - now) + 1;
    const due = performance.now() + delay;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      if (this.phase === 'running') this.evaluateSoon(performance.now() - due);
    }, delay);
  }

  /** Log and emit what liveness reported ('path' events first, then one 'change'). */
  private report(changes: LivenessChange[]): void {
    for (const ch of changes) this.reportOne(ch);
    if (changesView(changes)) this.emitSafe('change');
    if (changes.some((ch) => ch.kind === 'state' || ch.kind === 'suspect')) this.doubtsMoved();
  }

  /**
   * Our doubts changed: a peer we newly doubt hears it at once, on every path (it may hold disks we
   * are about to watch: its keys must start moving), and the keeper looks again. Only those peers:
   * on a saturated machine doubts flap, and a round to every peer each time fed the saturation.
   */
  private doubtsMoved(): void {
    const list = this.liveness.doubts(this.now());
    const doubts = list.join(',');
    if (doubts === this.doubtsSent) return;
    const before = new Set(this.doubtsSent.split(','));
    this.doubtsSent = doubts;
    const newly = list.filter((n) => !before.has(n)).flatMap((n) => this.peerByName.get(n) ?? []);
    if (this.phase === 'running' && newly.length > 0) {
      this.seq++;
      for (const p of this.selfAddrs.keys()) this.sendTo(p, newly, this.seq, false);
    }
    this.emitSafe('calm');
  }

  /** Neither we nor that peer doubt the other (liveness.ts calm): it cannot be racing us for a disk. */
  calm(node: string): boolean {
    return this.liveness.calm(node, this.now());
  }

  /** One of these nodes is not calm with us (liveness.ts contested). */
  contested(nodes: Iterable<string>, hierarchy?: string): boolean {
    return this.liveness.contested(nodes, this.now(), hierarchy);
  }

  private reportOne(ch: LivenessChange): void {
    const node = ch.node;
    switch (ch.kind) {
      case 'path':
        if (ch.to !== 'unknown') this.emitSafe('path', node, ch.path, ch.to);
        return;
      case 'degraded':
        this.log.warn(
          {
            event: 'path-down',
            node,
            path: ch.path,
            address: this.peerByName.get(node)?.addrs[ch.path]?.text,
            silentMs: ch.silentMs === null ? null : Math.round(ch.silentMs),
            neverHeard: ch.neverHeard,
          },
          `comm: degraded redundancy: path ${ch.path} to node ${node} lost (node still heard on another path)`,
        );
        return;
      case 'recovered':
        this.log.info({ event: 'path-up', node, path: ch.path, address: this.peerByName.get(node)?.addrs[ch.path]?.text }, `comm: path ${ch.path} to node ${node} recovered`);
        return;
      case 'state':
        if (ch.to === 'up') {
          this.log.info({ node, paths: ch.paths, incarnation: ch.incarnation ?? undefined, was: ch.from }, `comm: node ${node} up`);
        } else if (ch.to === 'down' && ch.cause === 'leaving') {
          this.log.info({ node }, `comm: node ${node} is leaving (clean shutdown): down without waiting dead time`);
        } else if (ch.to === 'down') {
          const neverHeard = ch.cause === 'never-heard';
          this.log.warn(
            { node, silentMs: Math.round(ch.silentMs), neverHeard, was: ch.from },
            neverHeard ? `comm: node ${node} not heard since start: down` : `comm: node ${node} down (silent on every path)`,
          );
        }
        return;
      case 'suspect':
        if (ch.suspect && ch.state === 'up') this.log.info({ event: 'peer-suspect', node, silentMs: Math.round(ch.silentMs) }, `comm: node ${node} suspect (silent on every path)`);
        return;
      case 'info':
        return;
    }
  }

  /** A throwing listener is a bug elsewhere; it must not stop heartbeats or liveness checks. */
  private emitSafe<K extends keyof CommEvents>(event: K, ...args: CommEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: CommEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.log.error({ err, event }, 'comm: event listener threw (ignored)');
    }
  }
}

/** The host part of "host:port" or "[v6]:port" (drop logs and the receive budget go by host: one host has 65535 ports). */
function hostOf(key: string): string {
  const i = key.lastIndexOf(':');
  return i < 0 ? key : key.slice(0, i);
}
