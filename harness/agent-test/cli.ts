// `harness agent test` behind its command line: parse the options, run, print, exit status.
import { resolve } from 'node:path';
import { formatAgentTest } from './format.ts';
import { agentUnderTest } from './locate.ts';
import { testAgent } from './run.ts';
import type { AgentTestOptions } from './run.ts';

export interface AgentTestCli {
  param: string[];
  json?: boolean;
  depth: string;
  kill?: boolean;
  instance?: string;
  ocfRoot: string;
  agentDir: string[];
  verbose?: boolean;
  resource?: string;
  config: string;
}

export function parseParams(list: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const p of list) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`-p ${p}: expected name=value`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return params;
}

/**
 * A resource of the configuration (`hierarchy/resource`: an `agent:` or an `app:`): its agent,
 * parameters and timeouts as the daemon would use them. -p parameters are added on top.
 */
async function configuredResource(spec: string, configFile: string): Promise<Pick<AgentTestOptions, 'agent' | 'params' | 'ocfRoot' | 'timeouts'>> {
  const [hName, rName] = spec.split('/');
  const { validateAll } = await import('../../hierarchies/validate.ts');
  const { ConfigError, isError } = await import('../../hierarchies/issues.ts');
  const { config, issues } = await validateAll(resolve(configFile));
  if (!config) throw new ConfigError(issues.filter(isError));
  const h = config.hierarchies.find((x) => x.name === hName);
  const r = h?.resources.find((x) => x.name === rName);
  if (!h || !r) throw new Error(`${configFile}: no resource ${spec} (expected hierarchy/resource: ${config.hierarchies.flatMap((x) => x.resources.map((y) => `${x.name}/${y.name}`)).join(', ')})`);
  if (r.kind !== 'agent' || !r.provider || !r.type) throw new Error(`${spec} is a disk: it has no agent to test`);
  const { ocfRoot, agentDirs } = config.cluster;
  return {
    agent: agentUnderTest(`ocf:${r.provider}:${r.type}`, { agentDirs, ocfRoot }),
    params: r.params,
    ocfRoot,
    timeouts: { start: r.timeouts.startMs, stop: r.timeouts.stopMs, monitor: r.timeouts.monitorMs },
  };
}

/** Runs the test and prints the report; the exit status: 0 when no check failed. */
export async function runAgentTestCommand(target: string | undefined, o: AgentTestCli): Promise<number> {
  const depth = o.depth === 'all' ? 'all' : Number(o.depth);
  if (depth !== 'all' && !(Number.isInteger(depth) && depth >= 0)) throw new Error(`--depth: expected a number or "all", got "${o.depth}"`);
  if ((target === undefined) === (o.resource === undefined)) throw new Error('give an agent (ocf:<provider>:<type> or a path) or --resource <hierarchy/resource>, one of them');
  const ocfRoot = resolve(o.ocfRoot);
  const base = o.resource !== undefined
    ? await configuredResource(o.resource, o.config)
    : { agent: agentUnderTest(target as string, { agentDirs: o.agentDir.map((d) => resolve(d)), ocfRoot }), params: {}, ocfRoot };
  const report = await testAgent({ ...base, params: { ...base.params, ...parseParams(o.param) }, depth, kill: !!o.kill, ...(o.instance ? { instance: o.instance } : {}) });
  console.log(o.json ? JSON.stringify(report, null, 2) : formatAgentTest(report, { verbose: !!o.verbose }));
  return report.ok ? 0 : 1;
}
