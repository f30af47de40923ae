// Recurring monitors of the resources of hierarchies in service here. One timer chain per
// (resource, monitor op); a monitor never overlaps itself, never runs while the hierarchy is busy
// (a start/stop/restart in flight already knows the truth), and reports a failure once: the
// resource's monitors stop until the core has restarted it.
import type { HierarchyConfig } from '../hierarchies/model.ts';
import { isHardError, runOp, type AgentContext } from './actions.ts';
import { isRunning } from '../agents/runner.ts';

/** fatal: the monitor answered OCF_ERR_CONFIGURED (6); hard: an OCF hard error (2-5, actions.ts isHardError). */
export type MonitorFailure = (hierarchy: string, resource: string, reason: string, fatal: boolean, hard: boolean) => void;

export class Monitors {
  private readonly timers = new Map<string, Set<NodeJS.Timeout>>(); // hierarchy -> pending timers
  private readonly ctx: AgentContext;
  private readonly onFailure: MonitorFailure;
  private readonly isBusy: (hierarchy: string) => boolean;

  constructor(ctx: AgentContext, onFailure: MonitorFailure, isBusy: (hierarchy: string) => boolean) {
    this.ctx = ctx;
    this.onFailure = onFailure;
    this.isBusy = isBusy;
  }

  /** (Re)arm every monitor of every agent resource of H. */
  arm(h: HierarchyConfig): void {
    this.disarm(h.name);
    const timers = new Set<NodeJS.Timeout>();
    this.timers.set(h.name, timers);
    const failedReported = new Set<string>();
    const later = (fn: () => void, ms: number): void => {
      const t: NodeJS.Timeout = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms).unref();
      timers.add(t);
    };
    for (const r of h.resources) {
      if (r.kind !== 'agent') continue;
      for (const op of r.monitors) {
        const tick = async (): Promise<void> => {
          if (this.timers.get(h.name) !== timers) return; // disarmed meanwhile
          if (!this.isBusy(h.name) && !failedReported.has(r.name)) {
            const res = await runOp(this.ctx, h, r, 'monitor', { intervalMs: op.intervalMs, depth: op.depth, timeoutMs: op.timeoutMs });
            if (this.timers.get(h.name) !== timers) return;
            if (!isRunning(res) && !this.isBusy(h.name)) {
              failedReported.add(r.name);
              this.onFailure(h.name, r.name, `${res.result}${res.exitReason ? `: ${res.exitReason}` : ''} (depth ${op.depth})`, res.result === 'not-configured', isHardError(res));
            }
          }
          if (this.timers.get(h.name) === timers) later(() => void tick(), op.intervalMs);
        };
        later(() => void tick(), op.intervalMs);
      }
    }
  }

  disarm(hierarchy: string): void {
    for (const t of this.timers.get(hierarchy) ?? []) clearTimeout(t);
    this.timers.delete(hierarchy);
  }

  disarmAll(): void {
    for (const h of [...this.timers.keys()]) this.disarm(h);
  }
}
