// spawnTurn: callers are let through in order, one per event-loop turn, so timers (heartbeats,
// key refreshes) run between two spawns of a burst.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnTurn } from '../../harness/spawn-turn.ts';

test('a burst of callers passes in order, each in a later event-loop turn than the one before', async () => {
  let turn = 0;
  let running = true;
  const count = () => {
    turn++;
    if (running) setImmediate(count);
  };
  setImmediate(count);
  const seen: Array<[number, number]> = [];
  await Promise.all(Array.from({ length: 10 }, (_, i) => spawnTurn().then(() => seen.push([i, turn]))));
  running = false;
  assert.deepEqual(seen.map(([i]) => i), [...Array(10).keys()], 'in call order');
  for (let k = 1; k < seen.length; k++) assert.ok(seen[k]![1] > seen[k - 1]![1], `callers ${k - 1} and ${k} passed in one turn: ${JSON.stringify(seen)}`);
});

test('a timer due during a burst fires before the burst is over', async () => {
  let fired = -1;
  let passed = 0;
  setTimeout(() => (fired = passed), 1);
  const until = performance.now() + 3;
  while (performance.now() < until); // the timer is now overdue
  await Promise.all(Array.from({ length: 10 }, () => spawnTurn().then(() => passed++)));
  assert.ok(fired >= 0 && fired < 10, `the timer fired after ${fired} of 10 callers`);
});
