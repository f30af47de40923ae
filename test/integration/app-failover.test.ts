// A generic `app:` resource (start/stop/monitor commands, no OCF agent written) on three real
// daemons: a monitor failure restarts it in place, the next one fails it over, and a node that
// dies hands it to the next. The application is test/fixtures/app/sleeper, a real process.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';

const SLEEPER = fileURLToPath(new URL('../fixtures/app/sleeper', import.meta.url));

const c = new LocalCluster({
  nodes: ['n1', 'n2', 'n3'],
  net: 98,
  hierarchies: {
    'billing.yaml': [
      'hierarchy: billing',
      'priority: { n1: 1, n2: 2, n3: 3 }',
      'resources:',
      '  - name: disk',
      '    disk: { paths: [] }',
      '  - name: app',
      '    app:',
      `      start: ${SLEEPER} start`,
      `      stop: ${SLEEPER} stop`,
      `      monitor: "${SLEEPER} status"`,
      '      env: { BILLING_ENV: prod }',
      '      cwd: /tmp',
      '    monitor: [ { interval: 300ms } ]',
      '    restart: { max: 1, window: 10m }',
      '    requires: [disk]',
      '',
    ].join('\n'),
  },
});
after(async () => c.teardown(process.env.KEEP === '1'));

/** Kill the application's process on `node` (not the daemon, not the agent): the app crashed. */
function crashApp(node: string): number {
  const pid = Number(readFileSync(join(c.rscTmp(node), 'sleeper-billing.app.pid'), 'utf8'));
  // The app's environment: what the YAML's env: gave it, and the agent's own.
  const env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  assert.ok(env.includes('BILLING_ENV=prod') && env.includes('OCF_RESOURCE_INSTANCE=billing.app'), 'the app runs with env: and the OCF environment');
  process.kill(pid, 'SIGKILL');
  return pid;
}

test('app: monitor failure restarts in place, the next fails over, a dead node hands it on', async () => {
  for (const n of c.nodes) c.start(n);
  await c.waitFor('billing on n1', async () => (await c.runners('billing')).join() === 'n1', 30_000, 100);
  assert.ok(existsSync(join(c.rscTmp('n1'), 'sleeper-billing.app.pid')), 'the start command ran on n1');

  crashApp('n1');
  await c.waitFor('restart in place', () => c.events('n1').some((e) => e.event === 'restarted' && e.hierarchy === 'billing'), 15_000, 50);
  await c.waitFor('billing back on n1', async () => (await c.runners('billing')).join() === 'n1', 15_000, 50);

  const t0 = Date.now();
  crashApp('n1');
  await c.waitFor('billing on n2', async () => (await c.runners('billing')).join() === 'n2', 20_000, 50);
  console.log(`# second app failure -> billing in service on n2 after ${Date.now() - t0} ms`);
  assert.match((await c.status('n1')).hierarchies.find((x) => x.name === 'billing')!.note, /not eligible/);

  const t1 = Date.now();
  c.signalNode('n2');
  await c.waitFor('billing on n3', async () => (await c.runners('billing', ['n1', 'n3'])).join() === 'n3', 20_000, 50);
  console.log(`# n2 killed -> billing in service on n3 after ${Date.now() - t1} ms`);
});
