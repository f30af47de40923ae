// The guard's shell (guard-lib.sh) on real LIO through real sg_persist: node1 holds disk 0 through
// two paths while its background refresher moves the key every 50 ms, and the guard releases.
// Refresh and release of a hierarchy exclude each other: a release waits for a refresh in flight,
// the refresher skips a hierarchy being released (else the key moves under the release: conflict,
// "release FAILED", in CI), and no refresh may bring the released key back.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScsiBackend } from '../../../fencing/scsi.ts';
import { isReleasedKey, nodePart } from '../../../fencing/keys.ts';
import { bound, devs, diskRef, notInBed, wipe, writeBlock } from './lib/bed.ts';

const skip = notInBed();
const GUARD_LIB = fileURLToPath(new URL('../../../harness/guard-lib.sh', import.meta.url));
const scsi = new ScsiBackend();
const K = 0x4a4a000000000005n;

before(async () => {
  if (!skip) await wipe(0);
});

/** Run the guard's shell as node1, registered and reserving disk 0 (both paths): HOOKS after
 *  hg_init, then BODY, with $T a fresh directory. */
async function guard(hooks: string, body: string) {
  await scsi.registerIgnore(diskRef('node1'), K);
  await scsi.reserve(diskRef('node1'), K);
  const t = mkdtempSync(join(tmpdir(), 'guard-lib-'));
  const script = `
    T=$1
    . '${GUARD_LIB}'
    hg_init scsi ${nodePart(K).toString(16).padStart(8, '0')} 0.050 60 unused 600
    ${hooks}
    hg_hold 0 '${devs('node1').join(' ')}'
    hg_begin
    ${body}
    hg_end`;
  return spawnSync('/bin/sh', ['-c', script, 'sh', t], { encoding: 'utf8', timeout: bound(60_000) });
}

/** Both of node1's paths at the released marker, the reservation under it; a peer takes the disk at once. */
async function assertReleasedAndTaken(stderr: string, peerKey: bigint): Promise<void> {
  assert.match(stderr, /app: stopped and released/, stderr);
  const keys = (await scsi.readKeys(diskRef('node2'))).keys.filter((k) => nodePart(k) === nodePart(K));
  assert.equal(keys.length, 2, `node1's two paths: ${keys.map((k) => k.toString(16)).join(', ')}`);
  assert.ok(keys.every(isReleasedKey), `both paths at the released marker: ${keys.map((k) => k.toString(16)).join(', ')}\n${stderr}`);
  const res = await scsi.readReservation(diskRef('node2'));
  assert.ok(res.holder !== null && isReleasedKey(res.holder), `the reservation stays under the marker: ${String(res.holder)}`);
  // The marker is a key like any other: a peer preempts it at once (no liveness window to wait).
  await scsi.registerIgnore(diskRef('node2'), peerKey);
  await scsi.preemptAbort(diskRef('node2'), peerKey, res.holder);
  assert.equal((await writeBlock(devs('node2')[0] as string)).ok, true, 'the new holder writes');
  assert.equal((await writeBlock(devs('node1')[0] as string)).ok, false, 'the released node is fenced');
}

test('guard on two paths: a release during a paused refresh waits for it, releases both paths, is never revived; a peer takes the disk', { skip, timeout: bound(120_000) }, async () => {
  const r = await guard(
    `hg_disk_op() {
      if [ "$1" = refresh ] && [ -e "$T/slow" ] && mkdir "$T/paused" 2>/dev/null; then
        sleep 1; hg_scsi_op "$@"; _r=$?; : >"$T/resumed"; return $_r
      fi
      hg_scsi_op "$@"
    }`,
    `: >"$T/slow"
    until [ -d "$T/paused" ]; do sleep 0.005; done
    hg_release 0 app
    until [ -e "$T/resumed" ]; do sleep 0.005; done
    sleep 0.3 # a further pass of the refresher, if it still thought the disk held
    hg_scsi_op refresh '${devs('node1').join(' ')}' || exit 7`,
  );
  assert.equal(r.status, 0, `guard script exit ${r.status}: ${r.stderr}`);
  await assertReleasedAndTaken(r.stderr, 0x5b5b000000000001n);
  await wipe(0);
});

test('guard on two paths: the refresher leaves the key alone while a release is between reading the keys and moving them', { skip, timeout: bound(120_000) }, async () => {
  // The release pauses after it read the keys, before it moves them (the refresher runs every
  // 50 ms, so 1 s is 20 chances for it to move the key the release is about to name).
  const r = await guard(
    `hg_sg() {
      case "$*" in *"--param-sark=$HG_RELEASED_KEY"*) mkdir "$T/paused" 2>/dev/null && sleep 1 ;; esac
      { _e=$(timeout -s KILL 5 sg_persist -n "$@" </dev/null 2>&1 1>&3 3>&-); _rc=$?; } 3>&1
      HG_SG_ERR="sg_persist -n $* exit $_rc: $_e"
      return $_rc
    }`,
    `sleep 0.2 # the refresher has moved the key a few times
    hg_release 0 app`,
  );
  assert.equal(r.status, 0, `guard script exit ${r.status}: ${r.stderr}`);
  await assertReleasedAndTaken(r.stderr, 0x5b5b000000000002n);
});
