// harness/recv-budget.ts: the token buckets in front of the HMAC, with the clock passed in (no
// timers, no sockets); and Comm using them against a spoofed-source flood over the memory
// transport with a mocked clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecvBudget, type RecvBudgetOptions } from '../../harness/recv-budget.ts';
import { Comm } from '../../harness/comm.ts';
import { encode } from '../../harness/packet.ts';
import { MemoryHub } from '../../harness/transport.ts';
import { advance, capture, memoryCluster } from './lib/memory-comm.ts';
import { DEFAULTS } from '../../harness/defaults.ts';

const opts = (o: Partial<RecvBudgetOptions> = {}): RecvBudgetOptions => ({
  small: { perSecond: 100, burst: 10 },
  large: { perSecond: 5, burst: 2 },
  smallMaxBytes: 1472,
  maxSources: 4,
  ...o,
});

test('recv budget: a source gets its burst, then its rate; sources and size classes are apart', () => {
  const b = new RecvBudget(opts());
  let t = 1000;
  let ok = 0;
  for (let i = 0; i < 50; i++) if (b.take('10.0.0.1', 300, t)) ok++;
  assert.equal(ok, 10, 'burst of the small class');
  assert.equal(b.take('10.0.0.2', 300, t), true, 'another IP has its own bucket');
  assert.equal(b.take('10.0.0.1', 60_000, t), true, 'large class apart from small');
  assert.equal(b.take('10.0.0.1', 60_000, t), true);
  assert.equal(b.take('10.0.0.1', 60_000, t), false, 'large burst is 2');
  // 100 ms later: 10 more small tokens (100/s), 0.5 large.
  t += 100;
  ok = 0;
  for (let i = 0; i < 50; i++) if (b.take('10.0.0.1', 300, t)) ok++;
  assert.equal(ok, 10);
  assert.equal(b.take('10.0.0.1', 60_000, t), false);
  t += 100;
  assert.equal(b.take('10.0.0.1', 60_000, t), true, '1 large token after 200 ms at 5/s');
  // Over a long flood, what passes is the rate, whatever is offered.
  let passed = 0;
  for (let ms = 0; ms < 10_000; ms++) for (let k = 0; k < 100; k++) if (b.take('10.0.0.1', 300, t + ms)) passed++;
  assert.ok(passed >= 990 && passed <= 1010, `10 s at 100k/s offered: ${passed} passed (rate 100/s)`);
});

test('recv budget: refund gives the token back, so authentic traffic never spends it', () => {
  const b = new RecvBudget(opts());
  const t = 5000;
  for (let i = 0; i < 1000; i++) {
    assert.equal(b.take('10.0.0.1', 300, t), true, `packet ${i}`);
    b.refund('10.0.0.1', 300, t);
  }
  // ...but never above the burst.
  for (let i = 0; i < 5; i++) b.refund('10.0.0.1', 300, t);
  let ok = 0;
  for (let i = 0; i < 50; i++) if (b.take('10.0.0.1', 300, t)) ok++;
  assert.equal(ok, 10);
  b.refund('10.9.9.9', 300, t); // unknown source: nothing happens
  assert.equal(b.size, 1);
});

test('recv budget: memory is bounded, the least recently seen source is forgotten first', () => {
  const b = new RecvBudget(opts({ maxSources: 3 }));
  const t = 0;
  b.take('a', 1, t);
  b.take('b', 1, t);
  b.take('c', 1, t);
  b.take('a', 1, t); // a is now the most recent; b the oldest
  b.take('d', 1, t);
  assert.equal(b.size, 3);
  assert.equal(b.evicted, 1);
  for (let i = 0; i < 1024 * 64; i++) b.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 300, t);
  assert.equal(b.size, 3, 'a spoofed-source flood over 64k addresses');
  // a was used up by 1 of 10; had it been evicted it would start full again: the cap is on memory, not a working limit.
});

test('recv budget: an IP shared by several configured addresses gets that many tokens; a clock going back adds none', () => {
  const b = new RecvBudget(opts({ weight: (ip) => (ip === 'shared' ? 3 : 1) }));
  let ok = 0;
  for (let i = 0; i < 100; i++) if (b.take('shared', 300, 1000)) ok++;
  assert.equal(ok, 30);
  ok = 0;
  for (let i = 0; i < 100; i++) if (b.take('shared', 300, 500)) ok++;
  assert.equal(ok, 0);
  assert.throws(() => new RecvBudget(opts({ maxSources: 0 })), /maxSources/);
});

// --- Comm with the budget, memory transport, mocked clock ---------------------------------------

const KEY = Buffer.from('test-key-0123456789abcdef-test-key', 'ascii');
const I = 150;

const cluster = (names: string[]) => memoryCluster(names, I);

test('comm: junk spoofing a peer source is dropped over budget before the HMAC; the peer stays up; large junk does not starve its routine heartbeats', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b']);
  const la = capture();
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: la.log, incarnation: 1, now: () => Date.now(), transport: hub.transport() });
  const b = new Comm({ cluster: c, self: 'b', key: KEY, log: capture().log, incarnation: 2, now: () => Date.now(), transport: hub.transport() });
  let changes = 0;
  try {
    await a.start();
    await b.start();
    await advance(t, 3 * I);
    assert.equal(a.view().b?.state, 'up');
    a.on('change', () => changes++);
    const bigJunk = Buffer.alloc(60 * 1024, 7);
    Buffer.from('HBT\x02\x00').copy(bigJunk);
    const forged = encode({ cluster: 'test', node: 'b', incarnation: 2, path: 0, seq: 1e9, hierarchies: {}, heard: { a: 1 } }, Buffer.from('wrong-key-wrong-key-wrong-key!!'));
    // 1. 5 s of 60 KiB junk from b's path-0 address, 20 a millisecond (20k/s).
    await advance(t, 5000, () => {
      for (let k = 0; k < 20; k++) hub.inject(0, '10.0.1.2:7400', '10.0.1.1:7400', bigJunk);
    });
    let d = a.counters().dropped;
    assert.ok(d.overBudget > 90_000, `over budget: ${d.overBudget}`);
    // Only the large class's burst + rate reached the HMAC.
    const large = DEFAULTS.recvBudgetLargeBurst + 5 * DEFAULTS.recvBudgetLargePerSec;
    assert.ok(d.badMac <= large + 1, `bad MACs checked: ${d.badMac}`);
    assert.equal(a.view().b?.state, 'up');
    assert.equal(a.view().b?.paths[0], 'up', 'large junk does not starve the routine heartbeats of that very path');
    // 2. 5 s of small forged heartbeats from b's path-0 address (20k/s): that path competes with
    //    the junk and is lost; b stays up through path 1.
    await advance(t, 5000, () => {
      for (let k = 0; k < 20; k++) hub.inject(0, '10.0.1.2:7400', '10.0.1.1:7400', forged);
    });
    d = a.counters().dropped;
    assert.ok(d.badMac <= large + DEFAULTS.recvBudgetSmallBurst + 5 * DEFAULTS.recvBudgetSmallPerSec + 1, `bad MACs checked: ${d.badMac}`);
    assert.equal(a.view().b?.state, 'up', 'b up through its other path');
    assert.equal(changes > 0, true, 'path 0 reported lost');
    // Junk stopped: path 0 back.
    await advance(t, 3 * I + 300);
    assert.equal(a.view().b?.paths[0], 'up');
    // Logging: per (reason, source IP) once a second, within the reason's budget.
    const lines = la.lines.filter((l) => /^comm: (dropped packet|\d+ more) \((overBudget|badMac)\)/.test(l.msg));
    assert.ok(lines.length <= 2 * 2 * 12, `${lines.length} log lines for 10 s of flood`);
  } finally {
    await a.stop();
    await b.stop();
  }
});
