// OCF hard errors (2 invalid args, 3 unimplemented, 4 insufficient privileges, 5 not installed)
// from a start or a monitor say "this node cannot run it": the node becomes ineligible for the
// hierarchy, which fails over at once (no restart in place), and status says why. On three real
// daemons: a start answering 5 on n1, then a monitor answering 4 on n2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp, shellAgent } from './fixtures.ts';

const agents = mkdtempSync(join(tmpdir(), 'hard-agents-'));
const calls = join(agents, 'calls');
const denyN2 = join(agents, 'deny-n2');
shellAgent(agents, 'picky', {
  monitorInterval: '300ms',
  prelude: `node=\${HA_RSCTMP##*/}
[ "$1" = monitor ] || echo "$node $1" >> ${calls}
state="$HA_RSCTMP/picky.state"`,
  cases: `start)
  [ "$node" = n1 ] && { echo "ocf-exit-reason:no licence for this host" >&2; exit 5; }
  touch "$state"; exit 0 ;;
stop) rm -f "$state"; exit 0 ;;
monitor)
  [ -f "$state" ] || exit 7
  [ "$node" = n2 ] && [ -e ${denyN2} ] && { echo "ocf-exit-reason:permission denied on the data directory" >&2; exit 4; }
  exit 0 ;;
validate-all) exit 0 ;;`,
});

const c = new LocalCluster({
  nodes: ['n1', 'n2', 'n3'],
  net: 96,
  extraAgentDirs: [agents],
  hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3'], { agent: 'ocf:test:picky', app: ['monitor: [ { interval: 300ms } ]', 'restart: { max: 3, window: 10m }'] }) },
});
after(async () => {
  await c.teardown(process.env.KEEP === '1');
  rmSync(agents, { recursive: true, force: true });
});

const startsOn = (node: string): number => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter((l) => l === `${node} start`).length : 0);

test('a hard error fails over at once: start rc 5 on n1, then monitor rc 4 on n2; each node says why', async () => {
  for (const n of c.nodes) c.start(n);
  await c.waitFor('h on n2', async () => (await c.runners('h')).join() === 'n2', 30_000, 100);
  assert.equal(startsOn('n1'), 1, 'n1 tried once, no restart in place');
  const n1 = (await c.status('n1')).hierarchies.find((x) => x.name === 'h');
  assert.match(n1?.note ?? '', /cannot run here: app: not-installed: no licence for this host/);

  writeFileSync(denyN2, '');
  await c.waitFor('h on n3', async () => (await c.runners('h')).join() === 'n3', 30_000, 100);
  assert.equal(startsOn('n2'), 1, 'n2 was not restarted in place');
  const n2 = (await c.status('n2')).hierarchies.find((x) => x.name === 'h');
  assert.match(n2?.note ?? '', /cannot run here: app: no-privilege: permission denied on the data directory/);
});
