// `probe: listed`: only the nodes of a hierarchy's priority list probe it. A node outside the list
// knows it stopped from the start: no probe, no registration dropped, out of service in its advert.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setScopeCheck } from '../../harness/core/step.ts';
import { hierarchiesOf as about, reducerDriver } from './lib/reducer-driver.ts';
import { simHierarchy } from '../../sim/schedule.ts';

before(() => setScopeCheck(true));
after(() => setScopeCheck(false));

const listed = simHierarchy('web', { n2: 1, n3: 2 }, { shape: 'small', probe: 'listed' });
const everywhere = simHierarchy('db', { n2: 1, n3: 2 }, { shape: 'small' });
const idle = { state: 'out-of-service' as const, eligible: true };
const peers = { n2: { state: 'up' as const, leaving: false, hierarchies: { web: idle, db: idle } } };

const driver = (self: string) => reducerDriver(self, [everywhere, listed], { maxParallelHierarchies: 64, raceDelayPerRankMs: 300 });

test('probe: listed: a node outside the priority list neither probes nor unregisters, and says out of service', () => {
  const d = driver('n1');
  const fx = d.go({ type: 'peers', peers }, 10);
  assert.deepEqual(about(fx, 'probe'), ['db']);
  assert.deepEqual(about(fx, 'unregister'), []);
  assert.equal(d.state.h.web!.phase, 'out-of-service');
  assert.deepEqual(d.state.h.web!.resources, { app: 'stopped', disk: 'stopped' });
  assert.equal(d.state.sent.adverts.web?.state, 'out-of-service');
  assert.equal(d.state.sent.adverts.web?.eligible, false);
});

test('probe: listed: a listed node probes it as before', () => {
  const d = driver('n3');
  assert.deepEqual(about(d.go({ type: 'peers', peers }, 10), 'probe').sort(), ['db', 'web']);
});

test('probe: listed: a clear re-probes on the listed nodes only', () => {
  const d = driver('n1');
  const probe = d.go({ type: 'peers', peers }, 10).find((e) => e.kind === 'probe') as { id: number };
  const unregister = d.go({ type: 'done', id: probe.id, hierarchy: 'db', result: { kind: 'probe', resources: { app: 'stopped', disk: 'stopped' }, cannotRun: null } }, 20).find((e) => e.kind === 'unregister') as { id: number };
  d.go({ type: 'done', id: unregister.id, hierarchy: 'db', result: { kind: 'unregister' } }, 30);
  const clear = (hierarchy: string, id: number) => d.go({ type: 'admin', ask: { id, by: 'test', at: 40, request: { target: 'hierarchy', hierarchy, action: 'clear' } } }, 40 + id);
  assert.deepEqual(about(clear('db', 1), 'probe'), ['db']);
  assert.deepEqual(about(clear('web', 2), 'probe'), []);
  assert.equal(d.state.h.web!.phase, 'out-of-service');
});

test('probe: listed: a reload that drops this node waits until the old definition has probed here', () => {
  // One probe at a time: db is probed first, web waits for the slot, still unknown here.
  const mine = simHierarchy('web', { n1: 1, n2: 2 }, { shape: 'small' });
  const d = reducerDriver('n1', [everywhere, mine], { maxParallelHierarchies: 1, raceDelayPerRankMs: 300 });
  const go = d.go.bind(d);
  const probe = go({ type: 'peers', peers }, 10).find((e) => e.kind === 'probe') as { id: number; hierarchy: string };
  assert.equal(probe.hierarchy, 'db');
  assert.equal(d.state.h.web!.phase, 'unprobed');
  go({ type: 'config', hierarchies: [everywhere, listed] }, 20);
  assert.equal(d.state.h.web!.phase, 'unprobed', 'the new definition waits: a copy may run here');
  assert.ok(d.state.pending.web, 'pending');
  // The old definition's probe runs once the slot frees; nothing runs here: the new one applies.
  const u = go({ type: 'done', id: probe.id, hierarchy: 'db', result: { kind: 'probe', resources: { app: 'stopped', disk: 'stopped' }, cannotRun: null } }, 30).find((e) => e.kind === 'unregister') as { id: number };
  const next = go({ type: 'done', id: u.id, hierarchy: 'db', result: { kind: 'unregister' } }, 40);
  assert.ok(about(next, 'probe').includes('web'), 'web is probed under its old definition');
});
