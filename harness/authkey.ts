// The shared cluster key that authenticates every heartbeat (HMAC-SHA256, see packet.ts).
//
// The key is the file's bytes as they are (one trailing newline removed, so a key edited or
// pasted with an editor still matches one written by generateAuthKey). Every node reads the same
// file the same way, so any content of 16 bytes or more works; `harness keygen` writes 64 hex
// characters (32 random bytes).
//
// A key readable by group or other is refused outright: anyone who can read it can forge a
// heartbeat, i.e. make a dead node look alive to the whole cluster. A daemon running as root also
// refuses a key that root does not own: its owner could read or replace it (safe-files.ts).

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CREATE_NEW, ownerReason } from './safe-files.ts';

export const MIN_KEY_BYTES = 16;
const GENERATED_KEY_BYTES = 32;

/** Read and check the cluster key. Throws an Error naming the file for every refusal. */
export function readAuthKey(path: string): Buffer {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error(`auth key file ${path} does not exist (create it with \`harness keygen ${path}\` and copy it to every node)`);
    }
    throw new Error(`auth key file ${path}: cannot stat: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`auth key file ${path} is not a regular file`);
  const owner = ownerReason(path, st, 'auth key file');
  if (owner) throw new Error(owner);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new Error(`auth key file ${path} has mode ${mode}: group/other must have no access (chmod 0600 ${path})`);
  }
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    throw new Error(`auth key file ${path}: cannot read: ${(err as Error).message}`);
  }
  key = stripOneNewline(key);
  if (key.length < MIN_KEY_BYTES) {
    throw new Error(`auth key file ${path} holds ${key.length} bytes: at least ${MIN_KEY_BYTES} are required (use \`harness keygen\`)`);
  }
  return key;
}

function stripOneNewline(b: Buffer): Buffer {
  let end = b.length;
  if (end > 0 && b[end - 1] === 0x0a) end--;
  if (end > 0 && b[end - 1] === 0x0d) end--;
  return b.subarray(0, end);
}

/**
 * Write a fresh key (32 random bytes as 64 hex characters and a newline) with mode 0600 and
 * return it as readAuthKey will read it. Refuses to replace an existing key unless `overwrite`:
 * a new key on one node cuts it off from all the others.
 */
export function generateAuthKey(path: string, opts: { overwrite?: boolean } = {}): Buffer {
  const text = randomBytes(GENERATED_KEY_BYTES).toString('hex');
  const data = Buffer.from(`${text}\n`, 'ascii');
  // Written to a temporary file first and renamed, so a crash never leaves a half-written key
  // and readers never see one; created 0600 from the first byte (no chmod window), as a new file
  // (O_EXCL|O_NOFOLLOW: never an existing file or a symlink planted under the temporary name).
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, CREATE_NEW, 0o600);
  } catch (err) {
    throw new Error(`auth key file ${path}: cannot create ${tmp}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw new Error(`auth key file ${path}: cannot write: ${(err as Error).message}`);
  }
  closeSync(fd);
  try {
    // link() fails with EEXIST atomically, so two racing keygens cannot both "win".
    if (opts.overwrite) renameSync(tmp, path);
    else linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`auth key file ${path} already exists: refusing to replace the cluster key (remove it first)`);
    }
    throw new Error(`auth key file ${path}: cannot install: ${(err as Error).message}`);
  } finally {
    rmSync(tmp, { force: true });
  }
  return Buffer.from(text, 'ascii');
}
