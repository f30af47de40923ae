// A holder that dies or hangs loses its disk to the next node, and the device fences it: its
// writes fail, its REGISTER answers conflict. A holder that is alive but unreachable keeps it:
// its key keeps moving on disk (the keeper's refresh), so the challenger does not preempt.
// Nodes are separate processes (lib/node.ts) running acquire() and the OwnershipKeeper.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Key } from '../../../fencing/backend.ts';
import { OwnershipError } from '../../../fencing/backend.ts';
import { isReleasedKey, nextKey, nodeKey, nodePart } from '../../../fencing/keys.ts';
import { ScsiBackend } from '../../../fencing/scsi.ts';
import { DEFAULTS } from '../../../harness/defaults.ts';
import { CLUSTER, TIME_SCALE, bound, devs, diskRef, notInBed, wipe, writeBlock } from './lib/bed.ts';
import { resetNodes, startNodes, stopNodes } from './lib/nodes.ts';
import type { NodeProc } from './lib/nodes.ts';

const skip = notInBed();
const scsi = new ScsiBackend();
const HIER = 'bed-hierarchy';
const WINDOW_MS = DEFAULTS.livenessWindowMs * TIME_SCALE;
let nodes: NodeProc[] = [];

type Outcome = { ok: true; key: Key; preempted?: Key; lateMs: number } | { ok: false; reason: string; holder?: Key; detail: string };
type Lost = { hierarchy: string; by: Key | null; detail: string; atMs: number };

before(async () => {
  if (!skip) nodes = await startNodes(['node1', 'node2', 'node3']);
});
beforeEach(async () => {
  if (skip) return;
  nodes = await resetNodes(nodes);
  await wipe(0);
});
after(async () => {
  await stopNodes(nodes);
});

function node(name: string): NodeProc {
  const n = nodes.find((p) => p.name === name);
  if (!n) throw new Error(`no node ${name}`);
  return n;
}

/** node1 takes the free disk and keeps it (refresh and check timers: DEFAULTS × TIME_SCALE). */
async function node1Holds(): Promise<Key> {
  const o = await node('node1').call<Outcome>('race', { atMs: Date.now() });
  assert.ok(o.ok, `node1 could not take the free disk: ${JSON.stringify(o, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
  await node('node1').call('keep', { hierarchy: HIER });
  return o.key;
}

async function canWrite(paths: string[]): Promise<boolean[]> {
  return Promise.all(paths.map(async (p) => (await writeBlock(p, 12345)).ok));
}

test('dead holder (SIGKILL): preempted after the liveness window; its paths are fenced', { skip, timeout: bound(120_000) }, async (t) => {
  const tTake = performance.now();
  await node1Holds();
  t.diagnostic(`node1 took the free disk and started its keeper in ${(performance.now() - tTake).toFixed(0)} ms`);
  assert.deepEqual(await canWrite(devs('node1')), [true, true]);
  await node('node1').kill('SIGKILL');
  const t0 = performance.now();
  const o = await node('node2').call<Outcome>('race', { atMs: Date.now(), reachable: false, livenessWindowMs: WINDOW_MS });
  const took = performance.now() - t0;
  assert.ok(o.ok, `node2 did not take the disk: ${'detail' in o ? o.detail : ''}`);
  assert.ok(o.preempted !== undefined && nodePart(o.preempted) === nodePart(nodeKey(CLUSTER, 'node1', 0)), 'node2 preempted someone else than node1');
  assert.ok(took >= WINDOW_MS, `preempted after ${took} ms, before the ${WINDOW_MS} ms liveness window`);
  t.diagnostic(`dead holder preempted ${took.toFixed(0)} ms after the kill (window ${WINDOW_MS} ms)`);

  assert.deepEqual(await canWrite(devs('node1')), [false, false], 'the dead node can still write');
  assert.deepEqual(await canWrite(devs('node2')), [true]);
  // The old holder's (would-be) refresh is refused on every path: it learns it was fenced.
  await assert.rejects(scsi.reregister(diskRef('node1'), o.preempted, nextKey(o.preempted)), (err: unknown) => {
    assert.ok(err instanceof OwnershipError && err.code === 'conflict', String(err));
    return true;
  });
  const o3 = await node('node3').call<Outcome>('race', { atMs: Date.now() });
  assert.ok(!o3.ok && o3.reason === 'held-by-reachable', 'node3 must leave a reachable holder alone');
  await node('node2').call('release');
});

test('hung holder (SIGSTOP): preempted; after SIGCONT its keeper reports the loss and never re-registers', { skip, timeout: bound(120_000) }, async (t) => {
  await node1Holds();
  const n1 = node('node1');
  n1.child.kill('SIGSTOP');
  try {
    const o = await node('node2').call<Outcome>('race', { atMs: Date.now(), reachable: false, livenessWindowMs: WINDOW_MS });
    assert.ok(o.ok, `node2 did not take the disk from the hung node1: ${'detail' in o ? o.detail : ''}`);
    assert.deepEqual(await canWrite(devs('node1')), [false, false], 'the hung node can write');
    const contAt = Date.now();
    n1.child.kill('SIGCONT');
    let lost: Lost | undefined;
    for (let i = 0; i < 100 * TIME_SCALE && lost === undefined; i++) {
      const s = await n1.call<{ lost: Lost[] }>('ownership', { hierarchy: HIER });
      lost = s.lost.find((l) => l.hierarchy === HIER);
      if (lost === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(lost, 'node1 never noticed that it lost the disk');
    assert.equal(lost.by, o.key, `node1 blames ${String(lost.by)}: ${lost.detail}`);
    t.diagnostic(`old holder noticed the loss ${lost.atMs - contAt} ms after SIGCONT (${lost.detail})`);
    // Give the keeper a few refresh periods to misbehave: it must not register again.
    await new Promise((r) => setTimeout(r, 4 * DEFAULTS.keyRefreshMs * TIME_SCALE));
    const keys = (await scsi.readKeys(diskRef('node3'))).keys;
    assert.ok(!keys.some((k) => nodePart(k) === nodePart(nodeKey(CLUSTER, 'node1', 0))), 'the fenced node registered again');
    assert.equal((await scsi.readReservation(diskRef('node3'))).holder, o.key);
    assert.deepEqual(await canWrite(devs('node1')), [false, false]);
  } finally {
    n1.child.kill('SIGCONT');
  }
});

test('live holder, network cut (unreachable): its key moves on disk, nobody preempts', { skip, timeout: bound(120_000) }, async () => {
  const k1 = await node1Holds();
  const o = await node('node2').call<Outcome>('race', { atMs: Date.now(), reachable: false, livenessWindowMs: WINDOW_MS });
  assert.ok(!o.ok, 'node2 preempted a live holder');
  assert.equal(o.reason, 'owner-alive-on-disk', o.detail);
  const holder = (await scsi.readReservation(diskRef('node3'))).holder;
  assert.ok(holder !== null && nodePart(holder) === nodePart(k1) && holder !== k1, 'node1 should still hold, with a refreshed key');
  assert.deepEqual(await canWrite(devs('node1')), [true, true]);
  assert.deepEqual(await canWrite(devs('node2')), [false]);
  await node('node1').call('release', { hierarchy: HIER });
  // Handed over, never unreserved: the reservation stays under node1's released marker.
  const after = (await scsi.readReservation(diskRef('node3'))).holder;
  assert.ok(after !== null && isReleasedKey(after) && nodePart(after) === nodePart(k1), `after release: ${String(after)}`);
});
