// Disks the node must refuse to own, each with an error that says what is wrong and where:
// a path that does not exist, devices without persistent reservations, the wrong LUN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnershipError } from '../../../fencing/backend.ts';
import { ScsiBackend } from '../../../fencing/scsi.ts';
import { devs, diskRef, loopDev, noPrDev, notInBed, wwn } from './lib/bed.ts';

const skip = notInBed();
const scsi = new ScsiBackend({ timeoutMs: 20_000 });

function refused(codeWanted: string, path: string | undefined, text: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof OwnershipError, String(err));
    assert.equal(err.code, codeWanted, err.message);
    if (path !== undefined) assert.equal(err.path, path, err.message);
    assert.match(err.message, /^bad\//, 'the message names the disk');
    assert.match(err.message, text);
    return true;
  };
}

test('a device path that does not exist: open-failed naming the path', { skip }, async () => {
  const good = devs('node1')[0] as string;
  const disk = { id: 'bad/missing', paths: [good, '/dev/sdzz'] };
  await assert.rejects(scsi.verify(disk), refused('open-failed', '/dev/sdzz', /no such device/));
  // The primitives say the same (sg_persist's own "error opening file", exit 52).
  await assert.rejects(scsi.readKeys({ id: 'bad/missing', paths: ['/dev/sdzz'] }), refused('open-failed', '/dev/sdzz', /No such file or directory/));
});

test('a loop device (block device, no SCSI at all): unsupported', { skip }, async () => {
  const loop = loopDev();
  await assert.rejects(scsi.verify({ id: 'bad/loop', paths: [loop] }), refused('unsupported', loop, /read-keys/));
});

test('/dev/null (a character device that is not SCSI generic): unsupported', { skip }, async () => {
  await assert.rejects(scsi.verify({ id: 'bad/null', paths: ['/dev/null'] }), refused('unsupported', '/dev/null', /Inappropriate ioctl/));
});

test('a SCSI disk without persistent reservations (scsi_debug): unsupported', { skip }, async () => {
  const dev = noPrDev();
  await assert.rejects(scsi.verify({ id: 'bad/nopr', paths: [dev] }), refused('unsupported', dev, /Invalid opcode/));
  await assert.rejects(scsi.reserve({ id: 'bad/nopr', paths: [dev] }, 1n), refused('unsupported', dev, /reserve/));
});

test('a regular file: unsupported, without running sg_persist on it', { skip }, async () => {
  await assert.rejects(scsi.verify({ id: 'bad/file', paths: ['/etc/hostname'] }), refused('unsupported', '/etc/hostname', /not a block or SCSI generic device/));
});

test('the wrong WWN: identity, naming both identities', { skip }, async () => {
  const disk = { ...diskRef('node2', 0), id: 'bad/wrong-wwn', wwn: wwn(1) };
  const seen = wwn(0);
  await assert.rejects(scsi.verify(disk), refused('identity', devs('node2')[0], new RegExp(`${seen}.*${wwn(1)}.*wrong disk`)));
});

test('a WWN in another spelling is the same disk (0x…, by-id wwn-0x…, udev 3…)', { skip }, async () => {
  const hex = wwn(0).replace(/^naa\./, '');
  for (const spelling of [`0x${hex}`, `wwn-0x${hex}`, `3${hex}`, hex.toUpperCase()]) {
    await scsi.verify({ ...diskRef('node2', 0), wwn: spelling });
  }
});

test('a malformed WWN: identity error that quotes it', { skip }, async () => {
  await assert.rejects(scsi.verify({ ...diskRef('node2', 0), id: 'bad/wwn', wwn: 'disk-please' }), refused('identity', undefined, /"disk-please" is not an NAA designator/));
});

test('two paths that reach different LUNs: identity, in verify and in every read', { skip }, async () => {
  const mixed = { id: 'bad/mixed', paths: [devs('node2', 0)[0] as string, devs('node2', 1)[0] as string] };
  await assert.rejects(scsi.verify({ ...mixed, wwn: wwn(0) }), refused('identity', devs('node2', 1)[0], /wrong disk/));
  await assert.rejects(scsi.readKeys(mixed), refused('identity', undefined, /do not reach one LUN/));
  await assert.rejects(scsi.readReservation(mixed), refused('identity', undefined, /do not reach one LUN/));
});

test('no paths, a relative path, the same path twice: refused before any command', { skip }, async () => {
  await assert.rejects(scsi.verify({ id: 'bad/none', paths: [] }), refused('open-failed', undefined, /no device paths/));
  await assert.rejects(scsi.verify({ id: 'bad/rel', paths: ['sda'] }), refused('open-failed', undefined, /not an absolute path/));
  const p = devs('node2')[0] as string;
  await assert.rejects(scsi.registerIgnore({ id: 'bad/twice', paths: [p, p] }, 1n), refused('identity', undefined, /listed twice/));
});
