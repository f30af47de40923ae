// validate-all ahead of a takeover. OCF asks for validate-all before every start (actions.ts);
// on a takeover it sat on the critical path, after the race, for every resource of the first
// level. A node that watches the holder of H (the reducer's `watch` effect: the holder is suspect
// and we may take H over) and may run H runs those validations now, while the dead time runs out,
// and the start uses their result.
//
// Only what cannot change the outcome is taken early:
//  - resources that require disks only (or nothing): an upper resource's validate-all may look for
//    what a lower one provides (a binary on the filesystem it mounts), so it runs at its start;
//  - for the same hierarchy definition only;
//  - a run the start had to wait for stands for the start's, pass or fail (it ended during the
//    start); one that ended before counts only if it passed within DEFAULTS.earlyValidateFreshMs.
//    Anything else runs again at the start, so a failing validate-all still blocks the start
//    with its own, fresh reason.
// validate-all has no side effects (OCF), so a run for a watch that ends without a takeover costs
// only its time. What bounds that cost: at most earlyValidateMaxInFlight runs at once (a node
// watching many hierarchies validates the rest at their start, as before), and one run per
// resource per earlyValidateEveryMs (a holder that stays unreachable but alive is watched on and
// off at every race it wins).
import type { HierarchyConfig, ResourceConfig } from '../hierarchies/model.ts';
import type { RunResult } from '../agents/runner.ts';
import { DEFAULTS } from './defaults.ts';

type Run = (h: HierarchyConfig, r: ResourceConfig) => Promise<RunResult>;

interface Early {
  h: HierarchyConfig;
  begunAt: number;
  /** Monotonic ms when the run ended, null while it runs. */
  doneAt: number | null;
  result: Promise<RunResult | null>;
  taken: boolean;
}

/** The resources of H validated early: agents whose every requirement is a disk (or that have none). */
export function earlyResources(h: HierarchyConfig): ResourceConfig[] {
  const disks = new Set(h.resources.filter((r) => r.kind === 'disk').map((r) => r.name));
  return h.resources.filter((r) => r.kind !== 'disk' && r.requires.every((q) => disks.has(q)));
}

export class EarlyValidations {
  readonly #runs = new Map<string, Early>();
  readonly #run: Run;
  readonly #now: () => number;
  #inFlight = 0;

  constructor(run: Run, now: () => number) {
    this.#run = run;
    this.#now = now;
  }

  /** Validate H's first-level resources now, within the bounds above. */
  begin(h: HierarchyConfig): void {
    const now = this.#now();
    for (const r of earlyResources(h)) {
      if (this.#inFlight >= DEFAULTS.earlyValidateMaxInFlight) return;
      const key = `${h.name}/${r.name}`;
      const e = this.#runs.get(key);
      if (e && e.h === h && (e.doneAt === null || now - e.begunAt < DEFAULTS.earlyValidateEveryMs)) continue;
      const entry: Early = { h, begunAt: now, doneAt: null, result: Promise.resolve(null), taken: false };
      this.#inFlight++;
      const settle = (res: RunResult | null) => {
        entry.doneAt = this.#now();
        this.#inFlight--;
        return res;
      };
      entry.result = this.#run(h, r).then(settle, () => settle(null));
      this.#runs.set(key, entry);
    }
  }

  /**
   * At the start of resource r of H: the early result that stands for the start's validate-all,
   * or null (run it now). Each run is taken once.
   */
  async take(h: HierarchyConfig, r: ResourceConfig): Promise<RunResult | null> {
    const e = this.#runs.get(`${h.name}/${r.name}`);
    if (!e || e.taken || e.h !== h) return null;
    e.taken = true;
    if (e.doneAt === null) return e.result;
    const res = await e.result;
    const passed = res !== null && (res.result === 'success' || res.result === 'unimplemented');
    return passed && this.#now() - e.doneAt <= DEFAULTS.earlyValidateFreshMs ? res : null;
  }

  /** Forget the hierarchies no longer configured (a run still going ends unheard). */
  keepOnly(names: ReadonlySet<string>): void {
    for (const [key, e] of this.#runs) if (!names.has(e.h.name)) this.#runs.delete(key);
  }
}
