// The daemon's side of the self-fencing guard (harness/guard.sh, harness/guard-lib.sh): keeps the
// guard's stop script in sync with what runs and what is owned here, and starts/stops the guard.
// See guard-lib.sh for the why of holding the disks while stopping.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from './log.ts';
import { assertTrustedDir, writeFileAtomic, writeFileAtomicAsync } from './safe-files.ts';

const GUARD_SH = fileURLToPath(new URL('./guard.sh', import.meta.url));
const GUARD_LIB = fileURLToPath(new URL('./guard-lib.sh', import.meta.url));
/** Beyond the sum of the stop timeouts, the refresh keeps holding this long (the release itself). */
const BOUND_SLACK_S = 2;

/** One agent stop, fully resolved: path + environment. */
export interface GuardStop {
  label: string;
  agentPath: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Seen by clients (a virtual IP): stopped as early as the dependency tree allows. */
  clientFacing?: boolean;
}

/** What the guard must do for one hierarchy: stop its running resources, then give up its disks. */
export interface GuardHierarchy {
  name: string;
  /** Stops in dependency order (dependents first); stops in one inner list may run in any order. */
  levels: GuardStop[][];
  /** The disks this node owns for it, as the backend's guard functions name them (empty: not owned). */
  disks: string[];
  /**
   * Give the disks up once every stop succeeded. False while a start or restart is in flight: an
   * agent orphaned by the daemon's death may still bring something up after the guard's stops.
   */
  release?: boolean;
}

/** How the guard reaches the disks: written once into the script. */
export interface GuardOwnership {
  backend: 'file' | 'scsi';
  /** This node's key part (high 32 bits), lowercase hex without padding, as sg_persist prints keys. */
  nodePart: string;
  initiator: string;
  keyRefreshMs: number;
  fileLockStaleMs: number;
  /** The stops run this much nicer than the guard (the agents' nice value; 0 when the daemon is not boosted). */
  agentNiceIncrement?: number;
}

/** Agents whose resource is what clients reach (an address): the guard stops them first. */
const CLIENT_FACING = /^(IPaddr2?|IPv6addr|IPsrcaddr|VIPArip|awsvip|gcp-vpc-move-vip|azure-lb)$/i;

export function isClientFacing(agentType: string | undefined): boolean {
  return agentType !== undefined && CLIENT_FACING.test(agentType);
}

/** POSIX shell single-quoting: any string as exactly one word (also for remote commands over SSH). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A hierarchy's stops in the order the guard runs them: by level, client-facing first within one. */
export function guardOrder(h: GuardHierarchy): GuardStop[] {
  return h.levels.flatMap((level) => [...level].sort((a, b) => Number(b.clientFacing ?? false) - Number(a.clientFacing ?? false)));
}

export function renderStopScript(hierarchies: GuardHierarchy[], own: GuardOwnership, lib = GUARD_LIB): string {
  const secs = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
  const bound = Math.max(0, ...hierarchies.map((h) => guardOrder(h).reduce((n, s) => n + secs(s.timeoutMs), 0))) + BOUND_SLACK_S;
  const lines = [
    '#!/bin/sh',
    '# Written by the harness daemon: what to stop if it dies. Do not edit.',
    `. ${shq(lib)}`,
    `hg_init ${own.backend} ${own.nodePart} ${(own.keyRefreshMs / 1000).toFixed(3)} ${bound} ${shq(own.initiator)} ${own.fileLockStaleMs} ${own.agentNiceIncrement ?? 0}`,
  ];
  hierarchies.forEach((h, i) => {
    if (h.disks.length) lines.push(`hg_hold ${i} ${h.disks.map(shq).join(' ')}`);
  });
  lines.push('hg_begin');
  // Hierarchies are independent: each is stopped (then released) in its own subshell, all at once.
  const pids: string[] = [];
  hierarchies.forEach((h, i) => {
    lines.push('(');
    for (const s of guardOrder(h)) {
      const env = Object.entries(s.env).map(([k, v]) => `${k}=${shq(v)}`).join(' ');
      lines.push(`  hg_stop ${i} ${shq(s.label)} ${secs(s.timeoutMs)} ${shq(s.agentPath)} ${env}`);
    }
    lines.push(`  ${h.release === false ? 'hg_keep' : 'hg_release'} ${i} ${shq(h.name)}`, ') &', `p${i}=$!`);
    pids.push(`"$p${i}"`);
  });
  if (pids.length) lines.push(`wait ${pids.join(' ')}`);
  lines.push('hg_end');
  return lines.join('\n') + '\n';
}

export class Guard {
  private child?: ChildProcess;
  private readonly script: string;
  private readonly pidFile: string;
  private readonly log: Logger;

  constructor(opts: { node: string; stateDir: string; log: Logger }) {
    // The guard runs its stop script from here, as the daemon's user (root): nobody else may be
    // able to replace it. Throws an Error naming the directory.
    assertTrustedDir(opts.stateDir, 'state directory');
    this.script = join(opts.stateDir, 'guard-stop.sh');
    this.pidFile = join(opts.stateDir, 'guard.pid');
    this.log = opts.log;
  }

  /**
   * A guard left by an earlier life of this daemon may still be stopping and holding (a daemon
   * restarted right after a crash): wait for it before this node touches anything shared, or its
   * refresh and release would act on the new daemon's registrations (same node key part).
   * Bounded: its stops are; past `maxMs` it is killed.
   */
  async waitForPrevious(maxMs = 120_000): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    const isGuard = () => {
      try {
        // guard.sh waiting, or the stop script it exec'd once the daemon was gone.
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return Number.isInteger(pid) && pid > 1 && (cmd.includes(GUARD_SH) || cmd.includes(this.script));
      } catch {
        return false;
      }
    };
    if (!isGuard()) return;
    this.log.warn({ event: 'guard-previous', pid }, `the guard of an earlier run (pid ${pid}) is still at work: waiting for it to finish`);
    const t0 = performance.now();
    while (isGuard()) {
      if (performance.now() - t0 > maxMs) {
        this.log.error({ event: 'guard-previous', pid }, `the earlier guard (pid ${pid}) still runs after ${maxMs} ms: killing it`);
        // Its whole process group (it leads its own session): the per-hierarchy subshells and the
        // key refresher must not go on next to this daemon, which uses the same node key part.
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            /* gone, or not a group leader */
          }
        }
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.log.info({ event: 'guard-previous', pid, waitedMs: Math.round(performance.now() - t0) }, 'the earlier guard is done');
  }

  async start(): Promise<void> {
    rmSync(this.script, { force: true });
    // detached: own session, so a signal to the daemon's process group does not reach the guard.
    this.child = spawn('/bin/sh', [GUARD_SH, this.script], { detached: true, stdio: ['pipe', 'ignore', 'inherit'] });
    this.child.on('error', (e) => this.log.error({ event: 'guard-error', err: e.message }, `guard: ${e.message}`));
    this.child.unref();
    if (this.child.pid !== undefined) writeFileAtomic(this.pidFile, `${this.child.pid}\n`, { mode: 0o644 });
  }

  /**
   * Rewrite the stop script: what runs and what is owned here now. The file is written off the
   * event loop (a create + write + rename took 3-19 ms of the loop each on this machine's disk,
   * and a takeover of 20 hierarchies rewrote it ~60 times: the loop stood still for up to half a
   * second, and the keeper's and comm's timers with it); rewrites requested while one is under way
   * collapse into one with the latest text. Whoever must not run before the script covers what it
   * starts awaits written() (node.ts: every start and restart).
   */
  update(hierarchies: GuardHierarchy[], own: GuardOwnership): void {
    // Rendered when written: of a burst of updates, only the last is rendered (at 500 hierarchies
    // a render is a few hundred microseconds).
    this.pending = { hierarchies, own };
    this.dirty = true;
    this.chain = this.chain.then(() => this.flush());
  }

  /** Resolves once the script of the last update() is in place (or failed, which is logged). */
  written(): Promise<void> {
    return this.chain;
  }

  private pending: { hierarchies: GuardHierarchy[]; own: GuardOwnership } | null = null;
  private dirty = false;
  private stopped = false;
  private chain: Promise<void> = Promise.resolve();

  private async flush(): Promise<void> {
    if (!this.dirty || this.stopped) return;
    this.dirty = false;
    const p = this.pending;
    try {
      const work = p ? p.hierarchies.filter((h) => h.disks.length > 0 || h.levels.some((l) => l.length > 0)) : [];
      const text = work.length === 0 ? null : renderStopScript(work, p!.own);
      if (text === null) rmSync(this.script, { force: true });
      // The rename is on this thread and checks `stopped` first: nothing lands after stop() or halt().
      else await writeFileAtomicAsync(this.script, text, { mode: 0o700 }, () => !this.stopped);
    } catch (e) {
      this.log.error({ event: 'guard-error', err: (e as Error).message }, `guard: cannot write stop script: ${(e as Error).message}`);
    }
  }

  /** Replace the script in one rename: the guard never runs half of one (and never a file planted as its temporary). */
  private writeScript(text: string): void {
    writeFileAtomic(this.script, text, { mode: 0o700 });
  }

  /** Clean exit: nothing to stop any more, let the guard go. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.chain;
    rmSync(this.script, { force: true });
    this.child?.stdin?.end();
  }

  /**
   * Policy "halt": the guard runs `command` (cluster.yaml `haltCommand`) at once, in place of its
   * stop script, and this process exits (70). The guard does it, not the daemon: it is what runs
   * when the daemon cannot, and the command needs nothing of this process.
   */
  halt(reason: string, command: string): never {
    this.stopped = true;
    this.writeScript(['#!/bin/sh', '# Written by the harness daemon: HALT this node. Do not edit.', `echo ${shq(`harness guard: halting (${reason}): ${command}`)} >&2`, `exec /bin/sh -c ${shq(command)}`, ''].join('\n'));
    this.log.fatal({ event: 'halt', reason, command }, `halting: ${reason} (the guard runs: ${command})`);
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.stdin?.end();
    else spawn('/bin/sh', [this.script], { detached: true, stdio: 'ignore' }).unref(); // no guard: do it ourselves
    process.exit(70);
  }
}
