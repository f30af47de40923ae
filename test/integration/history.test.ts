// Failover history on real daemons: three kill -9 failovers of `web` (switchback automatic brings
// it back to n1 each time n1 returns), all recorded by n2 across its own restarts of nothing but
// n1. `harness history web --json` on n2 shows the three failovers, each with detect + race +
// recover adding up to its downtime (less what the executor spends between them), and the
// availability over the window is exactly what the records say, to the millisecond.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import type { Availability, HistoryRecord } from '../../harness/history.ts';

const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');
const skip = !hasDummy ? 'resource-agents not installed' : false;
const BIN = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));

let c: LocalCluster;

before(async () => {
  if (skip) return;
  c = new LocalCluster({
    net: 88,
    nodes: ['n1', 'n2'],
    hierarchies: { 'web.yaml': diskAndApp('web', ['n1', 'n2'], { agent: 'ocf:heartbeat:Dummy' }).replace('resources:', 'switchback: automatic\nresources:') },
  });
  for (const n of c.nodes) c.start(n);
});

after(async () => {
  if (c) await c.teardown(process.env.KEEP === '1');
});

function history(node: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'history', '--config', c.clusterFile, '--node', node, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('three failovers: three records whose times add up, availability to the millisecond', { skip }, async () => {
  for (let i = 1; i <= 3; i++) {
    await c.waitFor(`web on n1 (${i})`, async () => (await c.runners('web')).join() === 'n1', 30_000, 100);
    c.signalNode('n1', 'SIGKILL');
    await c.waitFor(`web on n2 (${i})`, async () => (await c.runners('web', ['n2'])).join() === 'n2', 30_000, 25);
    if (i < 3) c.start('n1'); // automatic switchback: web goes home, n2 records it out of service
  }
  // The record is written when n2 declares web in service, a moment after its resources run.
  type Doc = { since: number; now: number; records: HistoryRecord[]; availability: Availability[] };
  const read = () => JSON.parse(history('n2', 'web', '--json', '--since', '1h')) as Doc;
  const doc = await c.waitFor('three failovers recorded', () => {
    const d = read();
    return d.records.filter((r) => r.downMs !== undefined).length >= 3 ? d : undefined;
  }, 10_000, 100).catch(() => read());
  const failovers = doc.records.filter((r) => r.downMs !== undefined);
  assert.equal(failovers.length, 3, JSON.stringify(doc.records));
  for (const f of failovers) {
    assert.equal(f.node, 'n2');
    assert.equal(f.from, 'n1');
    assert.equal(f.transition, 'in-service');
    const parts = f.detectMs! + f.raceMs! + f.recoverMs!;
    console.log(`# failover: down ${f.downMs} ms = detect ${f.detectMs} + race ${f.raceMs} + recover ${f.recoverMs} + other ${f.downMs! - parts}`);
    assert.ok(f.detectMs! > 0 && f.downMs! < 15_000);
    assert.ok(f.downMs! >= parts - 2, 'the parts fit in the downtime (1 ms rounding each)');
    assert.ok(f.downMs! - parts < 500, 'and make up nearly all of it');
  }
  // The hand-backs to n1 in between, recorded by n2 as out of service (one more when n2 was up
  // first at cold start and started web before n1 was heard).
  assert.ok(doc.records.filter((r) => r.transition === 'out-of-service').length >= 2, JSON.stringify(doc.records));
  // Availability exactly as the records say.
  const [a] = doc.availability;
  const down = failovers.reduce((s, f) => s + f.downMs!, 0);
  assert.equal(a!.hierarchy, 'web');
  assert.equal(a!.failovers, 3);
  assert.equal(a!.windowMs, doc.now - doc.since);
  assert.equal(a!.downMs, down);
  assert.equal(a!.percent, 100 * (1 - down / (doc.now - doc.since)));
  assert.equal(a!.nines, Math.floor(-Math.log10(down / (doc.now - doc.since)) + 1e-9));
  // The text report says the same.
  const text = history('n2', 'web', '--since', '1h');
  assert.match(text, new RegExp(`web: availability \\d+\\.\\d{6} % \\(${a!.nines} nines?\\), downtime ${down} ms in 3 outage\\(s\\), 3 failover\\(s\\)`));
  console.log(text.split('\n').map((l) => `# ${l}`).join('\n'));
});
