// OCF 6 (OCF_ERR_CONFIGURED) means the configuration itself is wrong, on every node: fatal, as
// Pacemaker applies it. It used to count as an ordinary monitor failure: the hierarchy restarted,
// then failed over, and failed the same way on the next node, and the next.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';

const agents = mkdtempSync(join(tmpdir(), 'rc6-agents-'));
mkdirSync(join(agents, 'test'));
// Broken once $flag exists (an admin's bad edit of a shared configuration file, seen by every
// node): start and monitor answer 6; stop still stops what runs.
const flag = join(agents, 'config-broken');
writeFileSync(
  join(agents, 'test', 'configured'),
  `#!/bin/sh
state="$HA_RSCTMP/configured.state"
if { [ "$1" = start ] || [ "$1" = monitor ]; } && [ -e ${flag} ]; then echo "ocf-exit-reason:the configuration file is invalid" >&2; exit 6; fi
case "$1" in
start) touch "$state"; exit 0 ;;
stop) rm -f "$state"; exit 0 ;;
monitor) [ -f "$state" ] && exit 0; exit 7 ;;
meta-data) cat <<'X'
<?xml version="1.0"?>
<resource-agent name="configured"><version>1.0</version><longdesc lang="en">test</longdesc><shortdesc lang="en">test</shortdesc>
<parameters/>
<actions><action name="start" timeout="10s"/><action name="stop" timeout="10s"/><action name="monitor" timeout="10s" interval="1s"/><action name="meta-data" timeout="5s"/></actions>
</resource-agent>
X
exit 0 ;;
*) exit 3 ;;
esac
`,
);
chmodSync(join(agents, 'test', 'configured'), 0o755);

const c = new LocalCluster({ nodes: ['n1', 'n2', 'n3'], net: 93, extraAgentDirs: [agents], hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3'], { agent: 'ocf:test:configured' }) } });
after(async () => {
  await c.teardown(process.env.KEEP === '1');
  rmSync(agents, { recursive: true, force: true });
});

test('a monitor answering 6 (not configured) blocks the hierarchy cluster-wide: stopped, started nowhere else, every node says why', async () => {
  for (const n of ['n1', 'n2', 'n3']) c.start(n);
  await c.waitFor('h in service on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
  // Every node past its start-up probe: a probe run after the break answers 6 there too, and that
  // node then rightly says "here" instead of "reported by n1" (a slow start on a loaded machine).
  for (const n of ['n2', 'n3']) await c.waitProbed(n, 30_000);
  const broken = Date.now();
  writeFileSync(flag, '');
  await c.waitFor('h stopped on n1', async () => (await c.runners('h')).length === 0, 30_000, 100);
  // Long enough for a failover (dead time, window, start) had the block not held.
  await new Promise((r) => setTimeout(r, 5_000));
  assert.deepEqual(await c.runners('h'), []);
  for (const n of ['n2', 'n3']) {
    // (Before the break a slow start-up may have let it race once: not what this test is about.)
    const tries = c.events(n).filter((e) => e.event === 'action' && (e.action === 'acquire' || e.action === 'start') && e.hierarchy === 'h' && e.time >= broken);
    assert.deepEqual(tries.map((e) => e.msg), [], `${n} tried to take h over after the break`);
    const h = (await c.status(n)).hierarchies.find((x) => x.name === 'h');
    assert.match(h?.note ?? "", /BLOCKED: fatal configuration error reported by n1 \(OCF rc 6: app: not-configured: the configuration file is invalid/, `${n} shows the exit reason`);
  }
  const h1 = (await c.status('n1')).hierarchies.find((x) => x.name === 'h');
  assert.match(h1?.note ?? '', /BLOCKED: fatal configuration error here \(app: not-configured: the configuration file is invalid/);
  assert.deepEqual(c.events('n1').filter((e) => e.event === 'action' && (e.action === 'start' || e.action === 'restart') && e.hierarchy === 'h' && e.time >= broken).map((e) => e.msg), [], 'n1 restarted it');
});
