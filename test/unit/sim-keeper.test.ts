// The holder's keeper (fencing/ownership.ts) and the race (fencing/race.ts) on simulated time:
// SimClock timers injected into OwnershipKeeper, SimBackend as the disks. Every run is exact and
// repeatable, so the bounds below are the keeper's real timing, not "within a few intervals".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { DiskRef, Key } from '../../fencing/backend.ts';
import { generationOf, isReleasedKey, nextKey, nodeKey, nodePart } from '../../fencing/keys.ts';
import { LOST_AFTER_FAILED_CHECKS, OwnershipKeeper } from '../../fencing/ownership.ts';
import { acquire } from '../../fencing/race.ts';
import type { AcquireOptions, AcquireOutcome } from '../../fencing/race.ts';
import { SimClock } from '../../sim/clock.ts';
import { SimBackend, SimSan } from '../../sim/disk.ts';
import type { SimOpRecord } from '../../sim/disk.ts';
import { Rng } from '../../sim/rng.ts';

const CLUSTER = 'c';
const NODES = ['n1', 'n2', 'n3'];
const log = pino({ level: 'silent' });
const REFRESH = 250;
const CHECK = 500;
const T0 = 1_000_000;

interface Loss {
  hierarchy: string;
  by: Key | null;
  detail: string;
  at: number;
}

/** A SAN with `ids`, a clock, one backend per node, and every executed op recorded. */
function world(ids: string[] = ['web/d']) {
  const clock = new SimClock({ start: T0 });
  const san = new SimSan(ids);
  const ops: SimOpRecord[] = [];
  san.observer = (r) => ops.push(r);
  const be = new Map(NODES.map((n) => [n, new SimBackend({ san, node: n, clock })]));
  const disks: DiskRef[] = ids.map((id) => ({ id, paths: [] }));
  return { clock, san, ops, be: (n: string) => be.get(n)!, disks };
}

/** n1 holds the disks (as after acquire) and a keeper on the sim clock keeps them. */
async function keeping(w: ReturnType<typeof world>, timing: { keyRefreshMs: number; ownershipCheckMs: number; refreshNeeded?: (h: string) => boolean; contestHoldMs?: number } = { keyRefreshMs: REFRESH, ownershipCheckMs: CHECK }) {
  const key = nodeKey(CLUSTER, 'n1', 100);
  for (const d of w.disks) {
    await w.be('n1').registerIgnore(d, key);
    await w.be('n1').reserve(d, key);
  }
  const keeper = new OwnershipKeeper({ backend: w.be('n1'), cluster: CLUSTER, self: 'n1', log, ...timing, now: () => w.clock.now(), timers: w.clock.timers });
  const losses: Loss[] = [];
  keeper.on('lost', (hierarchy: string, by: Key | null, detail: string) => losses.push({ hierarchy, by, detail, at: w.clock.now() }));
  keeper.adopt('web', w.disks, key);
  return { keeper, key, losses };
}

const hex = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x));
const at = (ops: SimOpRecord[], node: string, op: SimOpRecord['op']): number[] => ops.filter((r) => r.node === node && r.op === op).map((r) => r.at - T0);

test('keeper on sim time: the key moves every keyRefreshMs exactly, checks every ownershipCheckMs, the reservation stays', async () => {
  const w = world(['web/a', 'web/b']);
  const { keeper, key, losses } = await keeping(w);
  await w.clock.runFor(2000);
  const refreshes = at(w.ops, 'n1', 'reregister');
  // One REGISTER per disk per round, rounds at 250, 500, ... 2000 ms.
  assert.deepEqual(refreshes, [250, 250, 500, 500, 750, 750, 1000, 1000, 1250, 1250, 1500, 1500, 1750, 1750, 2000, 2000]);
  assert.deepEqual(at(w.ops, 'n1', 'readKeys'), [500, 500, 1000, 1000, 1500, 1500, 2000, 2000]);
  const st = keeper.get('web');
  assert.ok(st.state === 'owned');
  assert.equal(generationOf(st.key) - generationOf(key), 8);
  assert.equal(st.lastVerified, T0 + 2000);
  for (const d of w.disks) assert.equal((await w.be('n2').readReservation(d)).holder, st.key);
  assert.equal(losses.length, 0);
  keeper.stop();
  assert.equal(w.clock.pending(), 0, 'stop() leaves no timer behind (loop and watchdog)');
});

test('uncontested, the key stays put (checks go on); contested, it moves at once and every keyRefreshMs; it keeps moving contestHoldMs after the contest ends', async () => {
  const w = world();
  let contested = false;
  const { keeper, losses } = await keeping(w, { keyRefreshMs: REFRESH, ownershipCheckMs: CHECK, refreshNeeded: () => contested, contestHoldMs: 1400 });
  await w.clock.runFor(2000);
  assert.deepEqual(at(w.ops, 'n1', 'reregister'), [], 'calm: no REGISTER at all');
  assert.deepEqual(at(w.ops, 'n1', 'readKeys'), [500, 1000, 1500, 2000], 'the checks go on');
  await w.clock.runFor(30);
  contested = true;
  keeper.reconsider();
  await w.clock.runFor(1000);
  assert.deepEqual(at(w.ops, 'n1', 'reregister'), [2030, 2280, 2530, 2780, 3030], 'at once on contest, then every refresh');
  contested = false;
  keeper.reconsider();
  await w.clock.runFor(3000);
  // Last evaluated as contested at 3030: the hold runs to 4430, the last refresh is the one before.
  assert.deepEqual(at(w.ops, 'n1', 'reregister').filter((t) => t > 3030), [3280, 3530, 3780, 4030, 4280]);
  assert.deepEqual(losses, []);
  assert.equal(keeper.get('web').state, 'owned');
  keeper.stop();
});

test('keeper on sim time with disk latency: refreshes still keep pace and nothing is lost', async () => {
  const w = world();
  const { keeper, key, losses } = await keeping(w);
  const rng = new Rng(5);
  w.be('n1').latencyMs = () => rng.int(1, 40);
  await w.clock.runFor(10_000);
  const st = keeper.get('web');
  assert.ok(st.state === 'owned', JSON.stringify(losses));
  const gens = generationOf(st.key) - generationOf(key);
  assert.ok(gens >= 35 && gens <= 40, `${gens} refreshes in 10 s at ${REFRESH} ms`);
  keeper.stop();
});

test("a peer's PREEMPT: 'lost' (by = the peer) within ownershipCheckMs, through the refresh or the check alone; never touched again", async () => {
  for (const timing of [
    { keyRefreshMs: REFRESH, ownershipCheckMs: CHECK },
    { keyRefreshMs: 60_000, ownershipCheckMs: CHECK }, // the check alone must catch it
  ]) {
    const w = world();
    const { keeper, losses } = await keeping(w, timing);
    await w.clock.runFor(1100);
    const d = w.disks[0]!;
    const k2 = nodeKey(CLUSTER, 'n2', 1);
    await w.be('n2').registerIgnore(d, k2);
    const holder = (await w.be('n2').readReservation(d)).holder!;
    assert.equal(nodePart(holder), nodePart(nodeKey(CLUSTER, 'n1', 0)));
    await w.be('n2').preemptAbort(d, k2, holder);
    const preemptAt = w.clock.now();
    assert.ok(await w.clock.runUntilTrue(() => losses.length > 0, CHECK));
    const loss = losses[0]!;
    assert.ok(loss.at - preemptAt <= CHECK, `noticed after ${loss.at - preemptAt} ms`);
    assert.equal(loss.by, k2, loss.detail);
    assert.equal(loss.hierarchy, 'web');
    const st = keeper.get('web');
    assert.ok(st.state === 'lost' && st.by === k2);
    const n1Ops = w.ops.filter((r) => r.node === 'n1').length;
    await w.clock.runFor(5000);
    assert.equal(w.ops.filter((r) => r.node === 'n1').length, n1Ops, 'a lost disk is never touched again');
    assert.deepEqual((await w.be('n3').readKeys(d)).keys, [k2]);
    assert.equal(losses.length, 1);
    keeper.stop();
  }
});

test(`a cut disk: 'lost' (by null) after ${LOST_AFTER_FAILED_CHECKS} failed check rounds, not before`, async () => {
  const w = world();
  const { keeper, losses } = await keeping(w);
  await w.clock.runFor(1100);
  w.be('n1').cut = true;
  const cutAt = w.clock.now();
  // Checks at 1500, 2000, ...: the 6th failed one (1500 + 5 x 500 = 4000) declares the loss.
  await w.clock.runUntil(T0 + 1500 + (LOST_AFTER_FAILED_CHECKS - 1) * CHECK - 1);
  assert.equal(keeper.get('web').state, 'owned', 'still owned before the last failed round');
  assert.ok(await w.clock.runUntilTrue(() => losses.length > 0, CHECK));
  const loss = losses[0]!;
  assert.equal(loss.at, T0 + 1500 + (LOST_AFTER_FAILED_CHECKS - 1) * CHECK);
  assert.ok(loss.at - cutAt > (LOST_AFTER_FAILED_CHECKS - 1) * CHECK && loss.at - cutAt <= LOST_AFTER_FAILED_CHECKS * CHECK);
  assert.equal(loss.by, null);
  assert.match(loss.detail, new RegExp(`could not be verified for ${LOST_AFTER_FAILED_CHECKS} check rounds`));
  keeper.stop();
});

test("a hung disk: the keeper's watchdog counts the hang as failed checks and declares the loss long before the command deadline", async () => {
  const w = world();
  const { keeper, losses } = await keeping(w);
  await w.clock.runFor(1100);
  w.be('n1').hang = true; // commandTimeoutMs: the scsi default (10 s)
  const hungAt = w.clock.now();
  assert.ok(await w.clock.runUntilTrue(() => losses.length > 0, 10_000));
  const loss = losses[0]!;
  // The refresh at 1250 hangs; the watchdog (every 500 ms) counts one failed round per 500 ms stuck.
  assert.ok(loss.at - hungAt <= (LOST_AFTER_FAILED_CHECKS + 1) * CHECK, `lost ${loss.at - hungAt} ms after the hang`);
  assert.ok(loss.at - hungAt > (LOST_AFTER_FAILED_CHECKS - 1) * CHECK);
  assert.equal(loss.by, null);
  assert.match(loss.detail, /hanging/);
  assert.equal(w.be('n1').inFlight(), 1, 'the hung refresh is still waiting');
  keeper.stop();
  await w.clock.runFor(10_000);
  assert.equal(w.be('n1').inFlight(), 0, 'and fails at its deadline');
});

test('release hands over (the reservation stays under the released marker, never unreserved), leaves no timer; a transient failure is retried on sim time', async () => {
  const w = world(['web/a', 'web/b']);
  const { keeper, losses } = await keeping(w);
  await w.clock.runFor(777);
  await keeper.release('web');
  assert.deepEqual(keeper.get('web'), { state: 'not-owned' });
  for (const d of w.disks) {
    const r = await w.be('n2').readReservation(d);
    assert.ok(r.holder !== null && isReleasedKey(r.holder) && nodePart(r.holder) === nodePart(nodeKey('c', 'n1', 0)), `${d.id}: ${String(r.holder)}`);
    assert.deepEqual((await w.be('n2').readKeys(d)).keys, [r.holder]);
  }
  assert.equal(w.clock.pending(), 0);
  assert.equal(losses.length, 0);

  // Cut at the release: attempts at +0 (io), +100 (io), +300 (ok after the cut is repaired at +250).
  const w2 = world();
  const k2 = await keeping(w2, { keyRefreshMs: 60_000, ownershipCheckMs: 60_000 });
  w2.be('n1').cut = true;
  const start = w2.clock.now();
  let released = -1;
  void k2.keeper.release('web').then(() => (released = w2.clock.now() - start));
  w2.clock.setTimeout(() => (w2.be('n1').cut = false), 250);
  await w2.clock.runFor(1000);
  assert.equal(released, 300);
  assert.ok((await w2.be('n2').readKeys(w2.disks[0]!)).keys.every((k) => isReleasedKey(k)));
  // Cut for good: the release fails after its third attempt, 300 ms of sim time later.
  const w3 = world();
  const k3 = await keeping(w3, { keyRefreshMs: 60_000, ownershipCheckMs: 60_000 });
  w3.be('n1').cut = true;
  const s3 = w3.clock.now();
  let failedAfter = -1;
  const failed = assert.rejects(
    k3.keeper.release('web').catch((e: unknown) => {
      failedAfter = w3.clock.now() - s3;
      throw e;
    }),
    /cannot reach/,
  );
  await w3.clock.runFor(1000);
  await failed;
  assert.equal(failedAfter, 300);
});

function raceOptions(w: ReturnType<typeof world>, self: string, over: Partial<AcquireOptions> = {}): AcquireOptions {
  return {
    cluster: CLUSTER,
    self,
    delayMs: 0,
    holderInfo: (key) => ({ node: NODES.find((n) => nodePart(nodeKey(CLUSTER, n, 0)) === nodePart(key)) ?? null, reachable: false }),
    livenessWindowMs: 700,
    keyPollMs: 100,
    now: () => w.clock.now(),
    sleep: (ms, signal) => w.clock.sleep(ms, signal),
    ...over,
  };
}

/** Runs the acquires to completion on the sim clock. */
async function race(w: ReturnType<typeof world>, runs: Promise<AcquireOutcome>[]): Promise<AcquireOutcome[]> {
  let done = 0;
  for (const r of runs) void r.then(() => done++);
  assert.ok(await w.clock.runUntilTrue(() => done === runs.length, 60_000), 'the race ended');
  return Promise.all(runs);
}

test('race on sim time: two (and three) partitioned nodes acquiring a free disk concurrently — exactly one winner, for 200 seeds of latencies and delays', async () => {
  const winners = new Map<string, number>();
  const reasons = new Set<string>();
  for (let seed = 1; seed <= 200; seed++) {
    const rng = new Rng(seed);
    const w = world(['web/a', 'web/b']);
    const racers = seed % 4 === 0 ? NODES : rng.shuffle([...NODES]).slice(0, 2);
    for (const n of racers) {
      const lat = rng.fork(n);
      w.be(n).latencyMs = () => (lat.chance(0.3) ? 0 : lat.int(1, 20));
    }
    // As the daemon does: a winner hands its key to its keeper at once. Racers cannot reach each
    // other (a partition: that is when two nodes race), so a loser that finds the disk taken watches
    // the winner's key — which the keeper moves.
    const keepers = racers.map((n) => new OwnershipKeeper({ backend: w.be(n), cluster: CLUSTER, self: n, log, keyRefreshMs: REFRESH, ownershipCheckMs: CHECK, timers: w.clock.timers }));
    const losses: string[] = [];
    for (const k of keepers) k.on('lost', (_h: string, _by: Key | null, detail: string) => losses.push(detail));
    const outs = await race(
      w,
      racers.map((n, i) =>
        acquire(w.be(n), w.disks, raceOptions(w, n, { delayMs: rng.chance(0.5) ? 0 : rng.int(0, 30) })).then((o) => {
          if (o.ok) keepers[i]!.adopt('web', w.disks, o.key);
          return o;
        }),
      ),
    );
    const won = outs.flatMap((o, i) => (o.ok ? [racers[i]!] : []));
    assert.equal(won.length, 1, `seed ${seed}: winners ${won.join(', ') || 'none'}: ${hex(outs)}`);
    for (const o of outs) {
      if (o.ok) continue;
      reasons.add(o.reason);
      assert.ok(o.reason === 'lost-race' || o.reason === 'owner-alive-on-disk', `seed ${seed}: ${o.reason}: ${o.detail}`);
    }
    await w.clock.runFor(3000);
    assert.deepEqual(losses, [], `seed ${seed}`);
    const owner = keepers[racers.indexOf(won[0]!)]!.get('web');
    assert.ok(owner.state === 'owned', `seed ${seed}: ${hex(owner)}`);
    for (const d of w.disks) {
      // Straight from the model: a backend call with latency would wait for the clock. A refresh
      // may be half done (latency): the disk then has the keeper's next key.
      const holder = w.san.disk(d.id).readReservation().holder;
      assert.ok(holder === owner.key || holder === nextKey(owner.key), `seed ${seed}: ${d.id} held by ${hex(holder)}, not the winner (${hex(owner.key)})`);
      assert.deepEqual(w.san.disk(d.id).readKeys().keys, [holder], `seed ${seed}: the losers keep no registration`);
      for (const n of NODES) assert.equal(w.san.canWrite(n, d.id), n === won[0], `seed ${seed}: only the winner writes`);
    }
    for (const k of keepers) k.stop();
    winners.set(won[0]!, (winners.get(won[0]!) ?? 0) + 1);
  }
  assert.equal(winners.size, 3, 'every node wins some seeds');
  assert.deepEqual([...reasons].sort(), ['lost-race', 'owner-alive-on-disk'], 'both ways of losing occurred');
});

test('race on sim time: a frozen holder is preempted only after the liveness window; a live (refreshing) holder never', async () => {
  // Frozen: n1's key never moves (no keeper: the process is stopped).
  const w = world();
  const d = w.disks[0]!;
  const k1 = nodeKey(CLUSTER, 'n1', 5);
  await w.be('n1').registerIgnore(d, k1);
  await w.be('n1').reserve(d, k1);
  const start = w.clock.now();
  const out = acquire(w.be('n2'), [d], raceOptions(w, 'n2', { generation: 9 }));
  await w.clock.runUntil(start + 699);
  assert.equal((await w.be('n3').readReservation(d)).holder, k1, 'still n1 just before the window ends');
  const [res] = await race(w, [out]);
  assert.deepEqual(res, { ok: true, key: nodeKey(CLUSTER, 'n2', 9), preempted: k1 });
  const preempts = at(w.ops, 'n2', 'preemptAbort');
  assert.deepEqual(preempts, [start - T0 + 700], 'one preempt, at exactly the end of the window');

  // Two challengers at once against the frozen holder: one preempt wins, the other loses the race.
  const w3 = world();
  const d3 = w3.disks[0]!;
  await w3.be('n1').registerIgnore(d3, k1);
  await w3.be('n1').reserve(d3, k1);
  w3.be('n3').latencyMs = 3;
  const outs = await race(w3, ['n2', 'n3'].map((n) => acquire(w3.be(n), [d3], raceOptions(w3, n))));
  assert.equal(outs.filter((o) => o.ok).length, 1);
  assert.ok(outs.every((o) => o.ok || o.reason === 'lost-race'));
  const won = outs.find((o) => o.ok);
  assert.ok(won?.ok);
  assert.deepEqual(w3.san.disk(d3.id).readKeys().keys, [won.key]);

  // Live: n1's keeper refreshes every 250 ms; n2 cannot reach n1 but sees the key move.
  const wl = world();
  const { keeper, losses } = await keeping(wl);
  await wl.clock.runFor(100);
  const [live] = await race(wl, [acquire(wl.be('n2'), wl.disks, raceOptions(wl, 'n2'))]);
  assert.ok(live && !live.ok && live.reason === 'owner-alive-on-disk', hex(live));
  assert.equal(at(wl.ops, 'n2', 'preemptAbort').length, 0, 'never preempted');
  await wl.clock.runFor(2000);
  const st = keeper.get('web');
  assert.ok(st.state === 'owned' && losses.length === 0);
  assert.equal((await wl.be('n2').readReservation(wl.disks[0]!)).holder, st.key);
  assert.deepEqual((await wl.be('n2').readKeys(wl.disks[0]!)).keys, [st.key], 'the challenger left no registration');
  keeper.stop();
});

test('determinism: the same seed replays the same run, operation for operation', async () => {
  async function run(seed: number): Promise<string> {
    const rng = new Rng(seed);
    const w = world(['web/a', 'web/b']);
    for (const n of NODES) {
      const lat = rng.fork(n);
      w.be(n).latencyMs = () => lat.int(0, 15);
    }
    const keepers = NODES.map((n) => new OwnershipKeeper({ backend: w.be(n), cluster: CLUSTER, self: n, log, keyRefreshMs: REFRESH, ownershipCheckMs: CHECK, timers: w.clock.timers }));
    const runs = NODES.map((n, i) =>
      acquire(w.be(n), w.disks, raceOptions(w, n, { delayMs: rng.int(0, 20) })).then((o) => {
        if (o.ok) keepers[i]!.adopt('web', w.disks, o.key);
        return o;
      }),
    );
    // The winner's disk path hangs a while later, and the others race again: one takes over
    // after the liveness window.
    w.clock.setTimeout(() => {
      NODES.forEach((n, i) => {
        if (keepers[i]!.get('web').state === 'owned') {
          w.be(n).hang = true;
          return;
        }
        runs.push(
          acquire(w.be(n), w.disks, raceOptions(w, n, { delayMs: rng.int(0, 20) })).then((o) => {
            if (o.ok) keepers[i]!.adopt('web', w.disks, o.key);
            return o;
          }),
        );
      });
    }, 1500);
    await w.clock.runFor(6000);
    await Promise.all(runs);
    for (const k of keepers) k.stop();
    return hex(w.ops);
  }
  const a = await run(77);
  assert.equal(await run(77), a);
  assert.notEqual(await run(78), a);
  assert.ok(a.includes('"preemptAbort"'), 'the scenario exercised a takeover');
});
