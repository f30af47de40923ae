// Policy `halt` (onLoss here): when another node takes our disk, this node halts at once. The
// guard runs the cluster's `haltCommand` (here: a marker file instead of a reboot) and the daemon
// exits 70. Real daemon, real guard, the file backend's disk preempted by another initiator.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { FileBackend } from '../../fencing/file.ts';
import { OwnershipError } from '../../fencing/backend.ts';
import { nodeKey } from '../../fencing/keys.ts';
import { diskAndApp } from './fixtures.ts';

const c = new LocalCluster({ nodes: ['n1', 'n2'], net: 90, hierarchies: { 'h.yaml': `${diskAndApp('h', ['n1', 'n2'])}onLoss: halt\n` } });
const marker = join(c.dir, 'halted');
appendFileSync(c.clusterFile, `haltCommand: 'echo "$(date +%s%3N) halted" > ${marker}'\n`);
after(() => c.teardown(process.env.KEEP === '1'));

test('onLoss: halt: the disk taken by another node -> the guard runs haltCommand at once, the daemon exits 70', async () => {
  const p = c.start('n1');
  await c.waitFor('h on n1', async () => (await c.runners('h', ['n1'])).length === 1, 30_000, 100);
  // An intruder preempts n1's key (it moves every refresh: retry on conflict).
  const be = new FileBackend({ dir: join(c.dir, 'ownership'), initiator: 'intruder' });
  const disk = { id: 'h/disk', paths: [] };
  const mine = nodeKey('local', 'n2', 42);
  await be.registerIgnore(disk, mine);
  for (let i = 0; ; i++) {
    const { holder } = await be.readReservation(disk);
    assert.ok(holder !== null, 'nobody holds h/disk');
    try {
      await be.preemptAbort(disk, mine, holder);
      break;
    } catch (e) {
      if (!(e instanceof OwnershipError && e.code === 'conflict') || i > 20) throw e;
    }
  }
  const t0 = Date.now();
  const code = await new Promise<number | null>((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', (cd) => resolve(cd))));
  await c.waitFor('the guard ran haltCommand', () => existsSync(marker), 10_000, 20);
  const haltedAt = Number(readFileSync(marker, 'utf8').split(' ')[0]);
  console.log(`# preempted -> daemon exit ${code} after ${Date.now() - t0} ms; halt command ran ${haltedAt - t0} ms after the preempt`);
  assert.equal(code, 70);
  assert.ok(c.events('n1').some((e) => e.event === 'halt'), 'no halt event logged');
  assert.match(readFileSync(c.logFile('n1'), 'utf8'), /harness guard: halting \(ownership lost\)/);
});
