// Log hygiene outside systemd: `harness start` (background) logs to <stateDir>/harness.log and
// writes daemon.pid; the package's logrotate snippet, run by the real logrotate against this
// state directory, moves the log away and its postrotate SIGHUP makes the daemon reopen it. A
// SIGHUP never ends the daemon.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { DAEMON_NODE_FLAGS } from '../../harness/defaults.ts';

const hasLogrotate = spawnSync('sh', ['-c', 'command -v logrotate']).status === 0;
const BIN = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));
const SNIPPET = fileURLToPath(new URL('../../packaging/logrotate', import.meta.url));

let c: LocalCluster;
before(() => {
  c = new LocalCluster({ net: 89, nodes: ['n1'], hierarchies: {} });
});
after(async () => {
  await c.teardown(process.env.KEEP === '1');
});

// HA_RSCTMP as LocalCluster's own daemons have it: teardown finds (and kills) the node by it.
const harness = (...args: string[]) => spawnSync(process.execPath, [...DAEMON_NODE_FLAGS, BIN, ...args, '--config', c.clusterFile, '--node', 'n1'], { encoding: 'utf8', env: { ...process.env, HA_RSCTMP: c.rscTmp('n1') } });

test('background daemon: pid file, SIGHUP reopens its log (the shipped logrotate snippet, real logrotate)', { skip: !hasLogrotate && 'logrotate not installed' }, async () => {
  const r = harness('start');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const state = join(c.dir, 'state', 'n1');
  const log = join(state, 'harness.log');
  const pid = Number(readFileSync(join(state, 'daemon.pid'), 'utf8'));
  assert.ok(pid > 0);
  assert.match(readFileSync(log, 'utf8'), /"event":"node-started"/);
  // The package's snippet, pointed at this state directory instead of /var/lib/harness.
  const conf = join(c.dir, 'logrotate.conf');
  writeFileSync(conf, readFileSync(SNIPPET, 'utf8').replaceAll('/var/lib/harness', join(c.dir, 'state')));
  const lr = spawnSync('logrotate', ['--force', '--state', join(c.dir, 'logrotate.state'), conf], { encoding: 'utf8' });
  assert.equal(lr.status, 0, lr.stderr);
  assert.ok(existsSync(`${log}.1`), 'rotated away');
  const reopened = await c.waitFor('log reopened', () => existsSync(log) && /"event":"sighup"/.test(readFileSync(log, 'utf8')), 10_000, 50);
  assert.ok(reopened);
  assert.doesNotMatch(readFileSync(`${log}.1`, 'utf8'), /"event":"sighup"/, 'written to the new file, not the rotated one');
  // Still alive and answering after the HUP.
  assert.equal(harness('status', '--json').status, 0);
  process.kill(pid, 'SIGHUP');
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(harness('status', '--json').status, 0, 'a second SIGHUP did not end it either');
  const s = harness('stop');
  assert.equal(s.status, 0, s.stderr);
});
