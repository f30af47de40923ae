// The keeper's verdicts (fencing/ownership.ts) as reducer events: what it knows about ownership
// that the state does not say yet. Shared by both executors (harness/node.ts, sim/node.ts).
import type { Ownership } from '../../fencing/ownership.ts';
import { formatKey } from '../../fencing/keys.ts';
import type { EventIn, NodeState } from './types.ts';

export function keeperEvents(state: NodeState, keeper: { get(hierarchy: string): Ownership }): EventIn[] {
  const out: EventIn[] = [];
  for (const h of state.hierarchies) {
    const rt = state.h[h.name]!;
    if (!h.fenced || rt.ownership === 'not-owned') continue;
    const own = keeper.get(h.name);
    if (own.state === rt.ownership) continue;
    if (own.state === 'lost') out.push({ type: 'ownership', hierarchy: h.name, state: 'lost', by: own.by === null ? null : formatKey(own.by), detail: own.detail });
    else if (own.state === 'owned' || own.state === 'unverified') out.push({ type: 'ownership', hierarchy: h.name, state: own.state });
  }
  return out;
}
