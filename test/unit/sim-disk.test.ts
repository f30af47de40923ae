// The simulator's PR model (sim/disk.ts) against the real FileBackend: the same seeded random
// sequence of PR operations by three initiators, run on both, must give the same outcome (ok or
// the same error code), the same READ KEYS / READ RESERVATION and the same per-initiator state
// after every operation. Then SimBackend's fault controls and the write rule.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DiskRef, Key, OwnershipBackend } from '../../fencing/backend.ts';
import { OwnershipError } from '../../fencing/backend.ts';
import { FileBackend } from '../../fencing/file.ts';
import { formatKey, nodeKey } from '../../fencing/keys.ts';
import { SimClock } from '../../sim/clock.ts';
import { SimBackend, SimSan } from '../../sim/disk.ts';
import type { SimDiskState, SimOpRecord } from '../../sim/disk.ts';
import { Rng } from '../../sim/rng.ts';

const CLUSTER = 'c';
const NODES: readonly string[] = ['n1', 'n2', 'n3'];
const MAX_KEY = (1n << 64n) - 1n;
let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sim-disk-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Kind = 'registerIgnore' | 'reregister' | 'reserve' | 'preemptAbort' | 'release' | 'readKeys' | 'readReservation' | 'verify';
interface Op {
  node: string;
  kind: Kind;
  keys: Key[];
}

/** Runs one op; the outcome as comparable text: "ok <result>" or the error code. */
async function apply(be: OwnershipBackend, d: DiskRef, op: Op): Promise<string> {
  try {
    const [a = 0n, b = 0n] = op.keys;
    let result: unknown;
    switch (op.kind) {
      case 'registerIgnore':
        result = await be.registerIgnore(d, a);
        break;
      case 'reregister':
        result = await be.reregister(d, a, b);
        break;
      case 'reserve':
        result = await be.reserve(d, a);
        break;
      case 'preemptAbort':
        result = await be.preemptAbort(d, a, b);
        break;
      case 'release':
        result = await be.release(d, a);
        break;
      case 'readKeys':
        result = await be.readKeys(d);
        break;
      case 'readReservation':
        result = await be.readReservation(d);
        break;
      case 'verify':
        result = await be.verify(d);
        break;
    }
    return `ok ${show(result)}`;
  } catch (err) {
    if (err instanceof OwnershipError) return err.code;
    return `threw ${(err as Error).name}: ${(err as Error).message}`;
  }
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? formatKey(x) : x)) ?? 'undefined';
}

/** The file backend's state file, as a SimDiskState (a missing file is a blank disk). */
async function fileState(path: string): Promise<SimDiskState> {
  const raw = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (raw === null) return { generation: 0, registrations: [], holder: null, type: null };
  const doc = JSON.parse(raw) as { generation: number; registrations: Record<string, string>; holder: string | null; type: number | null };
  return { generation: doc.generation, registrations: Object.entries(doc.registrations).map(([ini, k]) => [ini, BigInt(k)]), holder: doc.holder, type: doc.type };
}

/** A random op by a random node: mostly plausible keys (so that things succeed), often not. */
function randomOp(rng: Rng, mine: (node: string) => Key | undefined): Op {
  const node = rng.pick(NODES);
  const pool: Key[] = [];
  for (const n of NODES) for (let g = 1; g <= 3; g++) pool.push(nodeKey(CLUSTER, n, g));
  const anyKey = (): Key => {
    const r = rng.next();
    if (r < 0.08) return 0n;
    if (r < 0.12) return rng.pick([MAX_KEY + 1n, -1n, MAX_KEY]);
    return rng.pick(pool);
  };
  const own = (): Key => nodeKey(CLUSTER, node, rng.int(1, 3));
  const current = (p: number): Key => {
    const k = mine(node);
    return k !== undefined && rng.chance(p) ? k : rng.chance(0.5) ? own() : anyKey();
  };
  const victim = (): Key => {
    const others = NODES.filter((n) => n !== node)
      .map(mine)
      .filter((k): k is Key => k !== undefined);
    return others.length > 0 && rng.chance(0.7) ? rng.pick(others) : anyKey();
  };
  const kind = rng.pick<Kind>([
    'registerIgnore',
    'registerIgnore',
    'reregister',
    'reregister',
    'reregister',
    'reserve',
    'reserve',
    'preemptAbort',
    'preemptAbort',
    'preemptAbort',
    'release',
    'readKeys',
    'readReservation',
    'verify',
  ]);
  switch (kind) {
    case 'registerIgnore':
      return { node, kind, keys: [rng.chance(0.15) ? 0n : rng.chance(0.7) ? own() : anyKey()] };
    case 'reregister':
      return { node, kind, keys: [rng.chance(0.1) ? 0n : current(0.75), rng.chance(0.1) ? 0n : rng.chance(0.8) ? own() : anyKey()] };
    case 'reserve':
    case 'release':
      return { node, kind, keys: [current(0.75)] };
    case 'preemptAbort':
      return { node, kind, keys: [current(0.75), victim()] };
    default:
      return { node, kind, keys: [] };
  }
}

test('conformance: SimBackend answers and changes state exactly as FileBackend (3 seeds x 200 random ops, 3 initiators)', async () => {
  const clock = new SimClock();
  const outcomes = new Map<string, number>();
  for (const seed of [1, 2, 0xdecafbad]) {
    const rng = new Rng(seed);
    const d: DiskRef = { id: `conformance-${seed}/d`, paths: [] };
    const san = new SimSan([d.id]);
    const simDisk = san.disk(d.id);
    const sim = new Map(NODES.map((n) => [n, new SimBackend({ san, node: n, clock })]));
    const file = new Map(NODES.map((n) => [n, new FileBackend({ dir, initiator: n })]));
    const statePath = file.get('n1')!.statePath(d);
    for (let i = 0; i < 200; i++) {
      const op = randomOp(rng, (n) => simDisk.keyOf(n));
      const where = `seed ${seed} op ${i}: ${op.node} ${op.kind}(${op.keys.map((k) => String(k)).join(', ')})`;
      const fromFile = await apply(file.get(op.node)!, d, op);
      const fromSim = await apply(sim.get(op.node)!, d, op);
      assert.equal(fromSim, fromFile, where);
      const code = fromSim.startsWith('ok') ? 'ok' : fromSim;
      outcomes.set(`${op.kind} ${code}`, (outcomes.get(`${op.kind} ${code}`) ?? 0) + 1);
      assert.deepEqual(await sim.get('n2')!.readKeys(d), await file.get('n2')!.readKeys(d), `${where}: READ KEYS`);
      assert.deepEqual(await sim.get('n3')!.readReservation(d), await file.get('n3')!.readReservation(d), `${where}: READ RESERVATION`);
      assert.deepEqual(simDisk.snapshot(), await fileState(statePath), `${where}: per-initiator state`);
    }
  }
  // The sequence must have exercised every rule, not only the happy path.
  for (const must of [
    'registerIgnore ok',
    'reregister ok',
    'reregister conflict',
    'reserve ok',
    'reserve conflict',
    'reserve not-ready',
    'preemptAbort ok',
    'preemptAbort conflict',
    'preemptAbort io',
    'reserve io',
    'release ok',
    'release conflict',
  ]) {
    assert.ok((outcomes.get(must) ?? 0) > 0, `never saw "${must}": ${show([...outcomes])}`);
  }
});

test('SimDisk: a preempt hands over the reservation; the holder keeps it across a key change; RELEASE by a non-holder only unregisters', () => {
  const san = new SimSan(['h/d']);
  const d = san.disk('h/d');
  const k1 = nodeKey(CLUSTER, 'n1', 1);
  const k2 = nodeKey(CLUSTER, 'n2', 1);
  d.registerIgnore('n1', k1);
  d.reserve('n1', k1);
  d.reregister('n1', k1, k1 + 1n);
  assert.deepEqual(d.readReservation(), { generation: 2, holder: k1 + 1n, type: 1 });
  d.registerIgnore('n2', k2);
  assert.throws(() => d.preemptAbort('n2', k2, k1), (e: unknown) => e instanceof OwnershipError && e.code === 'conflict', 'stale victim key');
  d.preemptAbort('n2', k2, k1 + 1n);
  assert.deepEqual(d.snapshot(), { generation: 4, registrations: [['n2', k2]], holder: 'n2', type: 1 });
  assert.throws(() => d.reregister('n1', k1 + 1n, k1 + 2n), (e: unknown) => e instanceof OwnershipError && e.code === 'conflict', 'preempted holder cannot re-register by accident');
  d.registerIgnore('n3', 7n);
  d.release('n3', 7n);
  assert.deepEqual(d.readReservation().holder, k2);
});

test('canWrite: Write Exclusive — only the holder while reserved; anyone while nobody holds', () => {
  const san = new SimSan(['h/d']);
  const d = san.disk('h/d');
  const k1 = nodeKey(CLUSTER, 'n1', 1);
  assert.ok(san.canWrite('n1', 'h/d') && san.canWrite('n2', 'h/d'), 'unreserved: everyone');
  d.registerIgnore('n1', k1);
  d.registerIgnore('n2', nodeKey(CLUSTER, 'n2', 1));
  assert.ok(san.canWrite('n2', 'h/d'), 'registered, nobody reserved: still everyone');
  d.reserve('n1', k1);
  assert.deepEqual(
    NODES.map((n) => san.canWrite(n, 'h/d')),
    [true, false, false],
    'reserved: the holder only, registered or not',
  );
  d.release('n1', k1);
  assert.ok(san.canWrite('n3', 'h/d'));
  assert.throws(() => san.canWrite('n1', 'nope'), /no disk nope/);
});

test('SimBackend faults: latency on the sim clock, cut -> io, unknown disk -> open-failed, wwn -> identity', async () => {
  const clock = new SimClock({ start: 1000 });
  const san = new SimSan();
  san.add('h/d', { wwn: 'naa.1' });
  const ops: SimOpRecord[] = [];
  san.observer = (r) => ops.push(r);
  const be = new SimBackend({ san, node: 'n1', clock, latencyMs: 30 });
  const d: DiskRef = { id: 'h/d', paths: [] };
  const k = nodeKey(CLUSTER, 'n1', 1);
  let done = false;
  void be.registerIgnore(d, k).then(() => (done = true));
  await clock.runUntil(1029);
  assert.equal(done, false);
  assert.equal(san.disk('h/d').keyOf('n1'), undefined, 'not applied before its latency');
  assert.equal(be.inFlight(), 1);
  await clock.runUntil(1030);
  assert.equal(done, true);
  assert.equal(san.disk('h/d').keyOf('n1'), k);
  assert.deepEqual(ops, [{ at: 1030, node: 'n1', disk: 'h/d', op: 'registerIgnore', result: 'ok', generation: 1 }]);

  be.latencyMs = (op) => (op === 'readKeys' ? 5 : 0);
  const keys = be.readKeys(d);
  await clock.runFor(5);
  assert.deepEqual(await keys, { generation: 1, keys: [k] });
  assert.equal(clock.now(), 1035);

  be.cut = true;
  await assert.rejects(be.readReservation(d), (e: unknown) => e instanceof OwnershipError && e.code === 'io' && /cut/.test(e.message));
  await assert.rejects(be.reserve(d, k), (e: unknown) => e instanceof OwnershipError && e.code === 'io');
  assert.equal(san.disk('h/d').holder, null, 'nothing applied while cut');
  be.cut = false;
  await assert.rejects(be.verify({ id: 'other', paths: [] }), (e: unknown) => e instanceof OwnershipError && e.code === 'open-failed');
  await assert.rejects(be.verify({ id: 'h/d', paths: [], wwn: 'naa.2' }), (e: unknown) => e instanceof OwnershipError && e.code === 'identity');
  await be.verify({ id: 'h/d', paths: [], wwn: 'naa.1' });
  assert.equal(be.name, 'sim');
  assert.equal(be.ioFencing, true);
  assert.equal(typeof be.guardDisk(d), 'string');
});

test('SimBackend hang: calls wait; un-hanging runs them in issue order; past commandTimeoutMs they fail with io, unapplied', async () => {
  const clock = new SimClock();
  const san = new SimSan(['h/d']);
  const be = new SimBackend({ san, node: 'n1', clock, commandTimeoutMs: 1000 });
  const d: DiskRef = { id: 'h/d', paths: [] };
  const k1 = nodeKey(CLUSTER, 'n1', 1);
  be.hang = true;
  const order: string[] = [];
  const a = be.registerIgnore(d, k1).then(() => order.push('register'));
  const b = be.reserve(d, k1).then(() => order.push('reserve'));
  await clock.runUntil(999);
  assert.deepEqual(order, []);
  assert.equal(san.disk('h/d').generation, 0, 'nothing applied while hung');
  be.hang = false;
  await a;
  await b;
  assert.deepEqual(order, ['register', 'reserve']);
  assert.equal(san.disk('h/d').holder, 'n1');

  // Timed out: the caller hears io at start + commandTimeoutMs, and the command never applies.
  be.hang = true;
  const t0 = clock.now();
  let failedAt = -1;
  const c = assert.rejects(
    be.reregister(d, k1, k1 + 1n).catch((e: unknown) => {
      failedAt = clock.now();
      throw e;
    }),
    (e: unknown) => e instanceof OwnershipError && e.code === 'io' && /did not finish/.test(e.message),
  );
  await clock.runFor(1000);
  await c;
  assert.equal(failedAt, t0 + 1000);
  be.hang = false;
  await clock.runFor(10);
  assert.equal(san.disk('h/d').keyOf('n1'), k1, 'the timed-out REGISTER was not applied');
  assert.equal(be.inFlight(), 0);

  // Latency longer than the deadline is a timeout as well.
  be.latencyMs = 5000;
  const slow = assert.rejects(be.readKeys(d), (e: unknown) => e instanceof OwnershipError && e.code === 'io');
  const t1 = clock.now();
  await clock.runFor(1000);
  await slow;
  assert.equal(clock.now(), t1 + 1000);

  // No deadline: waits for as long as it is hung.
  be.latencyMs = 0;
  be.commandTimeoutMs = Infinity;
  be.hang = true;
  let settled = false;
  const forever = be.readKeys(d).finally(() => (settled = true));
  await clock.runFor(1_000_000);
  assert.equal(settled, false);
  assert.equal(clock.pending(), 0, 'a hang without a deadline holds no timer');
  be.hang = false;
  assert.deepEqual((await forever).keys, [k1]);
});
