// The cluster file a test of Comm needs: its nodes and their addresses, the heartbeat timings;
// everything else points nowhere (Comm reads none of it). Shared by the unit tests over the
// in-memory transport and the integration tests over real UDP.
import type { ClusterConfig } from '../../hierarchies/model.ts';

export function commCluster(nodes: Array<{ name: string; addresses: string[] }>, heartbeatIntervalMs: number, deadTimeMs: number): ClusterConfig {
  return {
    file: '/test/cluster.yaml',
    cluster: 'test',
    nodes: nodes.map((n) => ({ ...n, controlSocket: `/nonexistent/${n.name}.sock` })),
    heartbeatIntervalMs,
    deadTimeMs,
    authKeyFile: '/nonexistent/authkey',
    stateDir: '/nonexistent/state',
    hierarchyDir: '/nonexistent/hierarchies',
    ownership: { backend: 'file', dir: '/nonexistent/own' },
    agentDirs: [],
    ocfRoot: '/usr/lib/ocf',
    maxParallelHierarchies: 16,
    onStop: 'stop',
    haltCommand: 'true',
  };
}
