// The admin tool's pure parts: known_hosts matching (plain, [host]:port, hashed, wildcards,
// negation, @revoked) and the cluster verdict from every node's answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHostKey, loadKnownHosts, type KnownHosts } from '../../harness/known-hosts.ts';
import { hostOf, judge, type NodeAnswer } from '../../harness/cluster-status.ts';
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
