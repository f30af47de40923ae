// The admin tool's pure parts: known_hosts matching (plain, [host]:port, hashed, wildcards,
// negation, @revoked) and the cluster verdict from every node's answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHostKey, loadKnownHosts, type KnownHosts } from '../../harness/known-hosts.ts';
import { checkAnswer, formatClusterStatus, hostOf, judge, printable, printableJson, type NodeAnswer } from '../../harness/cluster-status.ts';
import type { StatusDoc } from '../../harness/status.ts';

const A = randomBytes(51);
const B = randomBytes(51);
const R = randomBytes(51);
let dir: string;
let kh: KnownHosts;

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'known-hosts-'));
  const k = (b: Buffer) => `ssh-ed25519 ${b.toString('base64')}`;
  const file = join(dir, 'known_hosts');
  writeFileSync(
    file,
    [
      '# comment',
      '',
      `10.0.0.1,node1 ${k(A)}`,
      `[10.0.0.2]:2222 ${k(A)} root@node2`,
      `${hashed('10.0.0.3')} ${k(A)}`,
      `10.0.1.* ${k(B)}`,
      `10.0.2.*,!10.0.2.9 ${k(A)}`,
      `@revoked * ${k(R)}`,
      `@cert-authority *.example ${k(B)}`,
      'garbage',
    ].join('\n'),
  );
  kh = loadKnownHosts(file);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('plain, comma lists and [host]:port entries', () => {
  assert.deepEqual(checkHostKey(kh, '10.0.0.1', 22, A), { ok: true });
  assert.deepEqual(checkHostKey(kh, 'node1', 22, A), { ok: true });
  assert.deepEqual(checkHostKey(kh, '10.0.0.2', 2222, A), { ok: true });
  const wrongPort = checkHostKey(kh, '10.0.0.2', 22, A);
  assert.equal(wrongPort.ok, false);
  assert.match((wrongPort as { reason: string }).reason, /is not in .*ssh-keyscan 10\.0\.0\.2/);
});

test('hashed entries (HashKnownHosts yes)', () => {
  assert.deepEqual(checkHostKey(kh, '10.0.0.3', 22, A), { ok: true });
  assert.equal(checkHostKey(kh, '10.0.0.4', 22, A).ok, false);
});

test('wildcards and negation', () => {
  assert.deepEqual(checkHostKey(kh, '10.0.1.77', 22, B), { ok: true });
  assert.deepEqual(checkHostKey(kh, '10.0.2.8', 22, A), { ok: true });
  assert.equal(checkHostKey(kh, '10.0.2.9', 22, A).ok, false);
});

test('a different key for a known host is refused as a possible man in the middle', () => {
  const v = checkHostKey(kh, '10.0.0.1', 22, B);
  assert.equal(v.ok, false);
  assert.match((v as { reason: string }).reason, /HOST KEY OF 10\.0\.0\.1 DOES NOT MATCH .*known_hosts \(lines 3\)/);
});

test('a revoked key is refused even where it would match; cert-authority lines are not host keys', () => {
  assert.match((checkHostKey(kh, '10.0.1.5', 22, R) as { reason: string }).reason, /@revoked/);
  assert.equal(checkHostKey(kh, 'a.example', 22, B).ok, false);
});

test('hostOf: addresses of comm paths to SSH hosts', () => {
  assert.equal(hostOf('10.0.0.1:5405'), '10.0.0.1');
  assert.equal(hostOf('[fd00::1]:5405'), 'fd00::1');
  assert.equal(hostOf('node1'), 'node1');
});

function answer(node: string, phases: Record<string, string> | null): NodeAnswer {
  if (!phases) return { node, error: 'no route' };
  const status = { node, nodes: [], hierarchies: Object.entries(phases).map(([name, phase]) => ({ name, phase })) } as unknown as StatusDoc;
  return { node, via: node, status };
}

test('judge: one runner is ok; two runners or a silent node are not', () => {
  const ok = judge([answer('n1', { web: 'in-service', db: 'out-of-service' }), answer('n2', { web: 'out-of-service', db: 'in-service' })]);
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.hierarchies.map((h) => h.verdict), ['in service on n2', 'in service on n1']);

  const twice = judge([answer('n1', { web: 'in-service' }), answer('n2', { web: 'in-service' })]);
  assert.equal(twice.ok, false);
  assert.equal(twice.hierarchies[0]!.verdict, 'IN SERVICE ON n1 AND n2');

  const silent = judge([answer('n1', { web: 'out-of-service' }), answer('n2', null)]);
  assert.equal(silent.ok, false);
  assert.equal(silent.hierarchies[0]!.verdict, 'not in service on any node that answered (no answer from n2)');
});

/** n's answer: its config fingerprint and how it sees the other nodes. */
function viewAnswer(node: string, config: string, sees: Record<string, string>): NodeAnswer {
  const nodes = [{ name: node, self: true, state: 'self', suspect: false, config }, ...Object.entries(sees).map(([name, state]) => ({ name, self: false, state, suspect: false, config: null }))];
  return { node, via: node, status: { node, nodes, hierarchies: [] } as unknown as StatusDoc };
}

test('judge: configurations that differ, or a peer seen up by one node and down by another, are NOT OK, and say which', () => {
  const agree = judge([viewAnswer('n1', 'aa', { n2: 'up', n3: 'up' }), viewAnswer('n2', 'aa', { n1: 'up', n3: 'up' }), viewAnswer('n3', 'aa', { n1: 'up', n2: 'up' })]);
  assert.deepEqual(agree.divergences, []);
  assert.equal(agree.ok, true);
  const config = judge([viewAnswer('n1', 'aa', { n2: 'up' }), viewAnswer('n2', 'bb', { n1: 'up' })]);
  assert.equal(config.ok, false);
  assert.deepEqual(config.divergences, ['CONFIGURATIONS DIFFER: n1: aa; n2: bb']);
  const split = judge([viewAnswer('n1', 'aa', { n2: 'up', n3: 'down' }), viewAnswer('n2', 'aa', { n1: 'up', n3: 'up' }), viewAnswer('n3', 'aa', { n1: 'down', n2: 'up' })]);
  assert.equal(split.ok, false);
  assert.deepEqual(split.divergences, ['VIEWS DIFFER on n1: up for n2; down for n3 (a partition?)', 'VIEWS DIFFER on n3: up for n2; down for n1 (a partition?)']);
});

test('checkAnswer: JSON of the shape the report reads, from the node asked; anything else is unusable, with why', () => {
  const good = { node: 'n1', shuttingDown: false, nodes: [{ name: 'n1', self: true, state: 'self', suspect: false, extra: 1 }], hierarchies: [{ name: 'h', phase: 'in-service', more: {} }], counters: {} };
  const ok = checkAnswer(JSON.stringify(good), 'n1');
  assert.ok('status' in ok);
  assert.deepEqual(ok.status, good, 'fields the report does not read pass through (to --json)');
  const why = (text: string, node = 'n1') => {
    const r = checkAnswer(text, node);
    assert.ok('unusable' in r, `${text} was accepted`);
    return r.unusable;
  };
  assert.match(why('{}'), /^node: .*expected string.*; shuttingDown: expected false or a reason; nodes: .*expected array.*; and 1 more$/);
  assert.match(why('[]'), /^\(root\): .*expected object/);
  assert.match(why('null'), /^\(root\)/);
  assert.match(why('not json \u001b[2J'), /^not JSON: not json/);
  assert.match(why(JSON.stringify({ ...good, hierarchies: [{ name: 7, phase: 'x' }] })), /^hierarchies\[0\]\.name: .*expected string/);
  assert.match(why(JSON.stringify({ ...good, shuttingDown: true })), /^shuttingDown: expected false or a reason/);
  assert.match(why(JSON.stringify(good), 'n2'), /status of node "n1", not of n2/);
});

test('printable: control characters, bidi overrides and backslashes shown escaped; the rest untouched', () => {
  assert.equal(printable('web-1 ok: ünïcode ✓'), 'web-1 ok: ünïcode ✓');
  assert.equal(printable('a\u001b[31mb\u0007\u009b6n\n\t\r\u0000\u007f'), 'a\\x1b[31mb\\x07\\x9b6n\\n\\t\\r\\x00\\x7f');
  assert.equal(printable('x\u202ey\u2066z\u2028'), 'x\\u202ey\\u2066z\\u2028');
  assert.equal(printable('C:\\x1b'), 'C:\\\\x1b', 'a literal backslash cannot pass for an escape');
  const j = printableJson({ s: 'a\u001b\u009b\u202eb' });
  assert.equal(j, '{\n  "s": "a\\u001b\\u009b\\u202eb"\n}');
  assert.deepEqual(JSON.parse(j), { s: 'a\u001b\u009b\u202eb' }, 'still the same JSON');
});

test('formatClusterStatus: every string a node sent is printed escaped; an unusable answer is said so', () => {
  const evil = '\u001b]0;owned\u0007\u001b[2J';
  const status = {
    node: 'n1',
    shuttingDown: `halt${evil}`,
    nodes: [{ name: 'n1', self: true, state: 'self', suspect: false }, { name: `n2${evil}`, self: false, state: `up${evil}`, suspect: false }],
    hierarchies: [{ name: `web${evil}`, phase: `in-service${evil}` }],
  } as unknown as StatusDoc;
  const text = formatClusterStatus([
    { node: 'n1', via: 'n1', status },
    { node: 'n2', unusable: true, error: `10.0.0.2: unusable answer: not JSON: ${evil}` },
    { node: 'n3', error: `10.0.0.3: remote command exited 1: ${evil}` },
  ]);
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(text), JSON.stringify(text));
  const shown = '\\x1b]0;owned\\x07\\x1b[2J';
  assert.ok(text.includes(`sees n2${shown} up${shown}; SHUTTING DOWN (halt${shown})`), text);
  assert.ok(text.includes(`  web${shown}: not in service on any node that answered (no answer from n2, n3)   [n1: in-service${shown}]`), text);
  assert.ok(text.includes(`  n2: UNUSABLE ANSWER — 10.0.0.2: unusable answer: not JSON: ${shown}`), text);
  assert.ok(text.includes(`  n3: NO ANSWER — 10.0.0.3: remote command exited 1: ${shown}`), text);
});
