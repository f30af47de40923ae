// The admin map (core/admin.ts) on disk: `<stateDir>/admin.json`, written atomically and fsync'd
// on every change, so standby, maintenance, stop and move survive a restart of this daemon and of
// the whole cluster. A file that cannot be read or checked is not trusted: the daemon refuses to
// start rather than forget that, say, a node was put in standby.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkAdminDoc, copyAdminDoc, type AdminDoc } from './core/admin.ts';
import { DEFAULTS } from './defaults.ts';
import { writeFileAtomic } from './safe-files.ts';

export const ADMIN_FILE = 'admin.json';

export function loadAdmin(stateDir: string): AdminDoc {
  const file = join(stateDir, ADMIN_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`${file}: cannot read the admin state: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message}); fix or remove it (peers send the current admin state when it is gone)`);
  }
  const why = checkAdminDoc(v, DEFAULTS.adminMaxEntries);
  if (why) throw new Error(`${file}: ${why}; fix or remove it (peers send the current admin state when it is gone)`);
  return copyAdminDoc(v as AdminDoc);
}

export function saveAdmin(stateDir: string, doc: AdminDoc): void {
  writeFileAtomic(join(stateDir, ADMIN_FILE), JSON.stringify(doc, null, 1) + '\n', { mode: 0o600, fsync: true });
}
