// A short fingerprint of a node's effective configuration (cluster settings and hierarchy
// definitions), advertised in every heartbeat: nodes that run different configurations show up
// in every node's status and make `status --all` fail. The file's own path is not part of it.
import { createHash } from 'node:crypto';
import type { Config } from '../hierarchies/model.ts';

export function configFingerprint(config: Pick<Config, 'cluster' | 'hierarchies'>): string {
  const { file: _file, ...cluster } = config.cluster as Config['cluster'] & { file?: string };
  const hierarchies = [...config.hierarchies].sort((a, b) => a.name.localeCompare(b.name));
  return createHash('sha256').update(JSON.stringify({ cluster, hierarchies })).digest('hex').slice(0, 16);
}
