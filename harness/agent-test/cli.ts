// `harness agent test` behind its command line: parse the options, run, print, exit status.
import { resolve } from 'node:path';
import { formatAgentTest } from './format.ts';
import { agentUnderTest } from './locate.ts';
import { testAgent } from './run.ts';

export interface AgentTestCli {
  param: string[];
  json?: boolean;
  depth: string;
  kill?: boolean;
  instance?: string;
  ocfRoot: string;
  agentDir: string[];
  verbose?: boolean;
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

/** Runs the test and prints the report; the exit status: 0 when no check failed. */
export async function runAgentTestCommand(target: string, o: AgentTestCli): Promise<number> {
  const depth = o.depth === 'all' ? 'all' : Number(o.depth);
  if (depth !== 'all' && !(Number.isInteger(depth) && depth >= 0)) throw new Error(`--depth: expected a number or "all", got "${o.depth}"`);
  const ocfRoot = resolve(o.ocfRoot);
  const agent = agentUnderTest(target, { agentDirs: o.agentDir.map((d) => resolve(d)), ocfRoot });
  const report = await testAgent({ agent, params: parseParams(o.param), ocfRoot, depth, kill: !!o.kill, ...(o.instance ? { instance: o.instance } : {}) });
  console.log(o.json ? JSON.stringify(report, null, 2) : formatAgentTest(report, { verbose: !!o.verbose }));
  return report.ok ? 0 : 1;
}
