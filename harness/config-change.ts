// What a changed cluster.yaml may change in a running daemon. Pure.
//
// Live (applied on reload): agentDirs, ocfRoot, controlGroup, hierarchyDir,
// maxParallelHierarchies, onStop, haltCommand; startupGrace (it counts at the next start).
//
// Needs a restart (refused; the daemon keeps running on the configuration it started with):
//   - cluster, nodes (names, addresses, control sockets), stateDir: who we are and who our
//     peers are; the comm paths are bound at start;
//   - authKeyFile: peers that switch keys at different moments would drop each other's packets
//     and take each other for dead;
//   - ownership (backend and its settings): every reservation held is in the running backend;
//   - heartbeat interval and dead time: every ownership timer is derived from the dead time
//     (key refresh, the frozen-key window, file lock staleness: defaults.ts ownershipTimers), and
//     they must keep their proportions on this node for the life of the reservations it holds.
//     Change them on every node, one restart after the other (status flags the nodes whose
//     configuration differs meanwhile).
import type { ClusterConfig } from '../hierarchies/model.ts';

export const LIVE_FIELDS = ['agentDirs', 'ocfRoot', 'controlGroup', 'hierarchyDir', 'maxParallelHierarchies', 'onStop', 'haltCommand', 'startupGraceMs'] as const;
export const RESTART_FIELDS = ['cluster', 'nodes', 'stateDir', 'authKeyFile', 'ownership', 'heartbeatIntervalMs', 'deadTimeMs'] as const;

export type LiveField = (typeof LIVE_FIELDS)[number];
export type RestartField = (typeof RESTART_FIELDS)[number];

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The fields that differ, by kind. */
export function clusterChanges(running: ClusterConfig, next: ClusterConfig): { live: LiveField[]; restart: RestartField[] } {
  return {
    live: LIVE_FIELDS.filter((f) => !same(running[f], next[f])),
    restart: RESTART_FIELDS.filter((f) => !same(running[f], next[f])),
  };
}

/** The running cluster settings with the live changes of `next` applied, restart-only ones kept. */
export function applyLive(running: ClusterConfig, next: ClusterConfig): ClusterConfig {
  const out: ClusterConfig = { ...running };
  for (const f of LIVE_FIELDS) (out as unknown as Record<string, unknown>)[f] = next[f];
  return out;
}
