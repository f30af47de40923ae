import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  findKeyCollisions,
  formatKey,
  generationOf,
  nextKey,
  nodeHash,
  nodeKey,
  nodePart,
  parseKey,
  withGeneration,
} from '../../fencing/keys.ts';

test('node part is a stable hash of (cluster, node), independent of node order', () => {
  const a = nodeKey('prod', 'alpha', 7);
  assert.equal(a, nodeKey('prod', 'alpha', 7));
  assert.equal(nodePart(a), nodeHash('prod', 'alpha'));
  assert.notEqual(nodePart(a), nodePart(nodeKey('prod', 'beta', 7)));
  assert.notEqual(nodePart(a), nodePart(nodeKey('test', 'alpha', 7)), 'cluster name is part of the hash');
  // "cluster\0node" separates the two names: ("ab","c") and ("a","bc") differ.
  assert.notEqual(nodeHash('ab', 'c'), nodeHash('a', 'bc'));
  // Pinned value: the hash must never change between releases (keys on disk outlive upgrades).
  assert.equal(formatKey(nodeKey('c', 'node29089', 1)), '0xd5b054d400000001');
});

test('keys are never 0 and carry the low 32 bits of the generation', () => {
  for (const node of ['a', 'b', 'node1', 'node2', 'x'.repeat(300)]) {
    for (const gen of [0, 1, 0xffffffff, 2 ** 32, 2 ** 40 + 5, -1]) {
      const k = nodeKey('c', node, gen);
      assert.notEqual(k, 0n);
      assert.notEqual(nodePart(k), 0);
      assert.equal(generationOf(k), gen >>> 0);
      assert.ok(k < 1n << 64n);
    }
  }
  const k = nodeKey('c', 'n', 0xffffffff);
  assert.equal(generationOf(nextKey(k)), 0, 'generation wraps');
  assert.equal(nodePart(nextKey(k)), nodePart(k));
  assert.equal(generationOf(withGeneration(k, 42)), 42);
});

test('bad names and generations are refused with a clear message', () => {
  assert.throws(() => nodeKey('', 'n', 1), /cluster name is empty/);
  assert.throws(() => nodeKey('c', '', 1), /node name is empty/);
  assert.throws(() => nodeKey('c', 'n', 1.5), /generation of node n/);
});

test('formatKey prints like sg_persist; parseKey reads it back', () => {
  assert.equal(formatKey(1n), '0x1');
  assert.equal(formatKey(0xa2n), '0xa2');
  assert.equal(formatKey(0x8c3e0a1200000007n), '0x8c3e0a1200000007');
  for (const k of [1n, 0xabcdefn, (1n << 64n) - 1n, nodeKey('c', 'n', 99)]) assert.equal(parseKey(formatKey(k)), k);
  assert.equal(parseKey('  0xA2 '), 0xa2n);
  assert.equal(parseKey('162'), 162n);
  assert.throws(() => parseKey('0x'), /invalid reservation key/);
  assert.throws(() => parseKey('0x1g'), /invalid reservation key/);
  assert.throws(() => parseKey('0x10000000000000000'), /invalid reservation key/);
  assert.throws(() => parseKey('18446744073709551616'), /larger than 64 bits/);
  assert.throws(() => formatKey(-1n), /not a 64-bit/);
});

test('findKeyCollisions reports node pairs that share a node part', () => {
  assert.deepEqual(findKeyCollisions('c', ['node1', 'node2', 'node3']), []);
  // This pair was found by search: both names hash to 0xd5b054d4 in cluster "c".
  assert.deepEqual(findKeyCollisions('c', ['node1', 'node29089', 'node2', 'node60460']), [['node29089', 'node60460']]);
  assert.deepEqual(findKeyCollisions('other', ['node29089', 'node60460']), []);
  assert.deepEqual(findKeyCollisions('c', ['node1', 'node1']), [], 'a repeated name is not a collision');
});
