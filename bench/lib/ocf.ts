// Run one OCF agent action inside a test node, with the environment a cluster manager gives
// it (field notes §1). Only the stand-in manager and the test bed's own checks use this; the
// harness has its own runner (agents/runner.ts).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsCluster, TestNode } from './cluster.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OCF_ROOT = '/usr/lib/ocf';

export interface OcfResource {
  /** OCF_RESOURCE_INSTANCE. */
  instance: string;
  provider: string;
  type: string;
  params: Record<string, string>;
}

export function agentPath(provider: string, type: string): string {
  const bundled = join(REPO, 'agents', 'resource.d', provider, type);
  if (existsSync(bundled)) return bundled;
  return join(OCF_ROOT, 'resource.d', provider, type);
}

export function ocfEnv(r: OcfResource, node: string, action: string, timeoutMs: number, intervalMs = 0): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    OCF_ROOT,
    OCF_RA_VERSION_MAJOR: '1',
    OCF_RA_VERSION_MINOR: '1',
    OCF_RESOURCE_INSTANCE: r.instance,
    OCF_RESOURCE_TYPE: r.type,
    OCF_RESOURCE_PROVIDER: r.provider,
    OCF_EXIT_REASON_PREFIX: 'ocf-exit-reason:',
    OCF_CHECK_LEVEL: '0',
    HA_RSCTMP: '/run/resource-agents',
    OCF_RESKEY_CRM_meta_timeout: String(timeoutMs),
    OCF_RESKEY_CRM_meta_interval: String(intervalMs),
    OCF_RESKEY_CRM_meta_on_node: node,
    OCF_RESKEY_CRM_meta_name: action,
  };
  for (const [k, v] of Object.entries(r.params)) env[`OCF_RESKEY_${k}`] = v;
  return env;
}

/** Run `action` of agent `r` in `node`; resolves with the OCF exit code and output. */
export async function ocfAction(
  cluster: NetnsCluster,
  node: TestNode,
  r: OcfResource,
  action: 'start' | 'stop' | 'monitor' | 'meta-data' | 'validate-all',
  timeoutMs = 20_000,
): Promise<{ rc: number; output: string; ms: number }> {
  const t = performance.now();
  const res = await cluster.exec(node, [agentPath(r.provider, r.type), action], {
    env: ocfEnv(r, node.name, action, timeoutMs),
    timeoutMs,
    allowFail: true,
  });
  return { rc: res.code, output: `${res.stdout}${res.stderr}`, ms: performance.now() - t };
}
