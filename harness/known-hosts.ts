// OpenSSH known_hosts checking for the admin tool (`harness status --all`). An admin tool that
// logs in as root on every node must not trust whatever key answers: a node is only talked to
// when its host key is in known_hosts, exactly like `ssh` with StrictHostKeyChecking=yes.
//
// Supported: plain and hashed (|1|salt|hash) host entries, `[host]:port` for non-22 ports,
// comma-separated patterns with * and ? wildcards and !negation, @revoked (never accepted),
// comments and blank lines. @cert-authority lines are skipped (no certificate support).
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

interface Entry {
  marker: '' | '@revoked' | '@cert-authority';
  patterns: string;
  key: Buffer; // SSH wire format, as ssh2 hands it to the host verifier
  line: number;
}

export interface KnownHosts {
  file: string;
  entries: Entry[];
}

export function loadKnownHosts(file: string): KnownHosts {
  const entries: Entry[] = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((raw, i) => {
    const text = raw.trim();
    if (text === '' || text.startsWith('#')) return;
    const f = text.split(/\s+/);
    let marker: Entry['marker'] = '';
    if (f[0] === '@revoked' || f[0] === '@cert-authority') marker = f.shift() as Entry['marker'];
    const [patterns, , b64] = f;
    if (!patterns || !b64) return; // malformed: ssh ignores such lines too
    entries.push({ marker, patterns, key: Buffer.from(b64, 'base64'), line: i + 1 });
  });
  return { file, entries };
}

/** The name ssh looks up: "host" on port 22, "[host]:port" otherwise. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function glob(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function matches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let hit = false;
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (glob(p.slice(1), name)) return false;
    } else if (glob(p, name)) {
      hit = true;
    }
  }
  return hit;
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: string };

/** Is `key` (SSH wire format) a known, non-revoked host key of host:port? */
export function checkHostKey(kh: KnownHosts, host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = hostKeyName(host, port);
  const forHost = kh.entries.filter((e) => e.marker === '' && matches(e.patterns, name));
  const revoked = kh.entries.find((e) => e.marker === '@revoked' && e.key.equals(key));
  if (revoked) return { ok: false, reason: `host key of ${name} is marked @revoked (${kh.file}:${revoked.line})` };
  if (forHost.some((e) => e.key.equals(key))) return { ok: true };
  if (forHost.length > 0) {
    return { ok: false, reason: `HOST KEY OF ${name} DOES NOT MATCH ${kh.file} (lines ${forHost.map((e) => e.line).join(', ')}): possible man-in-the-middle, or the node was reinstalled` };
  }
  return { ok: false, reason: `${name} is not in ${kh.file} (add it with: ssh-keyscan ${port === 22 ? '' : `-p ${port} `}${host} >> ${kh.file})` };
}
