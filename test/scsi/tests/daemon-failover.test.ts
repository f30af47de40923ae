// Daemon-level failover on real LIO: three real `harness` daemons (one per network namespace),
// the scsi ownership backend, one hierarchy `app` (disk0 + ocf:heartbeat:Dummy), priority
// node1 > node2 > node3. The tests are one story on one cluster (starting three daemons under
// emulation costs more than a test), each step starting from where the previous one left it:
//   1. holder killed   the owner (daemon + agents SIGKILLed) -> the best survivor preempts and
//                      runs app; the dead node's paths cannot write
//   2. rejoin          the killed node restarts (its Dummy state still says running): it does
//                      not race back, and keeps no registration on the LUN
//   3. holder hung     the owner SIGSTOPped past the dead time -> preempted; on SIGCONT it logs
//                      `fenced` and stops app; never two nodes claim app while able to write
//   4. partition       the owner's network cut, storage intact: peers see its key move on disk
//                      and do not preempt; then the owner dies -> a peer takes over
//   5. daemon killed   only the owner's daemon dies (its guard and Dummy live on): the guard
//                      holds the disk while it stops app, then releases it; a peer reserves the
//                      free disk, no preemption
// All three start at once, so app may start on any node (start-up skew under emulation can exceed
// the start-up grace); every step follows the owner it finds, and knows who must take over next.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NODE_NAMES, TIME_SCALE, bound, devs, notInBed, wipe, wwn } from './lib/bed.ts';
import type { NodeName } from './lib/bed.ts';
import { readFileSync } from 'node:fs';
import { CHECK_MS, DEAD_TIME_MS, LIVENESS_WINDOW_MS, ScsiCluster, canWrite, dummyHierarchy, isZombie, keysOnDisk, nodeOfKey, partOf, sleep } from './lib/daemons.ts';
import type { LogEvent } from './lib/daemons.ts';
import { isReleasedKey, nodePart, parseKey } from '../../../fencing/keys.ts';
import { sampleWriters } from './lib/sampler.ts';

const skip = notInBed();
const H = 'app';
const PRIORITY: NodeName[] = ['node1', 'node2', 'node3'];
/** Detect (dead time) + liveness window + race + Dummy start, with room for an emulated CPU. */
const TAKEOVER_BOUND_MS = DEAD_TIME_MS + LIVENESS_WINDOW_MS + bound(20_000);
let c: ScsiCluster;

before(async () => {
  if (skip) return;
  await wipe(0);
  c = new ScsiCluster({ tag: 'failover', hierarchies: (cl) => ({ 'app.yaml': dummyHierarchy(H, PRIORITY, { path: cl.diskPath(0), wwn: wwn(0) }) }) });
  const t0 = Date.now();
  await c.startAll(NODE_NAMES);
  const owner = await c.waitFor('app in service on one node', async () => (await c.runners(H)).at(0), bound(60_000), 200);
  console.log(`# daemon-failover: three daemons up, app in service on ${owner}, ${Date.now() - t0} ms after the start`);
});

after(async () => {
  await c?.teardown();
});

function lastEvent(node: NodeName, since: number, pred: (e: LogEvent) => boolean): LogEvent | undefined {
  return c.events(node).filter((e) => e.time >= since && pred(e)).at(-1);
}

/** The one node running app with verified ownership (waits while it settles, e.g. after a freeze). */
function owner(): Promise<NodeName> {
  return c.waitFor('app in service on exactly one node, ownership verified', async () => {
    const r = await c.runners(H);
    return r.length === 1 && r[0];
  }, bound(20_000));
}

/** Who must take over from `from`: the most preferred other node (all of them are up and eligible). */
function successor(from: NodeName): NodeName {
  return PRIORITY.find((n) => n !== from) as NodeName;
}

let killed: NodeName | undefined;

test('holder killed (daemon and agents): the next node preempts and runs it; the dead node cannot write', { skip, timeout: bound(90_000) }, async (t) => {
  const from = await owner();
  const next = successor(from);
  assert.ok(await canWrite(c.dev(from)), 'the holder cannot write before the kill');
  const t0 = Date.now();
  const n = await c.kill(from);
  killed = from;
  assert.ok(n >= 2, `killed only ${n} processes of ${from} (daemon, guard, agents expected)`);
  const peers = NODE_NAMES.filter((x) => x !== from);
  await c.waitFor(`app in service on ${next}`, async () => (await c.runners(H, peers)).join() === next, TAKEOVER_BOUND_MS);
  const ms = Date.now() - t0;
  const acquired = lastEvent(next, t0, (e) => e.event === 'acquired' && e.hierarchy === H);
  assert.equal(nodeOfKey(acquired?.preempted), from, `${next} should have preempted ${from}'s key: ${JSON.stringify(acquired)}`);
  const rec = (await c.hierarchy(next, H))?.lastFailover;
  t.diagnostic(`kill -9 ${from} -> app in service on ${next} after ${ms} ms (${next}'s record: detect ${rec?.detectMs?.toFixed(0)} + acquire ${rec?.acquireMs} + start ${rec?.startMs} ms; dead time ${DEAD_TIME_MS}, window ${LIVENESS_WINDOW_MS})`);
  // The device fences the dead node on every one of its paths; the new owner writes.
  for (const p of devs(from)) assert.equal(await canWrite(p), false, `the dead ${from} can still write through ${p}`);
  assert.ok(await canWrite(c.dev(next)), `the new owner ${next} cannot write`);
  assert.ok(!(await keysOnDisk()).some((k) => nodePart(k) === partOf(from)), `${from} is still registered`);
});

test('rejoin: the old owner comes back, does not race back and does not re-register', { skip, timeout: bound(120_000) }, async (t) => {
  assert.ok(killed, 'needs the node killed by the previous test');
  const back = killed;
  const holder = await owner();
  const t0 = Date.now();
  c.start(back); // its HA_RSCTMP still says Dummy is running: the harder case
  await c.waitProbed(back, bound(90_000));
  const settled = await c.waitFor(`${back} settled with app out of service`, async () => {
    const h = await c.hierarchy(back, H);
    return h && h.phase === 'out-of-service' && h.ownership === 'not-owned' && h.resources.every((r) => r.state === 'stopped') && h.runningOn.includes(holder) && h;
  }, bound(60_000), 200);
  t.diagnostic(`${back} restarted and settled in ${Date.now() - t0} ms (its note: ${settled.note})`);
  // Settled: for a few key refreshes nothing changes, and the rejoined node holds no key on the LUN.
  for (let i = 0; i < 4; i++) {
    const keys = await keysOnDisk();
    assert.ok(!keys.some((k) => nodePart(k) === partOf(back)), `${back} registered again after rejoining: ${keys.map((k) => `0x${k.toString(16)}`).join(' ')}`);
    assert.deepEqual(await c.runners(H, NODE_NAMES, true), [holder], `app moved after ${back} rejoined (intelligent switchback keeps it on ${holder})`);
    await sleep(250 * TIME_SCALE);
  }
  assert.equal(lastEvent(back, t0, (e) => e.event === 'acquired'), undefined, `${back} acquired the disk after rejoining`);
  assert.ok(await canWrite(c.dev(holder)));
  assert.equal(await canWrite(c.dev(back)), false);
});

test('holder hung (SIGSTOP past the dead time): preempted; on SIGCONT it is fenced and stops; never two writers', { skip, timeout: bound(120_000) }, async (t) => {
  const hung = await owner();
  const next = successor(hung);
  const s = sampleWriters(c, H);
  const t0 = Date.now();
  c.signal(hung, 'SIGSTOP');
  let contAt: number;
  try {
    const others = NODE_NAMES.filter((x) => x !== hung);
    await c.waitFor(`app in service on ${next}`, async () => (await c.runners(H, others)).join() === next, TAKEOVER_BOUND_MS);
    t.diagnostic(`SIGSTOP ${hung} -> app in service on ${next} after ${Date.now() - t0} ms`);
    assert.equal(await canWrite(c.dev(hung)), false, `the hung ${hung} can still write`);
  } finally {
    contAt = Date.now();
    c.signal(hung, 'SIGCONT');
  }
  const fenced = await c.waitEvent(hung, 'fenced', (e) => e.event === 'fenced' && e.hierarchy === H, contAt, bound(30_000));
  const fencedMs = fenced.time - contAt;
  const stopped = await c.waitEvent(hung, 'stopped', (e) => e.event === 'stopped' && e.hierarchy === H, contAt, bound(30_000));
  await c.waitFor(`${hung} reports app stopped`, async () => {
    const h = await c.hierarchy(hung, H);
    return h && h.phase === 'out-of-service' && h.resources.every((r) => r.state === 'stopped');
  }, bound(20_000), 200);
  const report = await s.finish();
  t.diagnostic(`SIGCONT ${hung} -> fenced logged after ${fencedMs} ms (by ${String(fenced.by)}: ${String(fenced.detail)}), app stopped after ${stopped.time - contAt} ms; ${report.samples} samples, at most ${report.maxClaims} nodes claiming app at once`);
  assert.deepEqual(report.violations, [], 'two nodes claimed app and could write at the same time');
  assert.ok(report.samples >= 5, `only ${report.samples} samples`);
  assert.equal(nodeOfKey(fenced.by), next, `${hung} blames ${String(fenced.by)}, not ${next}`);
  // After a freeze the daemon re-checks at once; the check interval is CHECK_MS. Under emulation
  // the resumed process first has to catch up (several process starts): allow the time scale.
  assert.ok(fencedMs <= 3 * CHECK_MS * TIME_SCALE, `${hung} noticed the loss only ${fencedMs} ms after SIGCONT (check interval ${CHECK_MS} ms)`);
  assert.equal(await canWrite(c.dev(hung)), false, `the fenced ${hung} can write`);
  assert.ok(await canWrite(c.dev(next)));
  assert.ok(!(await keysOnDisk()).some((k) => nodePart(k) === partOf(hung)), `the fenced ${hung} registered again`);
});

test('pure network partition, storage intact: no preemption; when the owner then dies, a peer takes over', { skip, timeout: bound(120_000) }, async (t) => {
  const cut = await owner();
  const peers = NODE_NAMES.filter((n) => n !== cut);
  const t0 = Date.now();
  await c.cutNetwork(cut);
  // The peer that is master now watches the owner's key on disk, sees it move, and backs off.
  const refused = await Promise.any(
    peers.map((p) => c.waitEvent(p, 'acquire-failed owner-alive-on-disk', (e) => e.event === 'acquire-failed' && e.hierarchy === H && e.reason === 'owner-alive-on-disk', t0, DEAD_TIME_MS + LIVENESS_WINDOW_MS + bound(20_000))),
  ).catch((e: AggregateError) => assert.fail(String(e.errors[0])));
  t.diagnostic(`${refused.node} saw ${cut}'s key move ${refused.time - t0} ms after the cut and did not preempt: ${String(refused.detail)}`);
  // A while longer: still only the owner claims app and writes; nobody else acquired.
  const until = Date.now() + 2 * LIVENESS_WINDOW_MS;
  while (Date.now() < until) {
    assert.deepEqual(await c.runners(H, NODE_NAMES, true), [cut], 'app moved during a pure network partition');
    await sleep(500);
  }
  for (const p of peers) {
    assert.equal(lastEvent(p, t0, (e) => e.event === 'acquired' && e.hierarchy === H), undefined, `${p} acquired during the partition`);
    assert.equal(await canWrite(c.dev(p)), false);
  }
  assert.ok(await canWrite(c.dev(cut)), 'the partitioned owner lost write access');
  const refusals = peers.flatMap((p) => c.events(p).filter((e) => e.time >= t0 && e.event === 'acquire-failed' && e.reason === 'owner-alive-on-disk')).length;

  const t1 = Date.now();
  await c.kill(cut);
  const next = successor(cut);
  await c.waitFor(`app in service on ${next}`, async () => (await c.runners(H, peers)).join() === next, TAKEOVER_BOUND_MS);
  const acquired = lastEvent(next, t1, (e) => e.event === 'acquired' && e.hierarchy === H);
  t.diagnostic(`partition held ${t1 - t0} ms with ${refusals} owner-alive-on-disk refusals; owner ${cut} killed -> app in service on ${next} after ${Date.now() - t1} ms`);
  assert.equal(nodeOfKey(acquired?.preempted), cut, `${next} should have preempted ${cut}: ${JSON.stringify(acquired)}`);
  assert.equal(await canWrite(c.dev(cut)), false);
  await c.healNetwork(cut);
});

test('daemon killed, host alive: its guard stops app and releases the disk; a peer reserves it, no preemption', { skip, timeout: bound(120_000) }, async (t) => {
  const holder = await owner();
  const live: NodeName[] = [];
  for (const n of NODE_NAMES) if (n !== holder && (await c.tryStatus(n, 2000)) !== null) live.push(n);
  assert.ok(live.length > 0, 'no live peer to take over');
  const t0 = Date.now();
  c.procs.get(holder)?.kill('SIGKILL'); // the daemon alone: its guard and Dummy live on
  await c.waitFor(`app in service on one of ${live.join(', ')}`, async () => (await c.runners(H, live)).length === 1, TAKEOVER_BOUND_MS);
  const ms = Date.now() - t0;
  const taker = (await c.runners(H, live))[0] as NodeName;
  await c.waitFor(`${holder}'s guard done`, () => c.pids(holder).filter((p) => !isZombie(p)).length === 0, bound(30_000));
  const guard = readFileSync(c.logFile(holder), 'utf8').split('\n').filter((l) => l.startsWith('harness guard:'));
  const acquired = lastEvent(taker, t0, (e) => e.event === 'acquired' && e.hierarchy === H);
  t.diagnostic(`daemon of ${holder} killed -> app in service on ${taker} after ${ms} ms; acquired ${JSON.stringify(acquired)}; guard: ${guard.join(' | ')}`);
  assert.ok(guard.some((l) => l.includes(`${H}: stopped and released`)), `${holder}'s guard did not release: ${guard.join(' | ')}`);
  assert.ok(acquired, `${taker} logged no acquired event`);
  // Handed over (the guard leaves its released marker, never an unreserved disk): taken at once.
  assert.ok(acquired.preempted === undefined || isReleasedKey(parseKey(String(acquired.preempted))), `${taker} preempted ${holder}'s live key (${String(acquired.preempted)}) instead of taking the handed-over disk`);
  assert.ok(!(await keysOnDisk()).some((k) => nodePart(k) === partOf(holder)), `${holder} is still registered`);
  assert.ok(await canWrite(c.dev(taker)), `the new owner ${taker} cannot write`);
});
