// `harness hierarchy|node ...` waits for the outcome: this node's status is read until the cluster
// is where the request asked it to be (every node learned the request, and the hierarchies are
// placed accordingly), a definite failure shows (FAILED), or the time is up. What changes on the
// way is printed with the time since the request, so the admin sees the switchover happen.
import type { StatusDoc } from './status.ts';

export type AdminCommand =
  | { target: 'hierarchy'; name: string; action: 'stop' | 'start' | 'maintenance-on' | 'maintenance-off' | 'clear' | 'move'; to?: string }
  | { target: 'node'; name: string; action: 'standby' | 'online' | 'maintenance-on' | 'maintenance-off' };

const ACTIONS = {
  hierarchy: { plain: ['stop', 'start', 'clear'], list: 'move, stop, start, maintenance on|off, clear' },
  node: { plain: ['standby', 'online'], list: 'standby, online, maintenance on|off' },
} as const;

/** The words an admin typed (`hierarchy web maintenance on`) as a command, or an error saying what is wrong. */
export function parseAdminCommand(target: 'hierarchy' | 'node', name: string, action: string, arg: string | undefined): AdminCommand {
  const what = `${target} ${name}`;
  if (target === 'hierarchy' && action === 'move') return { target, name, action, ...(arg ? { to: arg } : {}) };
  if (action === 'maintenance') {
    if (arg !== 'on' && arg !== 'off') throw new Error(`${what} maintenance: expected on or off, got ${arg ?? 'nothing'}`);
    return { target, name, action: arg === 'on' ? 'maintenance-on' : 'maintenance-off' } as AdminCommand;
  }
  if ((ACTIONS[target].plain as readonly string[]).includes(action)) {
    if (arg !== undefined) throw new Error(`${what} ${action}: takes no argument (got ${arg})`);
    return { target, name, action } as AdminCommand;
  }
  throw new Error(`${what}: unknown action ${JSON.stringify(action)} (${ACTIONS[target].list})`);
}

export type Verdict = { done: true } | { done: false; failed?: string; waiting: string };

const ACTIVE = new Set(['in-service', 'starting', 'stopping', 'failed']);

/** Nodes that have not got admin map version `v` yet (up nodes only: a down node learns it on rejoin). */
function notLearned(s: StatusDoc, v: number): string[] {
  return s.nodes.filter((n) => !n.self && n.state === 'up' && (n.adminVersion ?? 0) < v).map((n) => n.name);
}

function hierarchy(s: StatusDoc, name: string): StatusDoc['hierarchies'][number] | undefined {
  return s.hierarchies.find((h) => h.name === name);
}

/** Up nodes (this one included) and what they say about H. */
function upStates(h: StatusDoc['hierarchies'][number]): Array<[string, string]> {
  return Object.entries(h.states).filter(([, x]) => x.up).map(([n, x]) => [n, x.state]);
}

/** Is the cluster where `cmd` (accepted as admin map version `v`) wants it? */
export function verdict(s: StatusDoc, cmd: AdminCommand, v: number, target?: string): Verdict {
  const missing = notLearned(s, v);
  if (missing.length > 0) return { done: false, waiting: `${missing.join(', ')} not told yet` };
  if (cmd.target === 'node') {
    if (cmd.action === 'maintenance-on') return { done: true };
    if (cmd.action !== 'standby') return settledEverywhere(s);
    const busy = s.hierarchies.filter((h) => ACTIVE.has(h.states[cmd.name]?.state ?? '') && h.states[cmd.name]?.up);
    const failed = busy.filter((h) => h.states[cmd.name]!.state === 'failed');
    if (failed.length > 0) return { done: false, failed: `${failed.map((h) => h.name).join(', ')} FAILED on ${cmd.name}: ${failed.map((h) => h.note).join('; ')}`, waiting: '' };
    if (busy.length > 0) return { done: false, waiting: `${busy.map((h) => `${h.name} ${h.states[cmd.name]!.state}`).join(', ')} on ${cmd.name}` };
    // Off it, and where it went (or nowhere, when no other node can take it) settled.
    return settledEverywhere(s);
  }
  const h = hierarchy(s, cmd.name);
  if (!h) return { done: false, failed: `no hierarchy ${cmd.name} on ${s.node}`, waiting: '' };
  const states = upStates(h);
  const failedOn = states.filter(([, st]) => st === 'failed' || st === 'blocked').map(([n]) => n);
  const probing = states.filter(([, st]) => st === 'starting').map(([n]) => n);
  const running = states.filter(([, st]) => st === 'in-service').map(([n]) => n);
  const moving = states.filter(([, st]) => st === 'starting' || st === 'stopping').map(([n]) => n);
  const failNote = () => `${cmd.name} FAILED or BLOCKED on ${failedOn.join(', ')}${failedOn.includes(s.node) ? `: ${h.note}` : ' (see `harness status` there)'}`;
  switch (cmd.action) {
    case 'maintenance-on':
      return { done: true };
    case 'stop': {
      const active = states.filter(([, st]) => ACTIVE.has(st)).map(([n, st]) => `${st} on ${n}`);
      if (failedOn.length > 0) return { done: false, failed: failNote(), waiting: '' };
      return active.length === 0 ? { done: true } : { done: false, waiting: active.join(', ') };
    }
    case 'start':
    case 'maintenance-off':
    case 'clear':
      if (failedOn.length > 0) return { done: false, failed: failNote(), waiting: '' };
      if (probing.length > 0 || moving.length > 0) return { done: false, waiting: `${[...new Set([...probing, ...moving])].join(', ')} busy with it` };
      if (running.length === 1) return { done: true };
      return { done: false, waiting: running.length === 0 ? 'not in service anywhere yet' : `in service on ${running.join(' AND ')}` };
    case 'move': {
      if (failedOn.length > 0) return { done: false, failed: failNote(), waiting: '' };
      const to = target ?? cmd.to;
      if (running.length === 1 && running[0] === to && moving.length === 0) return { done: true };
      return { done: false, waiting: running.length ? `in service on ${running.join(', ')}` : moving.length ? `${moving.map((n) => `${h.states[n]!.state} on ${n}`).join(', ')}` : 'not in service anywhere' };
    }
  }
}

/** No hierarchy starting or stopping on any node that is up (a switchover, a switchback, a probe). */
function settledEverywhere(s: StatusDoc): Verdict {
  const moving = s.hierarchies.flatMap((h) => upStates(h).filter(([, st]) => st === 'starting' || st === 'stopping').map(([n, st]) => `${h.name} ${st} on ${n}`));
  return moving.length === 0 ? { done: true } : { done: false, waiting: moving.join(', ') };
}

/** One line saying where things are, for the progress output (printed when it changes). */
export function progressLine(s: StatusDoc, cmd: AdminCommand): string {
  const hs = cmd.target === 'hierarchy' ? s.hierarchies.filter((h) => h.name === cmd.name) : s.hierarchies.filter((h) => h.states[cmd.name] !== undefined);
  return hs
    .map((h) => `${h.name}: ${Object.entries(h.states).filter(([n, x]) => x.up && (cmd.target === 'hierarchy' || n === cmd.name || x.state !== 'out-of-service')).map(([n, x]) => `${n} ${x.state}`).join(', ')}`)
    .join('; ');
}
