// The CLI words of a day-2 command, and when the cluster is where it asked (harness/admin-wait.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAdminCommand, verdict } from '../../harness/admin-wait.ts';
import type { StatusDoc } from '../../harness/status.ts';

test('parseAdminCommand: the exact command line of the issue; anything else says what is wrong', () => {
  assert.deepEqual(parseAdminCommand('hierarchy', 'web', 'move', 'n2'), { target: 'hierarchy', name: 'web', action: 'move', to: 'n2' });
  assert.deepEqual(parseAdminCommand('hierarchy', 'web', 'move', undefined), { target: 'hierarchy', name: 'web', action: 'move' });
  assert.deepEqual(parseAdminCommand('hierarchy', 'web', 'maintenance', 'off'), { target: 'hierarchy', name: 'web', action: 'maintenance-off' });
  assert.deepEqual(parseAdminCommand('node', 'n1', 'standby', undefined), { target: 'node', name: 'n1', action: 'standby' });
  assert.throws(() => parseAdminCommand('node', 'n1', 'move', 'n2'), /node n1: unknown action "move" \(standby, online, maintenance on\|off\)/);
  assert.throws(() => parseAdminCommand('hierarchy', 'web', 'clear', 'now'), /hierarchy web clear: takes no argument \(got now\)/);
  assert.throws(() => parseAdminCommand('hierarchy', 'web', 'maintenance', undefined), /expected on or off, got nothing/);
});

function status(adminVersions: Record<string, number>, web: Record<string, string>): StatusDoc {
  return {
    node: 'n1',
    nodes: Object.entries(adminVersions).map(([name, v]) => ({ name, self: name === 'n1', state: name === 'n1' ? 'self' : 'up', adminVersion: v })),
    hierarchies: [{ name: 'web', note: 'x', states: Object.fromEntries(Object.entries(web).map(([n, st]) => [n, { state: st, up: true }])) }],
  } as unknown as StatusDoc;
}

test('verdict: a move is done when every node has the request and it runs on the target only', () => {
  const cmd = { target: 'hierarchy', name: 'web', action: 'move', to: 'n2' } as const;
  assert.deepEqual(verdict(status({ n1: 5, n2: 4 }, { n1: 'in-service', n2: 'out-of-service' }), cmd, 5), { done: false, waiting: 'n2 not told yet' });
  assert.equal(verdict(status({ n1: 5, n2: 5 }, { n1: 'stopping', n2: 'out-of-service' }), cmd, 5).done, false);
  assert.deepEqual(verdict(status({ n1: 5, n2: 5 }, { n1: 'out-of-service', n2: 'in-service' }), cmd, 5), { done: true });
  const failed = verdict(status({ n1: 5, n2: 5 }, { n1: 'out-of-service', n2: 'failed' }), cmd, 5);
  assert.match((failed as { failed: string }).failed, /web FAILED or BLOCKED on n2/);
});

test('verdict: standby is done when nothing is active on the node and nothing is still moving', () => {
  const cmd = { target: 'node', name: 'n2', action: 'standby' } as const;
  assert.equal(verdict(status({ n1: 3, n2: 3 }, { n1: 'starting', n2: 'out-of-service' }), cmd, 3).done, false);
  assert.equal(verdict(status({ n1: 3, n2: 3 }, { n1: 'out-of-service', n2: 'in-service' }), cmd, 3).done, false);
  assert.deepEqual(verdict(status({ n1: 3, n2: 3 }, { n1: 'in-service', n2: 'out-of-service' }), cmd, 3), { done: true });
});
