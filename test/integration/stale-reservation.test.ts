// A node that starts and finds a hierarchy NOT running here drops any registration of its own on
// that hierarchy's disks: a reservation left by an earlier life of the node (a daemon that died or
// hung while holding) must not block the cluster for good. Seen in the bench: the preferred node
// refused the disk ("held by n2, which we can reach") while n2 ran nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import { FileBackend } from '../../fencing/file.ts';
import { nodeKey } from '../../fencing/keys.ts';

const c = new LocalCluster({
  net: 89,
  hierarchies: {
    'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3']),
  },
});
after(() => c.teardown(process.env.KEEP === '1'));

test('a stale reservation of a node that runs nothing is dropped at its start; the preferred node gets the hierarchy', async () => {
  // n2's earlier life holds the disk: registered and reserved with an old key generation.
  const disk = { id: 'h/disk', paths: [] };
  mkdirSync(join(c.dir, 'ownership'), { recursive: true });
  const n2 = new FileBackend({ dir: join(c.dir, 'ownership'), initiator: 'n2' });
  const old = nodeKey('local', 'n2', 12345);
  await n2.registerIgnore(disk, old);
  await n2.reserve(disk, old);
  assert.equal((await n2.readReservation(disk)).holder, old);

  for (const n of c.nodes) c.start(n);
  await c.waitFor('h on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
  const keys = (await n2.readKeys(disk)).keys;
  assert.ok(!keys.includes(old), 'the stale key is gone');
});
