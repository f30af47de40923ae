// Comm over the in-memory transport with mocked timers and clock: the whole Comm (encode, HMAC,
// checks, ticks, the deadline timer) without sockets or real time. The clock moves 1 ms at a
// time, and every packet sent is delivered before the next step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Comm, type CommEvents } from '../../harness/comm.ts';
import { advertDigest, decode, encode, type Heartbeat } from '../../harness/packet.ts';
import { MemoryHub, parseAddress } from '../../harness/transport.ts';
import { advance, capture, memoryCluster } from './lib/memory-comm.ts';

const KEY = Buffer.from('test-key-0123456789abcdef-test-key', 'ascii');
const I = 150;
const DEAD = 900;

const cluster = (names: string[]) => memoryCluster(names, I, DEAD);

test('comm over the memory transport: up on both paths, a lost path, then a peer stopped: suspect, down at the dead time', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b']);
  const la = capture();
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: la.log, incarnation: 1, now: () => Date.now(), transport: hub.transport() });
  const b = new Comm({ cluster: c, self: 'b', key: KEY, log: capture().log, incarnation: 2, now: () => Date.now(), transport: hub.transport() });
  try {
    await a.start();
    await b.start();
    const states: Array<[number, string]> = [];
    a.on('change', () => {
      const v = a.view().b;
      const s = `${v?.state}${v?.suspect ? '+suspect' : ''}`;
      if (states.at(-1)?.[1] !== s) states.push([Date.now(), s]);
    });
    const paths: Array<CommEvents['path']> = [];
    a.on('path', (...e) => paths.push(e));

    await advance(t, 3 * I);
    for (const [x, peer] of [[a, 'b'], [b, 'a']] as const) {
      const v = x.view()[peer];
      assert.equal(v?.state, 'up', `${peer} up`);
      assert.deepEqual(v?.paths, ['up', 'up']);
    }
    assert.equal(a.view().b?.incarnation, 2);
    assert.deepEqual(paths, [['b', 0, 'up'], ['b', 1, 'up']]);

    // Path 1 lost both ways: the peer stays up, never suspect; the path is down a dead time later.
    hub.drop = (path) => path === 1;
    paths.length = 0;
    await advance(t, DEAD + 2 * I);
    assert.deepEqual(paths, [['b', 1, 'down']]);
    assert.equal(a.view().b?.state, 'up');
    assert.deepEqual(a.view().b?.paths, ['up', 'down']);
    assert.ok(la.lines.some((l) => /degraded redundancy: path 1 to node b/.test(l.msg)));
    hub.drop = undefined;
    await advance(t, 3 * I);
    assert.deepEqual(paths, [['b', 1, 'down'], ['b', 1, 'up']]);
    assert.ok(la.lines.some((l) => /path 1 to node b recovered/.test(l.msg)));
    // (Before its advert arrives, b is 'unknown': alive, but what it runs is not known yet.)
    assert.deepEqual(states.map(([, s]) => s).filter((s, i, all) => i >= all.indexOf('up')), ['up'], 'b never suspect while one path works');

    // b stops (a power-off, as a sees it): suspect, then down exactly at the dead time (the
    // one-shot deadline timer, not the next tick).
    await b.stop();
    const last = a.view().b?.lastHeardMs ?? NaN;
    await advance(t, DEAD + 2 * I);
    const suspectAt = states.find(([, s]) => s === 'up+suspect')?.[0] ?? NaN;
    const downAt = states.find(([, s]) => s === 'down+suspect')?.[0] ?? NaN;
    assert.ok(suspectAt - last >= c.deadTimeMs / 3 && suspectAt - last <= c.deadTimeMs / 3 + I / 10 + 5, `suspect after ${suspectAt - last} ms`);
    assert.ok(downAt - last >= DEAD && downAt - last <= DEAD + 5, `down after ${downAt - last} ms`);
    assert.ok(la.lines.some((l) => l.msg === 'comm: node b down (silent on every path)'));
    t.diagnostic(`b stopped: suspect after ${suspectAt - last} ms, down after ${downAt - last} ms`);

    const n = a.counters();
    assert.ok(n.sent > 0 && n.received > 0);
    assert.deepEqual(Object.values(n.dropped).filter((x) => x > 0), [], 'no drops among honest nodes');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('comm over the memory transport: a forged source and a replay are dropped and counted', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b']);
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: capture().log, incarnation: 1, now: () => Date.now(), transport: hub.transport() });
  const b = new Comm({ cluster: c, self: 'b', key: KEY, log: capture().log, incarnation: 2, now: () => Date.now(), transport: hub.transport() });
  const drops: string[] = [];
  a.on('drop', (reason, from) => drops.push(`${reason} ${from}`));
  try {
    await a.start();
    await b.start();
    await advance(t, 3 * I);
    assert.equal(a.view().b?.state, 'up');
    const bytes = encode({ cluster: 'test', node: 'b', incarnation: 2, path: 0, seq: 1, hierarchies: {}, heard: { a: 1 } }, KEY);
    hub.inject(0, '10.0.1.2:7400', '10.0.1.1:7400', bytes); // seq 1: long since seen
    hub.inject(0, '10.0.1.9:7400', '10.0.1.1:7400', bytes); // a stranger's address
    hub.inject(0, '10.0.2.2:7400', '10.0.1.1:7400', bytes); // b's path-1 address into path 0
    await advance(t, 1);
    assert.deepEqual(drops, ['replayed 10.0.1.2:7400', 'unknownNode 10.0.1.9:7400', 'wrongPath 10.0.2.2:7400']);
    assert.equal(a.view().b?.state, 'up');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('comm: routine heartbeats carry a summary, news the advert; a peer of the previous release (format 1) gets format 1', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b', 'old']);
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: capture().log, incarnation: 1, now: () => Date.now(), transport: hub.transport() });
  const b = new Comm({ cluster: c, self: 'b', key: KEY, log: capture().log, incarnation: 2, now: () => Date.now(), transport: hub.transport() });
  // "old" is a node of the previous release: it reads and sends format 1 only (raw endpoint here).
  const old = hub.transport();
  const toOld: Array<{ format: number; hb: Heartbeat }> = [];
  let oldHeardA = false; // as the previous release: it reads format 1 only, and echoes a only once it heard a
  old.onPacket((_p, bytes, src) => {
    if (src !== '10.0.1.1:7400' && src !== '10.0.2.1:7400') return;
    const r = decode(bytes, KEY, 'test');
    if (r.ok) toOld.push({ format: bytes[3] ?? 0, hb: r.hb });
    if (r.ok && bytes[3] === 1) oldHeardA = true;
  });
  await old.bind(0, parseAddress('10.0.1.3:7400', 'old'));
  await old.bind(1, parseAddress('10.0.2.3:7400', 'old'));
  const web = { state: 'in-service' as const, epoch: 3, eligible: true };
  try {
    a.setAdvert({ web });
    await a.start();
    await b.start();
    let seq = 0;
    const oldSays = () => {
      for (const p of [0, 1]) {
        const bytes = encode({ cluster: 'test', node: 'old', incarnation: 5, path: p, seq: ++seq, hierarchies: { db: { state: 'out-of-service', epoch: 0, eligible: true } }, heard: oldHeardA ? { a: 1 } : {} }, KEY);
        old.send(p, parseAddress(`10.0.${p + 1}.1:7400`, 'a'), bytes, () => {});
      }
    };
    for (let i = 0; i < 4; i++) {
      oldSays();
      await advance(t, I);
    }
    assert.equal(b.view().a?.state, 'up');
    assert.deepEqual(b.view().a?.advert, { web }, "a's advert reached b (asked for, answered)");
    assert.equal(a.view().old?.state, 'up');
    assert.deepEqual(a.view().old?.advert, { db: { state: 'out-of-service', epoch: 0, eligible: true } });
    // Once a heard old speak format 1, everything a sends old is format 1, with the whole advert.
    const after = toOld.slice(toOld.findIndex((x) => x.format === 1));
    assert.ok(after.length >= 3 && after.every((x) => x.format === 1 && x.hb.hierarchies?.web?.epoch === 3), JSON.stringify(toOld.map((x) => x.format)));

    // Routine heartbeats between a and b: summary only, a few hundred bytes.
    const before = a.counters();
    await advance(t, 4 * I);
    const d = a.counters();
    const perPacket = (d.sentBytes - before.sentBytes) / (d.sent - before.sent);
    assert.ok(perPacket < 400, `routine heartbeats average ${perPacket} bytes`);
    // News: b has the new advert at once (the same loop turn), without waiting for a tick.
    a.setAdvert({ web: { ...web, state: 'stopping' } });
    await advance(t, 1);
    assert.equal(b.view().a?.advert?.web?.state, 'stopping');
  } finally {
    await a.stop();
    await b.stop();
    await old.close();
  }
});

test('comm: junk from many source ports is logged within a budget per reason, and every packet is counted', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b']);
  const la = capture();
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: la.log, incarnation: 1, now: () => Date.now(), transport: hub.transport() });
  try {
    await a.start();
    const junk = Buffer.from('not a heartbeat');
    // 3 seconds of 1000 packets a second, each from another port of one host (the 1.7k lines/s case).
    for (let s = 0; s < 3; s++) {
      for (let i = 0; i < 1000; i++) hub.inject(0, `10.0.1.99:${10_000 + s * 1000 + i}`, '10.0.1.1:7400', junk);
      await advance(t, 1000);
    }
    await advance(t, 2000);
    const drops = la.lines.filter((l) => /^comm: (dropped packet|\d+ more) \(unknownNode\)/.test(l.msg));
    const perSecond = new Map<number, number>();
    for (const l of drops) perSecond.set(Math.floor((l.time as number) / 1000), (perSecond.get(Math.floor((l.time as number) / 1000)) ?? 0) + 1);
    assert.ok(Math.max(...perSecond.values()) <= 12, `lines per second: ${[...perSecond.values()].join(', ')}`);
    const logged = drops.filter((l) => /^comm: dropped packet/.test(l.msg)).length;
    const held = drops.reduce((n, l) => n + ((l.suppressed as number | undefined) ?? 0), 0);
    assert.equal(logged + held, 3000, 'every drop is either logged or counted in a summary');
    assert.equal(a.counters().dropped.unknownNode, 3000);
  } finally {
    await a.stop();
  }
});

test('comm: doubts: calm both ways once each hears the other; a node that stops hearing its peer tells it at once; a format-2 peer gets format 2 and is never calm', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 });
  const hub = new MemoryHub();
  const c = cluster(['a', 'b', 'old']);
  let cutAtoB = false;
  const a = new Comm({ cluster: c, self: 'a', key: KEY, log: capture().log, incarnation: 1, now: () => Date.now(), transport: hub.transport(), dropSend: (_p, to) => cutAtoB && to === 'b' });
  const b = new Comm({ cluster: c, self: 'b', key: KEY, log: capture().log, incarnation: 2, now: () => Date.now(), transport: hub.transport() });
  // "old" speaks format 2 (the previous release): no doubts.
  const old = hub.transport();
  const formatsToOld: number[] = [];
  old.onPacket((_p, bytes, src) => {
    if (src === '10.0.1.1:7400' || src === '10.0.2.1:7400') formatsToOld.push(bytes[3] ?? 0);
  });
  await old.bind(0, parseAddress('10.0.1.3:7400', 'old'));
  await old.bind(1, parseAddress('10.0.2.3:7400', 'old'));
  let calmEvents = 0;
  a.on('calm', () => calmEvents++);
  try {
    a.setAdvert({});
    b.setAdvert({});
    await a.start();
    await b.start();
    let seq = 0;
    const oldSays = () => {
      for (const p of [0, 1]) {
        const bytes = encode({ cluster: 'test', node: 'old', incarnation: 5, path: p, seq: ++seq, heard: { a: 1 }, advertVersion: 1, advertDigest: advertDigest({}), ...(seq <= 2 ? { hierarchies: {} } : {}) }, KEY);
        old.send(p, parseAddress(`10.0.${p + 1}.1:7400`, 'a'), bytes, () => {});
      }
    };
    for (let i = 0; i < 6; i++) {
      oldSays();
      await advance(t, I);
    }
    assert.equal(a.calm('b'), true, 'a and b hear each other');
    assert.equal(b.calm('a'), true);
    assert.equal(a.view().old?.state, 'up');
    assert.equal(a.calm('old'), false, 'a format-2 peer may be watching our keys: never calm');
    assert.equal(formatsToOld.at(-1), 2, `a speaks format 2 to it (${formatsToOld.join(',')})`);
    // b stops hearing a: once b suspects a, a knows within a millisecond, not a heartbeat later.
    cutAtoB = true;
    const cutAt = Date.now();
    const before = calmEvents;
    let doubtedAt = 0;
    let suspectAt = 0;
    for (let i = 0; i < 2 * DEAD && !doubtedAt; i++) {
      if (i % I === 0) oldSays();
      await advance(t, 1);
      if (!suspectAt && b.view().a?.suspect) suspectAt = Date.now();
      if (!a.calm('b')) doubtedAt = Date.now();
    }
    assert.ok(suspectAt > cutAt && doubtedAt > 0, 'b suspected a, and a learned that b does not hear it');
    assert.ok(doubtedAt - suspectAt <= 1, `a knew ${doubtedAt - suspectAt} ms after b suspected it (not at b's next heartbeat)`);
    assert.ok(calmEvents > before, "a told its keeper ('calm')");
    assert.ok(a.view().b?.state === 'up' && !a.view().b?.suspect, 'a still hears b: only b doubts a');
  } finally {
    await a.stop();
    await b.stop();
    await old.close();
  }
});
