// OCF 5 (not installed) on a probe means "cannot be running here": the node is ineligible for the
// hierarchy, and nothing is cleaned up with a stop. It used to count as a failed resource: the
// cleanup stop failed the same way, the hierarchy went FAILED on that node, and a FAILED
// hierarchy on a reachable node blocks every peer: it ran nowhere.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';

const agents = mkdtempSync(join(tmpdir(), 'probe-agents-'));
mkdirSync(join(agents, 'test'));
// "Not installed" on n1 (its HA_RSCTMP ends in /n1): every action answers 5, as an agent whose
// binary is missing does. Elsewhere a plain agent with a state file.
writeFileSync(
  join(agents, 'test', 'onlyelsewhere'),
  `#!/bin/sh
case "$HA_RSCTMP" in */n1) [ "$1" = meta-data ] || { echo "ocf-exit-reason:the application is not installed on this node" >&2; exit 5; } ;; esac
state="$HA_RSCTMP/onlyelsewhere.state"
case "$1" in
start) touch "$state"; exit 0 ;;
stop) rm -f "$state"; exit 0 ;;
monitor) [ -f "$state" ] && exit 0; exit 7 ;;
meta-data) cat <<'X'
<?xml version="1.0"?>
<resource-agent name="onlyelsewhere"><version>1.0</version><longdesc lang="en">test</longdesc><shortdesc lang="en">test</shortdesc>
<parameters/>
<actions><action name="start" timeout="10s"/><action name="stop" timeout="10s"/><action name="monitor" timeout="10s" interval="10s"/><action name="meta-data" timeout="5s"/></actions>
</resource-agent>
X
exit 0 ;;
*) exit 3 ;;
esac
`,
);
chmodSync(join(agents, 'test', 'onlyelsewhere'), 0o755);

const c = new LocalCluster({ nodes: ['n1', 'n2'], net: 89, extraAgentDirs: [agents], hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2'], { agent: 'ocf:test:onlyelsewhere' }) } });
after(async () => {
  await c.teardown(process.env.KEEP === '1');
  rmSync(agents, { recursive: true, force: true });
});

test('a probe answering 5 (not installed) makes the node ineligible, not FAILED; the next node runs the hierarchy', async () => {
  c.start('n1');
  c.start('n2');
  await c.waitFor('h in service on n2', async () => (await c.runners('h')).join() === 'n2', 30_000, 100);
  const h = (await c.status('n1')).hierarchies.find((x) => x.name === 'h');
  assert.ok(h, 'n1 has no status for h');
  assert.equal(h.phase, 'out-of-service');
  assert.match(h.note, /cannot run here: app: not-installed \(rc 5: the application is not installed on this node\)/);
  assert.ok(!c.events('n1').some((e) => e.event === 'action' && e.action === 'stop' && e.hierarchy === 'h'), 'n1 ran a cleanup stop');
});
