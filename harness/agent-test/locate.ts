// What `harness agent test` is pointed at: an agent spec (`ocf:provider:type`, searched as the
// daemon searches: --agent-dir, the bundled agents, <ocfRoot>/resource.d) or a path to a script
// (provider and type from its last two path components, as in a resource.d tree).
import { accessSync, constants, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { AgentNotFoundError, BUNDLED_AGENT_DIR, locateAgent, parseAgentSpec } from '../../agents/locate.ts';
import type { AgentRef } from '../../agents/locate.ts';

export function agentUnderTest(target: string, opts: { agentDirs: string[]; ocfRoot: string }): AgentRef {
  const spec = parseAgentSpec(target);
  if (spec) return locateAgent(spec.provider, spec.type, { agentDirs: [...opts.agentDirs, BUNDLED_AGENT_DIR], ocfRoot: opts.ocfRoot });
  if (target.startsWith('ocf:')) throw new AgentNotFoundError(`invalid agent spec ${JSON.stringify(target)}: expected ocf:<provider>:<type>`, []);
  const path = resolve(target);
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    accessSync(path, constants.X_OK);
  } catch (e) {
    throw new AgentNotFoundError(`${path}: ${(e as Error).message.replace(/^.*?: /, '')} (expected an executable agent or ocf:<provider>:<type>)`, [path]);
  }
  return { provider: basename(dirname(path)), type: basename(path), path };
}
