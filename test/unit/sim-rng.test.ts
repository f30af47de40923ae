// The simulator's seeded PRNG: replayable, independent forks, exact ranges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../sim/rng.ts';

const draw = (r: Rng, n: number): number[] => Array.from({ length: n }, () => r.uint32());

test('same seed, same stream — pinned: a recorded seed must replay the same run after any change here', () => {
  assert.deepEqual(draw(new Rng(1), 4), [393288148, 2174103013, 3814759091, 2092745082]);
  assert.deepEqual(draw(new Rng(0), 2), [1789933344, 44971166]);
  assert.deepEqual(draw(new Rng(7), 50), draw(new Rng(7), 50));
  assert.notDeepEqual(draw(new Rng(7), 4), draw(new Rng(8), 4));
  // Seeds are 32-bit: negative ones are taken modulo 2^32.
  assert.deepEqual(draw(new Rng(-1), 4), draw(new Rng(0xffffffff), 4));
  assert.equal(new Rng(-1).seed, 0xffffffff);
  for (const bad of [1.5, 2 ** 32, -(2 ** 31) - 1, Number.NaN]) assert.throws(() => new Rng(bad), RangeError);
});

test('fork(label): a function of the seed and label only, not of the draws made so far', () => {
  const a = new Rng(99);
  const before = draw(a.fork('node:n1'), 8);
  draw(a, 1000);
  assert.deepEqual(draw(a.fork('node:n1'), 8), before, 'drawing from the parent does not move its forks');
  assert.notDeepEqual(draw(a.fork('node:n2'), 8), before);
  assert.notDeepEqual(draw(new Rng(100).fork('node:n1'), 8), before);
  assert.notDeepEqual(draw(a.fork('node:n1').fork('x'), 8), before);
  assert.equal(new Rng(1).fork('a').seed, 3440506390);
});

test('int(lo, hi) covers both ends uniformly; next() in [0, 1); chance and pick', () => {
  const r = new Rng(42);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 60_000; i++) {
    const v = r.int(1, 6);
    assert.ok(Number.isInteger(v) && v >= 1 && v <= 6);
    counts[v - 1]!++;
  }
  for (const c of counts) assert.ok(c > 9_500 && c < 10_500, `skewed: ${counts.join(' ')}`);
  assert.equal(r.int(5, 5), 5);
  assert.ok([-3, -2].includes(r.int(-3, -2)));
  const wide = r.int(0, 2 ** 40);
  assert.ok(Number.isInteger(wide) && wide >= 0 && wide <= 2 ** 40);
  assert.throws(() => r.int(2, 1), RangeError);
  assert.throws(() => r.int(0.5, 1), RangeError);
  let sum = 0;
  for (let i = 0; i < 10_000; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / 10_000 - 0.5) < 0.02);
  assert.equal(r.chance(0), false);
  assert.equal(r.chance(1), true);
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (r.chance(0.25)) hits++;
  assert.ok(hits > 2_300 && hits < 2_700, `chance(0.25) hit ${hits} / 10000`);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(r.pick(['a', 'b', 'c']));
  assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
  assert.throws(() => r.pick([]), RangeError);
  const arr = [1, 2, 3, 4, 5, 6, 7, 8];
  assert.deepEqual([...r.shuffle([...arr])].sort(), arr);
});
