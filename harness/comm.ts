// Cluster communication: authenticated UDP heartbeats over redundant comm paths.
//
// Each node binds one UDP socket per comm path (its own address on that path) and, every
// heartbeatIntervalMs, sends a heartbeat to every peer. The paths take turns when they can afford
// to (commTimers' pathStride: each path still carries DEFAULTS.heartbeatsPerPathDeadTime heartbeats
// per dead time, so a path is judged as before, and the peer still hears us every interval): with
// two paths and the default timings, each path carries one every 300 ms. That halves the packets,
// the main idle cost of a node. To a peer not heard on every path lately (a path is broken, or the
// peer just started) and for news (an advert change) every path is used at every send. (A path
// broken one way only is not seen by its sender: the peer then hears us every pathStride intervals,
// still well inside the dead time, and its suspect threshold allows for that gap: suspectAfter.)
// A heartbeat carries this node's hierarchy adverts, so "is it alive" and "what does it run"
// always arrive together. Receiving is where all the trust decisions are made:
//   - the source address:port must be a configured node's address on the receiving path,
//   - the HMAC must verify (packet.ts),
//   - the sender named in the body must be the node owning that source address (nobody speaks
//     for another node), on the path it was received on,
//   - (incarnation, seq) must strictly increase per sender and path (no replays).
// Bad packets are counted and logged (rate-limited); they never throw and never change a view.
//
// Liveness, all computed from the last accepted packet per path, against `now()` (monotonic by
// default, so a wall-clock step cannot kill or revive anybody):
//   path  up      heard within pathDeadMs             (pathDeadMs = deadTimeMs)
//   peer  up      heard on some path within deadTimeMs
//   peer  suspect silent on every path for suspectAfterMs (= deadTimeMs / 3; while a path to it is
//                 down or late, pathStride + 2 intervals: see suspectAfter)
//   peer  down    silent on every path for deadTimeMs, or its last heartbeat said `leaving`
//   unknown       never heard yet and still inside the startup grace (= deadTimeMs)
// One timer per Comm ticks every heartbeatIntervalMs: it sends and re-evaluates; a threshold
// crossed between two ticks gets a one-shot timer (armDeadline), so a death is seen at deadTimeMs.

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { SocketAddress, isIP } from 'node:net';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../hierarchies/model.ts';
import { DEFAULTS } from './defaults.ts';
import { decode, encode, UNFRAGMENTED_BYTES, type DecodeFailure, type HierarchyAdvert } from './packet.ts';

export type PeerState = 'up' | 'down' | 'unknown'; // unknown = never heard yet and still inside startup grace
export type PathState = 'up' | 'down' | 'unknown';

export interface PeerInfo {
  node: string;
  state: PeerState;
  suspect: boolean;
  /** When any path last delivered an accepted heartbeat, in `now()` terms; null = never. */
  lastHeardMs: number | null;
  paths: PathState[];
  incarnation?: number;
  leaving: boolean;
  /** The peer's last advert (kept when it goes down: stale, but the last word it said). */
  advert?: Record<string, HierarchyAdvert>;
}

export interface CommCounters {
  sent: number;
  received: number;
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
  };
}

export type DropReason = keyof CommCounters['dropped'];

export interface CommEvents {
  change: [];
  path: [node: string, path: number, state: 'up' | 'down'];
  drop: [reason: DropReason, from: string];
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
}

/** The comm timers derived from the cluster's heartbeat interval and dead time. */
export function commTimers(c: Pick<ClusterConfig, 'heartbeatIntervalMs' | 'deadTimeMs'>) {
  return {
    heartbeatIntervalMs: c.heartbeatIntervalMs,
    deadTimeMs: c.deadTimeMs,
    // Early on purpose: being suspect only makes challengers start reading the holder's key on
    // disk, so the frozen-key window overlaps most of the dead time (2 missed heartbeats here).
    suspectAfterMs: c.deadTimeMs / 3,
    pathDeadTimeMs: c.deadTimeMs,
    startupGraceMs: c.deadTimeMs,
    /** Send period and routine re-evaluation; threshold crossings between two ticks get a precise
     *  one-shot timer (armDeadline), so detection stays at deadTimeMs + event-loop lag while an idle
     *  node wakes up only once per heartbeat (idle CPU). */
    tickMs: Math.max(5, c.heartbeatIntervalMs),
    /** Routine heartbeats rotate over the paths, each path used every pathStride-th tick: as many
     *  as there are paths, but each path must still carry heartbeatsPerPathDeadTime per dead time
     *  (1 = every path every tick). Capped by the path count in the Comm. */
    pathStride: Math.max(1, Math.floor(c.deadTimeMs / (DEFAULTS.heartbeatsPerPathDeadTime * c.heartbeatIntervalMs))),
  };
}

const DECODE_REASON: Record<DecodeFailure, DropReason> = {
  truncated: 'truncated',
  'bad-magic': 'badMagic',
  'bad-mac': 'badMac',
  malformed: 'malformed',
  'wrong-cluster': 'wrongCluster',
  'too-large': 'tooLarge',
};

/** Drops (and send errors) are logged at most once per second per (reason, source); quiet entries are forgotten. */
const DROP_LOG_INTERVAL_MS = 1_000;
const DROP_LOG_FORGET_MS = 10_000;
/** Bound on remembered (reason, source) pairs: a spoofed-source flood must not grow memory. */
const DROP_LOG_MAX_KEYS = 1_024;

interface Addr {
  host: string;
  port: number;
  family: 4 | 6;
  /** Canonical "host:port", as a received packet's source reads. */
  key: string;
  text: string;
}

interface PathRx {
  lastHeard: number | null;
  /** Highest accepted (incarnation, seq) on this path. */
  inc: number;
  seq: number;
  /** State last reported (events and logs are sent on changes of this). */
  shown: PathState;
  /** "degraded redundancy" was logged for this path and not yet followed by "recovered". */
  warned: boolean;
}

interface Peer {
  name: string;
  addrs: Addr[];
  rx: PathRx[];
  lastHeard: number | null;
  /** Start of the current stretch of being heard (first packet after being down or never heard). */
  aliveSince: number | null;
  incarnation: number | undefined;
  /** Latest incarnation seen in an authentic heartbeat, confirmed or not: what we echo to it. */
  seenIncarnation: number | undefined;
  /** Its incarnation that echoed ours: only heartbeats of it count as life (see receive). */
  confirmedIncarnation: number | undefined;
  /** When an authentic heartbeat that did not echo us last came in (see derive: 'unknown'). */
  lastUnconfirmed: number | null;
  leaving: boolean;
  advert: Record<string, HierarchyAdvert> | undefined;
  advertVersion: number;
  shown: { state: PeerState; suspect: boolean; incarnation: number | undefined; leaving: boolean; advertVersion: number };
}

interface Derived {
  state: PeerState;
  suspect: boolean;
  paths: PathState[];
  silentMs: number;
}

export class Comm extends EventEmitter<CommEvents> {
  private readonly cluster: ClusterConfig;
  private readonly selfName: string;
  private readonly key: Buffer;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly dropSend: ((path: number, peer: string) => boolean) | undefined;
  private readonly timers: ReturnType<typeof commTimers>;
  private readonly selfAddrs: Addr[];
  private readonly peers: Peer[];
  /** Per path: source "host:port" -> node name. */
  private readonly byPath: Array<Map<string, string>>;
  /** Any path: source "host:port" -> [node, path], to tell a cross-wired path from a stranger. */
  private readonly anyPath = new Map<string, [string, number]>();

  private incarnation: number;
  private seq = 0;
  private sockets: Socket[] = [];
  private timer: NodeJS.Timeout | undefined;
  private tickCount = 0;
  private phase: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  private startedAt: number | undefined;
  private advert: Record<string, HierarchyAdvert> = {};
  private leaving = false;
  private sendQueued = false;
  private warnedFragmented = false;
  private readonly c: CommCounters = {
    sent: 0,
    received: 0,
    unconfirmed: 0,
    sendErrors: 0,
    dropped: { truncated: 0, badMagic: 0, badMac: 0, malformed: 0, wrongCluster: 0, tooLarge: 0, unknownNode: 0, wrongPath: 0, replayed: 0, self: 0 },
  };
  private readonly dropLog = new Map<string, { last: number; suppressed: number; what: string; from: string }>();
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
    const parsed = new Map<string, Addr[]>();
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
    this.peers = cluster.nodes
      .filter((n) => n.name !== self)
      .map((n) => ({
        name: n.name,
        addrs: parsed.get(n.name) ?? [],
        rx: Array.from({ length: pathCount }, () => ({ lastHeard: null, inc: -1, seq: -1, shown: 'unknown' as PathState, warned: false })),
        lastHeard: null,
        aliveSince: null,
        seenIncarnation: undefined,
        lastUnconfirmed: null,
        confirmedIncarnation: undefined,
        incarnation: undefined,
        leaving: false,
        advert: undefined,
        advertVersion: 0,
        shown: { state: 'unknown' as PeerState, suspect: false, incarnation: undefined, leaving: false, advertVersion: 0 },
      }));
  }

  /** Bind one UDP socket per path on this node's address; rejects naming the address on failure. */
  async start(): Promise<void> {
    if (this.phase !== 'new') throw new Error(`comm of node ${this.selfName}: start() called twice (a Comm runs once)`);
    this.phase = 'starting';
    try {
      for (const [p, a] of this.selfAddrs.entries()) {
        this.sockets.push(await this.bind(p, a));
        if (this.phase !== 'starting') throw new Error(`comm of node ${this.selfName}: stopped while starting`);
      }
    } catch (err) {
      await this.closeSockets();
      this.phase = 'stopped';
      throw err;
    }
    this.phase = 'running';
    this.startedAt = this.now();
    this.log.info(
      { node: this.selfName, incarnation: this.incarnation, paths: this.selfAddrs.map((a) => a.text), peers: this.peers.map((p) => p.name), ...this.timers },
      'comm started',
    );
    this.sendRound(true); // peers learn about us at once, not one interval later
    this.timer = setInterval(() => this.tick(), this.timers.tickMs);
  }

  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    await this.closeSockets();
    this.log.info({ node: this.selfName }, 'comm stopped');
  }

  /**
   * Set what this node advertises. Included in every heartbeat; a change (or a change of
   * `leaving`) is also sent at once. Throws when the advert cannot be encoded (bad field or
   * over the UDP limit): better to fail the caller than to go silent to every peer.
   */
  setAdvert(h: Record<string, HierarchyAdvert>, opts: { leaving?: boolean } = {}): void {
    const next = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Object.freeze(cleanAdvert(v))]));
    const leaving = opts.leaving === true;
    const size = encode(this.heartbeat(0, this.seq, next, leaving), this.key).length; // throws on any problem
    if (size > UNFRAGMENTED_BYTES && !this.warnedFragmented) {
      this.warnedFragmented = true;
      this.log.warn(
        { node: this.selfName, bytes: size, hierarchies: Object.keys(next).length },
        `heartbeat is larger than ${UNFRAGMENTED_BYTES} bytes: it is sent as IP fragments, and losing one fragment loses the heartbeat`,
      );
    }
    const changed = leaving !== this.leaving || !sameAdverts(this.advert, next);
    this.advert = next;
    this.leaving = leaving;
    if (changed && this.phase === 'running' && !this.sendQueued) {
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
    const now = this.now();
    const out: Record<string, PeerInfo> = {};
    for (const peer of this.peers) {
      const d = this.derive(peer, now);
      // 'down' only once evaluateSoon has confirmed it after reading the sockets (see there): a
      // decision made right after a stall of this process must not act on unread heartbeats.
      const state = d.state === 'down' && peer.shown.state !== 'down' ? peer.shown.state : d.state;
      const info: PeerInfo = { node: peer.name, state, suspect: d.suspect, lastHeardMs: peer.lastHeard, paths: d.paths, leaving: peer.leaving };
      if (peer.incarnation !== undefined) info.incarnation = peer.incarnation;
      if (peer.advert !== undefined) info.advert = peer.advert;
      out[peer.name] = info;
    }
    return out;
  }

  counters(): CommCounters {
    return { ...this.c, dropped: { ...this.c.dropped } };
  }

  // --- sockets ---------------------------------------------------------------------------------

  private bind(p: number, a: Addr): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const sock = createSocket({ type: a.family === 6 ? 'udp6' : 'udp4', ipv6Only: a.family === 6 });
      const onError = (err: Error) => {
        sock.close();
        reject(new Error(`comm path ${p} of node ${this.selfName}: cannot bind ${a.text} (cluster file ${this.cluster.file}): ${err.message}`));
      };
      sock.once('error', onError);
      sock.bind({ address: a.host, port: a.port, exclusive: true }, () => {
        sock.off('error', onError);
        sock.on('error', (err) => this.log.error({ err, path: p, address: a.text }, 'comm socket error'));
        sock.on('message', (msg, rinfo) => this.onMessage(p, msg, rinfo));
        resolve(sock);
      });
    });
  }

  private async closeSockets(): Promise<void> {
    const socks = this.sockets;
    this.sockets = [];
    await Promise.all(
      socks.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve(); // already closed
            }
          }),
      ),
    );
  }

  // --- sending ---------------------------------------------------------------------------------

  private heartbeat(path: number, seq: number, hierarchies: Record<string, HierarchyAdvert>, leaving: boolean) {
    const heard: Record<string, number> = {};
    for (const peer of this.peers) if (peer.seenIncarnation !== undefined) heard[peer.name] = peer.seenIncarnation;
    return { cluster: this.cluster.cluster, node: this.selfName, incarnation: this.incarnation, path, seq, hierarchies, heard, ...(leaving ? { leaving: true } : {}) };
  }

  /**
   * Heartbeats to every peer: on every path (`all`: start-up, news), or routinely on this tick's
   * share of the paths (see the file comment) — except to a peer not heard on every path lately,
   * which gets all of them: a broken path must not halve how often the peer hears us. The bytes
   * do not depend on the receiver, so one encode per path serves all peers, and the seq is per
   * round (same on every path).
   */
  private sendRound(all: boolean): void {
    this.seq++;
    const stride = Math.min(this.timers.pathStride, this.sockets.length);
    const turn = this.tickCount % stride;
    const now = this.now();
    const wantsAll = all ? this.peers : this.peers.filter((peer) => !peer.rx.every((rx) => this.pathHeard(rx, now)));
    for (const [p, sock] of this.sockets.entries()) {
      const onTurn = all || p % stride === turn;
      const to = onTurn ? this.peers : wantsAll;
      if (to.length === 0) continue;
      let buf: Buffer;
      try {
        buf = encode(this.heartbeat(p, this.seq, this.advert, this.leaving), this.key);
      } catch (err) {
        // setAdvert already encoded this advert, so this is a bug: say so, keep running.
        this.c.sendErrors++;
        this.log.error({ err, path: p }, 'comm: cannot encode heartbeat');
        continue;
      }
      for (const peer of to) {
        if (this.dropSend?.(p, peer.name)) continue;
        const addr = peer.addrs[p];
        if (!addr) continue;
        try {
          sock.send(buf, addr.port, addr.host, (err) => {
            if (err) this.sendFailed(p, peer.name, addr.text, err);
            else this.c.sent++;
          });
        } catch (err) {
          this.sendFailed(p, peer.name, addr.text, err as Error);
        }
      }
    }
  }

  private sendFailed(path: number, peer: string, to: string, err: Error): void {
    this.c.sendErrors++;
    // Same rate limit as drops: an unplugged interface fails every send, every interval.
    if (this.shouldLog(`send|${to}|${(err as NodeJS.ErrnoException).code ?? err.message}`, 'send error', to)) {
      this.log.warn({ peer, path, to, err: err.message }, 'comm: heartbeat send failed');
    }
  }

  // --- receiving -------------------------------------------------------------------------------

  private onMessage(p: number, msg: Buffer, rinfo: RemoteInfo): void {
    if (this.phase !== 'running') return;
    const from = rinfo.family === 'IPv6' ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`;
    try {
      this.receive(p, msg, `${rinfo.address}:${rinfo.port}`, from);
    } catch (err) {
      // Nothing a packet contains may take the daemon down.
      this.log.error({ err, path: p, from }, 'comm: error handling a packet (ignored)');
    }
  }

  private receive(p: number, msg: Buffer, srcKey: string, from: string): void {
    // Source first: cheap, and a stranger's packet is not worth an HMAC.
    const srcNode = this.byPath[p]?.get(srcKey);
    if (srcNode === undefined) {
      const elsewhere = this.anyPath.get(srcKey);
      if (elsewhere) return this.drop('wrongPath', from, p, `source is node ${elsewhere[0]}'s address on path ${elsewhere[1]}, received on path ${p} (cross-wired networks?)`);
      return this.drop('unknownNode', from, p, 'source address is not a configured node address on this path');
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
    const peer = this.peers.find((x) => x.name === srcNode);
    const rx = peer?.rx[p];
    if (!peer || !rx) return this.drop('unknownNode', from, p); // unreachable: srcNode is a configured peer
    if (peer.incarnation !== undefined && hb.incarnation < peer.incarnation) {
      return this.drop('replayed', from, p, `old incarnation ${hb.incarnation} < ${peer.incarnation} (replay, or ${srcNode} restarted with its clock set back)`);
    }
    if (hb.incarnation < rx.inc || (hb.incarnation === rx.inc && hb.seq <= rx.seq)) {
      return this.drop('replayed', from, p, `seq ${hb.seq} not above ${rx.seq}`);
    }

    // Evidence that the sender is alive now, not a recording: it echoes our current incarnation.
    // Needed once per incarnation of the sender; after that (incarnation, seq) only grows, so a
    // replay is dropped above. A sender of an earlier release sends no echo at all: trusted as before.
    if (peer.seenIncarnation === undefined || hb.incarnation > peer.seenIncarnation) peer.seenIncarnation = hb.incarnation;
    if (hb.heard === undefined || hb.heard[this.selfName] === this.incarnation) peer.confirmedIncarnation = hb.incarnation;
    if (peer.confirmedIncarnation !== hb.incarnation) {
      this.c.unconfirmed++;
      const first = peer.lastUnconfirmed === null;
      peer.lastUnconfirmed = this.now();
      if (first && this.evaluate(peer, peer.lastUnconfirmed)) this.emitSafe('change');
      if (this.shouldLog(`unconfirmed|${from}`, 'unconfirmed', from)) {
        this.log.info({ node: srcNode, from, path: p, incarnation: hb.incarnation }, `comm: heartbeat of ${srcNode} does not echo our incarnation yet: not counted as alive (a just-started peer, or a replay)`);
      }
      return;
    }

    const now = this.now();
    this.c.received++;
    rx.inc = hb.incarnation;
    rx.seq = hb.seq;
    rx.lastHeard = now;
    if (peer.lastHeard === null || now - peer.lastHeard >= this.timers.deadTimeMs) peer.aliveSince = now;
    peer.lastHeard = now;
    if (peer.incarnation !== undefined && hb.incarnation > peer.incarnation) {
      this.log.warn({ node: peer.name, incarnation: hb.incarnation, previous: peer.incarnation }, 'comm: peer restarted (new incarnation)');
    }
    peer.incarnation = hb.incarnation;
    peer.leaving = hb.leaving === true;
    if (!peer.advert || !sameAdverts(peer.advert, hb.hierarchies)) {
      for (const a of Object.values(hb.hierarchies)) Object.freeze(a);
      peer.advert = Object.freeze(hb.hierarchies);
      peer.advertVersion++;
    }
    if (this.evaluate(peer, now)) this.emitSafe('change');
  }

  private drop(reason: DropReason, from: string, path: number, detail?: string): void {
    this.c.dropped[reason]++;
    this.emitSafe('drop', reason, from);
    if (this.shouldLog(`${reason}|${from}`, reason, from)) this.log.warn({ reason, from, path, detail }, `comm: dropped packet (${reason})`);
  }

  /** Rate limit: true at most once per DROP_LOG_INTERVAL_MS per key; counts the rest. */
  private shouldLog(key: string, what: string, from: string): boolean {
    const now = this.now();
    let e = this.dropLog.get(key);
    if (!e) {
      if (this.dropLog.size >= DROP_LOG_MAX_KEYS) key = `${what}|*`;
      e = this.dropLog.get(key);
      if (!e) {
        this.dropLog.set(key, { last: now, suppressed: 0, what, from: key.endsWith('|*') ? '*' : from });
        return true;
      }
    }
    if (now - e.last >= DROP_LOG_INTERVAL_MS) {
      if (e.suppressed > 0) this.log.warn({ what: e.what, from: e.from, suppressed: e.suppressed }, `comm: ${e.suppressed} more (${e.what}) not logged one by one`);
      e.last = now;
      e.suppressed = 0;
      return true;
    }
    e.suppressed++;
    return false;
  }

  /** Report counts held back by the rate limit, and forget sources that went quiet. */
  private sweepDropLog(now: number): void {
    if (now - this.lastDropSweep < DROP_LOG_INTERVAL_MS) return;
    this.lastDropSweep = now;
    for (const [key, e] of this.dropLog) {
      if (e.suppressed > 0 && now - e.last >= DROP_LOG_INTERVAL_MS) {
        this.log.warn({ what: e.what, from: e.from, suppressed: e.suppressed }, `comm: ${e.suppressed} more (${e.what}) not logged one by one`);
        e.last = now;
        e.suppressed = 0;
      } else if (e.suppressed === 0 && now - e.last >= DROP_LOG_FORGET_MS) {
        this.dropLog.delete(key);
      }
    }
  }

  // --- liveness --------------------------------------------------------------------------------

  private lastTickAt: number | undefined;
  private tick(): void {
    try {
      const at = performance.now();
      const lagMs = this.lastTickAt === undefined ? 0 : at - (this.lastTickAt + this.timers.tickMs);
      this.lastTickAt = at;
      this.tickCount++;
      this.sendRound(false);
      this.evaluateSoon(lagMs);
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
      let changed = false;
      for (const peer of this.peers) if (this.evaluate(peer, now)) changed = true;
      if (changed) this.emitSafe('change');
      this.sweepDropLog(now);
      this.armDeadline(now);
    } catch (err) {
      this.log.error({ err }, 'comm: peer evaluation failed (continuing)');
    }
  }

  /** Wake up exactly when the next suspect/dead/path-dead threshold is crossed, if before the next tick. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  private armDeadline(now: number): void {
    const t = this.timers;
    let next = Infinity;
    const consider = (at: number) => {
      if (at > now && at < next) next = at;
    };
    if (this.startedAt !== undefined) consider(this.startedAt + t.startupGraceMs);
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
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    if (next - now >= t.tickMs) return;
    const delay = Math.ceil(next - now) + 1;
    const due = performance.now() + delay;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      if (this.phase === 'running') this.evaluateSoon(performance.now() - due);
    }, delay);
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
  private suspectAfter(peer: Peer, now: number): number {
    const t = this.timers;
    const stride = Math.min(t.pathStride, this.sockets.length);
    const within = (rx: PathRx, ms: number) => rx.lastHeard !== null && now - rx.lastHeard <= ms;
    const onTime = this.onTimeMs();
    const split = (ms: number) => peer.rx.some((rx) => within(rx, ms)) && peer.rx.some((rx) => !within(rx, ms));
    if (!split(t.pathDeadTimeMs) && !split(onTime)) return t.suspectAfterMs;
    return Math.max(t.suspectAfterMs, (stride + 2) * t.heartbeatIntervalMs);
  }

  /** A path taking turns is heard at least this often (pathStride intervals and a tenth). */
  private onTimeMs(): number {
    return (Math.min(this.timers.pathStride, this.sockets.length) + 0.1) * this.timers.heartbeatIntervalMs;
  }

  /** A path is up while the peer was heard on it within pathDeadTimeMs. */
  private pathHeard(rx: PathRx, now: number): boolean {
    return rx.lastHeard !== null && now - rx.lastHeard < this.timers.pathDeadTimeMs;
  }

  private derive(peer: Peer, now: number): Derived {
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
    // A leaving peer is not silent: it is down because it said so, not suspected of anything.
    return { state, suspect: silentMs >= this.suspectAfter(peer, now), paths, silentMs };
  }

  /** Compare the derived state to the last reported one: log, emit 'path', return true on change. */
  private evaluate(peer: Peer, now: number): boolean {
    const d = this.derive(peer, now);
    const shown = peer.shown;
    let changed = false;

    for (const [p, rx] of peer.rx.entries()) {
      const st = d.paths[p] ?? 'unknown';
      if (st !== rx.shown) {
        rx.shown = st;
        changed = true;
        if (st !== 'unknown') this.emitSafe('path', peer.name, p, st);
      }
      // Degraded redundancy: this path is down while the peer is clearly alive on another one,
      // and has been for a whole path dead time (so the path had its chance). A condition, not
      // an edge: when a node dies its paths cross the threshold microseconds apart, and when it
      // comes back its first packet arrives on one path microseconds before the other; neither
      // is a lost path.
      const aliveElsewhere =
        peer.lastHeard !== null &&
        now - peer.lastHeard <= 2 * this.timers.heartbeatIntervalMs &&
        peer.aliveSince !== null &&
        now - peer.aliveSince >= this.timers.pathDeadTimeMs;
      if (st === 'down' && !rx.warned && aliveElsewhere) {
        rx.warned = true;
        this.log.warn(
          {
            node: peer.name,
            path: p,
            address: peer.addrs[p]?.text,
            silentMs: rx.lastHeard === null ? null : Math.round(now - rx.lastHeard),
            neverHeard: rx.lastHeard === null,
          },
          `comm: degraded redundancy: path ${p} to node ${peer.name} lost (node still heard on another path)`,
        );
      } else if (st === 'up' && rx.warned) {
        rx.warned = false;
        this.log.info({ node: peer.name, path: p, address: peer.addrs[p]?.text }, `comm: path ${p} to node ${peer.name} recovered`);
      }
    }

    if (d.state !== shown.state) {
      const prev = shown.state;
      shown.state = d.state;
      changed = true;
      if (d.state === 'up') {
        this.log.info({ node: peer.name, paths: d.paths, incarnation: peer.incarnation, was: prev }, `comm: node ${peer.name} up`);
      } else if (d.state === 'down' && peer.leaving && peer.lastHeard !== null && d.silentMs < this.timers.deadTimeMs) {
        this.log.info({ node: peer.name }, `comm: node ${peer.name} is leaving (clean shutdown): down without waiting dead time`);
      } else if (d.state === 'down') {
        this.log.warn(
          { node: peer.name, silentMs: Math.round(d.silentMs), neverHeard: peer.lastHeard === null, was: prev },
          peer.lastHeard === null ? `comm: node ${peer.name} not heard since start: down` : `comm: node ${peer.name} down (silent on every path)`,
        );
      }
    }
    if (d.suspect !== shown.suspect) {
      shown.suspect = d.suspect;
      changed = true;
      if (d.suspect && d.state === 'up') this.log.info({ node: peer.name, silentMs: Math.round(d.silentMs) }, `comm: node ${peer.name} suspect (silent on every path)`);
    }
    if (peer.incarnation !== shown.incarnation || peer.leaving !== shown.leaving || peer.advertVersion !== shown.advertVersion) {
      shown.incarnation = peer.incarnation;
      shown.leaving = peer.leaving;
      shown.advertVersion = peer.advertVersion;
      changed = true;
    }
    return changed;
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

// --- helpers -------------------------------------------------------------------------------------

/** Parse "ip:port" or "[ipv6]:port"; host names are refused (a heartbeat must not wait on DNS). */
function parseAddress(text: string, where: string): Addr {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const host = m?.[1];
  const portText = m?.[2];
  if (!host || !portText) throw new Error(`${where}: address ${JSON.stringify(text)} is not "ip:port" (IPv6 as "[ip]:port")`);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${where}: address ${text}: port must be 1..65535`);
  const fam = isIP(host);
  if (fam !== 4 && fam !== 6) throw new Error(`${where}: address ${text}: ${JSON.stringify(host)} is not an IP address`);
  // Canonical form, because a received packet's source is compared as text.
  const canon = new SocketAddress({ address: host, family: fam === 6 ? 'ipv6' : 'ipv4', port }).address;
  return { host: canon, port, family: fam, key: `${canon}:${port}`, text };
}

function cleanAdvert(a: HierarchyAdvert): HierarchyAdvert {
  const out: HierarchyAdvert = { state: a.state, epoch: a.epoch, eligible: a.eligible };
  if (a.ownerKey !== undefined) out.ownerKey = a.ownerKey;
  return out;
}

function sameAdverts(a: Record<string, HierarchyAdvert>, b: Record<string, HierarchyAdvert>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k];
    const y = Object.hasOwn(b, k) ? b[k] : undefined;
    if (!x || !y) return false;
    if (x.state !== y.state || x.epoch !== y.epoch || x.eligible !== y.eligible || x.ownerKey !== y.ownerKey) return false;
  }
  return true;
}
