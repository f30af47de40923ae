// The holder's keeper over the real FileBackend with real (short) timers. Bounds are generous:
// they check "within a few intervals", not speed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { DiskRef, Key, OwnershipBackend } from '../../fencing/backend.ts';
import { OwnershipError } from '../../fencing/backend.ts';
import { FileBackend } from '../../fencing/file.ts';
import { generationOf, isReleasedKey, nextKey, nodeKey, nodePart, releasedKey } from '../../fencing/keys.ts';
import { LOST_AFTER_FAILED_CHECKS, OwnershipKeeper } from '../../fencing/ownership.ts';

const CLUSTER = 'c';
const log = pino({ level: 'silent' });
/** Check interval of most tests: short, yet 3 of them (the I/O-failure rule) outlast fsync stalls
 *  of a loaded machine. */
const CHECK = 120;
let dir = '';
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fencing-keeper-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const be = (node: string): FileBackend => new FileBackend({ dir, initiator: node });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function disk(name = 'd'): DiskRef {
  return { id: `h${++n}/${name}`, paths: [] };
}

/** n1 takes the disks (as acquire would) and hands them to a keeper. */
async function owned(disks: DiskRef[], backend: OwnershipBackend = be('n1'), timers = { keyRefreshMs: 40, ownershipCheckMs: CHECK }) {
  const key = nodeKey(CLUSTER, 'n1', 100);
  for (const d of disks) {
    await be('n1').registerIgnore(d, key);
    await be('n1').reserve(d, key);
  }
  const keeper = new OwnershipKeeper({ backend, cluster: CLUSTER, self: 'n1', log, ...timers });
  const losses: { hierarchy: string; by: Key | null; detail: string; at: number }[] = [];
  keeper.on('lost', (hierarchy: string, by: Key | null, detail: string) => losses.push({ hierarchy, by, detail, at: performance.now() }));
  keeper.adopt('web', disks, key);
  return { keeper, key, losses };
}

async function until(what: string, cond: () => boolean, boundMs = 3000): Promise<void> {
  const end = performance.now() + boundMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Delegates to `real`, with some methods replaced. */
function wrap(real: OwnershipBackend, over: Partial<OwnershipBackend>): OwnershipBackend {
  return {
    name: real.name,
    ioFencing: real.ioFencing,
    verify: (d) => real.verify(d),
    registerIgnore: (d, k) => real.registerIgnore(d, k),
    reregister: (d, o, k) => real.reregister(d, o, k),
    reserve: (d, k) => real.reserve(d, k),
    preemptAbort: (d, k, v) => real.preemptAbort(d, k, v),
    readKeys: (d) => real.readKeys(d),
    readReservation: (d) => real.readReservation(d),
    release: (d, k) => real.release(d, k),
    guardDisk: (d) => real.guardDisk(d),
    ...over,
  };
}

test('refresh moves the key every keyRefreshMs and keeps the reservation; checks verify it', async () => {
  const disks = [disk('a'), disk('b')];
  const { keeper, key, losses } = await owned(disks);
  try {
    assert.equal(keeper.get('web').state, 'owned');
    const refreshes = () => {
      const st = keeper.get('web');
      return st.state === 'owned' ? generationOf(st.key) - generationOf(key) : -1;
    };
    // 4 refreshes take 80 ms when idle; the bound only guards against a stuck loop.
    await until('4 refreshes', () => refreshes() >= 4, 5000).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(losses.map((l) => l.detail))}`);
    });
    const st = keeper.get('web');
    assert.ok(st.state === 'owned');
    assert.ok(Date.now() - st.lastVerified < 1000);
    for (const d of disks) {
      const r = await be('n2').readReservation(d);
      assert.ok(r.holder !== null && nodePart(r.holder) === nodePart(key), 'still held by n1');
    }
    assert.equal(losses.length, 0);
    assert.deepEqual(keeper.get('other'), { state: 'not-owned' });
  } finally {
    keeper.stop();
  }
});

test('preempted: the next refresh or check declares it lost (by = the preemptor), and the keeper never re-registers', async () => {
  const d = disk();
  const { keeper, losses } = await owned([d]);
  try {
    await sleep(60);
    const mine = (await be('n2').readReservation(d)).holder;
    assert.ok(mine !== null);
    const k2 = nodeKey(CLUSTER, 'n2', 1);
    await be('n2').registerIgnore(d, k2);
    const t0 = performance.now();
    // The keeper may refresh between our read and the preempt: retry with its new key.
    for (let i = 0; ; i++) {
      const h = (await be('n2').readReservation(d)).holder;
      try {
        await be('n2').preemptAbort(d, k2, h!);
        break;
      } catch (err) {
        if (i > 20) throw err;
      }
    }
    await until('lost', () => losses.length > 0, 2000);
    const delay = losses[0]!.at - t0;
    assert.ok(delay < CHECK + 1000, `lost noticed after ${delay} ms (check interval ${CHECK})`);
    assert.equal(losses[0]!.hierarchy, 'web');
    assert.equal(losses[0]!.by, k2, losses[0]!.detail);
    const st = keeper.get('web');
    assert.ok(st.state === 'lost' && st.by === k2, JSON.stringify(st.state));
    await sleep(150);
    const keys = (await be('n2').readKeys(d)).keys;
    assert.deepEqual(keys, [k2], 'n1 did not come back');
    assert.equal(losses.length, 1, 'emitted once');
    keeper.forget('web');
    assert.deepEqual(keeper.get('web'), { state: 'not-owned' });
    await keeper.release('web'); // nothing to release: no error
  } finally {
    keeper.stop();
  }
});

test('check alone catches a loss within about one check interval (refresh very slow)', async () => {
  const d = disk();
  const { keeper, key, losses } = await owned([d], be('n1'), { keyRefreshMs: 60_000, ownershipCheckMs: CHECK });
  try {
    const k3 = nodeKey(CLUSTER, 'n3', 1);
    await be('n3').registerIgnore(d, k3);
    const t0 = performance.now();
    await be('n3').preemptAbort(d, k3, key);
    await until('lost', () => losses.length > 0, 2000);
    assert.ok(losses[0]!.at - t0 < CHECK + 1000, `lost noticed after ${losses[0]!.at - t0} ms (check interval ${CHECK})`);
    assert.equal(losses[0]!.by, k3);
    assert.match(losses[0]!.detail, /no longer registered/);
  } finally {
    keeper.stop();
  }
});

test('release hands the disks over (the reservation stays, under our released marker: never unreserved); the keeper forgets the hierarchy', async () => {
  const disks = [disk('a'), disk('b')];
  const { keeper, losses } = await owned(disks);
  await sleep(70);
  await keeper.release('web');
  assert.deepEqual(keeper.get('web'), { state: 'not-owned' });
  const marker = releasedKey(nodeKey(CLUSTER, 'n1', 0));
  for (const d of disks) {
    assert.equal((await be('n2').readReservation(d)).holder, marker);
    assert.deepEqual((await be('n2').readKeys(d)).keys, [marker]);
  }
  await sleep(60);
  assert.deepEqual((await be('n2').readKeys(disks[0]!)).keys, [marker], 'no refresh after release');
  assert.equal(losses.length, 0);
  keeper.stop();
});

test('release after a preempt the keeper has not seen yet: nothing to give back, no error, the new holder keeps it', async () => {
  const d = disk();
  // Slow loops: the preempt below lands before any refresh or check could notice it.
  const { keeper, key } = await owned([d], be('n1'), { keyRefreshMs: 10_000, ownershipCheckMs: 10_000 });
  const k3 = nodeKey(CLUSTER, 'n3', 7);
  await be('n3').registerIgnore(d, k3);
  await be('n3').preemptAbort(d, k3, key);
  await keeper.release('web'); // used to throw "RELEASE ... not registered": the stop then FAILED the hierarchy
  assert.deepEqual(keeper.get('web'), { state: 'not-owned' });
  assert.equal((await be('n2').readReservation(d)).holder, k3);
  keeper.stop();
});

test('release retries a busy disk (transient error) instead of failing the stop', async () => {
  const d = disk();
  let busy = 2;
  const backend = wrap(be('n1'), {
    reregister: async (dd, o, k) => {
      if (isReleasedKey(k) && busy-- > 0) throw new OwnershipError('io', dd.id, 'lock still busy after 600 ms');
      return be('n1').reregister(dd, o, k);
    },
  });
  const { keeper } = await owned([d], backend, { keyRefreshMs: 10_000, ownershipCheckMs: 10_000 });
  await keeper.release('web');
  assert.equal((await be('n2').readReservation(d)).holder, releasedKey(nodeKey(CLUSTER, 'n1', 0)), 'handed over on the third attempt');
  keeper.stop();
});

test('markUnverified: unverified until the next successful read, which comes at once', async () => {
  const d = disk();
  const { keeper } = await owned([d], be('n1'), { keyRefreshMs: 20, ownershipCheckMs: 2000 });
  try {
    keeper.markUnverified();
    assert.equal(keeper.get('web').state, 'unverified');
    await until('verified', () => keeper.get('web').state === 'owned', 1000);
  } finally {
    keeper.stop();
  }
});

test('I/O errors: a transient one is retried; N failed check rounds mean lost (by null)', async () => {
  const d = disk();
  let failReads = 0;
  const real = be('n1');
  const flaky = wrap(real, {
    readKeys: async (dd) => {
      if (failReads > 0) {
        failReads--;
        throw new OwnershipError('io', dd.id, 'simulated read error');
      }
      return real.readKeys(dd);
    },
  });
  const { keeper, losses } = await owned([d], flaky);
  try {
    failReads = 1;
    await sleep(200);
    assert.equal(keeper.get('web').state, 'owned');
    assert.equal(losses.length, 0);
    failReads = 1000;
    const t0 = performance.now();
    await until('lost', () => losses.length > 0, LOST_AFTER_FAILED_CHECKS * CHECK + 3000);
    const took = losses[0]!.at - t0;
    assert.ok(took < LOST_AFTER_FAILED_CHECKS * CHECK + 2000, `declared lost after ${took} ms`);
    assert.equal(losses[0]!.by, null);
    // (Under heavy load the watchdog may count a slow read before the error does: same rule.)
    assert.match(losses[0]!.detail, new RegExp(`could not be verified for ${LOST_AFTER_FAILED_CHECKS} check rounds`));
  } finally {
    keeper.stop();
  }
});

test('a hung read counts as failed checks: lost after about N check intervals', async () => {
  const d = disk();
  let hang = false;
  const real = be('n1');
  const stuck = wrap(real, {
    readKeys: (dd) => (hang ? new Promise(() => undefined) : real.readKeys(dd)),
  });
  const { keeper, losses } = await owned([d], stuck);
  try {
    await sleep(60);
    hang = true;
    const t0 = performance.now();
    await until('lost', () => losses.length > 0, 2 * LOST_AFTER_FAILED_CHECKS * CHECK + 3000);
    const took = losses[0]!.at - t0;
    assert.ok(took < 2 * LOST_AFTER_FAILED_CHECKS * CHECK + 2000, `declared lost after ${took} ms`);
    assert.match(losses[0]!.detail, /hanging/);
  } finally {
    keeper.stop();
  }
});

test('a refresh that applied but whose answer was lost is not mistaken for a preemption', async () => {
  const d = disk();
  let lose = 2;
  const real = be('n1');
  const lossy = wrap(real, {
    reregister: async (dd, o, k) => {
      await real.reregister(dd, o, k);
      if (lose > 0) {
        lose--;
        throw new OwnershipError('io', dd.id, 'answer lost');
      }
    },
  });
  const { keeper, losses } = await owned([d], lossy);
  try {
    await until('two lost answers', () => lose === 0, 5000);
    await sleep(200);
    assert.equal(losses.length, 0);
    const st = keeper.get('web');
    assert.ok(st.state === 'owned');
    const holder = (await real.readReservation(d)).holder;
    assert.ok(holder === st.key || holder === nextKey(st.key), 'held with the current key (or the one being refreshed to)');
  } finally {
    keeper.stop();
  }
});

test('adopt refuses a key that is not ours, a second adopt, and an empty disk list', async () => {
  const keeper = new OwnershipKeeper({ backend: be('n1'), cluster: CLUSTER, self: 'n1', log, keyRefreshMs: 20, ownershipCheckMs: 50 });
  try {
    assert.throws(() => keeper.adopt('x', [disk()], nodeKey(CLUSTER, 'n2', 1)), /not this node's key/);
    assert.throws(() => keeper.adopt('x', [], nodeKey(CLUSTER, 'n1', 1)), /no disks/);
    const d = disk();
    await be('n1').registerIgnore(d, nodeKey(CLUSTER, 'n1', 1));
    await be('n1').reserve(d, nodeKey(CLUSTER, 'n1', 1));
    keeper.adopt('x', [d], nodeKey(CLUSTER, 'n1', 1));
    assert.throws(() => keeper.adopt('x', [d], nodeKey(CLUSTER, 'n1', 1)), /already kept/);
    assert.throws(() => new OwnershipKeeper({ backend: be('n1'), cluster: CLUSTER, self: 'n1', log, keyRefreshMs: 0, ownershipCheckMs: 50 }), /must be > 0/);
  } finally {
    keeper.stop();
  }
});

test('a check that was in flight across a freeze does not count: the next one decides', async () => {
  const d = disk();
  const real = be('n1');
  let gated = false;
  const gates: (() => void)[] = [];
  const gatedBackend = wrap(real, {
    readKeys: async (dd) => {
      if (gated) await new Promise<void>((r) => gates.push(r));
      return real.readKeys(dd);
    },
  });
  const { keeper } = await owned([d], gatedBackend, { keyRefreshMs: 60_000, ownershipCheckMs: CHECK });
  try {
    gated = true;
    await until('a check in flight', () => gates.length === 1);
    keeper.markUnverified(); // "we were frozen" while that check was reading
    gates[0]!();
    await until('the next check', () => gates.length === 2);
    assert.equal(keeper.get('web').state, 'unverified', 'the stale check did not verify');
    gated = false;
    gates[1]!();
    await until('verified', () => keeper.get('web').state === 'owned');
  } finally {
    keeper.stop();
  }
});
