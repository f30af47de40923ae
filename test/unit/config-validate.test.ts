// Agent-level validation with real agents: the bundled ones (agents/resource.d) and Debian's
// resource-agents under /usr/lib/ocf (skipped when that package is not installed).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIssue } from '../../hierarchies/load.ts';
import { validateAll } from '../../hierarchies/validate.ts';

const root = mkdtempSync(join(tmpdir(), 'harness-config-validate-'));
after(() => rmSync(root, { recursive: true, force: true }));
const haveResourceAgents = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');

let count = 0;
function fixture(hierarchy: string, extraCluster = ''): string {
  const dir = join(root, `c${++count}`);
  mkdirSync(join(dir, 'hierarchies'), { recursive: true });
  writeFileSync(
    join(dir, 'cluster.yaml'),
    `cluster: v
nodes:
  - { name: n1, addresses: ["127.0.0.11:7400"] }
authKeyFile: authkey
ownership: { backend: file, dir: own }
${extraCluster}`,
  );
  writeFileSync(join(dir, 'hierarchies', 'h.yaml'), hierarchy);
  writeFileSync(join(dir, 'authkey'), 'k'.repeat(32));
  chmodSync(join(dir, 'authkey'), 0o600);
  return join(dir, 'cluster.yaml');
}

const head = 'hierarchy: h\npriority: { n1: 1 }\nfencing: none\nresources:\n';

test('unknown agent: names the spec and the directories searched', async () => {
  const f = fixture(`${head}  - name: x\n    agent: ocf:nosuch:Thing\n`, 'agentDirs: [./site-agents]\nocfRoot: ./ocf\n');
  const { config, issues } = await validateAll(f);
  assert.equal(config, undefined);
  assert.equal(issues.length, 1);
  const text = formatIssue(issues[0]!);
  const dir = join(f, '..');
  assert.match(text, new RegExp(`h\\.yaml:5: resources\\[0\\]\\.agent: .*ocf:nosuch:Thing`));
  for (const d of [join(dir, 'site-agents'), join(fileURLToPath(new URL('../../agents/resource.d', import.meta.url))), join(dir, 'ocf', 'resource.d')]) {
    assert.ok(text.includes(d), `names ${d}: ${text}`);
  }
});

test('bundled agent: missing required param is an error; meta-data timeouts fill the gaps', async () => {
  const f = fixture(`${head}  - name: web
    agent: ocf:harness:webserver
    timeouts: { stop: 7s }
    monitor: [ { interval: 2s }, { interval: 30s, depth: 10 } ]
`);
  const bad = await validateAll(f);
  assert.equal(bad.config, undefined);
  assert.ok(
    bad.issues.some((i) => i.field === 'resources[0].params' && /requires parameter "port"/.test(i.message) && i.line === 5),
    bad.issues.map(formatIssue).join('\n'),
  );

  const g = fixture(`${head}  - name: web
    agent: ocf:harness:webserver
    params: { port: 18080, colour: blue }
    timeouts: { stop: 7s }
    monitor: [ { interval: 2s }, { interval: 30s, depth: 10 } ]
`);
  const ok = await validateAll(g);
  assert.ok(ok.config, ok.issues.map(formatIssue).join('\n'));
  // An undeclared param is only a warning.
  assert.deepEqual(
    ok.issues.map((i) => [i.severity, i.field]),
    [['warning', 'resources[0].params']],
  );
  const r = ok.config.hierarchies[0]?.resources[0];
  assert.ok(r);
  assert.equal(r.timeouts.stopMs, 7000, 'the YAML wins');
  assert.equal(typeof r.timeouts.startMs, 'number', 'start timeout from meta-data');
  assert.equal(typeof r.timeouts.monitorMs, 'number', 'monitor timeout from meta-data');
  assert.equal(typeof r.monitors[1]?.timeoutMs, 'number', 'depth-10 monitor timeout from meta-data');
});

test('a monitor timeout in the YAML is not overridden by meta-data', async () => {
  const f = fixture(`${head}  - name: web
    agent: ocf:harness:webserver
    params: { port: 18081 }
    timeouts: { monitor: 3s }
    monitor: [ { interval: 2s }, { interval: 30s, depth: 10, timeout: 9s } ]
`);
  const { config, issues } = await validateAll(f);
  assert.ok(config, issues.map(formatIssue).join('\n'));
  const r = config.hierarchies[0]?.resources[0];
  assert.equal(r?.timeouts.monitorMs, 3000);
  assert.deepEqual(
    r?.monitors.map((m) => m.timeoutMs),
    [undefined, 9000],
  );
});

test('load errors are returned, not thrown, and good hierarchies are still checked', async () => {
  const f = fixture(`${head}  - name: x\n    agent: ocf:heartbeat\n`);
  writeFileSync(join(f, '..', 'hierarchies', 'other.yaml'), `${head.replace('h\n', 'other\n')}  - name: y\n    agent: ocf:nosuch:Thing\n`);
  const { config, issues } = await validateAll(f);
  assert.equal(config, undefined);
  const text = issues.map(formatIssue).join('\n');
  assert.match(text, /h\.yaml:6:\d+: resources\[0\]\.agent: expected an agent spec/);
  assert.match(text, /other\.yaml:5: resources\[0\]\.agent: .*ocf:nosuch:Thing not found/);
  const missing = await validateAll(join(root, 'nope', 'cluster.yaml'));
  assert.match(missing.issues.map(formatIssue).join('\n'), /cannot read file/);
});

test('the shipped examples validate against real agents', { skip: !haveResourceAgents && 'resource-agents not installed' }, async () => {
  const dir = join(root, 'examples');
  cpSync(fileURLToPath(new URL('../../examples', import.meta.url)), dir, { recursive: true });
  writeFileSync(join(dir, 'authkey'), 'k'.repeat(32));
  chmodSync(join(dir, 'authkey'), 0o600);
  const { config, issues } = await validateAll(join(dir, 'cluster.yaml'));
  assert.ok(config, issues.map(formatIssue).join('\n'));
  assert.deepEqual(issues.map(formatIssue), []);
});
