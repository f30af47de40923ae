// Finding an OCF resource agent on disk: `ocf:<provider>:<type>` lives at
// `<dir>/<provider>/<type>` in a resource.d-style directory. The admin's extra directories are
// searched first (so a site can override a stock agent), then `<OCF_ROOT>/resource.d`.

import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AgentRef {
  provider: string;
  type: string;
  /** Absolute path of the executable. */
  path: string;
}

export class AgentNotFoundError extends Error {
  /** Every candidate path looked at, in search order (empty when the name itself was refused). */
  searched: string[];
  constructor(message: string, searched: string[]) {
    super(message);
    this.name = 'AgentNotFoundError';
    this.searched = searched;
  }
}

/** The agents shipped with harness (`ocf:harness:webserver`, `ocf:harness:hang`). */
export const BUNDLED_AGENT_DIR: string = fileURLToPath(new URL('./resource.d', import.meta.url));

// One path component made of ordinary characters, not starting with a dot: this refuses "..",
// "a/b", hidden files and anything a shell or a log line could misread.
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;

function checkName(what: string, value: string): void {
  if (!NAME.test(value)) {
    throw new AgentNotFoundError(
      `invalid OCF ${what} ${JSON.stringify(value)}: use letters, digits, '_', '.', '+', '-' (not starting with '.')`,
      [],
    );
  }
}

/** "ocf:heartbeat:Dummy" -> { provider: "heartbeat", type: "Dummy" }; null for anything else. */
export function parseAgentSpec(spec: string): { provider: string; type: string } | null {
  const parts = spec.split(':');
  if (parts.length !== 3) return null;
  const [cls, provider, type] = parts as [string, string, string];
  if (cls !== 'ocf' || !NAME.test(provider) || !NAME.test(type)) return null;
  return { provider, type };
}

export function locateAgent(provider: string, type: string, opts: { agentDirs: string[]; ocfRoot: string }): AgentRef {
  checkName('provider', provider);
  checkName('type', type);
  const dirs = [...opts.agentDirs, join(opts.ocfRoot, 'resource.d')];
  const searched: string[] = [];
  // Say why a candidate that exists was passed over: "not found" alone would mislead the admin.
  const skipped: string[] = [];
  for (const dir of dirs) {
    const path = join(dir, provider, type);
    searched.push(path);
    let isFile: boolean;
    try {
      isFile = statSync(path).isFile(); // follows symlinks: packaged agents are sometimes links
    } catch {
      continue;
    }
    if (!isFile) {
      skipped.push(`${path} is not a regular file`);
      continue;
    }
    try {
      accessSync(path, constants.X_OK);
    } catch {
      skipped.push(`${path} is not executable`);
      continue;
    }
    return { provider, type, path };
  }
  const why = skipped.length > 0 ? `; ${skipped.join('; ')}` : '';
  throw new AgentNotFoundError(
    `OCF agent ocf:${provider}:${type} not found (searched ${searched.join(', ')})${why}`,
    searched,
  );
}
