// Start/stop order and restart-in-place sets of a hierarchy's dependency tree.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dependents, findCycle, formatCycle, levels, stopLevels } from '../../hierarchies/tree.ts';
import type { HierarchyConfig, ResourceConfig } from '../../hierarchies/model.ts';

function h(deps: Record<string, string[]>): HierarchyConfig {
  const resources: ResourceConfig[] = Object.entries(deps).map(([name, requires]) => ({
    name,
    kind: 'agent',
    params: {},
    requires,
    timeouts: {},
    monitors: [],
    restart: { max: 3, windowMs: 1000 },
    where: 'x.yaml:1',
  }));
  return {
    file: 'x.yaml',
    name: 'x',
    priorities: { n1: 1 },
    switchback: 'intelligent',
    fenced: false,
    onLoss: 'stop',
    probe: 'everywhere',
    onStopFailure: 'block',
    resources,
    utilityChecks: [],
  };
}

// app -> (ip, fs), fs -> disk; log -> disk; monitor-only `solo` with nothing.
const web = h({ app: ['ip', 'fs'], ip: [], fs: ['disk'], disk: [], log: ['disk'], solo: [] });

test('levels: children first, YAML order within a level', () => {
  assert.deepEqual(levels(web), [['ip', 'disk', 'solo'], ['fs', 'log'], ['app']]);
});

test('a level is the longest chain below, not the shortest', () => {
  // top needs both a leaf and a two-deep chain: it must wait for the deeper one.
  assert.deepEqual(levels(h({ top: ['leaf', 'mid'], mid: ['leaf2'], leaf: [], leaf2: [] })), [
    ['leaf', 'leaf2'],
    ['mid'],
    ['top'],
  ]);
});

test('stopLevels is the reverse of levels', () => {
  assert.deepEqual(stopLevels(web), [['app'], ['fs', 'log'], ['ip', 'disk', 'solo']]);
});

test('single resource and empty hierarchy', () => {
  assert.deepEqual(levels(h({ only: [] })), [['only']]);
  assert.deepEqual(levels(h({})), []);
  assert.deepEqual(stopLevels(h({})), []);
});

test('dependents: everything that transitively requires a resource, in start order', () => {
  assert.deepEqual(dependents(web, 'disk'), ['fs', 'log', 'app']);
  assert.deepEqual(dependents(web, 'fs'), ['app']);
  assert.deepEqual(dependents(web, 'ip'), ['app']);
  assert.deepEqual(dependents(web, 'app'), []);
  assert.deepEqual(dependents(web, 'solo'), []);
  assert.deepEqual(dependents(web, 'nosuch'), []);
});

test('dependents of a diamond lists the shared parent once', () => {
  const d = h({ base: [], left: ['base'], right: ['base'], top: ['left', 'right'] });
  assert.deepEqual(dependents(d, 'base'), ['left', 'right', 'top']);
});

test('findCycle: none in a tree', () => {
  assert.equal(findCycle(web), null);
  assert.equal(findCycle(h({})), null);
});

test('findCycle: names every member of the cycle, in requires order', () => {
  const c = findCycle(h({ x: [], a: ['b'], b: ['c'], c: ['a', 'x'] }));
  assert.deepEqual(c, ['a', 'b', 'c']);
  assert.equal(formatCycle(c ?? []), 'a -> b -> c -> a');
  // Reached from outside: only the cycle itself is reported, not the path into it.
  assert.deepEqual(findCycle(h({ top: ['a'], a: ['b'], b: ['a'] })), ['a', 'b']);
});

test('findCycle: self-requirement', () => {
  assert.deepEqual(findCycle(h({ a: ['a'] })), ['a']);
});

test('levels refuses a cycle with a message naming it', () => {
  assert.throws(() => levels(h({ a: ['b'], b: ['a'] })), /hierarchy x: dependency cycle a -> b -> a/);
});

test('requires naming a missing resource are ignored, not a crash', () => {
  assert.deepEqual(levels(h({ a: ['ghost'] })), [['a']]);
});
