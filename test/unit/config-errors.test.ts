// Every class of bad configuration is refused with an issue naming file, line and field, and
// the formatted message (what `harness validate` prints) carries all three. No stack traces.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, loadHierarchies, loadCluster } from '../../hierarchies/load.ts';
import type { ConfigIssue } from '../../hierarchies/load.ts';
import { commTimers } from '../../harness/liveness.ts';

const root = mkdtempSync(join(tmpdir(), 'harness-config-errors-'));
after(() => rmSync(root, { recursive: true, force: true }));

const CLUSTER = `cluster: t
nodes:
  - name: n1
    addresses: ["127.0.0.11:7400", "127.0.1.11:7400"]
  - name: n2
    addresses: ["127.0.0.12:7400", "127.0.1.12:7400"]
authKeyFile: ./authkey
ownership: { backend: file, dir: ./own }
`;

const WEB = `hierarchy: web
priority: { n1: 1, n2: 2 }
resources:
  - name: data
    disk: { paths: [] }
  - name: web
    agent: ocf:heartbeat:Dummy
    requires: [data]
`;

let count = 0;
/** A fresh config directory; returns the cluster file path. */
function fixture(o: { cluster?: string; hierarchies?: Record<string, string>; key?: 'none' | number; keyBytes?: number } = {}): string {
  const dir = join(root, `c${++count}`);
  mkdirSync(join(dir, 'hierarchies'), { recursive: true });
  writeFileSync(join(dir, 'cluster.yaml'), o.cluster ?? CLUSTER);
  for (const [name, text] of Object.entries(o.hierarchies ?? { 'web.yaml': WEB })) writeFileSync(join(dir, 'hierarchies', name), text);
  if (o.key !== 'none') {
    writeFileSync(join(dir, 'authkey'), 'k'.repeat(o.keyBytes ?? 32));
    chmodSync(join(dir, 'authkey'), o.key ?? 0o600);
  }
  return join(dir, 'cluster.yaml');
}

function issuesOf(fn: () => unknown): { issues: ConfigIssue[]; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.doesNotMatch(e.message, /\n\s+at /, 'no stack trace in the message');
    return { issues: e.issues, message: e.message };
  }
  assert.fail('expected a ConfigError');
}

/** The load fails with an issue at file:line for `field`, whose message matches `text`. */
function expectIssue(fn: () => unknown, file: string, line: number, field: string, text: RegExp): ConfigIssue {
  const { issues, message } = issuesOf(fn);
  const hit = issues.find((i) => i.file === file && i.field === field && text.test(i.message));
  assert.ok(hit, `no issue for ${field} matching ${text} in:\n${message}`);
  assert.equal(hit.line, line, `line of ${field} in:\n${message}`);
  assert.equal(typeof hit.column, 'number');
  assert.ok(message.includes(`${file}:${line}:${hit.column}: ${field}: `), `formatted message names file:line:col and field:\n${message}`);
  return hit;
}

const hfile = (clusterFile: string, name = 'web.yaml') => join(clusterFile, '..', 'hierarchies', name);

test('YAML syntax error', () => {
  const f = fixture({ cluster: CLUSTER.replace('  - name: n2\n', '  - name: n2\n   bad: [\n') });
  const { issues, message } = issuesOf(() => loadCluster(f));
  assert.equal(issues[0]?.file, f);
  assert.equal(issues[0]?.line, 6);
  assert.match(message, new RegExp(`^${f}:6:\\d+: YAML syntax error`));
});

test('YAML duplicate key is a syntax error', () => {
  const f = fixture({ cluster: CLUSTER + 'cluster: u\n' });
  const { issues } = issuesOf(() => loadCluster(f));
  assert.equal(issues[0]?.line, 9);
  assert.match(issues[0]?.message ?? '', /unique/);
});

test('wrong type', () => {
  const f = fixture({ cluster: CLUSTER + 'maxParallelHierarchies: many\n' });
  expectIssue(() => loadCluster(f), f, 9, 'maxParallelHierarchies', /expected a number, got "many"/);
});

test('missing required field', () => {
  const f = fixture({ cluster: CLUSTER.replace('authKeyFile: ./authkey\n', '') });
  const { message } = issuesOf(() => loadCluster(f));
  assert.match(message, /authKeyFile: is required/);
});

test('unknown key', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB + '    prams: { x: 1 }\n' } });
  expectIssue(() => loadConfig(f), hfile(f), 9, 'resources[1].prams', /unknown key "prams"/);
});

test('bad enum value lists the choices', () => {
  const f = fixture({ cluster: CLUSTER + 'onStop: failover\n' });
  expectIssue(() => loadCluster(f), f, 9, 'onStop', /"switchover", "stop".*"failover"/);
});

test('unknown ownership backend', () => {
  const f = fixture({ cluster: CLUSTER.replace('backend: file', 'backend: nfs') });
  expectIssue(() => loadCluster(f), f, 8, 'ownership.backend', /"file", "scsi"/);
});

test('unknown node in priority', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('n2: 2', 'n9: 2') } });
  expectIssue(() => loadConfig(f), hfile(f), 2, 'priority.n9', /unknown node "n9".*n1, n2/);
});

test('duplicate priority value', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('n2: 2', 'n2: 1') } });
  expectIssue(() => loadConfig(f), hfile(f), 2, 'priority.n2', /priority 1 is also given to n1/);
});

test('duplicate resource name', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB + '  - name: web\n    agent: ocf:heartbeat:Dummy\n' } });
  expectIssue(() => loadConfig(f), hfile(f), 9, 'resources[2].name', /duplicate resource name "web"/);
});

test('requires naming a missing resource', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('requires: [data]', 'requires: [data, dtaa]') } });
  expectIssue(() => loadConfig(f), hfile(f), 8, 'resources[1].requires[1]', /"dtaa".*no resource of that name/);
});

test('dependency cycle names the cycle', () => {
  const text = `${WEB}  - name: a
    agent: ocf:heartbeat:Dummy
    requires: [b]
  - name: b
    agent: ocf:heartbeat:Dummy
    requires: [web, a]
`;
  const f = fixture({ hierarchies: { 'web.yaml': text } });
  expectIssue(() => loadConfig(f), hfile(f), 11, 'resources[2].requires', /dependency cycle: a -> b -> a/);
});

test('no own-able resource without fencing: none', () => {
  const text = `hierarchy: web
priority: { n1: 1 }
resources:
  - name: web
    agent: ocf:heartbeat:Dummy
`;
  const f = fixture({ hierarchies: { 'web.yaml': text } });
  expectIssue(() => loadConfig(f), hfile(f), 4, 'resources', /no own-able resource.*fencing: none/);
  const g = fixture({ hierarchies: { 'web.yaml': text.replace('resources:', 'fencing: disk\nresources:') } });
  expectIssue(() => loadConfig(g), hfile(g), 3, 'fencing', /no own-able resource/);
  const ok = fixture({ hierarchies: { 'web.yaml': text.replace('resources:', 'fencing: none\nresources:') } });
  assert.equal(loadConfig(ok).hierarchies[0]?.fenced, false);
});

test('bad duration', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB + '    timeouts: { start: 20 seconds }\n' } });
  expectIssue(() => loadConfig(f), hfile(f), 9, 'resources[1].timeouts.start', /duration.*"20 seconds"/);
  const g = fixture({ hierarchies: { 'web.yaml': WEB + '    monitor: [ { interval: "30" } ]\n' } });
  expectIssue(() => loadConfig(g), hfile(g), 9, 'resources[1].monitor[0].interval', /no unit/);
});

test('bad agent spec', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('ocf:heartbeat:Dummy', 'heartbeat:Dummy') } });
  expectIssue(() => loadConfig(f), hfile(f), 7, 'resources[1].agent', /ocf:<provider>:<type>.*"heartbeat:Dummy"/);
  const g = fixture({ hierarchies: { 'web.yaml': WEB.replace('ocf:heartbeat:Dummy', 'ocf:..:Dummy') } });
  expectIssue(() => loadConfig(g), hfile(g), 7, 'resources[1].agent', /ocf:<provider>:<type>/);
});

test('resource with neither agent, disk nor app, or two of them', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB + '  - name: x\n    requires: []\n  - name: y\n    agent: ocf:a:b\n    disk: { paths: [] }\n' } });
  const { message } = issuesOf(() => loadConfig(f));
  assert.match(message, /web\.yaml:9:5: resources\[2\]: a resource needs one of `agent:` \(ocf:<provider>:<type>\), `disk:` or `app:`/);
  assert.match(message, /web\.yaml:13:\d+: resources\[3\]\.disk: a resource has one of `agent:`, `disk:` or `app:`, not agent and disk/);
});

test('duplicate hierarchy name across files', () => {
  const f = fixture({ hierarchies: { 'a.yaml': WEB, 'b.yaml': `# second\n${WEB.replace('n1: 1, n2: 2', 'n2: 1')}` } });
  const hit = expectIssue(() => loadConfig(f), hfile(f, 'b.yaml'), 2, 'hierarchy', /"web" is already used by .*a\.yaml/);
  assert.equal(hit.column, 12, 'points at the name itself');
});

test('same disk in two hierarchies', () => {
  const web = WEB.replace('paths: []', 'paths: [/dev/sdb]');
  const f = fixture({ hierarchies: { 'a.yaml': web, 'b.yaml': web.replace('hierarchy: web', 'hierarchy: web2') } });
  expectIssue(() => loadConfig(f), hfile(f, 'b.yaml'), 5, 'resources[0].disk', /path \/dev\/sdb is already used by hierarchy web/);
});

test('scsi backend needs disk paths', () => {
  const f = fixture({ cluster: CLUSTER.replace('{ backend: file, dir: ./own }', '{ backend: scsi }') });
  expectIssue(() => loadConfig(f), hfile(f), 5, 'resources[0].disk.paths', /at least one device path/);
});

test('utility check ping target: an IP address or a host name, never an option of ping', () => {
  for (const bad of ['-f', '-c1', '--flood', '8.8.8.8 -f', 'a b', 'gw_1', 'gw-.example', '-gw', '', 'x'.repeat(64)]) {
    const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('resources:', `utilityChecks:\n  - ping: ${JSON.stringify(bad)}\nresources:`) } });
    const hit = expectIssue(() => loadConfig(f), hfile(f), 4, 'utilityChecks[0].ping', /expected an IP address or a host name/);
    assert.ok(hit.message.endsWith(`; got "${bad}"`), hit.message);
  }
  const good = ['10.0.1.1', 'fd00::1', 'gateway', 'gw-1.example.com', 'gw.example.com.', '1e100.net'];
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('resources:', `utilityChecks: [${good.map((g) => `{ ping: "${g}" }`).join(', ')}]\nresources:`) } });
  assert.deepEqual(loadConfig(f).hierarchies[0]?.utilityChecks.map((u) => u.target), good);
});

test('__proto__, constructor and prototype are refused as keys (params, priority, anywhere), not silently dropped', () => {
  const params = fixture({ hierarchies: { 'web.yaml': WEB.replace('    requires: [data]\n', '    params: { state: /tmp/x, __proto__: x }\n    requires: [data]\n') } });
  expectIssue(() => loadConfig(params), hfile(params), 8, 'resources[1].params.__proto__', /"__proto__" cannot be used as a key \(__proto__, constructor, prototype are reserved names\)/);
  const block = fixture({ hierarchies: { 'web.yaml': WEB.replace('    requires: [data]\n', '    params:\n      constructor: a\n      prototype: b\n    requires: [data]\n') } });
  expectIssue(() => loadConfig(block), hfile(block), 9, 'resources[1].params.constructor', /"constructor" cannot be used as a key/);
  expectIssue(() => loadConfig(block), hfile(block), 10, 'resources[1].params.prototype', /"prototype" cannot be used as a key/);
  const prio = fixture({ hierarchies: { 'web.yaml': WEB.replace('n2: 2', 'n2: 2, __proto__: 3') } });
  expectIssue(() => loadConfig(prio), hfile(prio), 2, 'priority.__proto__', /"__proto__" cannot be used as a key/);
  const cluster = fixture({ cluster: CLUSTER.replace('ownership: { backend: file, dir: ./own }', 'ownership: { backend: file, dir: ./own, __proto__: { backend: scsi } }') });
  expectIssue(() => loadCluster(cluster), cluster, 8, 'ownership.__proto__', /"__proto__" cannot be used as a key/);
});

test('auth key file missing', () => {
  const f = fixture({ key: 'none' });
  expectIssue(() => loadCluster(f), f, 7, 'authKeyFile', /authkey does not exist.*harness keygen/);
});

test('auth key file with wrong mode', () => {
  const f = fixture({ key: 0o644 });
  expectIssue(() => loadCluster(f), f, 7, 'authKeyFile', /mode 0644; it must be 0600/);
});

const asRoot = process.getuid?.() === 0;

test('as root, an auth key file root does not own is refused', { skip: asRoot ? false : 'needs root (chown)' }, () => {
  const f = fixture();
  chownSync(join(f, '..', 'authkey'), 65534, 65534);
  expectIssue(() => loadCluster(f), f, 7, 'authKeyFile', /authkey is owned by uid 65534, not root/);
});

test('state, control socket and hierarchy directories others can write (as root: also group, or not root\'s) are refused, naming the path', () => {
  const f = fixture({ cluster: CLUSTER.replace('    addresses: ["127.0.0.11:7400", "127.0.1.11:7400"]\n', '    addresses: ["127.0.0.11:7400", "127.0.1.11:7400"]\n    controlSocket: ./run/{node}.sock\n') + 'stateDir: ./state/{node}\n' });
  const dir = join(f, '..');
  for (const d of ['state/n1', 'state/n2', 'run']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  assert.equal(loadCluster(f).cluster, 't', 'safe as created');
  const open = asRoot ? 0o775 : 0o757;
  const mode = `0${open.toString(8)}`;
  chmodSync(join(dir, 'state/n2'), open);
  chmodSync(join(dir, 'run'), open);
  chmodSync(join(dir, 'hierarchies'), open);
  expectIssue(() => loadCluster(f), f, 10, 'stateDir', new RegExp(`state directory ${join(dir, 'state/n2')} is writable by (its group|everyone) \\(mode ${mode}\\): only its owner may write it`));
  expectIssue(() => loadCluster(f), f, 5, 'nodes[0].controlSocket', new RegExp(`control socket directory ${join(dir, 'run')} is writable by`));
  expectIssue(() => loadCluster(f), f, 1, 'hierarchyDir', new RegExp(`hierarchy directory ${join(dir, 'hierarchies')} is writable by`));
  assert.equal(loadCluster(f, { authKey: false }).cluster, 't', 'not checked for commands that run no node here');
  for (const d of ['state/n2', 'run', 'hierarchies']) chmodSync(join(dir, d), 0o755);
  if (!asRoot) return;
  chownSync(join(dir, 'state/n1'), 65534, 65534);
  expectIssue(() => loadCluster(f), f, 10, 'stateDir', new RegExp(`state directory ${join(dir, 'state/n1')} is owned by uid 65534, not root`));
});

test('auth key file too short', () => {
  const f = fixture({ keyBytes: 8 });
  expectIssue(() => loadCluster(f), f, 7, 'authKeyFile', /8 bytes; at least 16/);
});

test('deadTime < 3 * interval', () => {
  const f = fixture({ cluster: CLUSTER + 'heartbeat: { interval: 200ms, deadTime: 500ms }\n' });
  expectIssue(() => loadCluster(f), f, 9, 'heartbeat.deadTime', /deadTime \(500ms\) must be at least 3 x interval \(3 x 200ms = 600ms\)/);
  // Only the interval given: the default deadTime (900ms) is too short for it.
  const g = fixture({ cluster: CLUSTER + 'heartbeat:\n  interval: 1s\n' });
  expectIssue(() => loadCluster(g), g, 10, 'heartbeat.interval', /deadTime \(900ms\)/);
});

test('startupGrace: at least the dead time; the comm grace follows it, and the dead time without it', () => {
  const f = fixture({ cluster: CLUSTER + 'heartbeat: { interval: 100ms, deadTime: 600ms, startupGrace: 500ms }\n' });
  expectIssue(() => loadCluster(f), f, 9, 'heartbeat.startupGrace', /startupGrace \(500ms\) must be at least deadTime \(600ms\)/);
  const g = loadCluster(fixture({ cluster: CLUSTER + 'heartbeat: { interval: 100ms, deadTime: 600ms, startupGrace: 10s }\n' }));
  assert.equal(commTimers(g).startupGraceMs, 10_000);
  assert.equal(commTimers(loadCluster(fixture({ cluster: CLUSTER + 'heartbeat: { interval: 100ms, deadTime: 600ms }\n' }))).startupGraceMs, 600);
});

test('nodes with different address counts', () => {
  const f = fixture({ cluster: CLUSTER.replace('["127.0.0.12:7400", "127.0.1.12:7400"]', '["127.0.0.12:7400"]') });
  expectIssue(() => loadCluster(f), f, 6, 'nodes[1].addresses', /node n2 has 1 address\(es\) but node n1 has 2/);
});

test('duplicate addresses', () => {
  const f = fixture({ cluster: CLUSTER.replace('"127.0.1.12:7400"', '"127.0.1.11:7400"') });
  expectIssue(() => loadCluster(f), f, 6, 'nodes[1].addresses[1]', /127\.0\.1\.11:7400 is already used by node n1 \(nodes\[0\]\.addresses\[1\]\)/);
});

test('malformed address', () => {
  const f = fixture({ cluster: CLUSTER.replace('"127.0.1.12:7400"', '"host-b:7400"') });
  expectIssue(() => loadCluster(f), f, 6, 'nodes[1].addresses[1]', /expected "ip:port".*"host-b:7400"/);
});

test('unknown placeholder in a path', () => {
  const f = fixture({ cluster: CLUSTER + 'stateDir: /var/lib/harness/{nodename}\n' });
  expectIssue(() => loadCluster(f), f, 9, 'stateDir', /unknown placeholder \{nodename\}/);
});

test('unreadable cluster file and missing hierarchy directory', () => {
  const { issues } = issuesOf(() => loadCluster(join(root, 'nope.yaml')));
  assert.match(issues[0]?.message ?? '', /cannot read file/);
  const f = fixture({ cluster: CLUSTER + 'hierarchyDir: ./missing\n' });
  const { message } = issuesOf(() => loadConfig(f));
  assert.match(message, /cluster\.yaml: hierarchyDir: cannot read hierarchy directory .*missing/);
});

test('errors in one hierarchy file do not hide the others', () => {
  const f = fixture({
    hierarchies: {
      'a.yaml': WEB.replace('hierarchy: web', 'hierarchy: a').replace('n2: 2', 'n7: 2'),
      'b.yaml': WEB.replace('hierarchy: web', 'hierarchy: b').replace('requires: [data]', 'requires: [nope]'),
      'c.yaml': 'hierarchy: c\n  oops: [\n',
      'good.yaml': WEB.replace('hierarchy: web', 'hierarchy: good'),
    },
  });
  const { message } = issuesOf(() => loadConfig(f));
  assert.match(message, /a\.yaml:2:\d+: priority\.n7: unknown node/);
  assert.match(message, /b\.yaml:8:\d+: resources\[1\]\.requires\[0\]: requires "nope"/);
  assert.match(message, /c\.yaml:\d+:\d+: YAML syntax error/);
  // Within a file too: every problem is listed, not just the first.
  const { hierarchies, issues } = loadHierarchies(loadCluster(f));
  assert.deepEqual(
    hierarchies.map((h) => h.name),
    ['good'],
  );
  assert.equal(new Set(issues.map((i) => i.file)).size, 3);
});

test('several problems in one file are all reported', () => {
  const f = fixture({ hierarchies: { 'web.yaml': WEB.replace('n2: 2', 'n2: 1').replace('requires: [data]', 'requires: [x]') + '    colour: red\n' } });
  const { issues } = issuesOf(() => loadConfig(f));
  // unknown key is a schema error: reported alone (the file's shape is wrong) ...
  assert.deepEqual(issues.map((i) => i.field), ['resources[1].colour']);
  const g = fixture({ hierarchies: { 'web.yaml': WEB.replace('n2: 2', 'n2: 1').replace('requires: [data]', 'requires: [x]') } });
  // ... once the shape is right, every cross-field problem is reported together.
  assert.deepEqual(
    issuesOf(() => loadConfig(g)).issues.map((i) => i.field),
    ['priority.n2', 'resources[1].requires[0]'],
  );
});
