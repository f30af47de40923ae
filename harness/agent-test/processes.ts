// Which processes belong to a resource under test: everything that carries its unique
// OCF_RESOURCE_INSTANCE in its environment (children inherit it, also daemons that called
// setsid), and everything still in the process group of one of its agent runs (the runner makes
// each run the leader of its own group). Reads /proc; zombies do not count.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { processState, statFields } from '../../agents/procgroup.ts';

export interface AgentProcess {
  pid: number;
  cmd: string;
}

function cmdline(pid: string): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter((a) => a !== '').join(' ').replace(/\s+/g, ' ');
    return cmd.length > 160 ? `${cmd.slice(0, 160)}…` : cmd;
  } catch {
    return '?';
  }
}

export function findResourceProcesses(instance: string, pgids: ReadonlySet<number>): AgentProcess[] {
  const marker = `\0OCF_RESOURCE_INSTANCE=${instance}\0`;
  const out: AgentProcess[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const st = statFields(e);
    if (!st || st[0] === 'Z' || st[0] === 'X') continue;
    let mine = pgids.has(Number(st[2]));
    if (!mine) {
      try {
        mine = `\0${readFileSync(`/proc/${e}/environ`, 'latin1')}`.includes(marker);
      } catch {
        // gone, or another user's process we may not read: not ours either way
      }
    }
    if (mine) out.push({ pid: Number(e), cmd: cmdline(e) });
  }
  return out;
}

/** SIGKILL each process and wait (at most `graceMs`) until none is alive: a signal is delivered asynchronously. */
export async function killAndWait(procs: readonly AgentProcess[], graceMs: number): Promise<void> {
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = performance.now() + graceMs;
  const alive = (p: AgentProcess): boolean => {
    const st = processState(p.pid);
    return st !== null && st !== 'Z' && st !== 'X';
  };
  while (procs.some(alive) && performance.now() < deadline) await sleep(20);
}
