// Graceful `harness stop`: switchover hands hierarchies to the next node at once (no dead-time
// wait: the node says it is leaving); `--mode stop` stops them and they stay down (held) until
// the node returns.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';

const c = new LocalCluster({
  net: 86,
  // Started together they may come up over a second apart on a loaded machine (failover.test.ts);
  // 5 s also bounds what the second test's lone restart of n2 waits for the stopped n1.
  heartbeat: { interval: '150ms', deadTime: '900ms', startupGrace: '5s' },
  hierarchies: {
    'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3']),
  },
});
after(() => c.teardown(process.env.KEEP === '1'));

test('harness stop (switchover): the next node takes over without waiting for the dead time', async () => {
  for (const n of c.nodes) c.start(n);
  await c.waitFor('h on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
  const t0 = Date.now();
  const stopping = c.stop('n1', 'switchover');
  await c.waitFor('h on n2', async () => (await c.runners('h', ['n2', 'n3'])).join() === 'n2', 15_000, 25);
  const ms = Date.now() - t0;
  console.log(`# switchover: h in service on n2 ${ms} ms after harness stop on n1`);
  await stopping;
  assert.equal(c.procs.get('n1')!.exitCode, 0, 'daemon exited cleanly');
  await c.waitFor('nothing of n1 left running (agents stopped, guard gone)', () => c.pids('n1').length === 0, 5000, 50);
});

test('harness stop --mode stop: the hierarchy stays down until the node returns', async () => {
  await c.waitFor('h on n2', async () => (await c.runners('h')).join() === 'n2', 15_000, 50);
  await c.stop('n2', 'stop');
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(await c.runners('h', ['n3']), [], 'n3 did not take it over');
  const s = await c.status('n3');
  assert.match(s.hierarchies[0]!.note, /held/);
  c.start('n2');
  // n2 back: the hold is gone; n2 (priority 2 with n1 down) runs it again.
  await c.waitFor('h back on n2', async () => (await c.runners('h')).join() === 'n2', 20_000, 100);
});
