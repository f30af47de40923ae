// The simulator's clock: timer order, intervals, sleep with abort, and async code driven
// deterministically by step()/runUntil() — with no real time passing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeeperTimers } from '../../fencing/ownership.ts';
import { SimAbortError, SimClock, SimTimer } from '../../sim/clock.ts';

test('timers fire in due order, ties in insertion order; clearTimeout, pending, nextAt', async () => {
  const c = new SimClock({ start: 100 });
  const log: string[] = [];
  c.setTimeout(() => log.push(`b@${c.now()}`), 20);
  c.setTimeout(() => log.push(`a@${c.now()}`), 10);
  c.setTimeout(() => log.push(`c1@${c.now()}`), 20);
  const gone = c.setTimeout(() => log.push('never'), 15);
  c.setTimeout((x) => log.push(`c2@${c.now()}:${String(x)}`), 20, 'arg');
  assert.equal(c.pending(), 5);
  assert.equal(c.nextAt(), 110);
  c.clearTimeout(gone);
  c.clearTimeout(gone); // twice is harmless, as is anything that is not a timer
  c.clearTimeout(undefined);
  c.clearTimeout(42);
  assert.equal(c.pending(), 4);
  assert.equal(await c.step(), true);
  assert.deepEqual(log, ['a@110']);
  assert.equal(c.nextAt(), 120, 'the cleared timer is skipped');
  await c.runUntil(200);
  assert.deepEqual(log, ['a@110', 'b@120', 'c1@120', 'c2@120:arg']);
  assert.equal(c.now(), 200);
  assert.equal(c.pending(), 0);
  assert.equal(c.nextAt(), null);
  assert.equal(await c.step(), false);
  assert.throws(() => new SimClock().clearTimeout(c.setTimeout(() => undefined, 1)), /another clock/);
});

test('as in Node, a delay below 1 ms is 1 ms; fractional delays are kept; a timer set with delay 0 inside a callback fires after the others due now', async () => {
  const c = new SimClock();
  const at: number[] = [];
  c.setTimeout(() => at.push(c.now()), 0);
  c.setTimeout(() => at.push(c.now()), -5);
  c.setTimeout(() => at.push(c.now()), Number.NaN);
  c.setTimeout(() => at.push(c.now()), 2.5);
  await c.runUntil(10);
  assert.deepEqual(at, [1, 1, 1, 2.5]);
  const order: string[] = [];
  c.setTimeout(() => {
    order.push('first');
    c.setTimeout(() => order.push('third'), 0); // 1 ms later
  }, 5);
  c.setTimeout(() => order.push('second'), 5);
  await c.runFor(10);
  assert.deepEqual(order, ['first', 'second', 'third']);
});

test('setInterval repeats until cleared, also from inside its own callback; handles look like Node timeouts', async () => {
  const c = new SimClock();
  const ticks: number[] = [];
  const iv = c.setInterval(() => {
    ticks.push(c.now());
    if (ticks.length === 3) c.clearInterval(iv);
  }, 100);
  assert.ok(iv instanceof SimTimer);
  assert.equal(iv.unref().hasRef(), false);
  assert.equal(iv.ref().hasRef(), true);
  assert.equal(+iv, iv.id);
  await c.runUntil(1000);
  assert.deepEqual(ticks, [100, 200, 300]);
  assert.equal(c.pending(), 0);
  const other: number[] = [];
  const iv2 = c.setInterval(() => other.push(c.now()), 250);
  await c.runFor(600);
  c.clearTimeout(iv2); // clearTimeout and clearInterval are interchangeable, as in Node
  await c.runFor(1000);
  assert.deepEqual(other, [1250, 1500]);
});

test('sleep resolves at the simulated time; abort rejects like node:timers/promises (before and during)', async () => {
  const c = new SimClock();
  let woke = -1;
  void c.sleep(250).then(() => (woke = c.now()));
  await c.runUntil(249);
  assert.equal(woke, -1);
  await c.runUntil(250);
  assert.equal(woke, 250);

  const ac = new AbortController();
  const p = c.sleep(1000, ac.signal);
  const rejected = assert.rejects(p, (e: unknown) => e instanceof SimAbortError && e.name === 'AbortError' && e.code === 'ABORT_ERR' && e.cause === 'why');
  await c.runFor(10);
  ac.abort('why');
  await rejected;
  assert.equal(c.pending(), 0, 'the aborted sleep cleared its timer');
  await assert.rejects(c.sleep(5, AbortSignal.abort()), (e: unknown) => e instanceof Error && e.name === 'AbortError');
});

test('async code awaiting sim promises progresses deterministically, step by step, without real time', async () => {
  const c = new SimClock();
  const trace: string[] = [];
  async function worker(name: string, period: number): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await c.sleep(period);
      await Promise.resolve(); // a few microtask hops between timer and next timer
      await null;
      trace.push(`${name}${i}@${c.now()}`);
    }
  }
  const done = Promise.all([worker('a', 30), worker('b', 20), worker('c', 30)]);
  const real = performance.now();
  await c.runUntil(10_000_000); // ten thousand simulated seconds
  await done;
  assert.ok(performance.now() - real < 1000, 'no real waiting');
  assert.deepEqual(trace, ['b0@20', 'a0@30', 'c0@30', 'b1@40', 'a1@60', 'c1@60', 'b2@60', 'a2@90', 'c2@90']);
  assert.equal(c.now(), 10_000_000);

  // runUntilTrue stops at the moment the condition holds, or at the deadline.
  const d = new SimClock();
  let flag = false;
  d.setTimeout(() => void Promise.resolve().then(() => (flag = true)), 70);
  d.setInterval(() => undefined, 10);
  assert.equal(await d.runUntilTrue(() => flag, 1000), true);
  assert.equal(d.now(), 70);
  assert.equal(await d.runUntilTrue(() => false, 55), false);
  assert.equal(d.now(), 125);
});

test('the timers object is what OwnershipKeeper takes', async () => {
  const c = new SimClock();
  const t: KeeperTimers = c.timers; // type-level: structurally compatible
  let fired = 0;
  const h = t.setTimeout(() => fired++, 5);
  t.clearTimeout(h);
  const iv = t.setInterval(() => fired++, 5);
  await c.runFor(20);
  t.clearInterval(iv);
  await c.runFor(20);
  assert.equal(fired, 4);
  assert.equal(t.now(), 40);
});
