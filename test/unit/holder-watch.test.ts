// The reducer asks to watch a hierarchy's holder on disk when its runner goes quiet: only on the
// nodes that may take it over. A node outside its priority list never races for it, and at scale
// its reads (every keyPollMs, for every hierarchy of a quiet peer) would load the shared disks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Effect, EventIn } from '../../harness/core/types.ts';
import type { PeerView } from '../../harness/decide.ts';
import { reducerDriver } from './lib/reducer-driver.ts';
import { simHierarchy } from '../../sim/schedule.ts';

const web = simHierarchy('web', { n2: 1, n1: 2 }, { shape: 'small' });
const running = { web: { state: 'in-service' as const, eligible: true } };

/**
 * The watch effects `self` emits for H: it hears the peers as `peers(false)`, probes H (stopped
 * here), then hears them as `peers(true)` (the runner gone quiet).
 */
function watches(self: string, h: typeof web, peers: (quiet: boolean) => Record<string, PeerView>): string[][] {
  const d = reducerDriver(self, [h], { maxParallelHierarchies: 64, raceDelayPerRankMs: 300 });
  const fx: Effect[] = [];
  const go = (e: EventIn, now: number) => {
    const effects = d.go(e, now);
    fx.push(...effects);
    return effects;
  };
  const probe = go({ type: 'peers', peers: peers(false) }, 10).find((e) => e.kind === 'probe') as { id: number };
  const u = go({ type: 'done', id: probe.id, hierarchy: 'web', result: { kind: 'probe', resources: { app: 'stopped', disk: 'stopped' }, cannotRun: null } }, 20).find((e) => e.kind === 'unregister') as { id: number };
  go({ type: 'done', id: u.id, hierarchy: 'web', result: { kind: 'unregister' } }, 30);
  go({ type: 'peers', peers: peers(true) }, 40);
  return fx.filter((e) => e.kind === 'watch').map((e) => (e as { hierarchies: string[] }).hierarchies);
}

function watchesOf(self: string): string[][] {
  return watches(self, web, (quiet) => ({ n2: { state: 'up', leaving: false, suspect: quiet, hierarchies: running } }));
}

test('holder watch: a listed node watches the quiet runner on disk', () => {
  assert.deepEqual(watchesOf('n1'), [['web']]);
});

test('holder watch: a node outside the priority list does not', () => {
  assert.deepEqual(watchesOf('n3'), []);
});

// Three nodes: n1 runs it, n2 comes next, n3 last. n3 watches only when n2 could not take over first.
const three = simHierarchy('web', { n1: 1, n2: 2, n3: 3 }, { shape: 'small' });

function thirdNodeWatches(n2: { suspect: boolean; eligible: boolean }): string[][] {
  const second = { web: { state: 'out-of-service' as const, eligible: n2.eligible } };
  return watches('n3', three, (quiet) => ({
    n1: { state: 'up', leaving: false, suspect: quiet, hierarchies: running },
    n2: { state: 'up', leaving: false, suspect: n2.suspect, hierarchies: second },
  }));
}

test('holder watch: not while a node ahead of us that we hear well may take it over', () => {
  assert.deepEqual(thirdNodeWatches({ suspect: false, eligible: true }), []);
});

test('holder watch: yes when the node ahead of us is quiet too, or cannot run it', () => {
  assert.deepEqual(thirdNodeWatches({ suspect: true, eligible: true }), [['web']]);
  assert.deepEqual(thirdNodeWatches({ suspect: false, eligible: false }), [['web']]);
});
