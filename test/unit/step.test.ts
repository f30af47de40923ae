// The reducer itself: pure, and the orderings the executors rely on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initialState, step } from '../../harness/core/step.ts';
import type { Effect, Event, EventIn, NodeState } from '../../harness/core/types.ts';
import { simHierarchy } from '../../sim/schedule.ts';

const web = simHierarchy('web', { n1: 1, n2: 2 });
const settings = { maxParallelHierarchies: 64, raceDelayPerRankMs: 300 };

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Feed events; every input state is frozen, so a write to it throws. */
function run(events: EventIn[]): { state: NodeState; effects: Effect[][] } {
  let state = initialState('n1', [web], settings, 0);
  const effects: Effect[][] = [];
  let now = 0;
  for (const e of events) {
    now += 10;
    const r = step(deepFreeze(state), { ...e, now } as Event);
    state = r.state;
    effects.push(r.effects);
  }
  return { state, effects };
}

const idlePeer = { n2: { state: 'up' as const, leaving: false, hierarchies: { web: { state: 'out-of-service' as const, eligible: true } } } };

function toService() {
  const a = run([{ type: 'peers', peers: idlePeer }]);
  const probe = a.effects[0]!.find((e) => e.kind === 'probe')!;
  assert.ok(probe && 'id' in probe);
  return { probeId: probe.id };
}

test('step: pure: input states are never written (deep-frozen inputs through a whole take-over)', () => {
  const { probeId } = toService();
  const r = run([
    { type: 'peers', peers: idlePeer },
    { type: 'done', id: probeId, hierarchy: 'web', result: { kind: 'probe', resources: { app: 'stopped', ip: 'stopped', fs: 'stopped', disk: 'stopped' }, cannotRun: null } },
  ]);
  assert.equal(r.state.h.web!.phase, 'out-of-service');
  // same input, same output
  const s0 = initialState('n1', [web], settings, 0);
  const e: Event = { type: 'peers', peers: idlePeer, now: 5 };
  assert.deepEqual(step(s0, e), step(s0, e));
});

test('step: the guard plan covering a start comes before the start effect', () => {
  let s = initialState('n1', [web], settings, 0);
  const go = (e: EventIn, now: number) => {
    const r = step(s, { ...e, now } as Event);
    s = r.state;
    return r.effects;
  };
  const fx1 = go({ type: 'peers', peers: idlePeer }, 1);
  const probe = fx1.find((e) => e.kind === 'probe') as Extract<Effect, { kind: 'probe' }>;
  const fx2 = go({ type: 'done', id: probe.id, hierarchy: 'web', result: { kind: 'probe', resources: { app: 'stopped', ip: 'stopped', fs: 'stopped', disk: 'stopped' }, cannotRun: null } }, 2);
  const unreg = fx2.find((e) => e.kind === 'unregister') as Extract<Effect, { kind: 'unregister' }>;
  const fx3 = go({ type: 'done', id: unreg.id, hierarchy: 'web', result: { kind: 'unregister' } }, 3);
  const acq = fx3.find((e) => e.kind === 'acquire') as Extract<Effect, { kind: 'acquire' }>;
  assert.ok(acq, JSON.stringify(fx3));
  const fx4 = go({ type: 'done', id: acq.id, hierarchy: 'web', result: { kind: 'acquire', ok: true, key: '0x1', generation: 1 } }, 4);
  const iStart = fx4.findIndex((e) => e.kind === 'start');
  const iGuard = fx4.findIndex((e) => e.kind === 'guard' && e.plan[0]!.resources.length === 3);
  assert.ok(iStart >= 0 && iGuard >= 0 && iGuard < iStart, JSON.stringify(fx4.map((e) => e.kind)));
  const g = fx4[iGuard] as Extract<Effect, { kind: 'guard' }>;
  assert.deepEqual(g.plan[0], { name: 'web', resources: ['app', 'ip', 'fs'], owned: true, release: false });
  assert.equal(s.h.web!.phase, 'starting');
});

test('step: a result for an action not in flight is ignored (logged), the state unchanged', () => {
  const s = initialState('n1', [web], settings, 0);
  const r = step(s, { type: 'done', id: 99, hierarchy: 'web', result: { kind: 'unregister' }, now: 1 });
  assert.equal(r.state.h.web!.phase, 'unprobed');
  assert.ok(r.effects.some((e) => e.kind === 'log' && e.event === 'stale-result'));
});

test('step: shutdown with the hierarchy FAILED here leaves it FAILED, says why, and the node leaves owning it', () => {
  let s = initialState('n1', [web], settings, 0);
  s = { ...s, h: { web: { ...s.h.web!, phase: 'failed', ownership: 'owned', resources: { app: 'stop-failed', ip: 'running', fs: 'running', disk: 'running' } } } };
  const r = step(s, { type: 'shutdown', mode: 'switchover', now: 1 });
  assert.ok(r.effects.some((e) => e.kind === 'log' && e.event === 'leaving-failed'));
  assert.ok(r.effects.some((e) => e.kind === 'leave'));
  assert.equal(r.state.h.web!.ownership, 'owned');
  const adv = r.effects.find((e) => e.kind === 'advertise') as Extract<Effect, { kind: 'advertise' }>;
  assert.equal(adv.adverts.web!.state, 'failed');
  assert.equal(adv.leaving, true);
});
