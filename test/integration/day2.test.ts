// Day-2 operations on three real daemons with Debian's ocf:heartbeat:Dummy, each command issued
// through the real CLI on a node that does NOT run the hierarchy. Every test asserts the exit
// code, the final placement, and what status says on all three nodes (who set it, and when).
//   move (intelligent: stays; automatic: pinned until `move` without a node), a refused move,
//   stop|start cluster-wide, maintenance on|off (a dead resource is left alone; a copy started by
//   hand elsewhere makes it FAILED with nothing stopped), clear, node standby|online, node
//   maintenance, and persistence: across a restart of the node that set it, of all three, and
//   for a node that was down when the request was made.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';
import type { StatusDoc } from '../../harness/status.ts';
import { diskAndApp } from './fixtures.ts';

const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');
const BIN = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));
const skip = !hasDummy && 'resource-agents (ocf:heartbeat:Dummy) not installed';

let c: LocalCluster;
before(() => {
  if (!hasDummy) return;
  c = new LocalCluster({
    net: 97,
    hierarchies: {
      'web.yaml': diskAndApp('web', ['n1', 'n2', 'n3'], { agent: 'ocf:heartbeat:Dummy', app: ['monitor: [ { interval: 300ms } ]'] }),
      'db.yaml': `${diskAndApp('db', ['n1', 'n2', 'n3'], { agent: 'ocf:heartbeat:Dummy', app: ['monitor: [ { interval: 300ms } ]'] })}switchback: automatic\n`,
    },
  });
  for (const n of c.nodes) c.start(n);
});
after(async () => c?.teardown(process.env.KEEP === '1'));

/** The real CLI on `node`, as an admin types it. */
function cli(node: string, ...args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, '--config', c.clusterFile, '--node', node], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr, ms: Date.now() - t0 });
    });
  });
}

/** Issue, check the exit code, and print the command's time for the closing note. */
async function run(node: string, expect: number, ...args: string[]): Promise<string> {
  const r = await cli(node, ...args);
  const done = /done in (\d+\.\d+) s/.exec(r.out)?.[1];
  console.log(`# ${args.join(' ')} (on ${node}): exit ${r.code}${done ? `, cluster there in ${done} s` : ''}; command ${(r.ms / 1000).toFixed(2)} s`);
  assert.equal(r.code, expect, r.out);
  return r.out;
}

const statuses = (): Promise<StatusDoc[]> => Promise.all(c.nodes.map((n) => c.status(n)));
const h = (s: StatusDoc, name: string) => s.hierarchies.find((x) => x.name === name)!;
const dummyState = (node: string, hierarchy: string) => join(c.rscTmp(node), `Dummy-${hierarchy}.app.state`);

async function settled(name: string, node: string): Promise<void> {
  await c.waitFor(`${name} on ${node} only`, async () => (await c.runners(name)).join() === node, 30_000, 100);
}

test('setup: web and db in service on n1', { skip }, async () => {
  await settled('web', 'n1');
  await settled('db', 'n1');
});

test('hierarchy move (intelligent), issued on n3: web switches over to n2 and stays; every node shows it', { skip }, async () => {
  const out = await run('n3', 0, 'hierarchy', 'web', 'move', 'n2');
  assert.match(out, /web: move to n2/);
  assert.match(out, /done in \d+\.\d+ s/);
  assert.deepEqual(await c.runners('web'), ['n2']);
  for (const s of await statuses()) {
    assert.equal(h(s, 'web').states.n2?.state, 'in-service', `${s.node} sees web on n2`);
    assert.equal(h(s, 'web').admin.move, undefined, `${s.node}: an intelligent hierarchy needs no pin once moved`);
  }
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await c.runners('web'), ['n2'], 'it stays on n2');
});

test('hierarchy move (automatic), issued on n2: db goes to n3 and does not bounce back; `move` without a node takes it home', { skip }, async () => {
  await run('n2', 0, 'hierarchy', 'db', 'move', 'n3');
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await c.runners('db'), ['n3'], 'pinned: automatic switchback does not take it back to n1');
  for (const s of await statuses()) {
    const pin = h(s, 'db').admin.move;
    assert.equal(pin?.value, 'n3', `${s.node} shows the pin`);
    assert.match(pin!.by, /@/, 'who');
    assert.ok(pin!.at > Date.now() - 60_000, 'when');
  }
  const out = await run('n2', 0, 'hierarchy', 'db', 'move');
  assert.match(out, /db: move to n1/);
  assert.deepEqual(await c.runners('db'), ['n1']);
  for (const s of await statuses()) assert.equal(h(s, 'db').admin.move, undefined, `${s.node}: pin gone`);
});

test('a move to a node that cannot take it is refused with the reason, and changes nothing', { skip }, async () => {
  const out = await run('n1', 1, 'hierarchy', 'web', 'move', 'n9');
  assert.match(out, /web cannot move to n9: n9 is not in web's priority list/);
  const out2 = await run('n1', 1, 'hierarchy', 'nope', 'move', 'n2');
  assert.match(out2, /no hierarchy "nope"/);
  assert.deepEqual(await c.runners('web'), ['n2']);
});

test('hierarchy stop | start, issued on n1 (web runs on n2): out of service cluster-wide, then back', { skip }, async () => {
  await run('n1', 0, 'hierarchy', 'web', 'stop');
  assert.deepEqual(await c.runners('web'), []);
  for (const s of await statuses()) {
    assert.equal(h(s, 'web').admin.stop?.value, true, `${s.node} shows the stop`);
    assert.equal(h(s, 'web').states[s.node]?.state, 'held');
  }
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await c.runners('web'), [], 'nobody takes it over');
  await run('n1', 0, 'hierarchy', 'web', 'start');
  assert.equal((await c.runners('web')).length, 1);
  for (const s of await statuses()) assert.equal(h(s, 'web').admin.stop, undefined);
});

test('hierarchy maintenance on, issued off the runner: a dead resource is left dead, nothing restarts or takes it over; off with it healthy restarts nothing', { skip }, async () => {
  const runner = (await c.runners('web'))[0]!;
  const other = c.nodes.find((n) => n !== runner)!;
  await run(other, 0, 'hierarchy', 'web', 'maintenance', 'on');
  for (const s of await statuses()) assert.equal(h(s, 'web').admin.maintenance?.value, true, `${s.node} shows maintenance`);
  // The admin works on the application: it is down for a while; nobody reacts.
  const file = dummyState(runner, 'web');
  const saved = readFileSync(file);
  rmSync(file);
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(!existsSync(file), 'not restarted in maintenance');
  assert.deepEqual(await c.runners('web', c.nodes.filter((n) => n !== runner)), [], 'not taken over');
  assert.match(h(await c.status(runner), 'web').note, /MAINTENANCE/);
  writeFileSync(file, saved); // back by hand
  const startsBefore = c.events(runner).filter((e) => e.event === 'action' && e.action === 'start' && e.hierarchy === 'web').length;
  await run(other, 0, 'hierarchy', 'web', 'maintenance', 'off');
  assert.deepEqual(await c.runners('web'), [runner], 'still where it was');
  const startsAfter = c.events(runner).filter((e) => e.event === 'action' && e.action === 'start' && e.hierarchy === 'web').length;
  assert.equal(startsAfter, startsBefore, 'nothing restarted: the probe found it running');
});

test('maintenance off with the resource running on two nodes: FAILED with a note, nothing stopped; clear after the admin fixed it', { skip }, async () => {
  const runner = (await c.runners('web'))[0]!;
  const extra = c.nodes.find((n) => n !== runner)!;
  await run(extra, 0, 'hierarchy', 'web', 'maintenance', 'on');
  writeFileSync(dummyState(extra, 'web'), ''); // started by hand on a second node
  const out = await run(runner, 1, 'hierarchy', 'web', 'maintenance', 'off');
  assert.match(out, /FAILED/);
  const s = await c.status(extra);
  assert.equal(h(s, 'web').phase, 'failed');
  assert.match(h(s, 'web').note, /running on two nodes/);
  assert.ok(existsSync(dummyState(extra, 'web')) && existsSync(dummyState(runner, 'web')), 'nothing stopped automatically');
  // The admin stops the extra copy by hand, then clears.
  rmSync(dummyState(extra, 'web'));
  await run(runner, 0, 'hierarchy', 'web', 'clear');
  assert.deepEqual(await c.runners('web'), [runner]);
  for (const st of await statuses()) assert.notEqual(h(st, 'web').phase, 'failed');
});

test('node standby, issued on n1: everything moves off n2, which runs nothing until online; every node shows it', { skip }, async () => {
  await run('n1', 0, 'hierarchy', 'web', 'move', 'n2');
  await run('n1', 0, 'node', 'n2', 'standby');
  assert.ok(!(await c.runners('web')).includes('n2') && !(await c.runners('db')).includes('n2'));
  for (const s of await statuses()) {
    const n2 = s.nodes.find((n) => n.name === 'n2')!;
    assert.equal(n2.admin.standby?.value, true, `${s.node} shows n2 in standby`);
  }
  const refused = await run('n3', 1, 'hierarchy', 'web', 'move', 'n2');
  assert.match(refused, /n2 is in standby/);
  await run('n3', 0, 'node', 'n2', 'online');
  for (const s of await statuses()) assert.equal(s.nodes.find((n) => n.name === 'n2')!.admin.standby, undefined);
});

test('node maintenance on|off, issued on n3: every hierarchy on n1 unmanaged, then managed again', { skip }, async () => {
  await run('n3', 0, 'node', 'n1', 'maintenance', 'on');
  const s1 = await c.status('n1');
  for (const name of ['web', 'db']) if (h(s1, name).phase === 'in-service') assert.match(h(s1, name).note, /MAINTENANCE/);
  await run('n3', 0, 'node', 'n1', 'maintenance', 'off');
  for (const s of await statuses()) assert.equal(s.nodes.find((n) => n.name === 'n1')!.admin.maintenance, undefined);
});

test('persistence: standby survives a restart of the node that set it and of all three; a node down during a request learns it before it acts', { skip }, async () => {
  await run('n2', 0, 'node', 'n3', 'standby');
  // The node that set it (n2) restarts.
  c.signalDaemon('n2', 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  c.start('n2');
  await c.waitFor('n2 back', () => c.tryStatus('n2'), 20_000, 100);
  assert.equal((await c.status('n2')).nodes.find((n) => n.name === 'n3')!.admin.standby?.value, true, 'n2 kept it');
  // The whole cluster restarts.
  for (const n of c.nodes) await c.stop(n, 'stop');
  for (const n of c.nodes) c.start(n);
  await c.waitFor('all back', async () => (await Promise.all(c.nodes.map((n) => c.tryStatus(n)))).every(Boolean), 20_000, 100);
  for (const s of await statuses()) assert.equal(s.nodes.find((n) => n.name === 'n3')!.admin.standby?.value, true, `${s.node} kept it`);
  await run('n1', 0, 'node', 'n3', 'online');

  // n3 is down while web is stopped cluster-wide; on rejoin it learns that before any action.
  await c.stop('n3');
  // A move while n3 is down is no failover from n3 (history and metrics count failovers).
  const from = (await c.runners('web'))[0]!;
  const to = from === 'n1' ? 'n2' : 'n1';
  await run('n1', 0, 'hierarchy', 'web', 'move', to);
  assert.equal(h(await c.status(to), 'web').lastFailover?.from, null, 'in service after a move, not a failover from the node that is down');
  await run('n1', 0, 'hierarchy', 'web', 'stop');
  const before = c.events('n3').length;
  c.start('n3');
  // Only n3's own status counts: a fallback to a peer's status could pass before n3 had heard anything.
  await c.waitFor('n3 learned', async () => {
    const s = await c.tryStatus('n3');
    return s !== null && h(s, 'web').admin.stop !== undefined;
  }, 20_000, 100);
  const mine = c.events('n3').slice(before);
  const learned = mine.findIndex((e) => e.event === 'admin-learned');
  const acted = mine.findIndex((e) => e.event === 'action' && !['probe', 'unregister'].includes(String(e.action)));
  assert.ok(learned >= 0, 'n3 learned the stop from a peer');
  assert.ok(acted === -1 || learned < acted, 'before it acted');
  assert.match(readFileSync(join(c.dir, 'state', 'n3', 'admin.json'), 'utf8'), /"h\/web\/stop"/, 'kept in its stateDir');
  await run('n3', 0, 'hierarchy', 'web', 'start');
});

test('cluster.yaml reload: a live field applies, a restart-only field is refused with "needs a restart"; every node shows the same new fingerprint', { skip }, async () => {
  const before = await statuses();
  const fp = before[0]!.nodes.find((n) => n.self)!.config;
  assert.ok(fp && before.every((s) => s.nodes.every((n) => n.config === fp)), 'one fingerprint everywhere');
  const text = readFileSync(c.clusterFile, 'utf8');
  assert.match(text, /onStop: switchover/);
  const marks = Object.fromEntries(c.nodes.map((n) => [n, c.events(n).length]));
  writeFileSync(c.clusterFile, text.replace('onStop: switchover', 'onStop: stop').replace(/deadTime: \w+/, 'deadTime: 5s'));
  for (const n of c.nodes) {
    await c.waitFor(`${n} reloaded`, () => c.events(n).slice(marks[n]).some((e) => e.event === 'reload-live'), 20_000, 100);
    const mine = c.events(n).slice(marks[n]);
    assert.deepEqual(mine.find((e) => e.event === 'reload-live')!.fields, ['onStop']);
    const refused = mine.find((e) => e.event === 'reload-needs-restart')!;
    assert.deepEqual(refused.fields, ['deadTimeMs']);
    assert.match(refused.msg, /deadTimeMs changed: needs a restart/);
  }
  await c.waitFor('new fingerprint everywhere', async () => {
    const now = await statuses();
    const f = now[0]!.nodes.find((n) => n.self)!.config;
    return f !== fp && now.every((s) => s.nodes.every((n) => n.config === f)) ? f : null;
  }, 20_000, 100);
  writeFileSync(c.clusterFile, text);
});
