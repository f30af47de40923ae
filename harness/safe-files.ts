// Files and directories the daemon trusts, and how it writes its own.
//
// A daemon running as root runs what these paths hold: the guard executes its stop script from
// stateDir, agents run with the parameters of hierarchyDir's files, the control socket's
// directory decides who can stand in for the socket, and the auth key makes heartbeats. So, when
// running as root, each must be owned by root and writable by nobody else (no group or world
// write). As another user (demos, tests) ownership is not checked and only world write is
// refused: a group-writable directory is what umask 002 gives a user's own files.
//
// The daemon's own files (state, scripts, pid) are written as a new temporary file next to the
// target, created with O_CREAT|O_EXCL|O_NOFOLLOW (never an existing file, never through a symlink
// planted there), then renamed over the target: a reader sees the old or the new content whole.
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Does this process run as root (then trusted paths must be root's)? */
export function runningAsRoot(): boolean {
  return process.geteuid?.() === 0;
}

/**
 * Why `path` (a `what`, e.g. "state directory"), with stat `st`, is not to be trusted; null when
 * it may be. `asRoot`: the rules for a daemon running as root (default: this process).
 */
export function untrustedReason(path: string, st: Pick<Stats, 'uid' | 'mode'>, what: string, asRoot: boolean = runningAsRoot()): string | null {
  const owner = ownerReason(path, st, what, asRoot);
  if (owner) return owner;
  const mode = st.mode & 0o7777;
  const octal = `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
  const writers = [asRoot && (mode & 0o020) !== 0 ? 'its group' : '', (mode & 0o002) !== 0 ? 'everyone' : ''].filter(Boolean);
  if (writers.length > 0) {
    return `${what} ${path} is writable by ${writers.join(' and ')} (mode ${octal}): only its owner may write it (chmod go-w ${path})`;
  }
  return null;
}

/** The ownership half of untrustedReason: running as root, only root may own what it trusts. */
export function ownerReason(path: string, st: Pick<Stats, 'uid'>, what: string, asRoot: boolean = runningAsRoot()): string | null {
  if (!asRoot || st.uid === 0) return null;
  return `${what} ${path} is owned by uid ${st.uid}, not root: a daemon running as root trusts it, so only root may own it (chown root ${path})`;
}

/**
 * The same check on a path that may not exist yet (then it is fine: the daemon creates it, as
 * root, with a safe mode). Returns the reason, or null.
 */
export function checkTrustedPath(path: string, what: string, asRoot: boolean = runningAsRoot()): string | null {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return `${what} ${path}: cannot stat: ${(e as Error).message}`;
  }
  return untrustedReason(path, st, what, asRoot);
}

/** Throws an Error naming the path when `dir` is not to be trusted (see untrustedReason). */
export function assertTrustedDir(dir: string, what: string): void {
  const why = checkTrustedPath(dir, what);
  if (why) throw new Error(why);
}

/** Open flags of a file that must be new: not an existing file, not a symlink (even a dangling one). */
export const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Replace `path` with `data` in one rename: written to `.<name>.<random>.tmp` beside it, created
 * with CREATE_NEW and `mode`, optionally fsync'd. The temporary file is removed on failure.
 */
export function writeFileAtomic(path: string, data: string | Buffer, opts: { mode: number; fsync?: boolean }): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, CREATE_NEW, opts.mode);
  try {
    try {
      fchmodSync(fd, opts.mode); // the mode asked for, whatever the umask
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      if (opts.fsync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * writeFileAtomic off the event loop: the temporary file is created, written and closed in the
 * thread pool; the rename is done here, synchronously, and only when `commit()` still says yes
 * (the caller may have been told to stop meanwhile), so it is ordered with the caller's other work.
 */
export async function writeFileAtomicAsync(path: string, data: string, opts: { mode: number }, commit: () => boolean = () => true): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, CREATE_NEW, opts.mode);
  try {
    try {
      await fh.chmod(opts.mode); // the mode asked for, whatever the umask
      await fh.writeFile(data, 'utf8');
    } finally {
      await fh.close();
    }
    if (commit()) renameSync(tmp, path);
    else rmSync(tmp, { force: true });
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
