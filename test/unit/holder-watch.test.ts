// The reducer asks to watch a hierarchy's holder on disk when its runner goes quiet: only on the
// nodes that may take it over. A node outside its priority list never races for it, and at scale
// its reads (every keyPollMs, for every hierarchy of a quiet peer) would load the shared disks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Effect, EventIn } from '../../harness/core/types.ts';
import { reducerDriver } from './lib/reducer-driver.ts';
import { simHierarchy } from '../../sim/schedule.ts';

const web = simHierarchy('web', { n2: 1, n1: 2 }, { shape: 'small' });

function watchesOf(self: string): string[][] {
  const d = reducerDriver(self, [web], { maxParallelHierarchies: 64, raceDelayPerRankMs: 300 });
  const fx: Effect[] = [];
  const go = (e: EventIn, now: number) => {
    const effects = d.go(e, now);
    fx.push(...effects);
    return effects;
  };
  const running = { web: { state: 'in-service' as const, eligible: true } };
  const probe = go({ type: 'peers', peers: { n2: { state: 'up', leaving: false, hierarchies: running } } }, 10).find((e) => e.kind === 'probe') as { id: number };
  const u = go({ type: 'done', id: probe.id, hierarchy: 'web', result: { kind: 'probe', resources: { app: 'stopped', disk: 'stopped' }, cannotRun: null } }, 20).find((e) => e.kind === 'unregister') as { id: number };
  go({ type: 'done', id: u.id, hierarchy: 'web', result: { kind: 'unregister' } }, 30);
  go({ type: 'peers', peers: { n2: { state: 'up', leaving: false, suspect: true, hierarchies: running } } }, 40);
  return fx.filter((e) => e.kind === 'watch').map((e) => (e as { hierarchies: string[] }).hierarchies);
}

test('holder watch: a listed node watches the quiet runner on disk', () => {
  assert.deepEqual(watchesOf('n1'), [['web']]);
});

test('holder watch: a node outside the priority list does not', () => {
  assert.deepEqual(watchesOf('n3'), []);
});
