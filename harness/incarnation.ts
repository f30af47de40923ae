// This node's incarnation: the number peers use to tell a restarted node from a replayed packet
// ((incarnation, seq) must only grow per sender). The wall clock at start-up, but never below the
// last one used plus one: it is kept in stateDir, so a node restarted with its clock set back (an
// hour behind, a bad RTC) is not dropped by its peers as "replayed" until the clock catches up.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './safe-files.ts';

export const INCARNATION_FILE = 'incarnation';

/** The rule, pure: the clock, but always above the previous one. */
export function incarnationAfter(prev: number, now: number): number {
  return Math.max(Math.floor(now), prev + 1);
}

/** The next incarnation for this start, recorded (fsync'd) in `stateDir` before it is used. */
export function nextIncarnation(stateDir: string, now: number = Date.now()): number {
  const file = join(stateDir, INCARNATION_FILE);
  let prev = 0;
  try {
    const v = Number(readFileSync(file, 'utf8').trim());
    if (Number.isSafeInteger(v) && v > 0) prev = v;
  } catch {
    // first start here (or unreadable): the clock alone
  }
  const inc = incarnationAfter(prev, now);
  // A new temporary file (O_EXCL|O_NOFOLLOW), fsync'd, renamed: never written through a link.
  writeFileAtomic(file, `${inc}\n`, { mode: 0o600, fsync: true });
  return inc;
}
