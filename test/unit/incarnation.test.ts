// The incarnation only grows across restarts of a node, whatever its clock does (issue 8: a peer
// restarted with its clock an hour behind was dropped as "replayed" for that hour).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INCARNATION_FILE, nextIncarnation } from '../../harness/incarnation.ts';

const dir = mkdtempSync(join(tmpdir(), 'incarnation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('incarnation: the clock at first start, then never below the last one plus one', () => {
  assert.equal(nextIncarnation(dir, 1_000_000), 1_000_000);
  assert.equal(readFileSync(join(dir, INCARNATION_FILE), 'utf8').trim(), '1000000', 'recorded before use');
  assert.equal(nextIncarnation(dir, 1_000_000 - 3_600_000 + 5), 1_000_001, 'clock set back an hour: still higher');
  assert.equal(nextIncarnation(dir, 1_000_001), 1_000_002, 'same millisecond: still higher');
  assert.equal(nextIncarnation(dir, 2_000_000), 2_000_000, 'the clock again once it is ahead');
});

test('incarnation: an unreadable record counts as none', () => {
  writeFileSync(join(dir, INCARNATION_FILE), 'garbage\n');
  assert.equal(nextIncarnation(dir, 5_000), 5_000);
});

test('incarnation: its temporary file is never written through a link planted under the old name', () => {
  const sub = mkdtempSync(join(dir, 'link-'));
  writeFileSync(join(sub, 'victim'), 'untouched\n');
  symlinkSync(join(sub, 'victim'), join(sub, `${INCARNATION_FILE}.tmp`));
  assert.equal(nextIncarnation(sub, 7_000), 7_000);
  assert.equal(readFileSync(join(sub, 'victim'), 'utf8'), 'untouched\n');
  assert.equal(readFileSync(join(sub, INCARNATION_FILE), 'utf8'), '7000\n');
  assert.deepEqual(readdirSync(sub).sort(), [INCARNATION_FILE, `${INCARNATION_FILE}.tmp`, 'victim'], 'no temporary of its own left');
});
