// Drives the pure reducer one event at a time, as the daemon does: each event is stamped with the
// caller's `now`, the state carried over, the effects handed back.
import { initialState, step } from '../../../harness/core/step.ts';
import type { CoreSettings, Effect, Event, EventIn, NodeState } from '../../../harness/core/types.ts';
import type { HierarchyConfig } from '../../../hierarchies/model.ts';

export function reducerDriver(self: string, hierarchies: HierarchyConfig[], settings: CoreSettings) {
  let s: NodeState = initialState(self, hierarchies, settings, 0);
  return {
    get state(): NodeState {
      return s;
    },
    go(e: EventIn, now: number): Effect[] {
      const r = step(s, { ...e, now } as Event);
      s = r.state;
      return r.effects;
    },
  };
}

/** The hierarchies that effects of `kind` are about, in order. */
export function hierarchiesOf(fx: Effect[], kind: string): string[] {
  return fx.filter((e) => e.kind === kind).map((e) => (e as { hierarchy: string }).hierarchy);
}
