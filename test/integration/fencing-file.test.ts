// FileBackend against every rule of the backend.ts header (and LIO's behaviour recorded in the
// SCSI test bed), plus the lock's stale recovery. Real files in a temp dir.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { DiskRef, OwnershipErrorCode } from '../../fencing/backend.ts';
import { OwnershipError } from '../../fencing/backend.ts';
import { FileBackend, legacyStateFileName, stateFileName } from '../../fencing/file.ts';
import { nodeKey, nodePart } from '../../fencing/keys.ts';

const GUARD_LIB = fileURLToPath(new URL('../../harness/guard-lib.sh', import.meta.url));
/** This host's boot id, as the backend and the guard record it in a lock. */
const BOOT_ID = existsSync('/proc/sys/kernel/random/boot_id') ? (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() : null;

let dir = '';
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fencing-file-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fresh disk and one backend (initiator) per node name. */
function setup(...nodes: string[]): { disk: DiskRef; b: FileBackend[] } {
  const disk: DiskRef = { id: `h${++n}/disk`, paths: [] };
  return { disk, b: nodes.map((initiator) => new FileBackend({ dir, initiator })) };
}

async function rejectsWith(p: Promise<unknown>, code: OwnershipErrorCode, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof OwnershipError, `expected OwnershipError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

test('blank disk: no keys, no reservation; state file named after the id', async () => {
  const { disk, b } = setup('n1');
  const [a] = b as [FileBackend];
  await a.verify(disk);
  assert.deepEqual(await a.readKeys(disk), { generation: 0, keys: [] });
  assert.deepEqual(await a.readReservation(disk), { generation: 0, holder: null, type: null });
  assert.equal(stateFileName('web/data'), 'web__data.json');
  assert.equal(a.statePath(disk), join(dir, `h${n}__disk.json`));
  assert.equal(a.name, 'file');
  assert.equal(a.ioFencing, false);
});

test('REGISTER AND IGNORE always succeeds and bumps the generation; sark=0 unregisters without a bump', async () => {
  const { disk, b } = setup('n1', 'n2');
  const [a, c] = b as [FileBackend, FileBackend];
  await a.registerIgnore(disk, 0x1n);
  await c.registerIgnore(disk, 0x2n);
  await a.registerIgnore(disk, 0x11n); // replaces n1's key whatever it was
  assert.deepEqual(await a.readKeys(disk), { generation: 3, keys: [0x11n, 0x2n] });
  await c.registerIgnore(disk, 0n);
  assert.deepEqual(await a.readKeys(disk), { generation: 3, keys: [0x11n] });
  await c.registerIgnore(disk, 0n); // unregistering twice is harmless
  const doc = JSON.parse(await readFile(a.statePath(disk), 'utf8'));
  assert.deepEqual(doc, { generation: 3, registrations: { n1: '0x11' }, holder: null, type: null });
});

test('REGISTER rk/sark: conflict unless rk is our current key; rk=0 registers an unregistered initiator', async () => {
  const { disk, b } = setup('n1', 'n2');
  const [a, c] = b as [FileBackend, FileBackend];
  await rejectsWith(a.reregister(disk, 0x5n, 0x6n), 'conflict', /not registered/);
  await a.reregister(disk, 0n, 0x1n);
  await rejectsWith(a.reregister(disk, 0n, 0x3n), 'conflict', /registered with 0x1/);
  await rejectsWith(a.reregister(disk, 0x2n, 0x3n), 'conflict');
  await c.registerIgnore(disk, 0x2n);
  await rejectsWith(a.reregister(disk, 0x2n, 0x3n), 'conflict', /registered with 0x1/); // someone else's key is not ours
  await a.reregister(disk, 0x1n, 0x3n);
  assert.deepEqual((await a.readKeys(disk)).keys, [0x3n, 0x2n]);
  await a.reregister(disk, 0x3n, 0n);
  assert.deepEqual((await a.readKeys(disk)).keys, [0x2n]);
});

test('RESERVE: unregistered -> not-ready (as LIO); stale rk -> conflict; free or already ours -> ok; held -> conflict; no generation bump', async () => {
  const { disk, b } = setup('n1', 'n2', 'n3');
  const [a, c, d] = b as [FileBackend, FileBackend, FileBackend];
  await rejectsWith(d.reserve(disk, 0x7n), 'not-ready', /unregistered initiator n3/);
  await a.registerIgnore(disk, 0x1n);
  await c.registerIgnore(disk, 0x2n);
  await rejectsWith(a.reserve(disk, 0x9n), 'conflict', /registered with 0x1/);
  await a.reserve(disk, 0x1n);
  await a.reserve(disk, 0x1n);
  await rejectsWith(c.reserve(disk, 0x2n), 'conflict', /held by n1 \(0x1\)/);
  await rejectsWith(d.reserve(disk, 0x7n), 'not-ready');
  assert.deepEqual(await c.readReservation(disk), { generation: 2, holder: 0x1n, type: 1 });
});

test("changing the holder's key keeps the reservation (REGISTER and REGISTER AND IGNORE)", async () => {
  const { disk, b } = setup('n1');
  const [a] = b as [FileBackend];
  await a.registerIgnore(disk, 0x1n);
  await a.reserve(disk, 0x1n);
  await a.reregister(disk, 0x1n, 0x9n);
  assert.deepEqual(await a.readReservation(disk), { generation: 2, holder: 0x9n, type: 1 });
  await a.registerIgnore(disk, 0x11n);
  assert.deepEqual(await a.readReservation(disk), { generation: 3, holder: 0x11n, type: 1 });
});

test('a holder that unregisters releases the reservation; release by a non-holder leaves it', async () => {
  const { disk, b } = setup('n1', 'n2');
  const [a, c] = b as [FileBackend, FileBackend];
  await a.registerIgnore(disk, 0x1n);
  await c.registerIgnore(disk, 0x2n);
  await a.reserve(disk, 0x1n);
  await c.release(disk, 0x2n); // non-holder: the reservation stays, n2 is unregistered
  assert.deepEqual(await a.readReservation(disk), { generation: 2, holder: 0x1n, type: 1 });
  assert.deepEqual((await a.readKeys(disk)).keys, [0x1n]);
  await rejectsWith(c.release(disk, 0x2n), 'conflict', /not registered/); // as LIO: unregistered RELEASE
  await rejectsWith(a.release(disk, 0x9n), 'conflict', /registered with 0x1/); // stale key
  await a.reregister(disk, 0x1n, 0n); // holder unregisters
  assert.deepEqual(await a.readReservation(disk), { generation: 2, holder: null, type: null });
  await a.registerIgnore(disk, 0x1n);
  await a.reserve(disk, 0x1n);
  await a.release(disk, 0x1n);
  assert.deepEqual(await a.readReservation(disk), { generation: 3, holder: null, type: null });
  assert.deepEqual((await a.readKeys(disk)).keys, []);
});

test('PREEMPT AND ABORT removes every registration of the victim and hands over the reservation', async () => {
  const { disk, b } = setup('n1', 'n1-path2', 'n2', 'n3');
  const [a, a2, c, d] = b as [FileBackend, FileBackend, FileBackend, FileBackend];
  // n1 registered with the same key on two "paths" (two initiators), as multipath does.
  await a.registerIgnore(disk, 0x11n);
  await a2.registerIgnore(disk, 0x11n);
  await c.registerIgnore(disk, 0x2n);
  await a.reserve(disk, 0x11n);
  await rejectsWith(d.preemptAbort(disk, 0x5n, 0x11n), 'conflict', /n3 is not registered/);
  await rejectsWith(c.preemptAbort(disk, 0x5n, 0x11n), 'conflict', /registered with 0x2/);
  const before = (await c.readKeys(disk)).generation;
  await c.preemptAbort(disk, 0x2n, 0x11n);
  assert.deepEqual(await c.readKeys(disk), { generation: before + 1, keys: [0x2n] });
  assert.deepEqual(await c.readReservation(disk), { generation: before + 1, holder: 0x2n, type: 1 });
  // The preempted holder finds out through a conditional REGISTER and cannot reserve.
  await rejectsWith(a.reregister(disk, 0x11n, 0x12n), 'conflict', /not registered/);
  await rejectsWith(a.reserve(disk, 0x11n), 'not-ready');
  // A second racer preempting the same (gone) victim key loses: exactly one winner.
  await d.registerIgnore(disk, 0x3n);
  await rejectsWith(d.preemptAbort(disk, 0x3n, 0x11n), 'conflict', /no registration with key 0x11/);
  assert.equal((await d.readReservation(disk)).holder, 0x2n);
});

test('PREEMPT of a registered non-holder removes it but leaves the reservation', async () => {
  const { disk, b } = setup('n1', 'n2', 'n3');
  const [a, c, d] = b as [FileBackend, FileBackend, FileBackend];
  await a.registerIgnore(disk, 0x1n);
  await c.registerIgnore(disk, 0x2n);
  await d.registerIgnore(disk, 0x3n);
  await a.reserve(disk, 0x1n);
  await d.preemptAbort(disk, 0x3n, 0x2n);
  assert.deepEqual((await a.readKeys(disk)).keys, [0x1n, 0x3n]);
  assert.equal((await a.readReservation(disk)).holder, 0x1n);
  await rejectsWith(d.preemptAbort(disk, 0x3n, 0n), 'io', /victim key 0/);
});

test('keys out of range are refused; ids that could escape the directory are refused', async () => {
  const { disk, b } = setup('n1');
  const [a] = b as [FileBackend];
  await rejectsWith(a.registerIgnore(disk, 1n << 64n), 'io', /not a valid reservation key/);
  await rejectsWith(a.reserve(disk, 0n), 'io');
  assert.throws(() => stateFileName(''), /disk id is empty/);
  assert.throws(() => stateFileName('../x'), /cannot name a file/);
  assert.throws(() => a.statePath({ id: '.hidden', paths: [] }), (e: unknown) => e instanceof OwnershipError && e.code === 'identity');
  assert.throws(() => new FileBackend({ dir, initiator: '' }), /initiator/);
});

test('garbled state file and missing directory give clear errors naming the path', async () => {
  const { disk, b } = setup('n1');
  const [a] = b as [FileBackend];
  await writeFile(a.statePath(disk), '{"generation": "x"');
  await rejectsWith(a.readKeys(disk), 'garbled', new RegExp(`state file ${a.statePath(disk)} is not valid`));
  await rejectsWith(a.verify(disk), 'garbled');
  await writeFile(a.statePath(disk), JSON.stringify({ generation: 1, registrations: { n1: '0x1' }, holder: 'n2', type: 1 }));
  await rejectsWith(a.readReservation(disk), 'garbled', /holder n2 is not registered/);
  await rejectsWith(a.registerIgnore(disk, 1n), 'garbled');
  const lost = new FileBackend({ dir: join(dir, 'does-not-exist'), initiator: 'n1' });
  await rejectsWith(lost.verify(disk), 'open-failed', /does-not-exist/);
  await rejectsWith(lost.readKeys(disk), 'open-failed', /ownership directory/);
  await rejectsWith(lost.registerIgnore(disk, 1n), 'open-failed');
});

test("a stale lock of a dead process in our pid namespace is broken at once", async () => {
  const { disk, b } = setup('n1');
  const [a] = b as [FileBackend];
  const dead = spawnSync('true').pid;
  assert.ok(dead);
  const ns = await readlink('/proc/self/ns/pid');
  await writeFile(`${a.statePath(disk)}.lock`, JSON.stringify({ pid: dead, ns, host: BOOT_ID, token: 'x' }));
  const t0 = performance.now();
  await a.registerIgnore(disk, 0x1n);
  assert.ok(performance.now() - t0 < 1000, 'did not wait for the age bound');
  assert.deepEqual((await a.readKeys(disk)).keys, [0x1n]);
});

test('a lock held by a live (e.g. frozen) process is broken only once older than lockStaleMs', async () => {
  const { disk } = setup();
  const a = new FileBackend({ dir, initiator: 'n1', lockStaleMs: 300 });
  const ns = await readlink('/proc/self/ns/pid');
  const lock = `${a.statePath(disk)}.lock`;
  await writeFile(lock, JSON.stringify({ pid: process.pid, ns, token: 'frozen' }));
  const t0 = performance.now();
  await a.registerIgnore(disk, 0x1n);
  const waited = performance.now() - t0;
  assert.ok(waited >= 250 && waited < 5000, `waited ${waited} ms`);
  // Another pid namespace: its pid means nothing here, so only age counts (even for "dead" pids).
  await writeFile(lock, JSON.stringify({ pid: 999999999, ns: 'pid:[1]', token: 'elsewhere' }));
  const t1 = performance.now();
  await a.registerIgnore(disk, 0x2n);
  assert.ok(performance.now() - t1 >= 250);
  // An old lock is broken at once.
  await writeFile(lock, 'garbage');
  const old = new Date(Date.now() - 60_000);
  await utimes(lock, old, old);
  const t2 = performance.now();
  await a.registerIgnore(disk, 0x3n);
  assert.ok(performance.now() - t2 < 250);
  assert.deepEqual((await a.readKeys(disk)).keys, [0x3n]);
});

test('a lock of another host is never taken for a dead process of ours: every host\'s first pid namespace has the same id', async () => {
  const { disk } = setup();
  const a = new FileBackend({ dir, initiator: 'n1', lockStaleMs: 300 });
  const dead = spawnSync('true').pid;
  assert.ok(dead);
  const ns = await readlink('/proc/self/ns/pid');
  const lock = `${a.statePath(disk)}.lock`;
  // Same pid namespace id as ours, a pid that is dead here: alive, for all we know, on its own host.
  // And a lock of an older version, without a host: judged by age alone too.
  for (const owner of [{ pid: dead, ns, host: 'another-host-boot-id', token: 'other-host' }, { pid: dead, ns, token: 'no-host' }]) {
    await writeFile(lock, JSON.stringify(owner));
    const t0 = performance.now();
    await a.registerIgnore(disk, 0x1n);
    const waited = performance.now() - t0;
    assert.ok(waited >= 250, `${owner.token}: lock broken after ${waited.toFixed(0)} ms, before lockStaleMs (300 ms)`);
  }
});

test('the guard (guard-lib.sh) takes the same lock by the same rules: another host\'s lock waits for its age, a dead one of ours does not', { skip: BOOT_ID === null ? 'no /proc/sys/kernel/random/boot_id' : false }, async () => {
  const { disk } = setup();
  const a = new FileBackend({ dir, initiator: 'n1' });
  const key = nodeKey('c', 'n1', 1);
  await a.registerIgnore(disk, key);
  const state = a.statePath(disk);
  const ns = await readlink('/proc/self/ns/pid');
  const dead = spawnSync('true').pid;
  /** One refresh by the guard with a 400 ms stale bound, timed. */
  const refresh = () => {
    const script = `. '${GUARD_LIB}'; hg_init file ${nodePart(key).toString(16)} 0.250 5 n1 400; t=$(hg_ms); hg_file_op refresh "$1" || exit 9; echo $(($(hg_ms) - t))`;
    const r = spawnSync('/bin/sh', ['-c', script, 'sh', state], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  await writeFile(`${state}.lock`, JSON.stringify({ pid: dead, ns, host: BOOT_ID, token: 'ours' }));
  const ours = refresh();
  assert.ok(ours < 300, `a dead process of this host: broken at once, not after ${ours} ms`);
  await writeFile(`${state}.lock`, JSON.stringify({ pid: dead, ns, host: 'another-host-boot-id', token: 'theirs' }));
  const theirs = refresh();
  assert.ok(theirs >= 350, `another host's lock broken after ${theirs} ms, before the stale bound (400 ms)`);
  assert.deepEqual((await a.readKeys(disk)).keys, [nodeKey('c', 'n1', 3)], 'both refreshes applied');
});

test('two disks never share a state file (web__data/x and web/data__x); ids without "_" keep their old file name', async () => {
  assert.notEqual(stateFileName('web__data/x'), stateFileName('web/data__x'));
  assert.equal(stateFileName('web/data'), legacyStateFileName('web/data'));
  assert.equal(stateFileName('web-1/data-2'), 'web-1__data-2.json');
  // One-to-one over awkward ids: "_" next to "/" and anything else escaped.
  const ids = ['a_/b', 'a/_b', 'a__/b', 'a/__b', 'a_5f/b', 'a/5f', 'a_2f/b', 'a b/c', 'a_20b/c', 'ä/x', 'a/b/c', 'a__b/c'];
  assert.equal(new Set(ids.map(stateFileName)).size, ids.length, ids.map(stateFileName).join(' '));
  const sub = await mkdtemp(join(dir, 'names-'));
  const [p, q] = [new FileBackend({ dir: sub, initiator: 'n1' }), new FileBackend({ dir: sub, initiator: 'n2' })];
  const d1: DiskRef = { id: 'web__data/x', paths: [] };
  const d2: DiskRef = { id: 'web/data__x', paths: [] };
  await p.registerIgnore(d1, 0x1n);
  await p.reserve(d1, 0x1n);
  await q.registerIgnore(d2, 0x2n);
  await q.reserve(d2, 0x2n); // before: conflict, "held by n1" (one file for both)
  assert.deepEqual(await p.readReservation(d1), { generation: 1, holder: 0x1n, type: 1 });
  assert.deepEqual(await p.readReservation(d2), { generation: 1, holder: 0x2n, type: 1 });
  assert.equal((await readdir(sub)).length, 2);
});

test('a state file under the old name is still read, and moved to the new name by the next operation', async () => {
  const sub = await mkdtemp(join(dir, 'legacy-'));
  const disk: DiskRef = { id: 'web_1/data_disk', paths: [] };
  const a = new FileBackend({ dir: sub, initiator: 'n1' });
  const legacy = join(sub, legacyStateFileName(disk.id));
  assert.equal(legacy, join(sub, 'web_1__data_disk.json'));
  assert.notEqual(a.statePath(disk), legacy);
  await writeFile(legacy, `${JSON.stringify({ generation: 4, registrations: { n2: '0x2' }, holder: 'n2', type: 1 }, null, 2)}\n`);
  assert.deepEqual(await a.readReservation(disk), { generation: 4, holder: 0x2n, type: 1 });
  await a.registerIgnore(disk, 0x1n);
  assert.deepEqual(await a.readKeys(disk), { generation: 5, keys: [0x2n, 0x1n] });
  assert.deepEqual(await readdir(sub), [stateFileName(disk.id)], 'moved, and no lock left');
});

test('a busy lock gives up with io after lockTimeoutMs', async () => {
  const { disk } = setup();
  const a = new FileBackend({ dir, initiator: 'n1', lockStaleMs: 60_000, lockTimeoutMs: 200 });
  await writeFile(`${a.statePath(disk)}.lock`, JSON.stringify({ pid: process.pid, ns: await readlink('/proc/self/ns/pid'), token: 't' }));
  await rejectsWith(a.registerIgnore(disk, 1n), 'io', /still busy after 200 ms/);
});

test('concurrent operations from several initiators lose no update', async () => {
  const { disk, b } = setup('n1', 'n2', 'n3');
  const rounds = 40;
  await Promise.all(
    b.map(async (be, i) => {
      for (let r = 1; r <= rounds; r++) await be.registerIgnore(disk, BigInt((i + 1) * 1000 + r));
    }),
  );
  const keys = await b[0]!.readKeys(disk);
  assert.equal(keys.generation, 3 * rounds);
  assert.deepEqual([...keys.keys].sort(), [1040n, 2040n, 3040n]);
  // And exactly one of three simultaneous RESERVEs wins.
  const results = await Promise.allSettled(b.map((be, i) => be.reserve(disk, BigInt((i + 1) * 1000 + rounds))));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
});
