// Alerts through Pacemaker's interface during a real failover: Debian's three sample alert agents
// (pacemaker's /usr/share/pacemaker/alerts/*.sample) run unmodified by two real daemons. The file
// agent's output on the survivor names the failed node, then the hierarchy's resources as they
// start, in order, then the hierarchy in service. A slow agent (killed at its timeout) and a
// missing one are logged as failed and never hold the failover up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync, mkdirSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';

const SAMPLES = '/usr/share/pacemaker/alerts';
const hasSamples = existsSync(join(SAMPLES, 'alert_file.sh.sample'));
const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');
const skip = !hasSamples ? 'pacemaker (sample alert agents) not installed' : !hasDummy ? 'resource-agents not installed' : false;

let c: LocalCluster;
let stub = '';

before(async () => {
  if (skip) return;
  c = new LocalCluster({
    net: 86,
    nodes: ['n1', 'n2'],
    hierarchies: {
      'web.yaml': [
        'hierarchy: web',
        'priority: { n1: 1, n2: 2 }',
        'resources:',
        '  - { name: disk, disk: { paths: [] } }',
        '  - { name: data, agent: "ocf:heartbeat:Dummy", requires: [disk], monitor: [ { interval: 1s } ] }',
        '  - { name: app, agent: "ocf:heartbeat:Dummy", requires: [data], monitor: [ { interval: 1s } ] }',
        '',
      ].join('\n'),
    },
  });
  // The smtp sample hands its mail to `sendmail -t` from PATH: a stand-in MTA keeps each mail.
  stub = join(c.dir, 'bin');
  mkdirSync(stub);
  writeFileSync(join(stub, 'sendmail'), `#!/bin/sh\ncat >> ${join(c.dir, 'mail')}\n`);
  writeFileSync(join(c.dir, 'slow-alert'), '#!/bin/sh\nexec sleep 60\n');
  chmodSync(join(stub, 'sendmail'), 0o755);
  chmodSync(join(c.dir, 'slow-alert'), 0o755);
  appendFileSync(
    c.clusterFile,
    [
      'alerts:',
      `  - { path: ${join(SAMPLES, 'alert_file.sh.sample')}, recipient: "${join(c.dir, 'alerts-{node}.log')}" }`,
      `  - { path: ${join(SAMPLES, 'alert_smtp.sh.sample')}, recipient: "admin@example.org" }`,
      `  - { path: ${join(SAMPLES, 'alert_snmp.sh.sample')}, recipient: "udp:127.0.0.1:16299" }`,
      `  - { path: ${join(c.dir, 'slow-alert')}, timeout: 1s }`,
      `  - { path: ${join(c.dir, 'no-such-alert')} }`,
      '',
    ].join('\n'),
  );
  for (const n of c.nodes) c.start(n, { PATH: `${stub}:${process.env.PATH}` });
});

after(async () => {
  if (c) await c.teardown(process.env.KEEP === '1');
});

test('the sample alert agents run unmodified during a failover, in event order', { skip }, async () => {
  await c.waitFor('web on n1', async () => (await c.runners('web')).join() === 'n1', 30_000, 100);
  const log2 = join(c.dir, 'alerts-n2.log');
  const before = existsSync(log2) ? readFileSync(log2, 'utf8').length : 0;
  const t0 = Date.now();
  c.signalNode('n1', 'SIGKILL');
  await c.waitFor('web on n2', async () => (await c.runners('web', ['n2'])).join() === 'n2', 30_000, 25);
  const failoverMs = Date.now() - t0;
  // The file agent's lines for this failover, on the survivor.
  const want = [
    /Node 'n1' is now 'lost'/,
    /Resource operation 'start' for 'web\.data' on 'n2': ok/,
    /Resource operation 'start' for 'web\.app' on 'n2': ok/,
    /Resource operation 'in-service' for 'web' on 'n2': in service \(failed over from n1\)/,
  ];
  const lines = await c.waitFor('alerts written', async () => {
    const l = existsSync(log2) ? readFileSync(log2, 'utf8').slice(before).split('\n').filter(Boolean) : [];
    return want.every((w) => l.some((x) => w.test(x))) ? l : undefined;
  }, 20_000, 50);
  console.log(`# failover ${failoverMs} ms; n2's alert file:\n${lines.map((l) => `#   ${l}`).join('\n')}`);
  const at = want.map((w) => lines.findIndex((x) => w.test(x)));
  assert.deepEqual([...at].sort((a, b) => a - b), at, `in event order: ${at.join(', ')}`);
  // Each line starts with Pacemaker's timestamp format (HH:MM:SS.usec).
  for (const l of lines) assert.match(l, /^\d\d:\d\d:\d\d\.\d{6}: /);
  // The smtp sample mailed the same events (through the stand-in sendmail).
  const mail = await c.waitFor('mail', async () => {
    const m = existsSync(join(c.dir, 'mail')) ? readFileSync(join(c.dir, 'mail'), 'utf8') : '';
    return /Subject: .*Resource operation 'in-service' for 'web' on 'n2'/.test(m) ? m : undefined;
  }, 20_000, 50);
  assert.match(mail, /To: admin@example\.org/);
  assert.match(mail, /CRM_alert_node=n1/);
  // The slow agent was killed at its timeout, the missing one reported; both logged, by n2.
  const failed = await c.waitFor('alert failures logged', async () => {
    const ev = c.events('n2').filter((e) => e.event === 'alert-failed');
    return ev.some((e) => /slow-alert/.test(String(e.alert)) && /timed out/.test(String(e.reason))) && ev.some((e) => /no-such-alert/.test(String(e.alert))) ? ev : undefined;
  }, 20_000, 100);
  assert.ok(!failed.some((e) => /alert_(file|smtp|snmp)/.test(String(e.alert))), `the samples did not fail: ${JSON.stringify(failed.filter((e) => /sample/.test(String(e.alert))))}`);
  // A one-minute agent on every event did not hold the failover up.
  assert.ok(failoverMs < 15_000, `failover took ${failoverMs} ms`);
});
