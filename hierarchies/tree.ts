// The dependency tree of one hierarchy, from each resource's `requires` list. A resource starts
// after everything it requires and stops before it. Resources of one level do not depend on each
// other, so a level may be started (or stopped) in parallel. Within a level, order follows the
// YAML so that output is deterministic.
//
// These functions expect a validated hierarchy (load.ts refuses cycles and unknown names);
// `requires` entries naming no resource are ignored here rather than crashing a caller.

import type { HierarchyConfig } from './model.ts';

type Graph = Map<string, string[]>;

function graph(h: HierarchyConfig): Graph {
  const names = new Set(h.resources.map((r) => r.name));
  const g: Graph = new Map();
  for (const r of h.resources) g.set(r.name, r.requires.filter((d) => names.has(d)));
  return g;
}

/**
 * A dependency cycle as the list of resources on it, each requiring the next and the last
 * requiring the first (a self-requirement gives a one-element list); null when there is none.
 */
export function findCycle(h: HierarchyConfig): string[] | null {
  const g = graph(h);
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];

  const visit = (n: string): string[] | null => {
    state.set(n, 'active');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      const s = state.get(d);
      if (s === 'active') return stack.slice(stack.indexOf(d));
      if (s === undefined) {
        const c = visit(d);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };

  for (const n of g.keys()) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

/** "a -> b -> c -> a": how a cycle is shown to the admin. */
export function formatCycle(cycle: string[]): string {
  return [...cycle, cycle[0] ?? ''].join(' -> ');
}

/** Start order: level 0 holds resources requiring nothing, level k those whose deepest requirement is at level k-1. */
export function levels(h: HierarchyConfig): string[][] {
  const cycle = findCycle(h);
  if (cycle) throw new Error(`hierarchy ${h.name}: dependency cycle ${formatCycle(cycle)}`);
  const g = graph(h);
  const depth = new Map<string, number>();
  const depthOf = (n: string): number => {
    const known = depth.get(n);
    if (known !== undefined) return known;
    let d = 0;
    for (const dep of g.get(n) ?? []) d = Math.max(d, depthOf(dep) + 1);
    depth.set(n, d);
    return d;
  };
  const out: string[][] = [];
  for (const n of g.keys()) {
    const d = depthOf(n);
    while (out.length <= d) out.push([]);
    out[d]?.push(n);
  }
  return out;
}

/** Stop order: parents first, the reverse of `levels`. */
export function stopLevels(h: HierarchyConfig): string[][] {
  return levels(h).reverse();
}

/**
 * Every resource that requires `name` directly or transitively (not `name` itself), in start
 * order. Restarting `name` in place means stopping these (in reverse) first and starting them
 * again after it.
 */
export function dependents(h: HierarchyConfig, name: string): string[] {
  const g = graph(h);
  const found = new Set<string>();
  let frontier = [name];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const [n, deps] of g) {
      if (!found.has(n) && n !== name && deps.some((d) => frontier.includes(d))) {
        found.add(n);
        next.push(n);
      }
    }
    frontier = next;
  }
  return levels(h)
    .flat()
    .filter((n) => found.has(n));
}
