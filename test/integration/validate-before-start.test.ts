// OCF: validate-all runs before every start, and a failing one blocks the start with its exit
// reason. Two hierarchies on one cluster, the same agent: in `fatal` validate-all answers 6 on
// every node (the configuration is wrong: started nowhere, blocked, every node says why); in
// `local` it answers 1 on n1 only (n1 never starts it, n2 runs it). Every action the agent is
// asked is logged, so "no start" is seen from the agent's side.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp, shellAgent } from './fixtures.ts';

const agents = mkdtempSync(join(tmpdir(), 'validate-agents-'));
const calls = join(agents, 'calls');
// The admin's broken setting for `fatal`, seen by every node; removing it is the fix.
const broken = join(agents, 'foo-missing');
writeFileSync(broken, '');
shellAgent(agents, 'checked', {
  params: ['mode'],
  prelude: `node=\${HA_RSCTMP##*/}
echo "$node $OCF_RESOURCE_INSTANCE $1" >> ${calls}
state="$HA_RSCTMP/checked-$OCF_RESOURCE_INSTANCE.state"`,
  cases: `validate-all)
  [ "$OCF_RESKEY_mode" = fatal ] && [ -e ${broken} ] && { echo "ocf-exit-reason:setting foo is missing" >&2; exit 6; }
  [ "$OCF_RESKEY_mode" = local ] && [ "$node" = n1 ] && { echo "ocf-exit-reason:no licence on this node" >&2; exit 1; }
  exit 0 ;;
start) touch "$state"; exit 0 ;;
stop) rm -f "$state"; exit 0 ;;
monitor) [ -f "$state" ] && exit 0; exit 7 ;;`,
});

const c = new LocalCluster({
  nodes: ['n1', 'n2'],
  net: 97,
  extraAgentDirs: [agents],
  hierarchies: {
    'fatal.yaml': diskAndApp('fatal', ['n1', 'n2'], { agent: 'ocf:test:checked', app: ['params: { mode: fatal }'] }),
    'local.yaml': diskAndApp('local', ['n1', 'n2'], { agent: 'ocf:test:checked', app: ['params: { mode: local }'] }),
  },
});
after(async () => {
  await c.teardown(process.env.KEEP === '1');
  rmSync(agents, { recursive: true, force: true });
});

function agentCalls(instance: string): string[] {
  if (!existsSync(calls)) return [];
  return readFileSync(calls, 'utf8').split('\n').filter((l) => l.split(' ')[1] === instance);
}

test('a failing validate-all blocks the start: 6 nowhere started and blocked, 1 on n1 fails over to n2', async () => {
  c.start('n1');
  c.start('n2');
  await c.waitFor('local in service on n2', async () => (await c.runners('local')).join() === 'n2', 30_000, 100);
  await c.waitFor('fatal blocked on both nodes', async () => {
    for (const n of ['n1', 'n2']) {
      const h = (await c.status(n)).hierarchies.find((x) => x.name === 'fatal');
      if (!/BLOCKED/.test(h?.note ?? '')) return false;
    }
    return true;
  }, 30_000, 100);
  assert.deepEqual(await c.runners('fatal'), []);
  // The node that ran validate-all has its exit reason; a peer learns only "blocked, rc 6, by whom"
  // (the exit reason is not in the heartbeat's advert).
  const blocker = (await c.status('n1')).hierarchies.find((x) => x.name === 'fatal')?.note ?? '';
  const other = (await c.status('n2')).hierarchies.find((x) => x.name === 'fatal')?.note ?? '';
  const [mine, theirs] = /setting foo is missing/.test(blocker) ? [blocker, other] : [other, blocker];
  assert.match(mine, /validate-all: not-configured: setting foo is missing/);
  assert.match(theirs, /BLOCKED: fatal configuration error reported by n[12]/);
  const fatal = agentCalls('fatal.app');
  assert.ok(fatal.some((l) => l.endsWith(' validate-all')), `validate-all ran: ${fatal.join('; ')}`);
  assert.deepEqual(fatal.filter((l) => l.endsWith(' start')), [], 'no start of fatal anywhere');
  const local = agentCalls('local.app');
  assert.deepEqual(local.filter((l) => l.startsWith('n1 ') && l.endsWith(' start')), [], 'n1 never started local');
  assert.ok(local.some((l) => l === 'n2 local.app start'), `n2 started local: ${local.join('; ')}`);
});

test('harness validate --agents runs validate-all on this node and names each failing resource by file:line', async () => {
  const harness = join(import.meta.dirname, '..', '..', 'bin', 'harness.ts');
  const run = (node: string, extra: string[]) =>
    execa('node', [harness, 'validate', c.clusterFile, ...extra, '--node', node], { reject: false, env: { HA_RSCTMP: join(agents, 'validate', node) } });
  const plain = await run('n1', []);
  assert.equal(plain.exitCode, 0, `without --agents the YAML alone is checked: ${plain.stderr}`);
  const n1 = await run('n1', ['--agents']);
  assert.equal(n1.exitCode, 1);
  assert.match(n1.stderr, /fatal\.yaml:\d+: resources\[1\]: validate-all of ocf:test:checked on node n1: not-configured \(rc 6\): setting foo is missing/);
  assert.match(n1.stderr, /local\.yaml:\d+: resources\[1\]: validate-all of ocf:test:checked on node n1: error \(rc 1\): no licence on this node/);
  const n2 = await run('n2', ['--agents']);
  assert.equal(n2.exitCode, 1);
  assert.match(n2.stderr, /fatal\.yaml/);
  assert.doesNotMatch(n2.stderr, /local\.yaml/, 'local is fine on n2');
});

test('after the fix, `harness hierarchy fatal clear` brings the blocked hierarchy into service', async () => {
  const harness = join(import.meta.dirname, '..', '..', 'bin', 'harness.ts');
  assert.deepEqual(await c.runners('fatal'), [], 'still blocked');
  rmSync(broken);
  const r = await execa('node', [harness, 'hierarchy', 'fatal', 'clear', '--config', c.clusterFile, '--node', 'n2'], { reject: false, timeout: 120_000 });
  assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
  await c.waitFor('fatal in service after clear', async () => (await c.runners('fatal')).length === 1, 30_000, 100);
  for (const n of ['n1', 'n2']) {
    const h = (await c.status(n)).hierarchies.find((x) => x.name === 'fatal');
    assert.doesNotMatch(h?.note ?? '', /BLOCKED/, `${n} no longer says blocked`);
  }
});
