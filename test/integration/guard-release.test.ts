// The guard's release against its own background refresh (guard-lib.sh), on the file backend:
// a release that lands while the refresher is between its "still held?" check and its write must
// not be undone by that write, nor fail on a key the refresher just moved (the scsi tier saw
// "release FAILED" that way). The refresher is paused inside one refresh; the release is run then.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { FileBackend } from '../../fencing/file.ts';
import { isReleasedKey, nodeKey, nodePart } from '../../fencing/keys.ts';

const GUARD_LIB = fileURLToPath(new URL('../../harness/guard-lib.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'guard-release-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a release while the refresher is inside a refresh: released once that refresh is done, and never revived', async () => {
  const disk = { id: 'web/disk', paths: [] };
  const b = new FileBackend({ dir, initiator: 'n1' });
  const key = nodeKey('c', 'n1', 7);
  await b.registerIgnore(disk, key);
  await b.reserve(disk, key);
  const state = b.statePath(disk);
  // The first refresh after `slow` exists pauses before its write (marks paused, then resumed).
  const script = `
    T=$1 S=$2
    . '${GUARD_LIB}'
    hg_init file ${nodePart(key).toString(16)} 0.020 20 n1 400
    hg_disk_op() {
      if [ "$1" = refresh ] && [ -e "$T/slow" ] && mkdir "$T/paused" 2>/dev/null; then
        sleep 0.3; hg_file_op "$@"; _r=$?; : >"$T/resumed"; return $_r
      fi
      hg_file_op "$@"
    }
    hg_hold 0 "$S"
    hg_begin
    : >"$T/slow"
    until [ -d "$T/paused" ]; do sleep 0.005; done
    hg_release 0 web
    until [ -e "$T/resumed" ]; do sleep 0.005; done
    sleep 0.1 # a further pass of the refresher, if it still thought the disk held
    hg_file_op refresh "$S" # a refresh of a released key leaves it released
    hg_end`;
  const r = spawnSync('/bin/sh', ['-c', script, 'sh', dir, state], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /web: stopped and released/, r.stderr);
  const { keys } = await b.readKeys(disk);
  assert.equal(keys.length, 1, `keys ${keys.map(String).join(', ')}`);
  assert.ok(isReleasedKey(keys[0]!), `n1's key ${keys[0]!.toString(16)} is not the released marker: the refresh in flight undid the release\n${r.stderr}`);
  assert.equal((await b.readReservation(disk)).holder, keys[0], 'the reservation stays, under the released marker');
});
