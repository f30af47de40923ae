// A hierarchy definition as the loader would produce it, for unit tests of the core and of what
// acts on a definition: disk, fs (on disk), ip, and app (on fs and ip) unless `extra` says.
import type { HierarchyConfig, ResourceConfig } from '../../../hierarchies/model.ts';

export function res(name: string, requires: string[] = [], kind: 'agent' | 'disk' = 'agent'): ResourceConfig {
  return {
    name,
    kind,
    provider: kind === 'agent' ? 'heartbeat' : undefined,
    type: kind === 'agent' ? 'Dummy' : undefined,
    params: {},
    requires,
    timeouts: {},
    monitors: [],
    restart: { max: 2, windowMs: 600_000 },
    disk: kind === 'disk' ? { paths: [] } : undefined,
    where: 'test',
  } as ResourceConfig;
}

export function hier(name: string, prio: Record<string, number>, extra: Partial<HierarchyConfig> = {}): HierarchyConfig {
  return {
    file: `${name}.yaml`,
    name,
    priorities: prio,
    switchback: 'intelligent',
    fenced: true,
    onLoss: 'stop',
    probe: 'everywhere',
    onStopFailure: 'block',
    resources: [res('disk', [], 'disk'), res('fs', ['disk']), res('ip'), res('app', ['fs', 'ip'])],
    utilityChecks: [],
    ...extra,
  };
}
