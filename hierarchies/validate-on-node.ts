// `harness validate --agents`: each agent's own validate-all, run on this node exactly as the
// daemon runs it before a start (harness/actions.ts: same instance name, parameters, environment
// and timeout). Apart from validateAll() because it needs this node's environment (binaries,
// files, users the agent checks), which an admin station validating the YAML does not have.
import { hostname } from 'node:os';
import { BUNDLED_AGENT_DIR, locateAgent } from '../agents/locate.ts';
import type { AgentRef } from '../agents/locate.ts';
import { DEFAULT_RSCTMP } from '../agents/runner.ts';
import { runOp } from '../harness/actions.ts';
import type { AgentContext, ResourceInfo } from '../harness/actions.ts';
import { silentLogger } from '../harness/log.ts';
import type { ConfigIssue } from './issues.ts';
import { splitWhere } from './load.ts';
import type { Config } from './model.ts';

export async function validateAgentsOnNode(config: Config, opts: { nodeName?: string; onStep?: (what: string) => void } = {}): Promise<ConfigIssue[]> {
  const node = opts.nodeName ?? hostname();
  const ctx: AgentContext = {
    node,
    ocfRoot: config.cluster.ocfRoot,
    rscTmp: process.env.HA_RSCTMP ?? DEFAULT_RSCTMP,
    log: silentLogger(),
    agents: new Map<string, AgentRef>(),
    info: new Map<string, ResourceInfo>(),
  };
  const issues: ConfigIssue[] = [];
  const dirs = [...config.cluster.agentDirs, BUNDLED_AGENT_DIR];
  for (const h of config.hierarchies) {
    for (const [i, r] of h.resources.entries()) {
      if (r.kind !== 'agent' || r.provider === undefined || r.type === undefined) continue;
      ctx.agents.set(`${h.name}/${r.name}`, locateAgent(r.provider, r.type, { agentDirs: dirs, ocfRoot: ctx.ocfRoot }));
      opts.onStep?.(`validate-all of ${h.name}/${r.name} (ocf:${r.provider}:${r.type})`);
      const res = await runOp(ctx, h, r, 'validate-all');
      if (res.result === 'success' || res.result === 'unimplemented') continue;
      const [file, line] = splitWhere(r.where);
      const issue: ConfigIssue = {
        file,
        field: `resources[${i}]`,
        message: `validate-all of ocf:${r.provider}:${r.type} on node ${node}: ${res.result}${res.rc !== null ? ` (rc ${res.rc})` : ''}${res.exitReason ? `: ${res.exitReason}` : ''} — the daemon would not start it`,
      };
      if (line !== undefined) issue.line = line;
      issues.push(issue);
    }
  }
  return issues;
}
