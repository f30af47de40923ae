// Utility checks: per hierarchy, conditions a node must meet to be eligible for it (seed: "a web
// server exporting a service to the Internet should not be recovered on a node which cannot see
// the Internet gateway"). A failing node is not eligible; an owner that starts failing gives the
// hierarchy up so the next eligible node takes over.
//
// One long-running `ping` per target (not one process per check: spawning twice a second was
// the largest part of an idle node's CPU). A target fails when no reply has arrived for two
// check intervals plus the reply timeout, so one lost ICMP packet never moves a service.
import { spawn, type ChildProcess } from 'node:child_process';
import type { HierarchyConfig } from '../hierarchies/model.ts';
import type { Logger } from './log.ts';
import { DEFAULTS } from './defaults.ts';

interface Pinger {
  target: string;
  proc?: ChildProcess;
  lastReply: number;
  ok: boolean;
  restartTimer?: NodeJS.Timeout;
}

export class UtilityChecks {
  private hierarchies: HierarchyConfig[];
  private readonly log: Logger;
  private readonly onChange: () => void;
  private readonly pingers = new Map<string, Pinger>();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(hierarchies: HierarchyConfig[], log: Logger, onChange: () => void) {
    this.hierarchies = hierarchies;
    this.log = log;
    this.onChange = onChange;
  }

  /** After a reload. */
  setHierarchies(list: HierarchyConfig[]): void {
    this.hierarchies = list;
    this.sync();
  }

  private targets(): string[] {
    return [...new Set(this.hierarchies.flatMap((h) => h.utilityChecks.map((c) => c.target)))];
  }

  start(): void {
    this.sync();
  }

  private sync(): void {
    if (this.stopped) return;
    const want = new Set(this.targets());
    for (const [t, p] of this.pingers) {
      if (!want.has(t)) {
        this.kill(p);
        this.pingers.delete(t);
      }
    }
    for (const t of want) {
      if (this.pingers.has(t)) continue;
      // Starts as passing: a node just started must not give up what it runs before the first verdict.
      const p: Pinger = { target: t, lastReply: Date.now(), ok: true };
      this.pingers.set(t, p);
      this.launch(p);
    }
    if (want.size > 0 && !this.timer) this.timer = setInterval(() => this.evaluate(), DEFAULTS.utilityCheckIntervalMs);
    if (want.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private launch(p: Pinger): void {
    const intervalS = String(DEFAULTS.utilityCheckIntervalMs / 1000);
    const timeoutS = String(DEFAULTS.utilityCheckTimeoutMs / 1000);
    // Through a tiny shell that kills ping when our end of its stdin closes: however the daemon
    // dies (even SIGKILL), no orphaned ping keeps running on the node. The target is an IP address
    // or a host name (hierarchies/schema.ts); "--" still ends ping's options before it, so no
    // target can become an option of root's ping ("-f": flood).
    const script = 'ping -n -i "$1" -W "$2" -- "$3" </dev/null & p=$!; while read -r _; do :; done; kill $p 2>/dev/null';
    const proc = spawn('/bin/sh', ['-c', script, 'harness-utility-ping', intervalS, timeoutS, p.target], { stdio: ['pipe', 'pipe', 'ignore'] });
    p.proc = proc;
    let buf = '';
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // "64 bytes from 192.168.77.254: icmp_seq=3 ttl=64 time=0.05 ms" (not "From …: Destination Host Unreachable")
        if (/ bytes from .*icmp_seq=/.test(line)) {
          p.lastReply = Date.now();
          if (!p.ok) this.evaluate();
        }
      }
    });
    proc.on('error', (e) => this.log.error({ event: 'utility-check', target: p.target, err: e.message }, `utility check ping ${p.target}: ${e.message}`));
    proc.on('exit', () => {
      if (p.proc !== proc || this.stopped) return;
      p.proc = undefined;
      // ping exits on some errors (e.g. no route at start): try again shortly; silence counts as failure.
      p.restartTimer = setTimeout(() => {
        if (!this.stopped && this.pingers.get(p.target) === p) this.launch(p);
      }, DEFAULTS.utilityCheckIntervalMs);
    });
  }

  private evaluate(): void {
    const now = Date.now();
    const limit = 2 * DEFAULTS.utilityCheckIntervalMs + DEFAULTS.utilityCheckTimeoutMs;
    let changed = false;
    for (const p of this.pingers.values()) {
      const ok = now - p.lastReply <= limit;
      if (ok !== p.ok) {
        p.ok = ok;
        changed = true;
        this.log.warn({ event: 'utility-check', target: p.target, ok }, `utility check ping ${p.target}: ${ok ? 'passes again' : `FAILING (no reply for ${now - p.lastReply} ms)`}`);
      }
    }
    if (changed) this.onChange();
  }

  private kill(p: Pinger): void {
    if (p.restartTimer) clearTimeout(p.restartTimer);
    const proc = p.proc;
    p.proc = undefined;
    proc?.stdin?.end(); // the wrapper kills its ping and exits
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.pingers.values()) this.kill(p);
  }

  /** Does this node pass every utility check of H? */
  ok(hierarchy: string): boolean {
    const h = this.hierarchies.find((x) => x.name === hierarchy);
    if (!h) return false;
    return h.utilityChecks.every((c) => this.pingers.get(c.target)?.ok ?? true);
  }
}
