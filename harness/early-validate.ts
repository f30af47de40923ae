// validate-all ahead of a takeover. OCF asks for validate-all before every start (actions.ts);
// on a takeover it sat on the critical path, after the race, for every resource of the first
// level. A node that watches the holder of H (the reducer's `watch` effect: the holder is suspect
// and we may take H over) runs those validations now, while the dead time runs out, and the start
// uses a result that passed.
//
// Only what cannot change the outcome is taken early:
//  - resources that require disks only: an upper resource's validate-all may look for what a
//    lower one provides (a binary on the filesystem it mounts), so it runs at its start as before;
//  - a passed result only, and only for the same hierarchy definition and within
//    DEFAULTS.earlyValidateFreshMs: a failure, a stale or a superseded result is run again at the
//    start, so a failing validate-all still blocks the start with its own, fresh reason.
// validate-all has no side effects (OCF), so one run for a watch that ends without a takeover
// costs only its time; an entry is dropped when a start takes it, and one left by a watch that
// ended is replaced by the next (one per resource: bounded by the configuration).
import type { HierarchyConfig, ResourceConfig } from '../hierarchies/model.ts';
import type { RunResult } from '../agents/runner.ts';
import { DEFAULTS } from './defaults.ts';

type Run = (h: HierarchyConfig, r: ResourceConfig) => Promise<RunResult>;

interface Early {
  h: HierarchyConfig;
  result: Promise<RunResult | null>;
  /** Monotonic ms when the result came, null while it runs. */
  doneAt: number | null;
}

/** The resources of H validated early: agents whose every requirement is a disk. */
export function earlyResources(h: HierarchyConfig): ResourceConfig[] {
  const disks = new Set(h.resources.filter((r) => r.kind === 'disk').map((r) => r.name));
  return h.resources.filter((r) => r.kind !== 'disk' && r.requires.every((q) => disks.has(q)));
}

export class EarlyValidations {
  readonly #runs = new Map<string, Early>();
  readonly #run: Run;
  readonly #now: () => number;

  constructor(run: Run, now: () => number) {
    this.#run = run;
    this.#now = now;
  }

  /** Validate H's first-level resources now, unless a run for this definition is in flight or fresh. */
  begin(h: HierarchyConfig): void {
    for (const r of earlyResources(h)) {
      const key = `${h.name}/${r.name}`;
      const e = this.#runs.get(key);
      if (e && e.h === h && (e.doneAt === null || this.#fresh(e))) continue;
      const entry: Early = { h, doneAt: null, result: Promise.resolve(null) };
      entry.result = this.#run(h, r).then(
        (res) => {
          entry.doneAt = this.#now();
          return res;
        },
        () => {
          entry.doneAt = this.#now();
          return null;
        },
      );
      this.#runs.set(key, entry);
    }
  }

  /**
   * At the start of resource r of H: true when an early validate-all of this definition passed
   * (or found none implemented) recently enough; one still running is waited for. Taken once.
   */
  async passed(h: HierarchyConfig, r: ResourceConfig): Promise<boolean> {
    const key = `${h.name}/${r.name}`;
    const e = this.#runs.get(key);
    if (!e) return false;
    this.#runs.delete(key);
    if (e.h !== h) return false;
    const res = await e.result;
    return res !== null && (res.result === 'success' || res.result === 'unimplemented') && this.#fresh(e);
  }

  #fresh(e: Early): boolean {
    return e.doneAt !== null && this.#now() - e.doneAt <= DEFAULTS.earlyValidateFreshMs;
  }
}
