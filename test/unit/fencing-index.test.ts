import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileBackend } from '../../fencing/file.ts';
import { createBackend } from '../../fencing/index.ts';

test("createBackend: 'file' gives a FileBackend for this node, not I/O fencing", async () => {
  const b = await createBackend({ backend: 'file', dir: '/tmp' }, 'n1');
  assert.ok(b instanceof FileBackend);
  assert.equal(b.name, 'file');
  assert.equal(b.ioFencing, false);
});

test("createBackend: 'scsi' loads fencing/scsi.ts lazily (constructing it does no I/O)", async () => {
  const b = await createBackend({ backend: 'scsi' }, 'n1');
  assert.equal(b.name, 'scsi');
  assert.equal(b.ioFencing, true);
});

test('createBackend: an unknown backend is a clear error', async () => {
  await assert.rejects(createBackend({ backend: 'nfs' } as never, 'n1'), /unknown ownership backend "nfs"/);
});
