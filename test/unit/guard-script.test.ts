// The guard's stop script as the daemon writes it (harness/guard.ts): what it holds, in which
// order it stops, and when it releases. The shell itself runs in test/integration/guard.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardOrder, isClientFacing, renderStopScript, type GuardHierarchy, type GuardOwnership } from '../../harness/guard.ts';

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
  assert.equal(s[3], "hg_init scsi 8c3e0a12 0.250 17 'n1' 600");
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
  assert.match(s, /hg_init file .* 2 'n1' 600/);
  assert.match(s, /hg_hold 0 '\/d'\nhg_begin\n\(\n {2}hg_release 0 'idle'\n\) &/);
});
