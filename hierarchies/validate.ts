// Agent-level checks, after the YAML itself is known to be good: does every `agent:` exist,
// what does its meta-data say about the params we pass, and what timeouts does it recommend.
// Separate from load.ts because it runs agents (meta-data is an agent action) and is async;
// `harness validate` and daemon start both use it, the decision core never does.

import { AgentNotFoundError, BUNDLED_AGENT_DIR, locateAgent } from '../agents/locate.ts';
import type { AgentRef } from '../agents/locate.ts';
import { checkParams, defaultTimeoutMs, readMetadata } from '../agents/metadata.ts';
import type { AgentMetadata } from '../agents/metadata.ts';
import { ConfigError, isError, loadCluster, loadHierarchies, splitWhere } from './load.ts';
import type { ConfigIssue } from './load.ts';
import type { Config, ResourceConfig } from './model.ts';
import { findKeyCollisions } from '../fencing/keys.ts';
import { APP_PROVIDER, APP_TYPE, appNodeProblems } from './app.ts';

/**
 * Check every agent resource of `config` and fill its timeouts from the agent's meta-data where
 * the YAML gave none (mutates `config`). Precedence of a timeout: YAML, then meta-data, then
 * harness/defaults.ts (applied by the runner). Returns errors and warnings (severity 'warning').
 */
export async function validateAgents(config: Config, opts: { nodeName?: string; onStep?: (what: string) => void } = {}): Promise<ConfigIssue[]> {
  const { agentDirs, ocfRoot } = config.cluster;
  // Search order: the admin's dirs, then the agents bundled with harness, then <ocfRoot>/resource.d.
  const dirs = [...agentDirs, BUNDLED_AGENT_DIR];
  const issues: ConfigIssue[] = [];

  for (const h of config.hierarchies) {
    for (const [i, r] of h.resources.entries()) {
      if (r.kind !== 'agent' || r.provider === undefined || r.type === undefined) continue;
      const spec = `ocf:${r.provider}:${r.type}`;
      const issue = (field: string, message: string, severity?: 'warning'): ConfigIssue => {
        const [file, line] = splitWhere(r.where);
        const out: ConfigIssue = { file, field: `resources[${i}]${field}`, message };
        if (line !== undefined) out.line = line;
        if (severity) out.severity = severity;
        return out;
      };

      let agent: AgentRef;
      try {
        agent = locateAgent(r.provider, r.type, { agentDirs: dirs, ocfRoot });
      } catch (e) {
        // AgentNotFoundError's message names the spec and every path searched.
        const msg = e instanceof AgentNotFoundError ? e.message : `${spec}: cannot locate agent: ${(e as Error).message}`;
        issues.push(issue('.agent', msg));
        continue;
      }

      let meta: AgentMetadata;
      try {
        // readMetadata caches per agent path: resources sharing an agent ask it once.
        const mopts: { ocfRoot: string; nodeName?: string } = { ocfRoot };
        if (opts.nodeName !== undefined) mopts.nodeName = opts.nodeName;
        opts.onStep?.(`meta-data of ${spec} (${agent.path})`);
        meta = await readMetadata(agent, mopts);
      } catch (e) {
        issues.push(issue('.agent', `${spec} (${agent.path}): cannot read meta-data: ${(e as Error).message}`));
        continue;
      }

      // An `app:` resource: its commands must be there on this node (file:line of the resource).
      if (r.provider === APP_PROVIDER && r.type === APP_TYPE && agent.path.startsWith(BUNDLED_AGENT_DIR)) {
        for (const p of appNodeProblems(r.params)) issues.push(issue(`.app.${p.field}`, p.message));
      }
      const { errors, warnings } = checkParams(meta, r.params);
      for (const m of errors) issues.push(issue('.params', m));
      for (const m of warnings) issues.push(issue('.params', m, 'warning'));
      fillTimeouts(r, meta);
    }
  }
  return issues;
}

function fillTimeouts(r: ResourceConfig, meta: AgentMetadata): void {
  const t = r.timeouts;
  const yamlMonitor = t.monitorMs;
  const fill = (k: 'startMs' | 'stopMs' | 'monitorMs', v: number | undefined) => {
    if (t[k] === undefined && v !== undefined) t[k] = v;
  };
  fill('startMs', defaultTimeoutMs(meta, 'start'));
  fill('stopMs', defaultTimeoutMs(meta, 'stop'));
  fill('monitorMs', defaultTimeoutMs(meta, 'monitor', 0));
  // A deeper monitor may need longer than the agent's depth-0 default; a YAML monitor timeout
  // (per op or for all monitors) still wins.
  if (yamlMonitor !== undefined) return;
  for (const op of r.monitors) {
    const v = op.timeoutMs === undefined ? defaultTimeoutMs(meta, 'monitor', op.depth) : undefined;
    if (v !== undefined) op.timeoutMs = v;
  }
}

/**
 * Everything `harness validate` reports: YAML and cross-file errors, then agent checks on the
 * hierarchies that loaded. `config` is set only when there is no error (warnings allowed).
 */
export async function validateAll(
  clusterFile: string,
  opts: { nodeName?: string; onStep?: (what: string) => void } = {},
): Promise<{ config?: Config; issues: ConfigIssue[] }> {
  let cluster;
  opts.onStep?.(`loading ${clusterFile}`);
  try {
    cluster = loadCluster(clusterFile);
  } catch (e) {
    if (e instanceof ConfigError) return { issues: e.issues };
    return { issues: [{ file: clusterFile, field: '', message: `cannot load: ${(e as Error).message}` }] };
  }
  opts.onStep?.(`loading the hierarchies in ${cluster.hierarchyDir}`);
  const loaded = loadHierarchies(cluster);
  const config: Config = { cluster, hierarchies: loaded.hierarchies };
  let agentIssues: ConfigIssue[];
  try {
    agentIssues = await validateAgents(config, opts);
  } catch (e) {
    agentIssues = [{ file: cluster.file, field: '', message: `agent checks failed: ${(e as Error).message}` }];
  }
  // Reservation keys are derived from (cluster, node) by a 32-bit hash: two nodes sharing one would
  // be indistinguishable on the disk (one could preempt the other's registrations as its own).
  const keyIssues: ConfigIssue[] = findKeyCollisions(cluster.cluster, cluster.nodes.map((n) => n.name)).map(([a, b]) => ({
    file: cluster.file,
    field: 'nodes',
    message: `nodes ${a} and ${b} get the same reservation key in cluster ${cluster.cluster}: rename one of them`,
  }));
  const issues = [...loaded.issues, ...agentIssues, ...keyIssues];
  return issues.some(isError) ? { issues } : { config, issues };
}
