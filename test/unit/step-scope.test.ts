// The reducer decides only the hierarchies an event can change (core/scope.ts). These are the
// cases where that is not the event's own hierarchy: time falling due, and a slot freeing. Each
// step also runs deciding everything (the scope check) and must come out the same.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setScopeCheck } from '../../harness/core/step.ts';
import { hierarchiesOf as launched, reducerDriver } from './lib/reducer-driver.ts';
import { scopeOf } from '../../harness/core/scope.ts';
import { simHierarchy } from '../../sim/schedule.ts';

before(() => setScopeCheck(true));
after(() => setScopeCheck(false));

const web = simHierarchy('web', { n1: 1, n2: 2 }, { shape: 'small' });
// db's first node is n2: once probed, n1 has nothing to do for it.
const db = simHierarchy('db', { n1: 2, n2: 1 }, { shape: 'small' });
const idle = { state: 'out-of-service' as const, eligible: true };
const peers = { n2: { state: 'up' as const, leaving: false, hierarchies: { web: idle, db: idle } } };

const driver = (maxParallelHierarchies: number) => reducerDriver('n1', [db, web], { maxParallelHierarchies, raceDelayPerRankMs: 300 });
const stopped = { app: 'stopped', disk: 'stopped' } as const;

test('scope: a back-off that ended is decided on the next event, whatever hierarchy that event is about', () => {
  const d = driver(64);
  const probes = d.go({ type: 'peers', peers }, 10).filter((e) => e.kind === 'probe') as { id: number; hierarchy: string }[];
  const acquires: { id: number; hierarchy: string }[] = [];
  for (const p of probes.filter((x) => x.hierarchy === 'web')) {
    // Nothing runs here after the probe: our registration is dropped first, then the race.
    const u = d.go({ type: 'done', id: p.id, hierarchy: p.hierarchy, result: { kind: 'probe', resources: { ...stopped }, cannotRun: null } }, 20).find((e) => e.kind === 'unregister') as { id: number };
    acquires.push(...(d.go({ type: 'done', id: u.id, hierarchy: p.hierarchy, result: { kind: 'unregister' } }, 20).filter((e) => e.kind === 'acquire') as typeof acquires));
  }
  const w = acquires.find((a) => a.hierarchy === 'web')!;
  d.go({ type: 'done', id: w.id, hierarchy: 'web', result: { kind: 'acquire', ok: false, reason: 'lost-race', detail: 'n2 won' } }, 30);
  assert.equal(d.state.h.web!.acquireBackoffUntil, 330);
  assert.equal(d.state.nextDeadline, 330);
  // Before the back-off ends, an event about db decides db alone; after it, web too.
  assert.deepEqual(scopeOf(d.state, { type: 'utility', hierarchy: 'db', ok: true, now: 329 }), new Set(['db']));
  assert.equal(scopeOf(d.state, { type: 'utility', hierarchy: 'db', ok: true, now: 330 }), 'all');
  assert.deepEqual(launched(d.go({ type: 'utility', hierarchy: 'db', ok: true }, 340), 'acquire'), ['web']);
});

test('scope: an action that waited for a slot is launched when another one finishes', () => {
  const d = driver(1);
  const fx = d.go({ type: 'peers', peers }, 10);
  assert.deepEqual(launched(fx, 'probe'), ['db']);
  assert.deepEqual(d.state.deferred, ['web']);
  const probe = fx.find((e) => e.kind === 'probe') as { id: number };
  // db's probe finds nothing: its registration is dropped (the slot stays taken), then it idles.
  const u = d.go({ type: 'done', id: probe.id, hierarchy: 'db', result: { kind: 'probe', resources: { ...stopped }, cannotRun: null } }, 20).find((e) => e.kind === 'unregister') as { id: number };
  const next = d.go({ type: 'done', id: u.id, hierarchy: 'db', result: { kind: 'unregister' } }, 30);
  assert.deepEqual(launched(next, 'probe'), ['web']);
  assert.deepEqual(d.state.deferred, []);
});

test('scope: a peer\'s advert change decides only the entries that changed; its liveness, what it is listed for or runs', () => {
  const solo = simHierarchy('solo', { n1: 1, n3: 2 }, { shape: 'small' });
  const n2 = { state: 'up' as const, leaving: false, hierarchies: { web: idle, db: idle, solo: idle } };
  const d = reducerDriver('n1', [db, web, solo], { maxParallelHierarchies: 64, raceDelayPerRankMs: 300 });
  d.go({ type: 'peers', peers: { n2 } }, 10);
  const moved = { n2: { ...n2, hierarchies: { ...n2.hierarchies, web: { state: 'starting' as const, eligible: true } } } };
  assert.deepEqual(scopeOf(d.state, { type: 'peers', peers: moved, now: 11 }), new Set(['web']));
  // n2 turns suspect: the hierarchies that list it, not solo (n2 says it is out of service there).
  assert.deepEqual(scopeOf(d.state, { type: 'peers', peers: { n2: { ...n2, suspect: true } }, now: 11 }), new Set(['db', 'web']));
  // ... unless n2 says it runs solo (listed or not, a copy there counts).
  const runsSolo = { n2: { ...n2, hierarchies: { ...n2.hierarchies, solo: { state: 'in-service' as const, eligible: false } } } };
  d.go({ type: 'peers', peers: runsSolo }, 12);
  assert.deepEqual(scopeOf(d.state, { type: 'peers', peers: { n2: { ...runsSolo.n2, state: 'down' } }, now: 13 }), new Set(['db', 'web', 'solo']));
  assert.equal(scopeOf(d.state, { type: 'peers', peers: {}, now: 13 }), 'all');
  assert.equal(scopeOf(d.state, { type: 'peers', peers: { n2: { ...runsSolo.n2, admin: {} } }, now: 13 }), 'all');
});

test('note: an unusable disk shows above the action in flight (a registration being dropped)', () => {
  const d = driver(64);
  const probe = d.go({ type: 'peers', peers }, 10).find((e) => e.kind === 'probe' && e.hierarchy === 'web') as { id: number };
  const fx = d.go({ type: 'done', id: probe.id, hierarchy: 'web', result: { kind: 'probe', resources: { ...stopped }, cannotRun: null } }, 20);
  assert.ok(fx.some((e) => e.kind === 'unregister'));
  assert.equal(d.state.h.web!.note, 'dropping our registration');
  d.go({ type: 'disk-unusable', hierarchy: 'web', detail: '/dev/sdz: no such device' }, 30);
  assert.equal(d.state.h.web!.busy, true);
  assert.equal(d.state.h.web!.note, 'disk unusable: /dev/sdz: no such device');
});
