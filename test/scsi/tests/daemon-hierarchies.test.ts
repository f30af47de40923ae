// Several hierarchies on one cluster of three real daemons (scsi backend, real LIO):
//   - bad disks: a path that does not exist, a loop device and a scsi_debug disk (no persistent
//     reservations), a LUN configured with a WWN it does not have. Every daemon starts anyway, logs
//     `disk-unusable` naming the problem, shows it in the hierarchy's status note, and never owns
//     or runs those hierarchies;
//   - the good ones are unaffected: alpha (disk0, node1 > node3) and beta (disk1, node2 > node3)
//     run on different nodes; both owners die at once and node3 takes both, in parallel.
// Nodes not listed in a priority list never run the hierarchy: node1 can never take beta, nor
// node2 alpha, whatever order the daemons come up in.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NODE_NAMES, bound, devs, loopDev, noPrDev, notInBed, wipe, wwn } from './lib/bed.ts';
import type { NodeName } from './lib/bed.ts';
import { DEAD_TIME_MS, LIVENESS_WINDOW_MS, ScsiCluster, canWrite, dummyHierarchy, keysOnDisk, nodeOfKey } from './lib/daemons.ts';
import type { LogEvent } from './lib/daemons.ts';

const skip = notInBed();
const ALL: NodeName[] = ['node1', 'node2', 'node3'];
/** Bad hierarchy -> what its `disk-unusable` message must say. */
const BAD: Record<string, RegExp> = {
  'bad-missing': /no such device|No such file/i,
  'bad-loop': /not SCSI|read-keys|Inappropriate ioctl/i,
  'bad-nopr': /Invalid opcode|persistent reserv|unsupported/i,
  'bad-wwn': /wrong disk/,
};
let c: ScsiCluster;

before(async () => {
  if (skip) return;
  await Promise.all([wipe(0), wipe(1)]);
  c = new ScsiCluster({
    tag: 'hier',
    hierarchies: (cl) => ({
      'alpha.yaml': dummyHierarchy('alpha', ['node1', 'node3'], { path: cl.diskPath(0), wwn: wwn(0) }),
      'beta.yaml': dummyHierarchy('beta', ['node2', 'node3'], { path: cl.diskPath(1), wwn: wwn(1) }),
      'bad-missing.yaml': dummyHierarchy('bad-missing', ALL, { path: cl.diskPath(0).replace(/disk0$/, 'no-such-disk') }),
      'bad-loop.yaml': dummyHierarchy('bad-loop', ALL, { path: cl.link('loop', () => loopDev()) }),
      'bad-nopr.yaml': dummyHierarchy('bad-nopr', ALL, { path: cl.link('nopr', () => noPrDev()) }),
      // disk0 (under another name: validation refuses one path, or one WWN, in two hierarchies)
      // with a WWN no LUN here has: the wrong disk must never be reserved.
      'bad-wwn.yaml': dummyHierarchy('bad-wwn', ALL, { path: cl.link('disk0-again', (n) => devs(n, 0)[0] as string), wwn: wwn(0).replace(/.$/, (d) => (d === '0' ? '1' : '0')) }),
    }),
  });
  const t0 = Date.now();
  // The preferred nodes first, the standby of both once they are on the network. Not all at once:
  // under emulation one daemon may come up seconds after the others (CI saw 4 s), past the
  // start-up grace, and node3 then rightly takes what it finds unowned and keeps it (intelligent
  // switchback). Started after node1 and node2 send heartbeats, node3 hears them at once, and a
  // reachable node of higher priority (probing, starting or running) keeps it standby.
  c.start('node1');
  c.start('node2');
  await c.waitFor('node1 and node2 on the network', () => (['node1', 'node2'] as const).every((n) => c.events(n).some((e) => e.event === 'node-started')), bound(90_000), 100);
  await c.startAll(['node3']);
  await Promise.all((['node1', 'node2'] as const).map((n) => c.waitProbed(n)));
  await c.waitFor('alpha on node1 and beta on node2', async () => (await c.runners('alpha')).join() === 'node1' && (await c.runners('beta')).join() === 'node2', bound(60_000), 200);
  console.log(`# daemon-hierarchies: three daemons up, alpha on node1, beta on node2, ${Date.now() - t0} ms after the first start`);
});

after(async () => {
  await c?.teardown();
});

test('bad disks: every daemon starts, refuses those hierarchies (disk-unusable, status note) and runs the others', { skip, timeout: bound(60_000) }, async (t) => {
  for (const node of NODE_NAMES) {
    const events = c.events(node);
    assert.ok(events.some((e) => e.event === 'node-started'), `${node} did not start`);
    const st = await c.status(node);
    for (const [h, why] of Object.entries(BAD)) {
      const ev = events.find((e) => e.event === 'disk-unusable' && e.hierarchy === h);
      assert.ok(ev, `${node} logged no disk-unusable for ${h}`);
      assert.match(String(ev.err), why, `${node} ${h}: ${String(ev.err)}`);
      const hs = st.hierarchies.find((x) => x.name === h);
      assert.ok(hs, `${node} has no status for ${h}`);
      assert.match(hs.note, /^disk unusable: /, `${node} ${h} note: ${hs.note}`);
      assert.equal(hs.phase, 'out-of-service', `${node} ${h} is ${hs.phase}`);
      assert.equal(hs.ownership, 'not-owned', `${node} ${h} ownership ${hs.ownership}`);
      assert.ok(!events.some((e) => e.hierarchy === h && (e.event === 'acquired' || (e.event === 'action' && e.action === 'acquire'))), `${node} tried to own ${h}`);
      if (node === 'node1') t.diagnostic(`${h}: ${hs.note}`);
    }
  }
  // The wrong-WWN hierarchy points at disk0: nothing but alpha's owner may be registered there.
  const keys = await keysOnDisk(0);
  assert.deepEqual(keys.map((k) => nodeOfKey(`0x${k.toString(16)}`)), ['node1'], `disk0 keys: ${keys.map((k) => k.toString(16)).join(' ')}`);
});

function firstEvent(node: NodeName, since: number, pred: (e: LogEvent) => boolean): LogEvent {
  const e = c.events(node).find((x) => x.time >= since && pred(x));
  if (!e) throw new Error(`${node}: no such event since ${new Date(since).toISOString()}\n${c.tail([node], 30)}`);
  return e;
}

test('two hierarchies on two disks, owned by different nodes, fail over in parallel when both owners die', { skip, timeout: bound(120_000) }, async (t) => {
  const t0 = Date.now();
  await Promise.all([c.kill('node1'), c.kill('node2')]);
  const takeover = DEAD_TIME_MS + LIVENESS_WINDOW_MS + bound(30_000);
  await c.waitFor('alpha and beta in service on node3', async () => (await c.runners('alpha', ['node3'])).length === 1 && (await c.runners('beta', ['node3'])).length === 1, takeover);
  const ms = Date.now() - t0;
  const span = (h: string) => {
    const from = firstEvent('node3', t0, (e) => e.event === 'action' && e.action === 'acquire' && e.hierarchy === h).time;
    const acquired = firstEvent('node3', t0, (e) => e.event === 'acquired' && e.hierarchy === h);
    const up = firstEvent('node3', t0, (e) => e.event === 'in-service' && e.hierarchy === h).time;
    return { from, to: acquired.time, up, preempted: nodeOfKey(acquired.preempted) };
  };
  const a = span('alpha');
  const b = span('beta');
  t.diagnostic(`both owners killed -> both in service on node3 after ${ms} ms; alpha: acquire ${a.from - t0}..${a.to - t0} ms, in service at ${a.up - t0} ms; beta: acquire ${b.from - t0}..${b.to - t0} ms, in service at ${b.up - t0} ms`);
  assert.equal(a.preempted, 'node1', 'node3 did not preempt node1 on disk0');
  assert.equal(b.preempted, 'node2', 'node3 did not preempt node2 on disk1');
  // In parallel: neither recovery queued behind the other, so the two (acquire .. in service)
  // intervals overlap. (Not the acquisitions alone: the owners' deaths are detected up to a
  // heartbeat or two apart, and under emulation one acquisition may be over by then.)
  assert.ok(a.from < b.up && b.from < a.up, `the recoveries did not overlap: alpha ${a.from - t0}..${a.up - t0} ms, beta ${b.from - t0}..${b.up - t0} ms`);
  for (const p of devs('node1', 0)) assert.equal(await canWrite(p), false, `dead node1 can write disk0 through ${p}`);
  assert.equal(await canWrite(c.dev('node2', 1)), false, 'dead node2 can write disk1');
  assert.ok(await canWrite(c.dev('node3', 0)), 'node3 cannot write disk0');
  assert.ok(await canWrite(c.dev('node3', 1)), 'node3 cannot write disk1');
});
