// Utility checks: per hierarchy, conditions a node must meet to be eligible for it (seed: "a web
// server exporting a service to the Internet should not be recovered on a node which cannot see
// the Internet gateway"). A failing node is not eligible; an owner that starts failing gives the
// hierarchy up so the next eligible node takes over. Two consecutive failures are needed, so one
// lost ICMP packet never moves a service.
import { execa } from 'execa';
import type { HierarchyConfig } from '../hierarchies/model.ts';
import type { Logger } from './log.ts';
import { DEFAULTS } from './defaults.ts';

export class UtilityChecks {
  private hierarchies: HierarchyConfig[];
  private readonly log: Logger;
  private readonly onChange: () => void;
  private readonly failing = new Map<string, number>(); // target -> consecutive failures
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(hierarchies: HierarchyConfig[], log: Logger, onChange: () => void) {
    this.hierarchies = hierarchies;
    this.log = log;
    this.onChange = onChange;
  }

  /** After a reload. */
  setHierarchies(list: HierarchyConfig[]): void {
    this.hierarchies = list;
    if (!this.timer && this.targets().length > 0) this.start();
  }

  private targets(): string[] {
    return [...new Set(this.hierarchies.flatMap((h) => h.utilityChecks.map((c) => c.target)))];
  }

  start(): void {
    if (this.targets().length === 0) return;
    void this.round();
    this.timer = setInterval(() => void this.round(), DEFAULTS.utilityCheckIntervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all(
        this.targets().map(async (t) => {
          const r = await execa('ping', ['-n', '-q', '-c', '1', '-W', String(DEFAULTS.utilityCheckTimeoutMs / 1000), t], { reject: false, timeout: DEFAULTS.utilityCheckTimeoutMs + 1000 });
          const before = this.failing.get(t) ?? 0;
          const after = r.exitCode === 0 ? 0 : before + 1;
          this.failing.set(t, after);
          if ((before >= 2) !== (after >= 2)) {
            this.log.warn({ event: 'utility-check', target: t, ok: after < 2 }, `utility check ping ${t}: ${after < 2 ? 'passes again' : 'FAILING'}`);
            this.onChange();
          }
        }),
      );
    } finally {
      this.running = false;
    }
  }

  /** Does this node pass every utility check of H? */
  ok(hierarchy: string): boolean {
    const h = this.hierarchies.find((x) => x.name === hierarchy);
    if (!h) return false;
    return h.utilityChecks.every((c) => (this.failing.get(c.target) ?? 0) < 2);
  }
}
