// The guard when only the daemon dies (host alive, guard and agents alive): it holds the
// hierarchy's disk while it stops the resources, then releases it. Real daemons, the real guard
// shell on the file backend, an application whose stop takes 3 s — longer than dead time +
// liveness window (0.9 + 0.7 s), after which a peer would preempt a frozen key.
//  - all stops succeed: the peer must not start before the old copy is stopped, and takes the
//    released disk without preempting;
//  - a stop fails: the guard keeps the disk (nothing may start beside a half-stopped copy), its key
//    freezes, and the peer preempts as it would a dead node.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import { isReleasedKey, parseKey } from '../../fencing/keys.ts';

const c = new LocalCluster({
  nodes: ['n1', 'n2'],
  net: 87,
  hierarchies: {
    'slow.yaml': diskAndApp('slow', ['n1', 'n2'], { app: ['params: { stop_delay: "3" }'] }),
  },
});
after(() => c.teardown(process.env.KEEP === '1'));

/** The hang agent's "running" marker of app on a node (its default state file). */
const running = (node: string) => existsSync(join(c.rscTmp(node), 'harness-hang-slow.app.state'));
const guardLog = (node: string) => readFileSync(c.logFile(node), 'utf8').split('\n').filter((l) => l.startsWith('harness guard:'));

/** Sample both nodes' markers every 10 ms until `until` resolves: any sample with both running fails. */
async function sampleWhile<T>(until: Promise<T>): Promise<{ both: number; samples: number; value: T }> {
  let done = false;
  let both = 0;
  let samples = 0;
  const loop = (async () => {
    while (!done) {
      if (running('n1') && running('n2')) both++;
      samples++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const value = await until.finally(() => (done = true));
  await loop;
  return { both, samples, value };
}

test('daemon killed, guard alive, a stop slower than dead time + liveness window: the peer starts only after the guard released', async () => {
  c.start('n1');
  await c.waitFor('slow on n1', async () => (await c.runners('slow', ['n1'])).length === 1, 30_000, 100);
  c.start('n2');
  await c.waitFor('n2 standby', async () => (await c.status('n2').catch(() => null))?.hierarchies[0]?.phase === 'out-of-service', 30_000, 100);
  const t0 = Date.now();
  c.signalDaemon('n1', 'SIGKILL');
  let ms = 0;
  const r = await sampleWhile(
    (async () => {
      await c.waitFor('slow in service on n2', async () => (await c.runners('slow', ['n2'])).length === 1, 30_000, 20);
      ms = Date.now() - t0;
      // Until the old copy is gone too: an overlap shows after the takeover, not before it.
      await c.waitFor('app stopped on n1', () => !running('n1'), 30_000, 10);
    })(),
  );
  const acquired = c.events('n2').find((e) => e.event === 'acquired' && e.hierarchy === 'slow');
  const log = guardLog('n1');
  console.log(`# daemon killed -> slow on n2 after ${ms} ms; ${r.samples} samples; guard: ${log.join(' | ')}`);
  assert.equal(r.both, 0, `app ran on both nodes in ${r.both} of ${r.samples} samples; guard: ${log.join(' | ')}`);
  assert.ok(ms >= 3000, `n2 took over ${ms} ms after the kill, before n1's 3 s stop could have finished`);
  assert.ok(acquired, 'n2 logged no acquired event');
  // Handed over, not preempted as a frozen key: the guard left its released marker (never an
  // unreserved disk), which n2 takes at once.
  assert.ok(acquired.preempted === undefined || isReleasedKey(parseKey(String(acquired.preempted))), `n2 preempted n1's live key (${String(acquired.preempted)}) instead of taking the handed-over disk`);
  assert.ok(log.some((l) => /slow: stopped and released/.test(l)), `guard log: ${log.join(' | ')}`);
});

test('the guard\'s stop fails: it keeps the disk, its key freezes, the peer preempts', async () => {
  // Now on n2, with n1 back as standby; make n2's stop fail (fail_on: stop) through a reload.
  c.start('n1');
  await c.waitFor('n1 standby', async () => (await c.status('n1').catch(() => null))?.hierarchies[0]?.phase === 'out-of-service', 30_000, 100);
  // A state "file" that is a directory: monitor still sees it running, the stop's `rm -f` fails.
  const marker = join(c.rscTmp('n2'), 'harness-hang-slow.app.state');
  assert.ok(existsSync(marker), 'slow is not running on n2');
  rmSync(marker);
  mkdirSync(marker);
  const t0 = Date.now();
  c.signalDaemon('n2', 'SIGKILL');
  await c.waitFor('slow in service on n1', async () => (await c.runners('slow', ['n1'])).length === 1, 30_000, 20);
  const ms = Date.now() - t0;
  const acquired = c.events('n1').filter((e) => e.event === 'acquired' && e.hierarchy === 'slow').at(-1);
  const log = guardLog('n2');
  console.log(`# failing stop: slow on n1 after ${ms} ms; guard: ${log.join(' | ')}`);
  assert.ok(acquired?.preempted, `n1 did not preempt n2: ${JSON.stringify(acquired)}`);
  assert.ok(log.some((l) => /stop slow\/app FAILED/.test(l)) && log.some((l) => /keeping its disks/.test(l)), `guard log: ${log.join(' | ')}`);
});

test('a daemon restarted while its old guard still stops and holds waits for that guard before touching anything', async () => {
  // slow runs on n1 now (the previous test); its stop takes 3 s.
  await c.waitFor('slow on n1', async () => (await c.runners('slow', ['n1'])).length === 1, 30_000, 100);
  const since = Date.now();
  const gone = () => guardLog('n1').filter((l) => /daemon gone/.test(l)).length;
  const goneBefore = gone();
  c.signalDaemon('n1', 'SIGKILL');
  await c.waitFor('the old guard stopping', () => gone() > goneBefore, 10_000, 20);
  // The old guard and its stop, frozen: still at work however long the new daemon takes to come
  // up on a loaded machine (its configuration check alone 0.6-1.8 s, against a 3 s stop). Its key
  // freezes too, so n2 may well preempt it meanwhile: what is asserted below holds either way.
  const frozen = c.signalNode('n1', 'SIGSTOP');
  c.start('n1');
  await c.waitFor('the new daemon finds the old guard at work', () => c.events('n1').some((e) => e.time >= since && e.event === 'guard-previous'), 30_000, 50);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!c.events('n1').some((e) => e.time >= since && e.event === 'node-started'), 'the new daemon started beside the frozen old guard');
  for (const pid of frozen) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  await c.waitFor('n1 started again', () => c.events('n1').some((e) => e.time >= since && e.event === 'node-started'), 30_000, 50);
  const previous = c.events('n1').filter((e) => e.time >= since && e.event === 'guard-previous');
  const found = previous.find((e) => e.waitedMs === undefined);
  const waited = previous.find((e) => typeof e.waitedMs === 'number');
  console.log(`# restarted daemon found the earlier guard at work ${found ? found.time - since : '-'} ms after the kill, waited ${String(waited?.waitedMs)} ms for it`);
  assert.ok(found, 'the restarted daemon did not find the earlier guard at work');
  assert.ok(waited && (waited.waitedMs as number) >= 500, `the restarted daemon waited only ${String(waited?.waitedMs)} ms for the earlier guard, frozen 500 ms`);
  const started = c.events('n1').find((e) => e.time >= since && e.event === 'node-started')!;
  assert.ok(started.time >= waited.time, 'started before the earlier guard was done');
  await c.waitFor('slow in service on exactly one node', async () => (await c.runners('slow')).length === 1, 30_000, 100);
});
