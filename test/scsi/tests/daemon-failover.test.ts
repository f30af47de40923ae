// Daemon-level failover on real LIO: three real `harness` daemons (one per network namespace),
// the scsi ownership backend, one hierarchy `app` (disk0 + ocf:heartbeat:Dummy), priority
// node1 > node2 > node3. The tests are one story on one cluster (starting three daemons under
// emulation costs more than a test), each step starting from where the previous one left it:
//   1. holder killed   node1 (daemon + agents SIGKILLed) -> node2 preempts and runs app
//   2. rejoin          node1 restarts (its Dummy state still says running): it does not race
//                      back, and keeps no registration on the LUN
//   3. holder hung     node2 SIGSTOPped past the dead time -> node1 preempts; on SIGCONT node2
//                      logs `fenced` and stops app; never two nodes claim app while able to write
//   4. partition       node1's network cut, storage intact: peers see its key move on disk and do
//                      not preempt; then node1 dies -> node2 takes over
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NODE_NAMES, TIME_SCALE, devs, notInBed, wipe, wwn } from './lib/bed.ts';
import type { NodeName } from './lib/bed.ts';
import { CHECK_MS, DEAD_TIME_MS, LIVENESS_WINDOW_MS, ScsiCluster, canWrite, dummyHierarchy, isRunning, keysOnDisk, nodeOfKey, partOf, sleep } from './lib/daemons.ts';
import type { LogEvent } from './lib/daemons.ts';
import { nodePart } from '../../../fencing/keys.ts';
import { sampleWriters } from './lib/sampler.ts';

const skip = notInBed();
const H = 'app';
/** Detect (dead time) + liveness window + race + Dummy start, with room for an emulated CPU. */
const TAKEOVER_BOUND_MS = DEAD_TIME_MS + LIVENESS_WINDOW_MS + 20_000;
let c: ScsiCluster;

before(async () => {
  if (skip) return;
  await wipe(0);
  c = new ScsiCluster({ tag: 'failover', hierarchies: (cl) => ({ 'app.yaml': dummyHierarchy(H, ['node1', 'node2', 'node3'], { path: cl.diskPath(0), wwn: wwn(0) }) }) });
  // node1 first: alone, it takes the free disk after its start-up grace. The others join while it
  // is already heartbeating, so they can never mistake it for dead and place app elsewhere.
  const t0 = Date.now();
  c.start('node1');
  await c.waitProbed('node1');
  await c.startAll(['node2', 'node3']);
  await c.waitFor('app in service on node1 only', async () => (await c.runners(H)).join() === 'node1', 60_000, 200);
  console.log(`# daemon-failover: three daemons up, app in service on node1, ${Date.now() - t0} ms after the first start`);
});

after(async () => {
  await c?.teardown();
});

function lastEvent(node: NodeName, since: number, pred: (e: LogEvent) => boolean): LogEvent | undefined {
  return c.events(node).filter((e) => e.time >= since && pred(e)).at(-1);
}

test('holder killed (daemon and agents): the next node preempts and runs it; the dead node cannot write', { skip, timeout: 90_000 }, async (t) => {
  assert.ok(await canWrite(c.dev('node1')), 'the holder cannot write before the kill');
  const t0 = Date.now();
  const killed = await c.kill('node1');
  assert.ok(killed >= 2, `killed only ${killed} processes of node1 (daemon, guard, agents expected)`);
  const to = await c.waitFor('app in service on node2', async () => (await c.runners(H, ['node2', 'node3'])).join() === 'node2' && 'node2', TAKEOVER_BOUND_MS);
  const ms = Date.now() - t0;
  const acquired = lastEvent(to, t0, (e) => e.event === 'acquired' && e.hierarchy === H);
  assert.equal(nodeOfKey(acquired?.preempted), 'node1', `node2 should have preempted node1's key: ${JSON.stringify(acquired)}`);
  const rec = (await c.hierarchy(to, H))?.lastFailover;
  t.diagnostic(`kill -9 node1 -> app in service on node2 after ${ms} ms (node2's record: detect ${rec?.detectMs} + acquire ${rec?.acquireMs} + start ${rec?.startMs} ms; dead time ${DEAD_TIME_MS}, window ${LIVENESS_WINDOW_MS})`);
  // The device fences the dead node on every one of its paths; the new owner writes.
  for (const p of devs('node1')) assert.equal(await canWrite(p), false, `the dead node1 can still write through ${p}`);
  assert.ok(await canWrite(c.dev('node2')), 'the new owner node2 cannot write');
  assert.ok(!(await keysOnDisk()).some((k) => nodePart(k) === partOf('node1')), 'node1 is still registered');
});

test('rejoin: the old owner comes back, does not race back and does not re-register', { skip, timeout: 90_000 }, async (t) => {
  const t0 = Date.now();
  c.start('node1'); // its HA_RSCTMP still says Dummy is running: the harder case
  await c.waitProbed('node1');
  const settled = await c.waitFor('node1 settled with app out of service', async () => {
    const h = await c.hierarchy('node1', H);
    return h && h.phase === 'out-of-service' && h.ownership === 'not-owned' && h.resources.every((r) => r.state === 'stopped') && h.runningOn.includes('node2') && h;
  }, 60_000, 200);
  t.diagnostic(`node1 restarted and settled in ${Date.now() - t0} ms (note: ${settled.note})`);
  // Settled: for a few key refreshes nothing changes, and node1 holds no key on the LUN.
  for (let i = 0; i < 4; i++) {
    const keys = await keysOnDisk();
    assert.ok(!keys.some((k) => nodePart(k) === partOf('node1')), `node1 registered again after rejoining: ${keys.map((k) => `0x${k.toString(16)}`).join(' ')}`);
    assert.deepEqual(await c.runners(H), ['node2'], 'app moved after node1 rejoined (intelligent switchback keeps it on node2)');
    await sleep(500 * TIME_SCALE / 2);
  }
  assert.equal(lastEvent('node1', t0, (e) => e.event === 'acquired'), undefined, 'node1 acquired the disk after rejoining');
  assert.ok(await canWrite(c.dev('node2')));
  assert.equal(await canWrite(c.dev('node1')), false);
});

test('holder hung (SIGSTOP past the dead time): preempted; on SIGCONT it is fenced and stops; never two writers', { skip, timeout: 120_000 }, async (t) => {
  assert.deepEqual(await c.runners(H), ['node2']);
  const s = sampleWriters(c, H);
  const t0 = Date.now();
  c.signal('node2', 'SIGSTOP');
  let to: NodeName;
  let contAt: number;
  try {
    to = await c.waitFor('app in service on node1 or node3', async () => (await c.runners(H, ['node1', 'node3']))[0], TAKEOVER_BOUND_MS);
    t.diagnostic(`SIGSTOP node2 -> app in service on ${to} after ${Date.now() - t0} ms`);
    assert.equal(await canWrite(c.dev('node2')), false, 'the hung node2 can still write');
  } finally {
    contAt = Date.now();
    c.signal('node2', 'SIGCONT');
  }
  const fenced = await c.waitEvent('node2', 'fenced', (e) => e.event === 'fenced' && e.hierarchy === H, contAt, 10_000 * TIME_SCALE);
  const fencedMs = fenced.time - contAt;
  const stopped = await c.waitEvent('node2', 'stopped', (e) => e.event === 'stopped' && e.hierarchy === H, contAt, 30_000);
  await c.waitFor('node2 reports app stopped', async () => {
    const h = await c.hierarchy('node2', H);
    return h && h.phase === 'out-of-service' && h.resources.every((r) => r.state === 'stopped');
  }, 20_000, 200);
  const report = await s.finish();
  t.diagnostic(`SIGCONT node2 -> fenced logged after ${fencedMs} ms (by ${String(fenced.by)}: ${String(fenced.detail)}), app stopped after ${stopped.time - contAt} ms; ${report.samples} samples, at most ${report.maxClaims} nodes claiming app at once`);
  assert.deepEqual(report.violations, [], 'two nodes claimed app and could write at the same time');
  assert.ok(report.samples >= 5, `only ${report.samples} samples`);
  assert.equal(nodeOfKey(fenced.by), to, `node2 blames ${String(fenced.by)}, not ${to}`);
  // The check loop runs every CHECK_MS; after a freeze the daemon checks at once. Emulation stretches process starts.
  assert.ok(fencedMs <= 2 * CHECK_MS * TIME_SCALE, `node2 noticed the loss only ${fencedMs} ms after SIGCONT (check interval ${CHECK_MS} ms)`);
  assert.equal(await canWrite(c.dev('node2')), false, 'the fenced node2 can write');
  assert.ok(await canWrite(c.dev(to)));
  assert.ok(!(await keysOnDisk()).some((k) => nodePart(k) === partOf('node2')), 'the fenced node2 registered again');
});

test('pure network partition, storage intact: no preemption; when the owner then dies, a peer takes over', { skip, timeout: 120_000 }, async (t) => {
  const owner = (await c.runners(H))[0];
  assert.ok(owner, 'nobody runs app');
  const peers = NODE_NAMES.filter((n) => n !== owner);
  const t0 = Date.now();
  await c.cutNetwork(owner);
  // Each peer that is master now watches the owner's key on disk, sees it move, and backs off.
  const refused = await Promise.any(
    peers.map((p) => c.waitEvent(p, 'acquire-failed owner-alive-on-disk', (e) => e.event === 'acquire-failed' && e.hierarchy === H && e.reason === 'owner-alive-on-disk', t0, DEAD_TIME_MS + LIVENESS_WINDOW_MS + 20_000)),
  ).catch((e: AggregateError) => assert.fail(String(e.errors[0])));
  t.diagnostic(`${refused.node} saw ${owner}'s key move ${refused.time - t0} ms after the cut and did not preempt: ${String(refused.detail)}`);
  // A while longer: still only the owner runs app and writes; nobody else acquired.
  const until = Date.now() + 2 * LIVENESS_WINDOW_MS;
  while (Date.now() < until) {
    assert.deepEqual(await c.runners(H), [owner], 'app moved during a pure network partition');
    await sleep(500);
  }
  for (const p of peers) {
    assert.equal(lastEvent(p, t0, (e) => e.event === 'acquired' && e.hierarchy === H), undefined, `${p} acquired during the partition`);
    assert.equal(await canWrite(c.dev(p)), false);
  }
  assert.ok(await canWrite(c.dev(owner)), 'the partitioned owner lost write access');
  const refusals = peers.flatMap((p) => c.events(p).filter((e) => e.time >= t0 && e.event === 'acquire-failed' && e.reason === 'owner-alive-on-disk')).length;

  const t1 = Date.now();
  await c.kill(owner);
  const to = await c.waitFor('a peer runs app', async () => (await c.runners(H, peers))[0], TAKEOVER_BOUND_MS);
  const acquired = lastEvent(to, t1, (e) => e.event === 'acquired' && e.hierarchy === H);
  t.diagnostic(`partition held ${t1 - t0} ms with ${refusals} owner-alive-on-disk refusals; owner ${owner} killed -> app in service on ${to} after ${Date.now() - t1} ms`);
  assert.equal(nodeOfKey(acquired?.preempted), owner, `${to} should have preempted ${owner}: ${JSON.stringify(acquired)}`);
  assert.equal(await canWrite(c.dev(owner)), false);
  await c.healNetwork(owner);
});
