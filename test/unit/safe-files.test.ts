// What a daemon running as root trusts (harness/safe-files.ts): root's, writable by nobody else;
// and how it writes its own files (a new O_EXCL|O_NOFOLLOW temporary, renamed). The ownership
// cases need root (chown); as another user they are skipped and the mode cases still run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTrustedPath, untrustedReason, writeFileAtomic } from '../../harness/safe-files.ts';
import { generateAuthKey, readAuthKey } from '../../harness/authkey.ts';

const root = process.getuid?.() === 0;
const asRootOnly = root ? false : 'needs root (chown)';
const dir = mkdtempSync(join(tmpdir(), 'safe-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const NOBODY = 65534;

test('untrustedReason: as root, owner root and no group/world write; as another user, no world write', () => {
  const d = (uid: number, mode: number) => ({ uid, mode: 0o040000 | mode });
  assert.equal(untrustedReason('/s', d(0, 0o700), 'state directory', true), null);
  assert.equal(untrustedReason('/s', d(0, 0o755), 'state directory', true), null);
  assert.match(untrustedReason('/s', d(1000, 0o700), 'state directory', true) ?? '', /^state directory \/s is owned by uid 1000, not root: .*\(chown root \/s\)$/);
  assert.match(untrustedReason('/s', d(0, 0o770), 'state directory', true) ?? '', /^state directory \/s is writable by its group \(mode 0770\): only its owner may write it \(chmod go-w \/s\)$/);
  assert.match(untrustedReason('/s', d(0, 0o1777), 'hierarchy directory', true) ?? '', /is writable by its group and everyone \(mode 0777\)/);
  assert.equal(untrustedReason('/s', d(1000, 0o775), 'state directory', false), null, 'umask 002 of a user: fine as that user');
  assert.match(untrustedReason('/s', d(1000, 0o757), 'state directory', false) ?? '', /writable by everyone \(mode 0757\)/);
  assert.equal(checkTrustedPath(join(dir, 'not-yet'), 'state directory'), null, 'created later by the daemon');
});

test('checkTrustedPath on real directories: world-writable refused for everyone', () => {
  const d = join(dir, 'world');
  mkdirSync(d);
  chmodSync(d, 0o777);
  assert.match(checkTrustedPath(d, 'control socket directory') ?? '', new RegExp(`^control socket directory ${d} is writable by .*everyone \\(mode 0777\\)`));
  chmodSync(d, 0o755);
  assert.equal(checkTrustedPath(d, 'control socket directory'), null);
});

test('checkTrustedPath as root: a directory of another user is refused', { skip: asRootOnly }, () => {
  const d = join(dir, 'nobodys');
  mkdirSync(d, { mode: 0o700 });
  chownSync(d, NOBODY, NOBODY);
  assert.match(checkTrustedPath(d, 'hierarchy directory') ?? '', new RegExp(`^hierarchy directory ${d} is owned by uid ${NOBODY}, not root`));
});

test('readAuthKey as root: a key root does not own is refused, naming the file', { skip: asRootOnly }, () => {
  const key = join(dir, 'authkey-nobody');
  generateAuthKey(key);
  assert.equal(readAuthKey(key).length, 64);
  chownSync(key, NOBODY, NOBODY);
  assert.throws(() => readAuthKey(key), new RegExp(`^Error: auth key file ${key} is owned by uid ${NOBODY}, not root`));
});

test('generateAuthKey: leaves no temporary file, and never writes through a link', () => {
  const sub = mkdtempSync(join(dir, 'keygen-'));
  generateAuthKey(join(sub, 'k'));
  assert.deepEqual(readdirSync(sub), ['k']);
  assert.equal(statSync(join(sub, 'k')).mode & 0o777, 0o600);
  writeFileSync(join(sub, 'victim'), 'untouched');
  symlinkSync(join(sub, 'victim'), join(sub, 'k2'));
  assert.throws(() => generateAuthKey(join(sub, 'k2')), /already exists/);
  assert.equal(readFileSync(join(sub, 'victim'), 'utf8'), 'untouched');
});

test('writeFileAtomic: the exact mode whatever the umask, no temporary left, a symlink at the target replaced (not followed)', () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const old = process.umask(0o077);
  try {
    writeFileAtomic(join(sub, 'script'), '#!/bin/sh\n', { mode: 0o700, fsync: true });
    writeFileAtomic(join(sub, 'pid'), '42\n', { mode: 0o644 });
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(join(sub, 'script')).mode & 0o777, 0o700);
  assert.equal(statSync(join(sub, 'pid')).mode & 0o777, 0o644);
  writeFileSync(join(sub, 'victim'), 'untouched');
  symlinkSync(join(sub, 'victim'), join(sub, 'state'));
  writeFileAtomic(join(sub, 'state'), 'new', { mode: 0o600 });
  assert.equal(readFileSync(join(sub, 'victim'), 'utf8'), 'untouched');
  assert.equal(lstatSync(join(sub, 'state')).isFile(), true);
  assert.deepEqual(readdirSync(sub).sort(), ['pid', 'script', 'state', 'victim']);
});
