// The timeline language shared by random schedules (sim/schedule.ts) and admin scenarios
// (`harness simulate`, sim/scenario.ts): what can happen to a simulated cluster, and when.

import type { AdminRequest } from '../harness/core/types.ts';
export type Fault =
  | { do: 'power-off'; node: string }
  | { do: 'power-on'; node: string }
  /** SIGKILL of the daemon: its guard takes over. */
  | { do: 'crash'; node: string }
  /** `harness start` on a node whose daemon is not running. */
  | { do: 'start'; node: string }
  /** `harness stop [--mode]` on a node. */
  | { do: 'shutdown'; node: string; mode: 'switchover' | 'stop' }
  | { do: 'stall'; node: string }
  | { do: 'resume'; node: string }
  /** One-way cut: `from` can no longer send to `to` (on every path, or one). */
  | { do: 'cut'; from: string; to: string; path?: number }
  | { do: 'heal'; from: string; to: string; path?: number }
  | { do: 'partition'; groups: string[][] }
  /** Loss, duplication and jitter on one link (one way). */
  | { do: 'link'; from: string; to: string; loss: number; dup: number; jitterMs: number }
  | { do: 'heal-network' }
  /** Heal both directions between two nodes. */
  | { do: 'heal-pair'; a: string; b: string }
  /** The node's disks answer again (after a cut or a hang). */
  | { do: 'disk-back'; node: string }
  /** `node` cannot reach the disks (its I/O fails), or they hang for it. */
  | { do: 'disk-cut'; node: string; on: boolean }
  | { do: 'disk-hang'; node: string; on: boolean }
  | { do: 'start-fails'; node: string; hierarchy: string; resource: string; on: boolean }
  | { do: 'stop-fails'; node: string; hierarchy: string; resource: string; on: boolean }
  | { do: 'agent-hangs'; node: string; hierarchy: string; resource: string; on: boolean }
  /** The resource's configuration is wrong everywhere: every operation answers OCF 6. */
  | { do: 'misconfigured'; hierarchy: string; resource: string; on: boolean }
  /** The resource's process dies (its monitor will notice). */
  | { do: 'resource-dies'; node: string; hierarchy: string; resource: string }
  | { do: 'clock-jump'; node: string; ms: number }
  /** The node's utility checks (e.g. ping the gateway) start failing, or pass again. */
  | { do: 'utility'; node: string; ok: boolean }
  /** An admin's request (harness hierarchy|node ...) issued on `node`. */
  | { do: 'admin'; node: string; request: AdminRequest }
  /** Old, authentic packets of `from` delivered to `to` again. */
  | { do: 'replay'; from: string; to: string };

export interface TimedFault {
  at: number;
  fault: Fault;
}

export function describeFault(f: Fault): string {
  switch (f.do) {
    case 'cut':
    case 'heal':
      return `${f.do} ${f.from} -> ${f.to}${f.path !== undefined ? ` (path ${f.path})` : ''}`;
    case 'partition':
      return `partition ${f.groups.map((g) => g.join(',')).join(' | ')}`;
    case 'link':
      return `link ${f.from} -> ${f.to}: loss ${f.loss}, dup ${f.dup}, jitter ${f.jitterMs} ms`;
    case 'heal-network':
      return 'network healed';
    case 'heal-pair':
      return `link ${f.a} <-> ${f.b} healed`;
    case 'disk-back':
      return `disks of ${f.node} answer again`;
    case 'disk-cut':
    case 'disk-hang':
      return `${f.do} ${f.node} ${f.on ? 'on' : 'off'}`;
    case 'start-fails':
    case 'stop-fails':
    case 'agent-hangs':
      return `${f.do} ${f.node} ${f.hierarchy}/${f.resource} ${f.on ? 'on' : 'off'}`;
    case 'misconfigured':
      return `${f.hierarchy}/${f.resource} misconfigured (OCF 6 everywhere) ${f.on ? 'on' : 'off'}`;
    case 'resource-dies':
      return `resource dies: ${f.hierarchy}/${f.resource} on ${f.node}`;
    case 'utility':
      return `utility checks of ${f.node} ${f.ok ? 'pass again' : 'FAIL (gateway unreachable)'}`;
    case 'clock-jump':
      return `clock of ${f.node} jumps ${f.ms > 0 ? '+' : ''}${f.ms} ms`;
    case 'admin':
      return `admin on ${f.node}: ${f.request.target} ${f.request.target === 'hierarchy' ? f.request.hierarchy : f.request.node} ${f.request.action}${f.request.target === 'hierarchy' && f.request.to ? ` ${f.request.to}` : ''}`;
    case 'replay':
      return `replay ${f.from}'s old packets to ${f.to}`;
    case 'shutdown':
      return `harness stop --mode ${f.mode} on ${f.node}`;
    default:
      return `${f.do} ${f.node}`;
  }
}
