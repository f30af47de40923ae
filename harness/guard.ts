// The daemon's side of the self-fencing guard (harness/guard.sh): keeps the guard's stop script
// in sync with what runs here, and starts/stops the guard. See guard.sh for the why.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Logger } from './log.ts';

const GUARD_SH = fileURLToPath(new URL('./guard.sh', import.meta.url));

/** One agent stop, fully resolved: path + environment. */
export interface GuardStop {
  label: string;
  agentPath: string;
  env: Record<string, string>;
  timeoutMs: number;
}

/** POSIX shell single-quoting: any string as exactly one word (also for remote commands over SSH). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function renderStopScript(stops: GuardStop[]): string {
  const lines = ['#!/bin/sh', '# Written by the harness daemon: what to stop if it dies. Do not edit.'];
  for (const s of stops) {
    const env = Object.entries(s.env).map(([k, v]) => `${k}=${shq(v)}`).join(' ');
    const secs = Math.max(1, Math.ceil(s.timeoutMs / 1000));
    lines.push(`echo ${shq(`harness guard: stop ${s.label}`)} >&2`);
    lines.push(`timeout -s KILL ${secs} env -i ${env} ${shq(s.agentPath)} stop </dev/null >/dev/null 2>&1 || echo ${shq(`harness guard: stop ${s.label} FAILED`)} >&2`);
  }
  return lines.join('\n') + '\n';
}

export class Guard {
  private child?: ChildProcess;
  private readonly script: string;
  private readonly log: Logger;

  constructor(opts: { node: string; stateDir: string; log: Logger }) {
    this.script = join(opts.stateDir, 'guard-stop.sh');
    this.log = opts.log;
  }

  async start(): Promise<void> {
    rmSync(this.script, { force: true });
    // detached: own session, so a signal to the daemon's process group does not reach the guard.
    this.child = spawn('/bin/sh', [GUARD_SH, this.script], { detached: true, stdio: ['pipe', 'ignore', 'inherit'] });
    this.child.on('error', (e) => this.log.error({ event: 'guard-error', err: e.message }, `guard: ${e.message}`));
    this.child.unref();
  }

  /** Rewrite the stop script: `stops` in the order they must run (parents first). */
  update(stops: GuardStop[]): void {
    if (stops.length === 0) {
      rmSync(this.script, { force: true });
      return;
    }
    const tmp = `${this.script}.tmp`;
    writeFileSync(tmp, renderStopScript(stops), { mode: 0o700 });
    chmodSync(tmp, 0o700);
    renameSync(tmp, this.script);
  }

  /** Clean exit: nothing to stop any more, let the guard go. */
  async stop(): Promise<void> {
    rmSync(this.script, { force: true });
    this.child?.stdin?.end();
  }

  /** Policy "halt": stop everything here now (the guard's script), then run HARNESS_HALT_COMMAND if set. */
  async halt(reason: string): Promise<void> {
    await execa('/bin/sh', [this.script], { reject: false, timeout: 60_000 });
    const cmd = process.env.HARNESS_HALT_COMMAND;
    this.log.fatal({ event: 'halt', reason, command: cmd ?? null }, `halting: ${reason}`);
    if (cmd) await execa('/bin/sh', ['-c', cmd], { reject: false });
    process.exit(70);
  }
}
