// Local recovery and stuck agents, on three real daemons:
//  d) a monitor failure -> restart in place; the (N+1)th failure in the window -> failover
//  f) an agent that hangs is killed at its timeout (whole process group) and the hierarchy is
//     handled per policy: a stop that never finishes leaves it FAILED here with ownership kept,
//     so no other node starts a second copy
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import { controlRequest } from '../../harness/control.ts';

const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');

let c: LocalCluster;
before(() => {
  c = new LocalCluster({
    net: 82,
    hierarchies: {
      'delta.yaml': diskAndApp('delta', ['n1', 'n2', 'n3'], {
        agent: hasDummy ? 'ocf:heartbeat:Dummy' : 'ocf:harness:hang',
        app: ['monitor: [ { interval: 300ms } ]', 'restart: { max: 2, window: 10m }'],
      }),
      'stuck.yaml': diskAndApp('stuck', ['n3', 'n2', 'n1'], { app: ['params: { hang_on: stop }', 'timeouts: { stop: 1s }'] }),
    },
  });
  for (const n of c.nodes) c.start(n);
});
after(async () => c.teardown(process.env.KEEP === '1'));

function stateFile(node: string): string {
  return hasDummy ? join(c.rscTmp(node), 'Dummy-delta.app.state') : join(c.rscTmp(node), 'harness-hang-delta.app.state');
}

test('d) monitor failure: restarted in place twice, then the third failure fails over', { skip: !hasDummy && 'resource-agents not installed' }, async () => {
  await c.waitFor('delta on n1', async () => (await c.runners('delta')).join() === 'n1', 30_000, 100);
  for (let i = 1; i <= 2; i++) {
    rmSync(stateFile('n1'), { force: true });
    await c.waitFor(`restart #${i}`, () => c.events('n1').filter((e) => e.event === 'restarted' && e.hierarchy === 'delta').length >= i, 10_000, 50);
    assert.deepEqual(await c.runners('delta'), ['n1'], 'still on n1 after a local restart');
  }
  const t0 = Date.now();
  rmSync(stateFile('n1'), { force: true });
  await c.waitFor('delta on n2', async () => (await c.runners('delta')).join() === 'n2', 15_000, 50);
  console.log(`# third monitor failure -> delta in service on n2 after ${Date.now() - t0} ms`);
  const s = await c.status('n1');
  const h = s.hierarchies.find((x) => x.name === 'delta')!;
  assert.equal(h.phase, 'out-of-service');
  assert.match(h.note, /not eligible/);
});

test('f) a hanging stop is killed at its timeout; the hierarchy is FAILED, ownership kept, nobody else starts it', async () => {
  await c.waitFor('stuck on n3', async () => (await c.runners('stuck')).join() === 'n3', 30_000, 100);
  const t0 = Date.now();
  await controlRequest(c.socket('n3'), { cmd: 'hierarchy', name: 'stuck', action: 'stop' });
  await c.waitFor('stuck failed on n3', async () => (await c.tryStatus('n3'))?.hierarchies.find((x) => x.name === 'stuck')?.phase === 'failed', 15_000, 50);
  const ms = Date.now() - t0;
  console.log(`# hanging stop: hierarchy marked FAILED after ${ms} ms (stop timeout 1 s + TERM->KILL grace)`);
  assert.ok(ms >= 900, 'not before the timeout');
  const ev = c.events('n3').find((e) => e.event === 'agent-stop' && e.hierarchy === 'stuck');
  assert.equal(ev?.result, 'timeout');
  // The hang agent forks a `sleep`; its whole process group must be gone.
  const leftovers = c.pids('n3').filter((p) => {
    try { return existsSync(`/proc/${p}`) && require_cmd(p).includes('sleep'); } catch { return false; }
  });
  assert.deepEqual(leftovers, [], 'no process of the killed agent survives');
  const s3 = await c.status('n3');
  const h = s3.hierarchies.find((x) => x.name === 'stuck')!;
  assert.equal(h.ownership, 'owned', 'ownership kept while the stop failed');
  await new Promise((r) => setTimeout(r, 2000));
  assert.deepEqual((await c.runners('stuck', ['n1', 'n2'])), [], 'no other node started it');
  const s1 = await c.status('n1');
  assert.match(s1.hierarchies.find((x) => x.name === 'stuck')!.note, /held out of service cluster-wide/);
});

import { readFileSync } from 'node:fs';
function require_cmd(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
}
