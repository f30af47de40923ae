// The guard's release against its own background refresh (guard-lib.sh), on the file backend:
// a release that lands while the refresher is between its "still held?" check and its write must
// not be undone by that write, nor fail on a key the refresher just moved (the scsi tier saw
// "release FAILED" that way), and one hierarchy's release must not hold up another's refresh.
// Then the scsi error paths, with an sg_persist stand-in (real LIO: test/scsi/tests/guard-lib).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

test("a hierarchy's release in progress does not stall another hierarchy's refresh", async () => {
  const b = new FileBackend({ dir, initiator: 'n1' });
  const key = nodeKey('c', 'n1', 9);
  const disks = [{ id: 'a/disk', paths: [] }, { id: 'b/disk', paths: [] }];
  for (const d of disks) {
    await b.registerIgnore(d, key);
    await b.reserve(d, key);
  }
  const [sa, sb] = disks.map((d) => b.statePath(d));
  // A's release pauses 1 s inside its disk operation; B's key is copied before and after.
  const script = `
    T=$1 A=$2 B=$3
    . '${GUARD_LIB}'
    hg_init file ${nodePart(key).toString(16)} 0.020 20 n1 400
    hg_disk_op() {
      if [ "$1" = release ] && [ "$2" = "$A" ]; then cp "$B" "$T/b.before"; sleep 1; cp "$B" "$T/b.after"; fi
      hg_file_op "$@"
    }
    hg_hold 0 "$A"
    hg_hold 1 "$B"
    hg_begin
    hg_release 0 a
    hg_release 1 b
    hg_end`;
  const r = spawnSync('/bin/sh', ['-c', script, 'sh', dir, sa!, sb!], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /a: stopped and released/, r.stderr);
  const keyIn = (f: string) => /"n1": "(0x[0-9a-f]+)"/.exec(readFileSync(join(dir, f), 'utf8'))?.[1];
  const before = keyIn('b.before');
  const afterKey = keyIn('b.after');
  assert.ok(before && afterKey, `B's key before ${before} and after ${afterKey}`);
  // 1 s at a 20 ms refresh is ~50 refreshes; a refresher stuck behind A's lock makes none.
  const moved = Number(BigInt(afterKey) - BigInt(before));
  assert.ok(moved >= 5, `B's key moved ${moved} times while A was being released (${before} -> ${afterKey})`);
});

// sg_persist stand-in for the shell's error paths (the real one: test/scsi/tests/guard-lib.test.ts):
// per path a registration file; read-keys lists every path's key; register needs this path's key.
const FAKE_SG = `#!/bin/sh
F=\${FAKE_SG_DIR:?}
for a in "$@"; do case $a in --param-rk=*) rk=\${a#*=} ;; --param-sark=*) sark=\${a#*=} ;; --read-keys) op=read ;; --register) op=reg ;; /*) dev=\${a##*/} ;; esac; done
if [ -e "$F/fail-read" ] && [ "$op" = read ]; then echo "sense: medium error, I/O error on $dev" >&2; exit 15; fi
if [ "$op" = read ]; then echo "  PR generation=0x1, keys follow:"; cat "$F"/reg.* 2>/dev/null | sed 's/^/    /'; exit 0; fi
[ "$(cat "$F/reg.$dev" 2>/dev/null)" = "$rk" ] || { echo "persistent reserve out: scsi status: Reservation Conflict" >&2; exit 24; }
echo "$sark" >"$F/reg.$dev"
`;

function fakeSgRun(setup: (f: string) => void, body: string): { status: number | null; stderr: string; f: string } {
  const f = mkdtempSync(join(tmpdir(), 'fake-sg-'));
  mkdirSync(join(f, 'bin'));
  writeFileSync(join(f, 'bin', 'sg_persist'), FAKE_SG, { mode: 0o755 });
  setup(f);
  const script = `
    . '${GUARD_LIB}'
    hg_init scsi 4a4a0000 0.050 20 unused 600
    hg_hold 0 '/dev/p1 /dev/p2'
    ${body}
    hg_end`;
  const r = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: `${join(f, 'bin')}:${process.env.PATH}`, FAKE_SG_DIR: f } });
  return { status: r.status, stderr: r.stderr, f };
}

test('scsi release: a path preempted while another still holds our key is released, not FAILED', () => {
  const r = fakeSgRun((f) => writeFileSync(join(f, 'reg.p2'), '0x4a4a000000000007\n'), 'hg_begin; hg_release 0 web');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /web: stopped and released/, r.stderr);
  assert.equal(readFileSync(join(r.f, 'reg.p2'), 'utf8').trim(), '0x4a4a0000ffffffff');
});

test('scsi release: a failed read of the keys is logged with the command, its exit code and stderr', () => {
  const r = fakeSgRun((f) => {
    writeFileSync(join(f, 'reg.p1'), '0x4a4a000000000007\n');
    writeFileSync(join(f, 'reg.p2'), '0x4a4a000000000007\n');
  }, 'hg_begin; : >"$FAKE_SG_DIR/fail-read"; hg_release 0 web');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /web: stopped, release FAILED .*\/dev\/p1: read keys: sg_persist -n --in --read-keys \/dev\/p1 exit 15: sense: medium error, I\/O error on p1/, r.stderr);
});
