// The heartbeat wire format (harness/packet.ts) and the cluster key file (harness/authkey.ts):
// everything that decides whether a datagram is believed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { advertDigest, decode, encode, MAX_DATAGRAM_BYTES, UNFRAGMENTED_BYTES, WIRE_VERSION, type Heartbeat, type HierarchyAdvert } from '../../harness/packet.ts';
import { generateAuthKey, readAuthKey } from '../../harness/authkey.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'ascii');
const OTHER_KEY = Buffer.from('fedcba9876543210fedcba9876543210', 'ascii');

function hb(over: Partial<Heartbeat> = {}): Heartbeat {
  return {
    cluster: 'prod',
    node: 'alpha',
    incarnation: 1_760_000_000_000,
    path: 1,
    seq: 42,
    hierarchies: {
      web: { state: 'in-service', epoch: 7, eligible: true, ownerKey: '48a1000000000007' },
      db: { state: 'out-of-service', epoch: 0, eligible: false },
    },
    ...over,
  };
}

function hundred(): Record<string, HierarchyAdvert> {
  const states: HierarchyAdvert['state'][] = ['in-service', 'out-of-service', 'starting', 'stopping', 'failed'];
  const h: Record<string, HierarchyAdvert> = {};
  for (let i = 0; i < 100; i++) {
    const a: HierarchyAdvert = { state: states[i % 5] ?? 'failed', epoch: 1000 + i * 37, eligible: i % 3 !== 0 };
    if (i % 2 === 0) a.ownerKey = (0x48a1_0000_0000n + BigInt(i)).toString(16);
    h[`hierarchy-${String(i).padStart(3, '0')}`] = a;
  }
  return h;
}

/** Build a correctly MACed envelope around an arbitrary body, to reach the checks behind the MAC. */
function seal(body: Buffer | string, key = KEY, flags = 0, version = 1): Buffer {
  const head = Buffer.concat([Buffer.from('HBT'), Buffer.from([version, flags]), Buffer.from(body)]);
  return Buffer.concat([head, createHmac('sha256', key).update(head).digest()]);
}

test('round trip keeps every field', () => {
  const h = hb({ leaving: true });
  const r = decode(encode(h, KEY), KEY, 'prod');
  assert.deepEqual(r, { ok: true, hb: h });
  const plain = decode(encode(hb(), KEY), KEY, 'prod');
  assert.ok(plain.ok && plain.hb.leaving === undefined, 'leaving absent unless set');
});

test('100 hierarchies fit one Ethernet frame and round trip', () => {
  const h = hb({ hierarchies: hundred() });
  const buf = encode(h, KEY);
  assert.ok(buf.length < 1400, `100 hierarchies encode to ${buf.length} bytes`);
  assert.deepEqual(decode(buf, KEY, 'prod'), { ok: true, hb: h });
});

test('a hierarchy named __proto__ stays a plain own property', () => {
  const hierarchies = JSON.parse('{"__proto__": {"state":"failed","epoch":1,"eligible":true}}') as Record<string, HierarchyAdvert>;
  const r = decode(encode(hb({ hierarchies }), KEY), KEY, 'prod');
  assert.ok(r.ok);
  assert.deepEqual(Object.keys(r.hb.hierarchies ?? {}), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(r.hb.hierarchies), Object.prototype);
});

test('forged MAC: another key, a flipped body byte, a flipped MAC byte', () => {
  const buf = encode(hb(), KEY);
  assert.deepEqual(decode(encode(hb(), OTHER_KEY), KEY, 'prod'), { ok: false, reason: 'bad-mac' });
  const body = Buffer.from(buf);
  body[10] = (body[10] ?? 0) ^ 0x01;
  assert.deepEqual(decode(body, KEY, 'prod'), { ok: false, reason: 'bad-mac' });
  const tag = Buffer.from(buf);
  tag[tag.length - 1] = (tag[tag.length - 1] ?? 0) ^ 0x80;
  assert.deepEqual(decode(tag, KEY, 'prod'), { ok: false, reason: 'bad-mac' });
});

test('truncated packets', () => {
  const buf = encode(hb(), KEY);
  for (const n of [0, 1, 3, 4, 5, 20, 38]) {
    assert.deepEqual(decode(buf.subarray(0, n), KEY, 'prod'), { ok: false, reason: 'truncated' }, `first ${n} bytes`);
  }
  // Longer cuts cannot be told from tampering: the MAC is the last 32 bytes, wherever they are.
  assert.deepEqual(decode(buf.subarray(0, buf.length - 1), KEY, 'prod'), { ok: false, reason: 'bad-mac' });
});

test('wrong cluster (same key) is told apart from a bad MAC', () => {
  assert.deepEqual(decode(encode(hb({ cluster: 'staging' }), KEY), KEY, 'prod'), { ok: false, reason: 'wrong-cluster' });
});

test('garbage and unknown versions are bad-magic; decode never throws', () => {
  assert.deepEqual(decode(Buffer.from('GET / HTTP/1.1\r\n\r\n'), KEY, 'prod'), { ok: false, reason: 'bad-magic' });
  assert.deepEqual(decode(Buffer.from([0x00]), KEY, 'prod'), { ok: false, reason: 'bad-magic' });
  assert.deepEqual(decode(seal('{}', KEY, 0, 4), KEY, 'prod'), { ok: false, reason: 'bad-magic' });
  assert.deepEqual(decode(seal('{}', KEY, 0, 0), KEY, 'prod'), { ok: false, reason: 'bad-magic' });
  const real = encode(hb(), KEY);
  for (let i = 0; i < 3000; i++) {
    const n = i % 200;
    const junk = randomBytes(n);
    if (i % 2 === 0) real.copy(junk, 0, 0, Math.min(n, 5 + (i % 7))); // keep our header, fuzz the rest
    const r = decode(junk, KEY, 'prod');
    assert.equal(r.ok, false);
  }
});

test('too large: encode fails loudly, decode refuses', () => {
  const h: Record<string, HierarchyAdvert> = {};
  for (let i = 0; i < 1500; i++) h[randomBytes(48).toString('base64')] = { state: 'in-service', epoch: i, eligible: true, ownerKey: randomBytes(24).toString('hex') };
  assert.throws(() => encode(hb({ hierarchies: h }), KEY), /alpha.*bytes with 1500 hierarchies.*65507/);
  assert.deepEqual(decode(Buffer.alloc(MAX_DATAGRAM_BYTES + 1), KEY, 'prod'), { ok: false, reason: 'too-large' });
});

test('heard (the incarnations the sender has heard) round trips; absent stays absent (an earlier release)', () => {
  const withHeard = hb({ heard: { b: 1_796_000_000_123, c: 5 } });
  const r = decode(encode(withHeard, KEY), KEY, withHeard.cluster);
  assert.ok(r.ok);
  assert.deepEqual(r.hb.heard, { b: 1_796_000_000_123, c: 5 });
  const r2 = decode(encode(hb(), KEY), KEY, hb().cluster);
  assert.ok(r2.ok);
  assert.equal(r2.hb.heard, undefined);
  assert.throws(() => encode(hb({ heard: { b: -2 } }), KEY), /heard/);
});

test('encode refuses fields a peer would reject', () => {
  assert.throws(() => encode(hb({ node: '' }), KEY), /node name/);
  assert.throws(() => encode(hb({ seq: -1 }), KEY), /seq -1/);
  assert.throws(() => encode(hb({ path: 256 }), KEY), /path 256/);
  const bad = { x: { state: 'running', epoch: 1, eligible: true } } as unknown as Record<string, HierarchyAdvert>;
  assert.throws(() => encode(hb({ hierarchies: bad }), KEY), /hierarchy x: unknown state "running"/);
  assert.throws(() => encode(hb({ hierarchies: { x: { state: 'failed', epoch: 1.5, eligible: true } } }), KEY), /hierarchy x: epoch 1.5/);
});

test('authenticated but malformed bodies are malformed', () => {
  const ok = { c: 'prod', n: 'alpha', i: 1, p: 0, s: 1, h: {} };
  assert.equal(decode(seal(JSON.stringify(ok)), KEY, 'prod').ok, true, 'control: the sealed minimal body is valid');
  const bodies: unknown[] = [
    'not json',
    '[1,2,3]',
    'null',
    { ...ok, extra: 1 },
    { ...ok, n: '' },
    { ...ok, i: -1 },
    { ...ok, s: 1.5 },
    { ...ok, p: 300 },
    { ...ok, l: true },
    { ...ok, h: [] },
    { ...ok, h: { web: [9, 1, 1] } },
    { ...ok, h: { web: [0, -1, 1] } },
    { ...ok, h: { web: [0, 1, 2] } },
    { ...ok, h: { web: [0, 1, 1, 7] } },
    { ...ok, h: { web: [0, 1, 1, 'k', 'extra'] } },
    { ...ok, h: { '': [0, 1, 1] } },
    { ...ok, e: [] },
    { ...ok, e: { b: -1 } },
    { ...ok, e: { b: 'x' } },
    { ...ok, e: { '': 1 } },
  ];
  for (const b of bodies) {
    const text = typeof b === 'string' ? b : JSON.stringify(b);
    assert.deepEqual(decode(seal(text), KEY, 'prod'), { ok: false, reason: 'malformed' }, text);
  }
  assert.deepEqual(decode(seal('{}', KEY, 0x80), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'unknown flag');
  assert.deepEqual(decode(seal('not deflate', KEY, 0x01), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'bad deflate');
  const bomb = deflateRawSync(Buffer.alloc(4_000_000, 0x20));
  assert.deepEqual(decode(seal(bomb, KEY, 0x01), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'inflates past the cap');
});

// --- authkey ---------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'harness-authkey-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('generateAuthKey writes 0600 hex that readAuthKey returns; refuses to replace a key', () => {
  const f = join(dir, 'authkey');
  const key = generateAuthKey(f);
  assert.equal(statSync(f).mode & 0o777, 0o600);
  assert.match(readFileSync(f, 'ascii'), /^[0-9a-f]{64}\n$/);
  assert.deepEqual(readAuthKey(f), key);
  assert.throws(() => generateAuthKey(f), new RegExp(`${f} already exists`));
  assert.deepEqual(readAuthKey(f), key, 'the refused keygen left the key alone');
  const again = generateAuthKey(f, { overwrite: true });
  assert.notDeepEqual(again, key);
  assert.deepEqual(readAuthKey(f), again);
});

test('readAuthKey refuses missing, group/other-readable and short keys, naming the file', () => {
  const missing = join(dir, 'nope');
  assert.throws(() => readAuthKey(missing), new RegExp(`${missing} does not exist`));
  const f = join(dir, 'k2');
  writeFileSync(f, 'x'.repeat(32), { mode: 0o600 });
  for (const mode of [0o640, 0o604, 0o660, 0o644]) {
    chmodSync(f, mode);
    assert.throws(() => readAuthKey(f), new RegExp(`${f} has mode 0${mode.toString(8)}`));
  }
  chmodSync(f, 0o400);
  assert.equal(readAuthKey(f).length, 32, '0400 is fine');
  const short = join(dir, 'short');
  writeFileSync(short, '0123456789abcde\n', { mode: 0o600 });
  assert.throws(() => readAuthKey(short), new RegExp(`${short} holds 15 bytes`));
  assert.throws(() => readAuthKey(dir), /is not a regular file/);
});

// --- wire format 2, and the previous release's format 1 -------------------------------------------

/**
 * Format-1 heartbeats recorded from the previous release (main at a68e325, before format 2) with
 * KEY: two hierarchies and an echo; then 100 hierarchies, leaving, deflated. A rolling upgrade
 * mixes such nodes with this release's: these bytes must keep decoding, and a format-1 peer must
 * be sent exactly this kind of packet.
 */
const RECORDED_V1 = [
  'SEJUAQB7ImMiOiJwcm9kIiwibiI6ImFscGhhIiwiaSI6MTc2MDAwMDAwMDAwMCwicCI6MSwicyI6NDIsImgiOnsid2ViIjpbMCw3LDEsIjQ4YTEwMDAwMDAwMDAwMDciXSwiZGIiOlsxLDAsMF19LCJlIjp7ImJldGEiOjE3NjAwMDAwMDAxMjN9fZrru0p3jwNvTDPkVNSdwHN1LILiXwN8h0a4lSlUuX2B',
  'SEJUAQFl1s1qHDEQReF30boDXaVSSepXCV5MnIExmGRwsglm3j1YtwlJjpZn96G/ei/P5Sj3t+9fy1a+laNcXu+3S9nKSzms5/5nbeVeDtvKj3KEb+VWjvdye7m+Xd6eb78+7ftejs/7tm/2tP3TbXVD99Udva5e0WP1QG+rN/RcPdH76h19rD7Q5+rz/27yGsB2giE2iQ1kE9lgNpkNaBPaoDapDWwT2+A2uQ1wE9wgd8kdcpfcIfdzryF3yR1yl9whd8kdcpfcIXfJHXKX3CF3yR3yKnmFvEpeIa+SV8jrecwhr5JXyKvkFfIqeYW8Sl4hr5JXyKvkFfKQPCAPyQPykDwgD8kD8jhvOOQheUAekgfkIXlAHpIH5CF5QN4kb5A3yRvkTfIGeZO8Qd4kb5C383GDvEneIG+SN8ib5A3yJnmDPCVPyFPyhDwlT8hT8oQ8JU/IU/KEPM93HfKUPCFPyRPylDwh75J3yLvkHfIueYe8S94h75J3yLvkHfIueYe8n18a5F3yDnmXvEM+JB+QD8kH5EPyAfmQfEA+JB+QD8kH5EPyAfmQfEA+zt8c8iH5gHxKPiGfkk/Ip+QT8in5hHxKPiGfkk/Ip+QT8in5hHxKPiGf5yDzIX9s5XUNc9ePKe7L9efl72HPvD4evwFIKowf8yUbedStsoXbEuNsKhTM7/aPojkhgnxBREwo1w==',
];

test('format 1: recorded packets of the previous release decode, and encode reproduces them byte for byte', () => {
  const [small, big] = RECORDED_V1.map((b) => Buffer.from(b, 'base64'));
  assert.ok(small && big);
  const r = decode(small, KEY, 'prod');
  assert.ok(r.ok);
  const expected: Heartbeat = {
    cluster: 'prod',
    node: 'alpha',
    incarnation: 1_760_000_000_000,
    path: 1,
    seq: 42,
    hierarchies: { web: { state: 'in-service', epoch: 7, eligible: true, ownerKey: '48a1000000000007' }, db: { state: 'out-of-service', epoch: 0, eligible: false } },
    heard: { beta: 1_760_000_000_123 },
  };
  assert.deepEqual(r.hb, expected);
  assert.equal(r.hb.advertVersion, undefined, 'a format-1 sender has no advert version: liveness takes its advert from every heartbeat');
  assert.deepEqual(encode(expected, KEY), small);
  const rb = decode(big, KEY, 'prod');
  assert.ok(rb.ok && rb.hb.leaving === true && Object.keys(rb.hb.hierarchies ?? {}).length === 100);
  assert.deepEqual(encode(rb.hb, KEY), big);
  assert.equal(big[3], 1);
  assert.equal(big[4], 1, 'deflated');
});

/**
 * Format-2 heartbeats recorded from the previous release (main at 34afbde, before format 3) with
 * KEY: a routine one (summary, echo, want), then one carrying the advert with its meta. They must
 * keep decoding (no doubts: such a peer may be watching our keys), and a format-2 peer must be
 * sent exactly this kind of packet.
 */
const RECORDED_V2 = [
  'SEJUAgB7ImMiOiJwcm9kIiwibiI6ImFscGhhIiwiaSI6MTc2MDAwMDAwMDAwMCwicCI6MSwicyI6NDMsImUiOnsiYmV0YSI6MTc2MDAwMDAwMDEyM30sInYiOjUsImQiOiI0YWVlZGNiZDdmMTk3ZTY2IiwidyI6WyJnYW1tYSJdfdtFL892mcafKVqz8alO++6tqgvGENjftAqiVdL7KSj0',
  'SEJUAgB7ImMiOiJwcm9kIiwibiI6ImFscGhhIiwiaSI6MTc2MDAwMDAwMDAwMCwicCI6MSwicyI6NDQsImUiOnsiYmV0YSI6MTc2MDAwMDAwMDEyM30sInYiOjUsImQiOiI0YWVlZGNiZDdmMTk3ZTY2IiwidyI6WyJnYW1tYSJdLCJhIjp7ImgiOnsiZGIiOlsxLDAsMF0sIndlYiI6WzAsNywxLCI0OGExMDAwMDAwMDAwMDA3Il19LCJtIjp7ImEiOnt9LCJmIjoiYzBmZmVlIn19fVdoj6T0LXmwmfyJBAtNSGpJAVGsQZGmKx32lJoKoIu7',
];

test('format 2: recorded packets of the previous release decode without doubts, and encode reproduces them byte for byte', () => {
  const [routine, carrying] = RECORDED_V2.map((b) => Buffer.from(b, 'base64'));
  assert.ok(routine && carrying);
  const r = decode(routine, KEY, 'prod');
  assert.ok(r.ok);
  const expected: Heartbeat = { cluster: 'prod', node: 'alpha', incarnation: 1_760_000_000_000, path: 1, seq: 43, heard: { beta: 1_760_000_000_123 }, advertVersion: 5, advertDigest: '4aeedcbd7f197e66', want: ['gamma'] };
  assert.deepEqual(r.hb, expected);
  assert.equal(r.hb.doubts, undefined);
  assert.deepEqual(encode(expected, KEY), routine);
  const rc = decode(carrying, KEY, 'prod');
  assert.ok(rc.ok && rc.hb.meta?.config === 'c0ffee' && rc.hb.hierarchies?.web?.state === 'in-service');
  assert.deepEqual(encode(rc.hb, KEY), carrying);
  assert.equal(carrying[3], 2);
});

function thousand(): Record<string, HierarchyAdvert> {
  const h: Record<string, HierarchyAdvert> = {};
  for (let i = 0; i < 1000; i++) h[`h${String(i).padStart(4, '0')}`] = { state: i % 3 === 0 ? 'in-service' : 'out-of-service', epoch: i, eligible: true, ...(i % 3 === 0 ? { ownerKey: (0x48a1_0000_0000n + BigInt(i)).toString(16) } : {}) };
  return h;
}

test('format 2: a routine heartbeat fits one Ethernet frame at 1000 hierarchies and 32 nodes; the advert rides on request', () => {
  const hs = thousand();
  const heard: Record<string, number> = {};
  for (let i = 1; i <= 31; i++) heard[`node${String(i).padStart(2, '0')}`] = 1_796_000_000_000 + i;
  const summary = { advertVersion: 17, advertDigest: advertDigest(hs) };
  const routine = hb({ hierarchies: undefined, heard, ...summary, want: Object.keys(heard) });
  delete routine.hierarchies;
  const buf = encode(routine, KEY);
  assert.ok(buf.length <= UNFRAGMENTED_BYTES, `routine heartbeat ${buf.length} bytes`);
  assert.equal(buf[3], 2, 'no doubts: format 2, what a peer of the previous release reads');
  assert.deepEqual(decode(buf, KEY, 'prod'), { ok: true, hb: routine });
  // The same size with 20 or 1000 hierarchies: only the summary travels.
  const few = Object.fromEntries(Object.entries(hs).slice(0, 20));
  const small = encode({ ...routine, advertDigest: advertDigest(few) }, KEY).length;
  assert.ok(Math.abs(small - buf.length) <= 8, `20 hierarchies: ${small} bytes, 1000: ${buf.length} (deflate varies by a few bytes)`);
  // The advert itself, carried: decodes to the same hierarchies, digest checked.
  const full = hb({ hierarchies: hs, heard, ...summary });
  const rf = decode(encode(full, KEY), KEY, 'prod');
  assert.ok(rf.ok);
  assert.deepEqual(rf.hb.hierarchies, hs);
  assert.equal(rf.hb.advertDigest, summary.advertDigest);
  // Insertion order does not change the digest (sorted canonical form).
  assert.equal(advertDigest(Object.fromEntries(Object.entries(hs).reverse())), summary.advertDigest);
  assert.notEqual(advertDigest({ ...hs, h0001: { state: 'failed', epoch: 1, eligible: true } }), summary.advertDigest);
});

test('format 3: the doubts travel (empty included), fit one frame with 31 peers, and a format-2 body may not carry them', () => {
  const heard: Record<string, number> = {};
  for (let i = 1; i <= 31; i++) heard[`node${String(i).padStart(2, '0')}`] = 1_796_000_000_000 + i;
  const summary = { advertVersion: 17, advertDigest: advertDigest(thousand()) };
  const routine = hb({ heard, ...summary, want: Object.keys(heard), doubts: Object.keys(heard) });
  delete routine.hierarchies;
  const buf = encode(routine, KEY);
  assert.equal(buf[3], WIRE_VERSION);
  assert.equal(WIRE_VERSION, 3);
  assert.ok(buf.length <= UNFRAGMENTED_BYTES, `every peer doubted: ${buf.length} bytes`);
  assert.deepEqual(decode(buf, KEY, 'prod'), { ok: true, hb: routine });
  const calm = hb({ ...summary, doubts: [] });
  delete calm.hierarchies;
  const rc = decode(encode(calm, KEY), KEY, 'prod');
  assert.ok(rc.ok);
  assert.deepEqual(rc.hb.doubts, [], 'an empty list is kept: absent would mean "may doubt you"');
  assert.throws(() => encode(hb({ doubts: ['b'] }), KEY), /need an advertVersion/);
  assert.throws(() => encode(hb({ ...summary, doubts: [''] }), KEY), /doubts/);
  const body = { c: 'prod', n: 'alpha', i: 1, p: 0, s: 1, v: 1, d: advertDigest({}) };
  assert.deepEqual(decode(seal(JSON.stringify({ ...body, x: [] }), KEY, 0, 2), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'doubts in format 2');
  assert.deepEqual(decode(seal(JSON.stringify(body), KEY, 0, 3), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'format 3 without doubts');
  assert.deepEqual(decode(seal(JSON.stringify({ ...body, x: 'b' }), KEY, 0, 3), KEY, 'prod'), { ok: false, reason: 'malformed' });
  assert.deepEqual(decode(seal(JSON.stringify({ ...body, x: Array.from({ length: 257 }, (_, i) => `n${i}`) }), KEY, 0, 3), KEY, 'prod'), { ok: false, reason: 'malformed' });
});

test('format 2: a carried advert must match its digest; fields are checked', () => {
  const hs = { web: { state: 'in-service' as const, epoch: 1, eligible: true } };
  assert.throws(() => encode(hb({ hierarchies: hs, advertVersion: 1, advertDigest: advertDigest({}) }), KEY), /not the digest/);
  assert.throws(() => encode(hb({ advertVersion: 1, advertDigest: 'xyz' }), KEY), /advertDigest/);
  assert.throws(() => encode(hb({ want: ['b'] }), KEY), /need an advertVersion/);
  const body = { c: 'prod', n: 'alpha', i: 1, p: 0, s: 1, v: 1, d: advertDigest({}), a: { h: { web: [0, 1, 1] } } };
  assert.deepEqual(decode(seal(JSON.stringify(body), KEY, 0, 2), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'digest of another advert');
  const good = { ...body, d: advertDigest(hs) };
  assert.equal(decode(seal(JSON.stringify(good), KEY, 0, 2), KEY, 'prod').ok, true);
  assert.deepEqual(decode(seal(JSON.stringify({ ...good, h: {} }), KEY, 0, 2), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'format 1 field in format 2');
  assert.deepEqual(decode(seal(JSON.stringify({ ...good, w: 'b' }), KEY, 0, 2), KEY, 'prod'), { ok: false, reason: 'malformed' });
  assert.deepEqual(decode(seal(JSON.stringify({ c: 'prod', n: 'alpha', i: 1, p: 0, s: 1, v: 1, d: advertDigest({}) }), KEY, 0, 1), KEY, 'prod'), { ok: false, reason: 'malformed' }, 'format 2 fields in format 1');
});

test('format 2: the node meta (admin map, config fingerprint) is part of the advert: carried with it, covered by its digest', () => {
  const hs = { web: { state: 'in-service' as const, epoch: 1, eligible: true } };
  const meta = { admin: { 'h/web/stop': { v: 3, node: 'alpha', by: 'root@alpha', at: 1_796_000_000_000, value: true } }, config: 'c0ffee' } as unknown as NonNullable<Heartbeat['meta']>;
  const d = advertDigest(hs, meta);
  assert.notEqual(d, advertDigest(hs), 'a meta change is an advert change');
  const r = decode(encode(hb({ hierarchies: hs, meta, advertVersion: 2, advertDigest: d }), KEY), KEY, 'prod');
  assert.ok(r.ok);
  assert.deepEqual(r.hb.meta, meta);
  assert.throws(() => encode(hb({ hierarchies: hs, meta, advertVersion: 2, advertDigest: advertDigest(hs) }), KEY), /not the digest/);
  const routine = hb({ advertVersion: 2, advertDigest: d });
  delete routine.hierarchies;
  assert.throws(() => encode({ ...routine, meta }, KEY), /only with the hierarchies/);
});

test('format 2: a hierarchy blocked by OCF rc 6 travels with its reason (every node shows why); a bad one is refused', () => {
  const hs = { web: { state: 'blocked' as const, epoch: 1, eligible: false } };
  const meta = { admin: {}, config: 'c0ffee', blocked: { web: 'app: not-configured: /etc/app.conf: no such file' } };
  const d = advertDigest(hs, meta);
  assert.notEqual(d, advertDigest(hs, { admin: {}, config: 'c0ffee' }), 'the reason is covered by the digest');
  const r = decode(encode(hb({ hierarchies: hs, meta, advertVersion: 2, advertDigest: d }), KEY), KEY, 'prod');
  assert.ok(r.ok);
  assert.deepEqual(r.hb.meta, meta);
  const long = { ...meta, blocked: { web: 'x'.repeat(513) } };
  assert.throws(() => encode(hb({ hierarchies: hs, meta: long, advertVersion: 2, advertDigest: advertDigest(hs, long) }), KEY), /blocked: "web": a hierarchy name and a reason of at most 512 characters/);
});

test('advert digest: remembered for a frozen advert, recomputed for one that can change in place', () => {
  const entry = { state: 'in-service' as const, epoch: 3, eligible: true };
  const open: Record<string, HierarchyAdvert> = { web: { ...entry } };
  const before = advertDigest(open);
  open.web!.epoch = 4;
  assert.notEqual(advertDigest(open), before);
  const frozen = Object.freeze({ web: Object.freeze({ ...entry }) });
  assert.equal(advertDigest(frozen), before);
  assert.equal(advertDigest(frozen), before);
  // The meta is part of it: another meta, another digest, for the same frozen hierarchies.
  const meta = Object.freeze({ admin: {}, config: 'abc' });
  assert.notEqual(advertDigest(frozen, meta), before);
  assert.equal(advertDigest(frozen), before);
});
