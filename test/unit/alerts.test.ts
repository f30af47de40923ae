// alertOf/alertEnv: log records to Pacemaker's CRM_alert_* environment (harness/alerts.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alertOf, alertEnv } from '../../harness/alerts.ts';

const rec = (fields: Record<string, unknown>, msg = '') => ({ level: 'info', fields, msg, at: Date.UTC(2026, 0, 2, 3, 4, 5, 678) });

test('node, resource, hierarchy, fencing and path records become Pacemaker alerts', () => {
  assert.deepEqual(alertOf(rec({ event: 'peer-down', peer: 'n1' }), 'n2'), { kind: 'node', node: 'n1', desc: 'lost' });
  const start = alertOf(rec({ event: 'agent-start', hierarchy: 'web', resource: 'app', result: 'success', rc: 0, durationMs: 12.4, intervalMs: 0 }), 'n2')!;
  assert.equal(start.kind, 'resource');
  assert.equal(start.rsc, 'web.app');
  assert.equal(start.task, 'start');
  assert.equal(start.desc, 'ok');
  const mon = alertOf(rec({ event: 'agent-monitor', hierarchy: 'web', resource: 'app', result: 'not-running', rc: 7, intervalMs: 1000, timedOut: false }), 'n2')!;
  assert.equal(mon.rc, 7);
  assert.equal(mon.interval, 1000);
  assert.equal(mon.status, 4);
  assert.equal(alertOf(rec({ event: 'agent-stop', hierarchy: 'web', resource: 'app', result: 'timeout', rc: null, timedOut: true }), 'n2')!.status, 2);
  assert.equal(alertOf(rec({ event: 'fenced', hierarchy: 'web', by: '0xab' }), 'n2')!.kind, 'fencing');
  assert.equal(alertOf(rec({ event: 'stop-failed', hierarchy: 'web', resource: 'app' }, 'web/app: STOP FAILED'), 'n2')!.task, 'failed');
  assert.equal(alertOf(rec({ event: 'path-down', node: 'n3', path: 1 }), 'n2')!.attributeValue, 'down');
  const adm = alertOf(rec({ event: 'admin', request: { target: 'hierarchy', hierarchy: 'web', action: 'move', to: 'n3' }, by: 'root@h' }), 'n2')!;
  assert.equal(adm.rsc, 'web');
  assert.equal(adm.task, 'admin-move');
  assert.equal(adm.desc, 'admin request by root@h: move to n3');
  assert.equal(alertOf(rec({ event: 'admin', request: { target: 'node', node: 'n1', action: 'standby' } }), 'n2')!.kind, 'node');
  assert.equal(alertOf(rec({ event: 'heartbeat' }), 'n2'), null);
  assert.equal(alertOf(rec({ event: 'acquired', hierarchy: 'web' }), 'n2'), null, 'an uncontested acquire is no alert');
});

test('the environment carries every variable the sample agents read', () => {
  const env = alertEnv(alertOf(rec({ event: 'agent-start', hierarchy: 'web', resource: 'app', result: 'success', rc: 0, intervalMs: 0 }), 'n2')!, { recipient: '/tmp/x', sequence: 7, at: Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
  for (const k of ['version', 'recipient', 'node_sequence', 'timestamp', 'timestamp_epoch', 'timestamp_usec', 'kind', 'node', 'desc', 'rsc', 'task', 'rc', 'target_rc', 'status', 'interval']) {
    assert.ok(env[`CRM_alert_${k}`] !== undefined && env[`CRM_alert_${k}`] !== '', `CRM_alert_${k}`);
  }
  assert.equal(env.CRM_alert_node_sequence, '7');
  assert.equal(env.CRM_alert_timestamp_epoch, String(Date.UTC(2026, 0, 2, 3, 4, 5) / 1000));
  assert.equal(env.CRM_alert_timestamp_usec, '678000');
  assert.match(env.CRM_alert_timestamp!, /^\d\d:04:05\.678000$/);
});
