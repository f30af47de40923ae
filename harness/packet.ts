// The heartbeat wire format: pure encode/decode, no I/O, no clocks.
//
// Envelope (all integers big-endian):
//   0..2  magic "HBT"
//   3     format version: 3 (this release sends it); 2 and 1 (earlier releases: still read, and sent
//         to a peer that speaks only those, so nodes of consecutive releases interoperate)
//   4     flags   (bit 0: body is deflate-raw compressed)
//   5..   body    (JSON, see WireBody; compressed when that makes it smaller and it is big)
//   last 32 bytes: HMAC-SHA256(key, everything before it)
//
// The MAC is checked before the body is even parsed, so nobody without the cluster key can make
// us parse (or inflate) anything. The body never depends on the receiver: the same bytes go to
// every peer on a path, which is why replay protection is a per-sender (incarnation, seq) check
// in comm.ts rather than anything in here.
//
// Format 1 carried every hierarchy's advert in every heartbeat: bytes, HMAC, inflate and JSON
// parse per node grew as nodes x hierarchies. Format 2 carries the node's *advert* (everything it
// says about itself besides liveness: the `a` object, see AdvertWire) only on change, on request,
// or at start; every heartbeat carries its summary instead: a version (per incarnation, +1 on
// every change) and a digest (SHA-256 of the canonical JSON of `a`, 64 bits). A receiver whose
// copy does not match asks for it (`w`: the nodes whose advert the sender misses), and the owner
// answers at once; the version orders copies that crossed on different paths. A routine
// heartbeat is then a few hundred bytes whatever the hierarchy count (one Ethernet frame).
// Format 3 adds `x`, the peers the sender doubts (not heard lately: suspect, down or unknown). A
// holder refreshes its keys on disk only while a peer that could race it doubts it, or it doubts
// that peer (ownership.ts): an idle cluster then writes nothing to its disks.
// The advert is the hierarchies and the node's meta (admin map, configuration fingerprint). A new
// advert field goes into AdvertWire (advertToWire and fromWire): the digest covers the whole
// object, so it rides the same change/request path with nothing else to change.

import { createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { checkAdminDoc, copyAdminDoc, type AdminDoc } from './core/admin.ts';

/** Node-level news: the cluster's admin map as the sender has it, and its configuration's fingerprint. */
export interface NodeMeta {
  admin: AdminDoc;
  config: string;
  /** Hierarchies blocked here by OCF rc 6, with the agent's reason: every node's status shows it. */
  blocked?: Record<string, string>;
}

export interface HierarchyAdvert {
  /** `held`: taken out of service by an admin (or `harness stop --mode stop`): nobody takes it over. */
  state: 'in-service' | 'out-of-service' | 'starting' | 'stopping' | 'failed' | 'held' | 'blocked';
  epoch: number;
  eligible: boolean;
  ownerKey?: string;
}

/** Two adverts of one hierarchy say the same. */
export function sameHierarchyAdvert(a: HierarchyAdvert, b: HierarchyAdvert): boolean {
  return a.state === b.state && a.epoch === b.epoch && a.eligible === b.eligible && a.ownerKey === b.ownerKey;
}

export interface Heartbeat {
  cluster: string;
  node: string;
  incarnation: number;
  path: number;
  seq: number;
  /** Node is shutting down cleanly (peers may take over without waiting dead time). */
  leaving?: boolean;
  /**
   * The advert itself. Always present in format 1; in format 2 only when carried (news, start,
   * an answer to a request): a routine heartbeat has just advertVersion + advertDigest.
   */
  hierarchies?: Record<string, HierarchyAdvert>;
  /** Format 2 (absent: a sender of format 1, whose every heartbeat carries the advert). */
  advertVersion?: number;
  /** Format 2: advertDigest() of the advert of advertVersion. */
  advertDigest?: string;
  /** Format 2: nodes whose current advert the sender misses (each answers with its advert). */
  want?: string[];
  /**
   * Peer name -> the latest incarnation of that peer the sender has received a heartbeat of. A
   * receiver counts the sender alive only once it echoes the receiver's own current incarnation:
   * a recorded packet replayed to a node that has restarted since cannot (comm.ts). Absent from a
   * sender of an earlier release.
   */
  heard?: Record<string, number>;
  /** Absent from a sender of an earlier release. */
  meta?: NodeMeta;
  /** Format 3: the peers the sender does not hear lately (suspect, down or unknown). Absent: format 1 or 2. */
  doubts?: string[];
}

export type DecodeFailure = 'truncated' | 'bad-magic' | 'bad-mac' | 'malformed' | 'wrong-cluster' | 'too-large';
export type DecodeResult = { ok: true; hb: Heartbeat } | { ok: false; reason: DecodeFailure };

const MAGIC = Buffer.from('HBT', 'ascii');
/** Wire format this release sends; it reads this one and the one before. */
export const WIRE_VERSION = 3;
const OLDEST_VERSION = 1;
const FLAG_DEFLATE = 0x01;
const HEADER_BYTES = MAGIC.length + 2;
const MAC_BYTES = 32;

/** Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP). Above this a heartbeat cannot be sent. */
export const MAX_DATAGRAM_BYTES = 65_507;
/** Largest payload that fits one 1500-byte Ethernet frame (IPv4 + UDP headers): no fragmentation. */
export const UNFRAGMENTED_BYTES = 1_472;
/** Bodies at or below this size are sent as plain JSON: easier to read in a capture, no CPU spent. */
const COMPRESS_ABOVE_BYTES = 1_024;
/** Cap on an inflated body: a key holder's bug must not make a receiver allocate without bound. */
const MAX_BODY_BYTES = 1_048_576;

const MAX_NAME = 255;
// Append only: the index is the wire value.
const STATES: ReadonlyArray<HierarchyAdvert['state']> = ['in-service', 'out-of-service', 'starting', 'stopping', 'failed', 'held', 'blocked'];

/**
 * Short field names on the wire; the TS interface above stays readable. A hierarchy is
 * [state index, epoch, eligible 0|1, ownerKey?].
 */
type HierarchiesWire = Record<string, [number, number, 0 | 1] | [number, number, 0 | 1, string]>;
/** The advert (format 2's `a`): everything besides liveness, summarized by its digest. */
interface AdvertWire {
  h: HierarchiesWire;
  m?: MetaWire;
}
/** NodeMeta on the wire: the admin map, the configuration fingerprint. */
interface MetaWire {
  a: AdminDoc;
  f: string;
  b?: Record<string, string>;
}
interface WireBody {
  c: string;
  n: string;
  i: number;
  p: number;
  s: number;
  l?: 1;
  e?: Record<string, number>;
  /** Format 1: the hierarchies, in every heartbeat (and the meta, when the sender had it). */
  h?: HierarchiesWire;
  m?: MetaWire;
  /** Format 2: advert version, digest, wanted adverts, the advert when carried. */
  v?: number;
  d?: string;
  w?: string[];
  a?: AdvertWire;
  /** Format 3: the peers the sender doubts. */
  x?: string[];
}

// A KeyObject per key buffer, made once: building one from raw bytes on every packet was a
// measurable part of an idle node's CPU (dozens of packets a second).
const keyObjects = new WeakMap<Buffer, KeyObject>();
function mac(key: Buffer, data: Buffer): Buffer {
  let k = keyObjects.get(key);
  if (!k) {
    k = createSecretKey(key);
    keyObjects.set(key, k);
  }
  return createHmac('sha256', k).update(data).digest();
}

/**
 * Encode a heartbeat. Throws (naming the node and size) when it cannot fit one UDP datagram, or
 * when a field could not be decoded by a peer: a heartbeat that peers silently drop would look
 * exactly like a dead node, so it must fail here, loudly.
 */
export function encode(hb: Heartbeat, key: Buffer): Buffer {
  const problem = checkHeartbeat(hb);
  if (problem) throw new Error(`heartbeat of node ${JSON.stringify(hb.node)}: ${problem}`);
  const v2 = hb.advertVersion !== undefined;
  const wire: WireBody = { c: hb.cluster, n: hb.node, i: hb.incarnation, p: hb.path, s: hb.seq };
  // Format 1 in the previous release's field order: the same bytes.
  if (!v2) wire.h = hierarchiesToWire(hb.hierarchies ?? {}, false);
  if (hb.leaving) wire.l = 1;
  if (hb.heard !== undefined) wire.e = ownCopy(hb.heard);
  if (v2) {
    wire.v = hb.advertVersion;
    wire.d = hb.advertDigest;
    if (hb.want !== undefined && hb.want.length > 0) wire.w = [...hb.want];
    if (hb.hierarchies !== undefined) wire.a = advertToWire(hb.hierarchies, hb.meta);
    if (hb.doubts !== undefined) wire.x = [...hb.doubts];
  }
  if (!v2 && hb.meta !== undefined) wire.m = { a: hb.meta.admin, f: hb.meta.config };
  let body = Buffer.from(JSON.stringify(wire), 'utf8');
  let flags = 0;
  if (body.length > COMPRESS_ABOVE_BYTES) {
    const packed = deflateRawSync(body);
    if (packed.length < body.length) {
      body = packed;
      flags |= FLAG_DEFLATE;
    }
  }
  const total = HEADER_BYTES + body.length + MAC_BYTES;
  if (total > MAX_DATAGRAM_BYTES) {
    throw new Error(
      `heartbeat of node ${JSON.stringify(hb.node)} is ${total} bytes with ${Object.keys(hb.hierarchies ?? {}).length} hierarchies: ` +
        `over the ${MAX_DATAGRAM_BYTES}-byte UDP limit (shorten hierarchy names or split the cluster)`,
    );
  }
  const out = Buffer.allocUnsafe(total);
  MAGIC.copy(out, 0);
  out[MAGIC.length] = hb.doubts !== undefined ? 3 : v2 ? 2 : OLDEST_VERSION;
  out[MAGIC.length + 1] = flags;
  body.copy(out, HEADER_BYTES);
  mac(key, out.subarray(0, total - MAC_BYTES)).copy(out, total - MAC_BYTES);
  return out;
}

/** A copy whose keys are own properties (a name "__proto__" stays a name). */
function ownCopy<T>(r: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(r)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/**
 * The canonical wire form and digest of a frozen advert, computed once: a sender encodes the same
 * advert for its news, every path and every format-1 peer, and checks its digest each time (at
 * 500 hierarchies that was 9 conversions per change, a third of a daemon's time in a cold start).
 * Only frozen objects are remembered: nothing can change them behind the cache.
 */
const wireCache = new WeakMap<object, HierarchiesWire>();
const digestCache = new WeakMap<object, { meta: NodeMeta | undefined; digest: string }>();

function hierarchiesToWire(hs: Record<string, HierarchyAdvert>, sorted = true): HierarchiesWire {
  const frozen = sorted && deepFrozen(hs);
  const cached = frozen ? wireCache.get(hs) : undefined;
  if (cached) return cached;
  const h = hierarchiesToWireNow(hs, sorted);
  if (frozen) wireCache.set(hs, Object.freeze(h));
  return h;
}

function deepFrozen(hs: Record<string, HierarchyAdvert>): boolean {
  if (!Object.isFrozen(hs)) return false;
  for (const k in hs) if (!Object.isFrozen(hs[k])) return false;
  return true;
}

/** Per frozen entry: an unchanged hierarchy's entry is the same object from advert to advert (comm.ts setAdvert). */
const tupleCache = new WeakMap<HierarchyAdvert, HierarchiesWire[string]>();

function tupleOf(a: HierarchyAdvert): HierarchiesWire[string] {
  const cached = tupleCache.get(a);
  if (cached) return cached;
  const base: HierarchiesWire[string] = [STATES.indexOf(a.state), a.epoch, a.eligible ? 1 : 0];
  const tuple = Object.freeze(a.ownerKey === undefined ? base : [...base, a.ownerKey]) as HierarchiesWire[string];
  if (Object.isFrozen(a)) tupleCache.set(a, tuple);
  return tuple;
}

function hierarchiesToWireNow(hs: Record<string, HierarchyAdvert>, sorted: boolean): HierarchiesWire {
  const h: HierarchiesWire = {};
  // Sorted in format 2: the digest is of these bytes, so equal adverts must serialize alike.
  // (Format 1 keeps the caller's order: byte for byte what the previous release sent.)
  for (const name of sorted ? Object.keys(hs).sort() : Object.keys(hs)) {
    const tuple = tupleOf(hs[name] as HierarchyAdvert);
    // A name "__proto__" stays a name (defineProperty); the others by plain assignment, much faster.
    if (name === '__proto__') Object.defineProperty(h, name, { value: tuple, enumerable: true, writable: true, configurable: true });
    else h[name] = tuple;
  }
  return h;
}

function advertToWire(hs: Record<string, HierarchyAdvert>, meta?: NodeMeta): AdvertWire {
  return meta === undefined ? { h: hierarchiesToWire(hs) } : { h: hierarchiesToWire(hs), m: metaToWire(meta) };
}

function metaToWire(meta: NodeMeta): MetaWire {
  const m: MetaWire = { a: meta.admin, f: meta.config };
  if (meta.blocked && Object.keys(meta.blocked).length > 0) m.b = meta.blocked;
  return m;
}

/**
 * The digest of an advert that format-2 heartbeats carry: SHA-256 of its canonical wire JSON,
 * first 64 bits in hex. Pure; the sender computes it once per change, a receiver checks a carried
 * advert against it (decode).
 */
export function advertDigest(hs: Record<string, HierarchyAdvert>, meta?: NodeMeta): string {
  const frozen = deepFrozen(hs) && (meta === undefined || Object.isFrozen(meta));
  const cached = frozen ? digestCache.get(hs) : undefined;
  if (cached && cached.meta === meta) return cached.digest;
  const digest = digestOfWire(advertToWire(hs, meta));
  if (frozen) digestCache.set(hs, { meta, digest });
  return digest;
}

function digestOfWire(a: AdvertWire): string {
  return createHash('sha256').update(JSON.stringify(a)).digest('hex').slice(0, 16);
}

/** Decode and authenticate one datagram. Never throws: every failure is a reason. */
export function decode(buf: Buffer, key: Buffer, cluster: string): DecodeResult {
  if (buf.length > MAX_DATAGRAM_BYTES) return fail('too-large');
  if (buf.length < HEADER_BYTES) {
    // A prefix of our magic is a cut-short packet of ours; anything else is not ours at all.
    const n = Math.min(buf.length, MAGIC.length);
    return buf.subarray(0, n).equals(MAGIC.subarray(0, n)) ? fail('truncated') : fail('bad-magic');
  }
  // An unknown version is reported as bad-magic: we cannot read it either way.
  const version = buf[MAGIC.length] ?? 0;
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC) || version < OLDEST_VERSION || version > WIRE_VERSION) return fail('bad-magic');
  if (buf.length < HEADER_BYTES + 2 + MAC_BYTES) return fail('truncated');

  const signed = buf.subarray(0, buf.length - MAC_BYTES);
  const expected = mac(key, signed);
  if (!timingSafeEqual(expected, buf.subarray(buf.length - MAC_BYTES))) return fail('bad-mac');

  const flags = buf[MAGIC.length + 1] ?? 0;
  if ((flags & ~FLAG_DEFLATE) !== 0) return fail('malformed');
  let body = signed.subarray(HEADER_BYTES);
  if (flags & FLAG_DEFLATE) {
    try {
      body = inflateRawSync(body, { maxOutputLength: MAX_BODY_BYTES });
    } catch {
      return fail('malformed');
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return fail('malformed');
  }
  const hb = fromWire(parsed, version);
  if (!hb) return fail('malformed');
  if (hb.cluster !== cluster) return fail('wrong-cluster');
  return { ok: true, hb };
}

function fail(reason: DecodeFailure): DecodeResult {
  return { ok: false, reason };
}

// --- validation -------------------------------------------------------------------------------
// Hand-written rather than zod: the body is small and fixed, this runs for every packet, and
// zod's record() silently loses a key named "__proto__" where we want an exact copy or a refusal.

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isPath(v: unknown): v is number {
  return isCount(v) && v <= 255;
}

function isOwnerKey(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 64;
}

/** Why a heartbeat could not be decoded by a peer, or null when it is fine. */
function checkHeartbeat(hb: Heartbeat): string | null {
  if (!isName(hb.cluster)) return 'cluster name must be 1..255 characters';
  if (!isName(hb.node)) return 'node name must be 1..255 characters';
  if (!isCount(hb.incarnation)) return `incarnation ${hb.incarnation} is not a non-negative safe integer`;
  if (!isPath(hb.path)) return `path ${hb.path} is not an integer 0..255`;
  if (!isCount(hb.seq)) return `seq ${hb.seq} is not a non-negative safe integer`;
  for (const [name, a] of Object.entries(hb.hierarchies ?? {})) {
    if (!isName(name)) return `hierarchy name ${JSON.stringify(name)} must be 1..255 characters`;
    if (!STATES.includes(a.state)) return `hierarchy ${name}: unknown state ${JSON.stringify(a.state)}`;
    if (!isCount(a.epoch)) return `hierarchy ${name}: epoch ${a.epoch} is not a non-negative safe integer`;
    if (typeof a.eligible !== 'boolean') return `hierarchy ${name}: eligible must be a boolean`;
    if (a.ownerKey !== undefined && !isOwnerKey(a.ownerKey)) return `hierarchy ${name}: ownerKey must be 1..64 characters`;
  }
  for (const [name, inc] of Object.entries(hb.heard ?? {})) {
    if (!isName(name) || !isCount(inc)) return `heard: ${JSON.stringify(name)} -> ${inc} is not a node name and incarnation`;
  }
  if (hb.meta !== undefined) {
    const why = checkMeta(metaToWire(hb.meta));
    if (why) return `meta: ${why}`;
  }
  if (hb.doubts !== undefined) {
    if (hb.doubts.length > MAX_DOUBTS || !hb.doubts.every(isName)) return `doubts: at most ${MAX_DOUBTS} node names`;
    if (hb.advertVersion === undefined) return 'doubts need an advertVersion (format 3)';
  }
  if (hb.advertVersion === undefined) {
    if (hb.hierarchies === undefined) return 'format 1 (no advertVersion) must carry the hierarchies';
    if (hb.advertDigest !== undefined || hb.want !== undefined) return 'advertDigest and want need an advertVersion (format 2)';
    return null;
  }
  if (!isCount(hb.advertVersion)) return `advertVersion ${hb.advertVersion} is not a non-negative safe integer`;
  if (!isDigest(hb.advertDigest)) return `advertDigest ${JSON.stringify(hb.advertDigest)} is not 16 hex digits`;
  if (hb.hierarchies === undefined && hb.meta !== undefined) return 'format 2 carries the meta only with the hierarchies (one advert)';
  if (hb.hierarchies !== undefined && advertDigest(hb.hierarchies, hb.meta) !== hb.advertDigest) return 'advertDigest is not the digest of the advert carried';
  for (const name of hb.want ?? []) if (!isName(name)) return `want: ${JSON.stringify(name)} is not a node name`;
  return null;
}

function isDigest(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{16}$/.test(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const WIRE_KEYS: Record<number, Set<string>> = {
  1: new Set(['c', 'n', 'i', 'p', 's', 'l', 'h', 'e', 'm']),
  2: new Set(['c', 'n', 'i', 'p', 's', 'l', 'e', 'v', 'd', 'w', 'a']),
  3: new Set(['c', 'n', 'i', 'p', 's', 'l', 'e', 'v', 'd', 'w', 'a', 'x']),
};
/** Names a format-3 `doubts` list may carry: a cluster's nodes, with room. */
export const MAX_DOUBTS = 256;
const ADVERT_KEYS = new Set(['h', 'm']);
/** Entries of an admin map a heartbeat may carry (see DEFAULTS.adminMaxEntries: the same bound). */
export const MAX_ADMIN_ENTRIES = 8192;
/** Longest blocked reason carried (an agent's exit reason, cut by the sender). */
export const MAX_BLOCKED_REASON = 512;

function checkMeta(m: unknown): string | null {
  if (!isPlainObject(m)) return 'not an object';
  for (const k of Object.keys(m)) if (k !== 'a' && k !== 'f' && k !== 'b') return `unknown field ${JSON.stringify(k)}`;
  if (typeof m.f !== 'string' || m.f.length > 64) return 'config fingerprint: not a string of at most 64 characters';
  if (m.b !== undefined) {
    if (!isPlainObject(m.b) || Object.keys(m.b).length > MAX_ADMIN_ENTRIES) return 'blocked: not an object of at most 8192 entries';
    for (const [h, why] of Object.entries(m.b)) if (!isName(h) || typeof why !== 'string' || why.length > MAX_BLOCKED_REASON) return `blocked: ${JSON.stringify(h.slice(0, 60))}: a hierarchy name and a reason of at most ${MAX_BLOCKED_REASON} characters`;
  }
  const why = checkAdminDoc(m.a, MAX_ADMIN_ENTRIES);
  return why ? `admin: ${why}` : null;
}

function metaFromWire(m: unknown): NodeMeta | null {
  if (checkMeta(m) !== null) return null;
  const meta = m as MetaWire;
  const out: NodeMeta = { admin: copyAdminDoc(meta.a), config: meta.f };
  // fromEntries: own properties, so a hierarchy named "__proto__" stays one.
  if (meta.b !== undefined) out.blocked = Object.fromEntries(Object.entries(meta.b));
  return out;
}

function fromWire(v: unknown, version: number): Heartbeat | null {
  if (!isPlainObject(v)) return null;
  const keys = WIRE_KEYS[version];
  if (!keys) return null;
  for (const k of Object.keys(v)) if (!keys.has(k)) return null;
  const { c, n, i, p, s, l, h, e, m, v: av, d, w, a, x } = v;
  if (e !== undefined && (!isPlainObject(e) || !Object.entries(e).every(([name, inc]) => isName(name) && isCount(inc)))) return null;
  if (!isName(c) || !isName(n) || !isCount(i) || !isPath(p) || !isCount(s)) return null;
  if (l !== undefined && l !== 1) return null;
  const hb: Heartbeat = { cluster: c, node: n, incarnation: i, path: p, seq: s };
  if (version === 1) {
    const hs = hierarchiesFromWire(h);
    if (!hs) return null;
    hb.hierarchies = hs;
    if (m !== undefined) {
      const meta = metaFromWire(m);
      if (!meta) return null;
      hb.meta = meta;
    }
  } else {
    if (!isCount(av) || !isDigest(d)) return null;
    if (w !== undefined && (!Array.isArray(w) || !w.every(isName))) return null;
    hb.advertVersion = av;
    hb.advertDigest = d;
    if (w !== undefined) hb.want = [...(w as string[])];
    if (version >= 3) {
      // Always present in format 3 (empty: nobody doubted): its absence would read as "may doubt you".
      if (!Array.isArray(x) || x.length > MAX_DOUBTS || !x.every(isName)) return null;
      hb.doubts = [...(x as string[])];
    }
    if (a !== undefined) {
      if (!isPlainObject(a) || !Object.keys(a).every((k) => ADVERT_KEYS.has(k))) return null;
      const hs = hierarchiesFromWire(a.h);
      if (!hs) return null;
      const meta = a.m === undefined ? undefined : metaFromWire(a.m);
      if (meta === null) return null;
      // The advert must be the one the summary names: a receiver keeps (version, digest) with it.
      // (Of the bytes as sent: the sender's digest is of this very JSON.)
      if (digestOfWire(a as unknown as AdvertWire) !== d) return null;
      hb.hierarchies = hs;
      if (meta) hb.meta = meta;
    }
  }
  if (l === 1) hb.leaving = true;
  if (e !== undefined) hb.heard = Object.fromEntries(Object.entries(e as Record<string, number>));
  return hb;
}

function hierarchiesFromWire(h: unknown): Record<string, HierarchyAdvert> | null {
  if (!isPlainObject(h)) return null;
  const entries: Array<[string, HierarchyAdvert]> = [];
  for (const [name, t] of Object.entries(h)) {
    if (!isName(name) || !Array.isArray(t) || (t.length !== 3 && t.length !== 4)) return null;
    const [st, epoch, eligible, ownerKey] = t as unknown[];
    const state = typeof st === 'number' ? STATES[st] : undefined;
    if (state === undefined || !isCount(epoch) || (eligible !== 0 && eligible !== 1)) return null;
    if (t.length === 4 && !isOwnerKey(ownerKey)) return null;
    const advert: HierarchyAdvert = { state, epoch, eligible: eligible === 1 };
    if (t.length === 4) advert.ownerKey = ownerKey as string;
    entries.push([name, advert]);
  }
  // fromEntries defines own properties, so "__proto__" cannot reach the prototype.
  return Object.fromEntries(entries);
}
