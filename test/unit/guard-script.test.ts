// The guard's stop script as the daemon writes it (harness/guard.ts): what it holds, in which
// order it stops, and when it releases. The shell itself runs in test/integration/guard.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guard, guardOrder, isClientFacing, renderStopScript, type GuardHierarchy, type GuardOwnership } from '../../harness/guard.ts';
import { silentLogger } from '../../harness/log.ts';

const own: GuardOwnership = { backend: 'scsi', nodePart: '8c3e0a12', initiator: 'n1', keyRefreshMs: 250, fileLockStaleMs: 600 };
const stop = (label: string, clientFacing = false) => ({ label, agentPath: `/agents/${label}`, env: { OCF_ROOT: '/usr/lib/ocf' }, timeoutMs: 5000, clientFacing });

const web: GuardHierarchy = {
  name: 'web',
  // app requires fs and vip; fs requires the disk: app first, then the VIP before the filesystem.
  levels: [[stop('web/app')], [stop('web/fs'), stop('web/vip', true)]],
  disks: ['/dev/sdb /dev/sdc'],
};
const db: GuardHierarchy = { name: 'db', levels: [[stop('db/pg')]], disks: ['/dev/sdd'] };

test('guard order: dependents first; within a level, what clients see (VIPs) first', () => {
  assert.deepEqual(guardOrder(web).map((s) => s.label), ['web/app', 'web/vip', 'web/fs']);
  assert.ok(isClientFacing('IPaddr2') && isClientFacing('IPv6addr') && !isClientFacing('Filesystem') && !isClientFacing(undefined));
});

test('stop script: holds every owned disk before any stop, stops hierarchies in parallel, releases each after its own stops', () => {
  const s = renderStopScript([web, db], own, '/lib/guard-lib.sh').split('\n');
  const at = (re: RegExp) => s.findIndex((l) => re.test(l));
  assert.equal(s[2], ". '/lib/guard-lib.sh'");
  // bound: the longest hierarchy's stop timeouts (3 x 5 s) + slack
  assert.equal(s[3], "hg_init scsi 8c3e0a12 0.250 17 'n1' 600 0");
  assert.match(renderStopScript([web], { ...own, agentNiceIncrement: 10 }, '/l.sh'), /^hg_init .* 600 10$/m, "stops run at the agents' nice value");
  assert.ok(at(/^hg_hold 0 '\/dev\/sdb \/dev\/sdc'$/) > 0 && at(/^hg_hold 1 '\/dev\/sdd'$/) > 0);
  assert.ok(at(/^hg_begin$/) > at(/^hg_hold 1/), 'holding starts after every hold is listed');
  assert.ok(at(/^hg_begin$/) < at(/hg_stop/), 'held before the first stop');
  assert.ok(at(/hg_stop 0 'web\/app'/) < at(/hg_stop 0 'web\/vip'/) && at(/hg_stop 0 'web\/vip'/) < at(/hg_stop 0 'web\/fs'/));
  assert.ok(at(/hg_release 0 'web'/) > at(/hg_stop 0 'web\/fs'/) && at(/hg_release 0 'web'/) < at(/hg_stop 1 'db\/pg'/), 'web released right after its own stops');
  assert.deepEqual(s.filter((l) => l === ') &').length, 2, 'one background subshell per hierarchy');
  assert.equal(s.at(-3), 'wait "$p0" "$p1"');
  assert.equal(s.at(-2), 'hg_end');
  assert.match(s.find((l) => l.includes("hg_stop 0 'web/app'")) ?? '', /^ {2}hg_stop 0 'web\/app' 5 '\/agents\/web\/app' OCF_ROOT='\/usr\/lib\/ocf'$/);
});

test('stop script: a hierarchy whose start was in flight is stopped but never released (hg_keep)', () => {
  const s = renderStopScript([{ ...db, release: false }], own, '/l.sh');
  assert.match(s, /hg_stop 0 'db\/pg'[^\n]*\n {2}hg_keep 0 'db'\n/);
  assert.doesNotMatch(s, /hg_release/);
});

test('stop script: an owned hierarchy with nothing running is only held and released', () => {
  const s = renderStopScript([{ name: 'idle', levels: [[]], disks: ['/d'] }], { ...own, backend: 'file' }, '/l.sh');
  assert.match(s, /hg_init file .* 2 'n1' 600 0/);
  assert.match(s, /hg_hold 0 '\/d'\nhg_begin\n\(\n {2}hg_release 0 'idle'\n\) &/);
});

const tmp = mkdtempSync(join(tmpdir(), 'guard-script-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('the stop script is written as a new file and renamed: never through a link planted under its temporary name', async () => {
  const stateDir = mkdtempSync(join(tmp, 'state-'));
  writeFileSync(join(stateDir, 'victim'), 'untouched\n');
  symlinkSync(join(stateDir, 'victim'), join(stateDir, 'guard-stop.sh.tmp'));
  const g = new Guard({ node: 'n1', stateDir, log: silentLogger() });
  g.update([db], own);
  await g.written();
  assert.equal(readFileSync(join(stateDir, 'victim'), 'utf8'), 'untouched\n');
  assert.match(readFileSync(join(stateDir, 'guard-stop.sh'), 'utf8'), /hg_stop 0 'db\/pg'/);
  assert.equal(statSync(join(stateDir, 'guard-stop.sh')).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(stateDir).sort(), ['guard-stop.sh', 'guard-stop.sh.tmp', 'victim']);
  // Rewrites asked for while one is under way collapse into the latest; nothing lands after stop().
  g.update([], own);
  g.update([db], own);
  g.update([{ ...db, name: 'db2' }], own);
  await g.written();
  assert.match(readFileSync(join(stateDir, 'guard-stop.sh'), 'utf8'), /db2/);
  g.update([db], own);
  await g.stop();
  assert.deepEqual(readdirSync(stateDir).sort(), ['guard-stop.sh.tmp', 'victim'], 'stop removed the script, the pending rewrite did not bring it back');
});

test('the guard refuses a state directory others can write (it runs the stop script from there)', () => {
  const stateDir = join(tmp, 'open');
  mkdirSync(stateDir);
  chmodSync(stateDir, 0o777);
  assert.throws(() => new Guard({ node: 'n1', stateDir, log: silentLogger() }), new RegExp(`state directory ${stateDir} is writable by .*everyone \\(mode 0777\\)`));
});

test('as root, the guard refuses a state directory root does not own', { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' }, () => {
  const stateDir = join(tmp, 'nobodys');
  mkdirSync(stateDir, { mode: 0o700 });
  chownSync(stateDir, 65534, 65534);
  assert.throws(() => new Guard({ node: 'n1', stateDir, log: silentLogger() }), new RegExp(`state directory ${stateDir} is owned by uid 65534, not root`));
});
