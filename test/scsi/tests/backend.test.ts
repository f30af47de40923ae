// ScsiBackend primitives against real LIO through real sg_persist: each node uses only its own
// paths (its own I_T nexuses), so what one node may do to another is decided by the device.
// The steps build on each other (one story of one disk), so they run in order.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Key } from '../../../fencing/backend.ts';
import { OwnershipError } from '../../../fencing/backend.ts';
import { RESERVATION_TYPE, ScsiBackend } from '../../../fencing/scsi.ts';
import { devs, diskRef, notInBed, readBlock, wipe, writeBlock } from './lib/bed.ts';

const skip = notInBed();
const scsi = new ScsiBackend();
const K1 = 0x1111000000000001n;
const K1b = 0x1111000000000002n;
const K2 = 0x2222000000000001n;
const K3 = 0x3333000000000001n;

function code(c: string) {
  return (err: unknown) => {
    assert.ok(err instanceof OwnershipError, String(err));
    assert.equal(err.code, c, err.message);
    return true;
  };
}

/** Per path: can it write? EBADE ("Invalid exchange") is Linux's RESERVATION CONFLICT. */
async function writers(paths: string[]): Promise<boolean[]> {
  const out: boolean[] = [];
  for (const p of paths) {
    const r = await writeBlock(p);
    if (!r.ok) assert.match(r.error, /Invalid exchange/, `${p}: write failed, but not with a reservation conflict: ${r.error}`);
    out.push(r.ok);
  }
  return out;
}

async function keys(): Promise<Key[]> {
  return (await scsi.readKeys(diskRef('node2'))).keys;
}

before(async () => {
  if (!skip) await wipe(0);
});

test('verify: every node sees disk 0 with the configured WWN', { skip }, async () => {
  for (const n of ['node1', 'node2', 'node3'] as const) await scsi.verify(diskRef(n, 0));
  await scsi.verify(diskRef('node1', 1));
});

test('register on every path: node1 (two paths) appears twice', { skip }, async () => {
  await scsi.registerIgnore(diskRef('node1'), K1);
  await scsi.registerIgnore(diskRef('node2'), K2);
  assert.deepEqual((await keys()).sort(), [K1, K1, K2]);
  const r = await scsi.readReservation(diskRef('node3'));
  assert.equal(r.holder, null);
});

test('reserve type 1: one holder; a registered non-holder gets conflict', { skip }, async () => {
  await scsi.reserve(diskRef('node1'), K1);
  await scsi.reserve(diskRef('node1'), K1); // holding already: no-op success
  await assert.rejects(scsi.reserve(diskRef('node2'), K2), code('conflict'));
  const r = await scsi.readReservation(diskRef('node3'));
  assert.deepEqual([r.holder, r.type], [K1, RESERVATION_TYPE]);
});

test('Write Exclusive: the holder writes (both paths), registered and unregistered others cannot', { skip }, async () => {
  assert.deepEqual(await writers(devs('node1')), [true, true]);
  assert.deepEqual(await writers(devs('node2')), [false], 'registered non-holder wrote: type 1 must fence it');
  assert.deepEqual(await writers(devs('node3')), [false]);
  assert.equal(await readBlock(devs('node2')[0] as string), true, 'reads stay allowed');
});

test('reregister (key refresh) keeps the reservation; the old key is dead', { skip }, async () => {
  await scsi.reregister(diskRef('node1'), K1, K1b);
  const r = await scsi.readReservation(diskRef('node2'));
  assert.equal(r.holder, K1b);
  assert.deepEqual((await keys()).sort(), [K1b, K1b, K2].sort());
  assert.deepEqual(await writers(devs('node1')), [true, true]);
  await assert.rejects(scsi.reregister(diskRef('node1'), K1, 0x1111000000000009n), code('conflict'));
});

test('preempt and abort: node2 takes the disk, node1 loses every path', { skip }, async () => {
  await scsi.preemptAbort(diskRef('node2'), K2, K1b);
  const r = await scsi.readReservation(diskRef('node1')); // first command on node1's paths: unit attention, retried
  assert.equal(r.holder, K2);
  assert.deepEqual(await keys(), [K2]);
  assert.deepEqual(await writers(devs('node1')), [false, false]);
  assert.deepEqual(await writers(devs('node2')), [true]);
  // The preempted holder finds out through conflict, and cannot take the disk back by itself.
  await assert.rejects(scsi.reregister(diskRef('node1'), K1b, 0x1111000000000003n), code('conflict'));
  await assert.rejects(scsi.reserve(diskRef('node1'), K1b), code('conflict'));
  await assert.rejects(scsi.preemptAbort(diskRef('node1'), K1b, K2), code('conflict'));
});

test('preempt of a key nobody has: conflict, nothing changes', { skip }, async () => {
  await scsi.registerIgnore(diskRef('node3'), K3);
  await assert.rejects(scsi.preemptAbort(diskRef('node3'), K3, 0x4444000000000001n), code('conflict'));
  assert.equal((await scsi.readReservation(diskRef('node3'))).holder, K2);
});

test('release: a non-holder only unregisters; the holder frees the disk', { skip }, async () => {
  await scsi.release(diskRef('node3'), K3);
  assert.equal((await scsi.readReservation(diskRef('node3'))).holder, K2);
  assert.deepEqual(await keys(), [K2]);
  await scsi.release(diskRef('node2'), K2);
  const r = await scsi.readReservation(diskRef('node1'));
  assert.deepEqual([r.holder, r.type], [null, null]);
  assert.deepEqual(await keys(), []);
});

test('an unregistered node cannot reserve a free disk (LIO answers NOT READY, not conflict)', { skip }, async () => {
  await assert.rejects(scsi.reserve(diskRef('node3'), K3), (err: unknown) => {
    assert.ok(err instanceof OwnershipError);
    assert.ok(err.code === 'not-ready' || err.code === 'conflict', err.message);
    return true;
  });
  assert.equal((await scsi.readReservation(diskRef('node3'))).holder, null);
});

test('unregistering the holder releases the reservation', { skip }, async () => {
  await scsi.registerIgnore(diskRef('node3'), K3);
  await scsi.reserve(diskRef('node3'), K3);
  await scsi.registerIgnore(diskRef('node3'), 0n);
  assert.equal((await scsi.readReservation(diskRef('node1'))).holder, null);
});

test('timings of the primitives in this guest (TCG: process start-up dominates)', { skip }, async (t) => {
  const d = diskRef('node2');
  const d1 = diskRef('node1');
  const ops: [string, () => Promise<unknown>][] = [
    ['registerIgnore (1 path)', () => scsi.registerIgnore(d, K2)],
    ['registerIgnore (2 paths)', () => scsi.registerIgnore(d1, K1)],
    ['readKeys (1 path)', () => scsi.readKeys(d)],
    ['readKeys (2 paths + identity)', () => scsi.readKeys(d1)],
    ['readReservation (1 path)', () => scsi.readReservation(d)],
    ['reserve', () => scsi.reserve(d, K2)],
    ['reregister (1 path)', () => scsi.reregister(d, K2, K2)],
    ['verify (1 path + wwn)', () => scsi.verify(d)],
    ['release (read + release + unregister)', () => scsi.release(d, K2)],
  ];
  const lines: string[] = [];
  for (const [name, op] of ops) {
    const ms: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await op();
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    lines.push(`${name}: min ${ms[0]?.toFixed(0)} / median ${ms[1]?.toFixed(0)} / max ${ms[2]?.toFixed(0)} ms`);
  }
  await scsi.registerIgnore(d1, 0n);
  for (const l of lines) t.diagnostic(l);
  console.log(`scsi primitive timings (guest, TCG):\n  ${lines.join('\n  ')}`);
});
