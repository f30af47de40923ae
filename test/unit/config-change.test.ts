// What a changed cluster.yaml may change in a running daemon (harness/config-change.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyLive, clusterChanges } from '../../harness/config-change.ts';
import type { ClusterConfig } from '../../hierarchies/model.ts';

const base: ClusterConfig = {
  file: '/etc/harness/cluster.yaml',
  cluster: 'c',
  nodes: [{ name: 'n1', addresses: ['10.0.0.1:5405'], controlSocket: '/run/harness.sock' }],
  heartbeatIntervalMs: 200,
  deadTimeMs: 1200,
  authKeyFile: '/etc/harness/authkey',
  stateDir: '/var/lib/harness/{node}',
  hierarchyDir: '/etc/harness/hierarchies',
  ownership: { backend: 'scsi' },
  agentDirs: [],
  ocfRoot: '/usr/lib/ocf',
  maxParallelHierarchies: 64,
  onStop: 'switchover',
  haltCommand: 'systemctl reboot -f',
};

test('live fields apply; restart-only fields are reported and kept', () => {
  const next: ClusterConfig = { ...base, agentDirs: ['/opt/agents'], controlGroup: 'haadm', deadTimeMs: 3000, nodes: [{ ...base.nodes[0]!, addresses: ['10.0.0.9:5405'] }] };
  const ch = clusterChanges(base, next);
  assert.deepEqual(ch.live, ['agentDirs', 'controlGroup']);
  assert.deepEqual(ch.restart, ['nodes', 'deadTimeMs']);
  const applied = applyLive(base, next);
  assert.deepEqual(applied.agentDirs, ['/opt/agents']);
  assert.equal(applied.controlGroup, 'haadm');
  assert.equal(applied.deadTimeMs, 1200, 'dead time kept');
  assert.deepEqual(applied.nodes, base.nodes, 'nodes kept');
});

test('no change, no fields', () => {
  assert.deepEqual(clusterChanges(base, { ...base }), { live: [], restart: [] });
});
