// The ownership race over the real FileBackend, with an injected clock: sleeping advances the
// fake time and runs a hook, which is where "the other nodes" act (refresh a key, win a race).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DiskRef, Key, OwnershipBackend } from '../../fencing/backend.ts';
import { OwnershipError } from '../../fencing/backend.ts';
import { FileBackend } from '../../fencing/file.ts';
import { isReleasedKey, nextKey, nodeKey, nodePart, releasedKey } from '../../fencing/keys.ts';
import { acquire, watchHolder } from '../../fencing/race.ts';
import type { AcquireOptions } from '../../fencing/race.ts';

const CLUSTER = 'c';
const NODES = ['n1', 'n2', 'n3'];
let dir = '';
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fencing-race-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function disk(name = 'd'): DiskRef {
  return { id: `h${++n}/${name}`, paths: [] };
}
const be = (node: string): FileBackend => new FileBackend({ dir, initiator: node });
const nodeOf = (key: Key): string | null => NODES.find((x) => nodePart(nodeKey(CLUSTER, x, 0)) === nodePart(key)) ?? null;

/** Fake clock; `onSleep` runs after each advance (other nodes act there). */
function clock(onSleep?: (t: number) => Promise<void>) {
  const c = {
    t: 1_000_000,
    slept: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.slept.push(ms);
      c.t += ms;
      await new Promise((r) => setImmediate(r)); // let concurrent racers interleave
      await onSleep?.(c.t);
    },
  };
  return c;
}

function options(self: string, c: ReturnType<typeof clock>, over: Partial<AcquireOptions> = {}): AcquireOptions {
  return {
    cluster: CLUSTER,
    self,
    delayMs: 0,
    holderInfo: (key) => ({ node: nodeOf(key), reachable: false }),
    livenessWindowMs: 700,
    keyPollMs: 100,
    now: c.now,
    sleep: c.sleep,
    ...over,
  };
}

/** `node` holds `d` with a key of generation `gen` (as after its own acquire). */
async function holds(node: string, d: DiskRef, gen = 5): Promise<Key> {
  const key = nodeKey(CLUSTER, node, gen);
  await be(node).registerIgnore(d, key);
  await be(node).reserve(d, key);
  return key;
}

test('free disk: registered and reserved with our fresh key, no waiting at rank 0', async () => {
  const d = disk();
  const c = clock();
  const out = await acquire(be('n1'), [d], options('n1', c, { generation: 42 }));
  assert.deepEqual(out, { ok: true, key: nodeKey(CLUSTER, 'n1', 42) });
  assert.equal((await be('n2').readReservation(d)).holder, nodeKey(CLUSTER, 'n1', 42));
  assert.deepEqual(c.slept, []);
});

test('default generation is now() mod 2^32 (never a negative int32)', async () => {
  const d = disk();
  const c = clock();
  c.t = 2 ** 41 + 0xfffffff0; // bit 31 set: `& 0xffffffff` would go negative
  const out = await acquire(be('n1'), [d], options('n1', c));
  assert.ok(out.ok);
  assert.equal(out.key, nodeKey(CLUSTER, 'n1', 0xfffffff0));
});

test('rank delay: a lower-ranked node waits delayMs and loses to the node that reserved meanwhile', async () => {
  const d = disk();
  let n2Key: Key | null = null;
  const c = clock(async () => {
    if (n2Key === null) n2Key = await holds('n2', d); // n2 (rank 0) wins during our delay
  });
  const out = await acquire(be('n1'), [d], options('n1', c, { delayMs: 300 }));
  assert.equal(out.ok, false);
  assert.ok(!out.ok);
  assert.equal(out.reason, 'lost-race');
  assert.equal(out.holder, n2Key);
  assert.equal(out.holderNode, 'n2');
  assert.deepEqual(c.slept, [300]);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [n2Key], 'a loser keeps no registration');
  // Without a competitor the delayed node takes it after waiting.
  const d2 = disk();
  const c2 = clock();
  const ok = await acquire(be('n1'), [d2], options('n1', c2, { delayMs: 300 }));
  assert.ok(ok.ok);
  assert.deepEqual(c2.slept, [300]);
});

test('held by a node we can reach: refused at once, nothing preempted, no registration left', async () => {
  const d = disk();
  const k2 = await holds('n2', d);
  const c = clock();
  const out = await acquire(be('n1'), [d], options('n1', c, { holderInfo: (key) => ({ node: nodeOf(key), reachable: true }) }));
  assert.ok(!out.ok);
  assert.equal(out.reason, 'held-by-reachable');
  assert.equal(out.holder, k2);
  assert.equal(out.holderNode, 'n2');
  assert.deepEqual(c.slept, []);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [k2]);
  assert.equal((await be('n1').readReservation(d)).holder, k2);
});

test('frozen holder (unreachable, key not moving for livenessWindowMs): preempted', async () => {
  const d = disk();
  const k2 = await holds('n2', d);
  const c = clock();
  const t0 = c.t;
  const out = await acquire(be('n1'), [d], options('n1', c, { generation: 9 }));
  assert.deepEqual(out, { ok: true, key: nodeKey(CLUSTER, 'n1', 9), preempted: k2 });
  assert.ok(c.t - t0 >= 700, `watched only ${c.t - t0} ms`);
  assert.ok(c.slept.every((ms) => ms <= 100), 'polled every keyPollMs');
  assert.deepEqual((await be('n1').readKeys(d)).keys, [nodeKey(CLUSTER, 'n1', 9)]);
  // The frozen holder, waking up, finds out through its refresh and cannot come back.
  await assert.rejects(be('n2').reregister(d, k2, nextKey(k2)), (e: unknown) => e instanceof OwnershipError && e.code === 'conflict');
});

test('live holder (unreachable but refreshing its key): owner-alive-on-disk, never preempted', async () => {
  const d = disk();
  let k2 = await holds('n2', d);
  let lastRefresh = 1_000_000;
  const c = clock(async (t) => {
    if (t - lastRefresh >= 250) {
      lastRefresh = t;
      const next = nextKey(k2);
      await be('n2').reregister(d, k2, next);
      k2 = next;
    }
  });
  const out = await acquire(be('n1'), [d], options('n1', c));
  assert.ok(!out.ok);
  assert.equal(out.reason, 'owner-alive-on-disk');
  assert.equal(out.holderNode, 'n2');
  assert.equal(out.holder, k2);
  assert.equal((await be('n1').readReservation(d)).holder, k2);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [k2]);
});

test('a frozen key whose holder we hear again during the watch (its news says it runs the hierarchy): held-by-reachable, never preempted', async () => {
  // Its key stays put: a holder refreshes only once it knows of a contest, which may not be yet.
  const d = disk();
  const k2 = await holds('n2', d);
  const c = clock();
  const t0 = c.t;
  const out = await acquire(be('n1'), [d], options('n1', c, { holderInfo: (key) => ({ node: nodeOf(key), reachable: c.t - t0 >= 300 }) }));
  assert.ok(!out.ok);
  assert.equal(out.reason, 'held-by-reachable');
  assert.equal(out.holder, k2);
  assert.match(out.detail, /reach again/);
  assert.equal(c.t - t0, 300, 'backed off at the first poll after the news, not at the end of the window');
  assert.equal((await be('n1').readReservation(d)).holder, k2);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [k2], 'no registration of ours left');
});

test('holder hands over while we watch its key: the released marker is taken at once, not read as a live holder', async () => {
  // The dead runner's guard finished its stop and left the reservation under its released marker
  // (same node part as its key) half way through our liveness window.
  const d = disk();
  const k2 = await holds('n2', d);
  const t0 = 1_000_000;
  const c = clock(async (t) => {
    if (t - t0 === 300) await be('n2').reregister(d, k2, releasedKey(k2));
  });
  const out = await acquire(be('n1'), [d], options('n1', c, { generation: 9 }));
  assert.deepEqual(out, { ok: true, key: nodeKey(CLUSTER, 'n1', 9), preempted: releasedKey(k2) });
  assert.ok(c.t - t0 < 700, `took the handed-over disk at once, not after the window (${c.t - t0} ms)`);
});

test('a dead daemon\'s guard holds while its stop takes longer than dead time + window, then releases: the peer never preempts, and reserves right after', async () => {
  // n2's daemon died at t0; its guard refreshes the key every 250 ms (guard-lib.sh) while the stop
  // runs for 3 s (> 0.9 s dead time + 0.7 s window), then unregisters, releasing the reservation.
  // n1 races from the dead time on and, refused, backs off 500 ms (the daemon's back-off) each time.
  const d = disk();
  let k2 = await holds('n2', d);
  const t0 = 1_000_000;
  const releaseAt = t0 + 3000;
  let lastRefresh = t0;
  let releasedAt: number | null = null;
  const c = clock(async (t) => {
    if (releasedAt !== null) return;
    if (t >= releaseAt) {
      await be('n2').registerIgnore(d, 0n);
      releasedAt = t;
    } else if (t - lastRefresh >= 250) {
      lastRefresh = t;
      const next = nextKey(k2);
      await be('n2').reregister(d, k2, next);
      k2 = next;
    }
  });
  await c.sleep(900); // detection
  let refusals = 0;
  for (;;) {
    const out = await acquire(be('n1'), [d], options('n1', c, { generation: 5 }));
    if (out.ok) {
      assert.equal(out.preempted, undefined, 'the peer preempted the guard instead of reserving the released disk');
      break;
    }
    assert.equal(out.reason, 'owner-alive-on-disk', out.detail);
    assert.equal(releasedAt, null, 'refused after the release');
    refusals++;
    await c.sleep(500);
  }
  assert.ok(releasedAt !== null && c.t >= releasedAt, `n1 owns the disk at ${c.t - t0} ms, before the guard released`);
  assert.ok(c.t - (releasedAt ?? 0) <= 500 + 250, `n1 took ${c.t - (releasedAt ?? 0)} ms after the release`);
  assert.ok(refusals >= 2, `only ${refusals} refusals`);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [nodeKey(CLUSTER, 'n1', 5)]);
});

test("our own stale key (earlier incarnation, other I_T nexus) is preempted at once", async () => {
  const d = disk();
  // The stale registration sits under another initiator name, as after an iSCSI re-login.
  const stale = nodeKey(CLUSTER, 'n1', 3);
  const old = new FileBackend({ dir, initiator: 'n1-old-nexus' });
  await old.registerIgnore(d, stale);
  await old.reserve(d, stale);
  const c = clock();
  const out = await acquire(be('n1'), [d], options('n1', c, { generation: 4, holderInfo: () => ({ node: 'n1', reachable: true }) }));
  assert.deepEqual(out, { ok: true, key: nodeKey(CLUSTER, 'n1', 4), preempted: stale });
  assert.deepEqual(c.slept, []);
  assert.deepEqual((await be('n1').readKeys(d)).keys, [nodeKey(CLUSTER, 'n1', 4)]);
});

test('priorWatch: evidence gathered while the holder was suspect shortens the window', async () => {
  const d = disk();
  const k2 = await holds('n2', d);
  const c = clock();
  let watch = await watchHolder(be('n1'), d, undefined, c.t - 600);
  watch = await watchHolder(be('n1'), d, watch, c.t - 100);
  assert.deepEqual(watch, { key: k2, firstSeenMs: c.t - 600, lastChangeMs: c.t - 600 });
  const t0 = c.t;
  const out = await acquire(be('n1'), [d], options('n1', c, { priorWatch: watch }));
  assert.ok(out.ok);
  assert.equal(out.preempted, k2);
  assert.equal(c.t - t0, 100, 'only the 100 ms not yet covered by the prior watch');
  // A prior watch of another key does not count.
  const d2 = disk();
  const k3 = await holds('n3', d2);
  const c2 = clock();
  const t1 = c2.t;
  const out2 = await acquire(be('n1'), [d2], options('n1', c2, { priorWatch: { key: nextKey(k3), firstSeenMs: 0, lastChangeMs: 0 } }));
  assert.ok(out2.ok);
  assert.ok(c2.t - t1 >= 700);
});

test('watchHolder follows key changes of one holder and restarts for another holder', async () => {
  const d = disk();
  assert.equal(await watchHolder(be('n1'), d, undefined, 10), undefined);
  const k2 = await holds('n2', d);
  const w1 = await watchHolder(be('n1'), d, undefined, 10);
  assert.deepEqual(w1, { key: k2, firstSeenMs: 10, lastChangeMs: 10 });
  assert.equal(await watchHolder(be('n1'), d, w1, 20), w1);
  await be('n2').reregister(d, k2, nextKey(k2));
  assert.deepEqual(await watchHolder(be('n1'), d, w1, 30), { key: nextKey(k2), firstSeenMs: 10, lastChangeMs: 30 });
  await be('n3').registerIgnore(d, nodeKey(CLUSTER, 'n3', 1));
  await be('n3').preemptAbort(d, nodeKey(CLUSTER, 'n3', 1), nextKey(k2));
  assert.deepEqual(await watchHolder(be('n1'), d, w1, 40), { key: nodeKey(CLUSTER, 'n3', 1), firstSeenMs: 40, lastChangeMs: 40 });
});

test('two racers preempting the same frozen holder: exactly one wins', async () => {
  for (let round = 0; round < 5; round++) {
    const d = disk();
    const k3 = await holds('n3', d);
    const c1 = clock();
    const c2 = clock();
    // The racers reach each other; only the frozen n3 is unreachable. (A racer that starts after
    // the other has won would otherwise watch the winner's key, which no keeper refreshes here.)
    const holderInfo = (key: Key) => ({ node: nodeOf(key), reachable: nodeOf(key) !== 'n3' });
    const outs = await Promise.all([
      acquire(be('n1'), [d], options('n1', c1, { holderInfo })),
      acquire(be('n2'), [d], options('n2', c2, { holderInfo })),
    ]);
    const winners = outs.filter((o) => o.ok);
    assert.equal(winners.length, 1, JSON.stringify(outs, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
    const loser = outs.find((o) => !o.ok);
    assert.ok(loser && !loser.ok && (loser.reason === 'lost-race' || loser.reason === 'held-by-reachable'), loser && !loser.ok ? loser.detail : '');
    const holder = (await be('n1').readReservation(d)).holder;
    assert.ok(winners[0]?.ok && holder === winners[0].key);
    assert.deepEqual((await be('n1').readKeys(d)).keys, [holder], `victim ${k3} and the loser are gone`);
  }
});

test('several disks: taken in id order; on failure everything taken is given back', async () => {
  const a = disk('a');
  const b = { id: a.id.replace('/a', '/b'), paths: [] };
  const k2 = await holds('n2', b);
  const calls: string[] = [];
  const spy = new Proxy(be('n1'), {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${(args[0] as DiskRef).id}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as OwnershipBackend;
  const c = clock();
  const out = await acquire(spy, [b, a], options('n1', c, { holderInfo: (key) => ({ node: nodeOf(key), reachable: true }) }));
  assert.ok(!out.ok);
  assert.equal(out.reason, 'held-by-reachable');
  assert.equal(out.holder, k2);
  assert.equal(calls[0], `registerIgnore ${a.id}`, 'lowest id first');
  // Handed over, never unreserved: our reservation stays, under the released marker, which the
  // next master preempts at once (keys.ts RELEASED_GENERATION).
  assert.ok(calls.includes(`reregister ${a.id}`), 'disk a handed over');
  assert.ok(!calls.includes(`release ${a.id}`), 'never RELEASE: an unreserved disk takes anyone\'s writes');
  const ra = await be('n1').readReservation(a);
  assert.ok(ra.holder !== null && isReleasedKey(ra.holder) && nodeOf(ra.holder) === 'n1');
  assert.deepEqual((await be('n1').readKeys(b)).keys, [k2]);
});

test('an I/O error half way reports error with detail and gives back what was taken', async () => {
  const a = disk('a');
  const b = { id: a.id.replace('/a', '/b'), paths: [] };
  const real = be('n1');
  const failing: OwnershipBackend = {
    name: real.name,
    ioFencing: real.ioFencing,
    verify: (dd) => real.verify(dd),
    registerIgnore: (dd, k) => real.registerIgnore(dd, k),
    reregister: (dd, o, k) => real.reregister(dd, o, k),
    reserve: async (dd, key) => {
      if (dd.id === b.id) throw new OwnershipError('io', dd.id, 'simulated I/O error');
      return real.reserve(dd, key);
    },
    preemptAbort: (dd, k, v) => real.preemptAbort(dd, k, v),
    readKeys: (dd) => real.readKeys(dd),
    readReservation: (dd) => real.readReservation(dd),
    guardDisk: (dd) => real.guardDisk(dd),
    release: (dd, k) => real.release(dd, k),
  };
  const out = await acquire(failing, [a, b], options('n1', clock()));
  assert.ok(!out.ok);
  assert.equal(out.reason, 'error');
  assert.match(out.detail, /simulated I\/O error/);
  assert.match(out.detail, new RegExp(b.id));
  // a (taken) is handed over under the released marker; b (only registered) is left clean.
  const ra = (await real.readReservation(a)).holder;
  assert.ok(ra !== null && isReleasedKey(ra), `${a.id} handed over`);
  assert.deepEqual((await real.readKeys(b)).keys, [], `${b.id} left clean`);
  assert.equal((await real.readReservation(b)).holder, null);
});

test('abort during the rank delay (real sleep): error, registration removed', async () => {
  const d = disk();
  const ac = new AbortController();
  const p = acquire(be('n1'), [d], { ...options('n1', clock()), delayMs: 10_000, sleep: undefined, now: undefined, signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  const out = await p;
  assert.ok(!out.ok);
  assert.equal(out.reason, 'error');
  assert.match(out.detail, /aborted/);
  assert.deepEqual((await be('n1').readKeys(d)).keys, []);
});
