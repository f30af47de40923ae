// Good configurations normalise into hierarchies/model.ts: defaults applied, relative paths
// resolved, `{node}` substituted, durations in milliseconds, params as strings. The shipped
// examples load.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../../harness/defaults.ts';
import { parseDuration } from '../../hierarchies/duration.ts';
import { formatIssue, loadCluster, loadConfig, stateDirFor } from '../../hierarchies/load.ts';
import { levels } from '../../hierarchies/tree.ts';

const root = mkdtempSync(join(tmpdir(), 'harness-config-load-'));
after(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
function fixture(cluster: string, hierarchies: Record<string, string> = {}): string {
  const dir = join(root, `c${++count}`);
  mkdirSync(join(dir, 'hierarchies'), { recursive: true });
  writeFileSync(join(dir, 'cluster.yaml'), cluster);
  for (const [name, text] of Object.entries(hierarchies)) writeFileSync(join(dir, 'hierarchies', name), text);
  writeFileSync(join(dir, 'authkey'), 'k'.repeat(32), { mode: 0o600 });
  chmodSync(join(dir, 'authkey'), 0o600);
  return join(dir, 'cluster.yaml');
}

const MINIMAL = `cluster: mini
nodes:
  - { name: n1, addresses: ["127.0.0.11:7400"] }
  - { name: n2, addresses: ["127.0.0.12:7400"] }
authKeyFile: authkey
ownership: { backend: scsi }
`;

test('durations', () => {
  assert.equal(parseDuration(1500), 1500);
  assert.equal(parseDuration(0), 0);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration(' 2s '), 2000);
  for (const bad of ['30', '2 s', 's', '', '2x', '-1s', '1s2', -1, 1.5, null, true, [], {}, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => parseDuration(bad), /duration|unit/, `rejects ${JSON.stringify(bad)}`);
  }
  assert.throws(() => parseDuration('30'), /no unit: write "30ms" or "30s"/);
});

test('cluster defaults', () => {
  const f = fixture(MINIMAL);
  const c = loadCluster(f);
  const dir = join(f, '..');
  assert.equal(c.file, f);
  assert.equal(c.cluster, 'mini');
  assert.equal(c.heartbeatIntervalMs, DEFAULTS.heartbeatIntervalMs);
  assert.equal(c.deadTimeMs, DEFAULTS.deadTimeMs);
  assert.equal(c.authKeyFile, join(dir, 'authkey'));
  assert.equal(c.hierarchyDir, join(dir, 'hierarchies'));
  assert.equal(c.stateDir, '/var/lib/harness/{node}');
  assert.deepEqual(c.ownership, { backend: 'scsi' });
  assert.deepEqual(c.agentDirs, []);
  assert.equal(c.ocfRoot, '/usr/lib/ocf');
  assert.equal(c.maxParallelHierarchies, DEFAULTS.maxParallelHierarchies);
  assert.equal(c.onStop, 'switchover');
  assert.equal(c.controlGroup, undefined);
  assert.deepEqual(c.nodes, [
    { name: 'n1', addresses: ['127.0.0.11:7400'], controlSocket: '/run/harness/harness.sock', stateDir: '/var/lib/harness/n1' },
    { name: 'n2', addresses: ['127.0.0.12:7400'], controlSocket: '/run/harness/harness.sock', stateDir: '/var/lib/harness/n2' },
  ]);
});

test('cluster with every field: {node} substitution, relative paths, durations', () => {
  const f = fixture(`cluster: full-1
nodes:
  - name: n1
    addresses: ["127.0.0.11:7400", "[::1]:7401"]
    controlSocket: run/{node}.sock
  - name: n2
    addresses: ["127.0.0.12:7400", "[::1]:7402"]
    controlSocket: /run/harness/{node}.sock
heartbeat: { interval: 100ms, deadTime: 1s }
authKeyFile: ./authkey
stateDir: state/{node}
hierarchyDir: ../shared-hierarchies
ownership: { backend: file, dir: ./own }
agentDirs: [./agents, /opt/agents]
ocfRoot: /opt/ocf
maxParallelHierarchies: 4
onStop: stop
controlGroup: haclient
`);
  const dir = join(f, '..');
  const c = loadCluster(f);
  assert.equal(c.heartbeatIntervalMs, 100);
  assert.equal(c.deadTimeMs, 1000);
  assert.equal(c.stateDir, join(dir, 'state/{node}'));
  assert.equal(c.nodes[0]?.stateDir, join(dir, 'state/n1'));
  assert.equal(stateDirFor(c, 'n2'), join(dir, 'state/n2'));
  assert.equal(c.nodes[0]?.controlSocket, join(dir, 'run/n1.sock'));
  assert.equal(c.nodes[1]?.controlSocket, '/run/harness/n2.sock');
  assert.equal(c.hierarchyDir, join(dir, '../shared-hierarchies'));
  assert.deepEqual(c.ownership, { backend: 'file', dir: join(dir, 'own') });
  assert.deepEqual(c.agentDirs, [join(dir, 'agents'), '/opt/agents']);
  assert.equal(c.ocfRoot, '/opt/ocf');
  assert.equal(c.maxParallelHierarchies, 4);
  assert.equal(c.onStop, 'stop');
  assert.equal(c.controlGroup, 'haclient');
});

test('hierarchy defaults and normalisation', () => {
  const f = fixture(MINIMAL, {
    'app.yaml': `hierarchy: app
priority: { n2: 1, n1: 2 }
resources:
  - name: data
    disk: { paths: [/dev/sdb, /dev/sdc], wwn: naa.600140512345 }
  - name: app
    agent: ocf:heartbeat:Dummy
    params: { port: 8080, enabled: true, ratio: 0.5, name: x }
    requires: [data]
`,
  });
  const { hierarchies } = loadConfig(f);
  const h = hierarchies[0];
  assert.ok(h);
  assert.equal(h.file, join(f, '..', 'hierarchies', 'app.yaml'));
  assert.equal(h.name, 'app');
  assert.deepEqual(h.priorities, { n2: 1, n1: 2 });
  assert.equal(h.switchback, 'intelligent');
  assert.equal(h.fenced, true);
  assert.equal(h.onLoss, 'stop');
  assert.equal(h.onStopFailure, 'block');
  assert.equal(h.probe, 'everywhere');
  assert.deepEqual(h.utilityChecks, []);
  assert.deepEqual(h.resources[0], {
    name: 'data',
    kind: 'disk',
    params: {},
    requires: [],
    timeouts: {},
    monitors: [],
    restart: { max: DEFAULTS.maxRestarts, windowMs: DEFAULTS.restartWindowMs },
    disk: { paths: ['/dev/sdb', '/dev/sdc'], wwn: 'naa.600140512345' },
    where: `${h.file}:4`,
  });
  assert.deepEqual(h.resources[1], {
    name: 'app',
    kind: 'agent',
    provider: 'heartbeat',
    type: 'Dummy',
    params: { port: '8080', enabled: 'true', ratio: '0.5', name: 'x' },
    requires: ['data'],
    timeouts: {},
    monitors: [{ intervalMs: DEFAULTS.monitorIntervalMs, depth: 0 }],
    restart: { max: DEFAULTS.maxRestarts, windowMs: DEFAULTS.restartWindowMs },
    where: `${h.file}:6`,
  });
});

test('hierarchy with every field', () => {
  const f = fixture(MINIMAL, {
    'x.yaml': `hierarchy: x
priority: { n1: 10, n2: 20 }
switchback: automatic
fencing: none
onLoss: halt
onStopFailure: halt
probe: listed
utilityChecks: [ { ping: 192.168.77.1 } ]
resources:
  - name: a
    agent: ocf:heartbeat:Dummy
    timeouts: { start: 20s, stop: 1m, monitor: 500 }
    monitor: [ { interval: 2s, depth: 0 }, { interval: 30s, depth: 10, timeout: 20s } ]
    restart: { max: 0, window: 1h }
  - name: b
    agent: ocf:harness:webserver
    monitor: []
    restart: { max: 5 }
    requires: [a]
`,
  });
  const h = loadConfig(f).hierarchies[0];
  assert.ok(h);
  assert.equal(h.switchback, 'automatic');
  assert.equal(h.fenced, false);
  assert.equal(h.onLoss, 'halt');
  assert.equal(h.onStopFailure, 'halt');
  assert.equal(h.probe, 'listed');
  assert.deepEqual(h.utilityChecks, [{ kind: 'ping', target: '192.168.77.1' }]);
  const [a, b] = h.resources;
  assert.deepEqual(a?.timeouts, { startMs: 20_000, stopMs: 60_000, monitorMs: 500 });
  assert.deepEqual(a?.monitors, [
    { intervalMs: 2000, depth: 0 },
    { intervalMs: 30_000, depth: 10, timeoutMs: 20_000 },
  ]);
  assert.deepEqual(a?.restart, { max: 0, windowMs: 3_600_000 });
  assert.deepEqual(b?.monitors, [], '`monitor: []` disables monitoring');
  assert.deepEqual(b?.restart, { max: 5, windowMs: DEFAULTS.restartWindowMs });
  assert.deepEqual(levels(h), [['a'], ['b']]);
});

test('hierarchies are loaded in file-name order; non-YAML files are ignored', () => {
  const h = (name: string) => `hierarchy: ${name}\npriority: { n1: 1 }\nfencing: none\nresources:\n  - { name: r, agent: "ocf:heartbeat:Dummy" }\n`;
  const f = fixture(MINIMAL, { 'b.yaml': h('bee'), 'a.yml': h('ay'), 'notes.txt': 'x', '.swap.yaml': ': bad' });
  assert.deepEqual(
    loadConfig(f).hierarchies.map((x) => x.name),
    ['ay', 'bee'],
  );
});

test('the shipped examples load', () => {
  const examples = fileURLToPath(new URL('../../examples', import.meta.url));
  const dir = join(root, 'examples');
  cpSync(examples, dir, { recursive: true });
  // The key is never shipped; `harness keygen` makes it on a real cluster.
  writeFileSync(join(dir, 'authkey'), 'k'.repeat(32));
  chmodSync(join(dir, 'authkey'), 0o600);
  let config;
  try {
    config = loadConfig(join(dir, 'cluster.yaml'));
  } catch (e) {
    assert.fail(String((e as { issues?: never[] }).issues?.map(formatIssue).join('\n') ?? e));
  }
  assert.deepEqual(
    config.hierarchies.map((h) => h.name),
    ['db', 'web'],
  );
  const web = config.hierarchies.find((h) => h.name === 'web');
  assert.ok(web);
  assert.deepEqual(levels(web), [['data', 'vip'], ['fs'], ['web']]);
  assert.ok(web.resources.some((r) => r.provider === 'heartbeat' && r.type === 'IPaddr2'));
  assert.ok(web.resources.some((r) => r.provider === 'harness' && r.type === 'webserver'));
  assert.ok(config.hierarchies.every((h) => h.fenced));
});
