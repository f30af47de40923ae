// Simulated resource agents: the ground truth of what runs where, and how each operation behaves.
// A resource counts as running from the moment its start is launched (its process may already
// exist) until a stop of it succeeds or its machine loses power: the conservative reading for the
// "never twice" invariants.
//
// Faults (keyed `node/hierarchy/resource`):
//  - startFails: the next starts fail (the resource is left half-started: running);
//  - stopFails: stops fail while set (the resource keeps running): FAILED, by design;
//  - hangs: operations hang until their timeout, then fail (the runner kills them);
//  - broken: the resource dies `brokenAfterMs` after every start there (a node-local defect);
//  - notInstalled (`node/hierarchy`): a probe answers OCF 5 there.

export type OpKind = 'start' | 'stop';

export interface OpOutcome {
  durationMs: number;
  ok: boolean;
  /** OCF 6: fatal. */
  fatal?: boolean;
  reason?: string;
}

export class SimAgents {
  readonly #running = new Set<string>();
  readonly startFails = new Set<string>();
  readonly stopFails = new Set<string>();
  readonly hangs = new Set<string>();
  readonly broken = new Set<string>();
  readonly notInstalled = new Set<string>();
  /** `hierarchy/resource`: its configuration is wrong, on every node (OCF 6 from every operation). */
  readonly misconfigured = new Set<string>();
  /** Every stop failure, per `node/hierarchy`: FAILED is only allowed after one (I4). */
  readonly stopFailed = new Set<string>();
  readonly opMs: (kind: OpKind, key: string) => number;
  readonly brokenAfterMs: number;
  /** Called whenever what runs where changes (the simulator re-checks its invariants then). */
  onChange: () => void = () => undefined;

  constructor(opts: { opMs: (kind: OpKind, key: string) => number; brokenAfterMs?: number }) {
    this.opMs = opts.opMs;
    this.brokenAfterMs = opts.brokenAfterMs ?? 1500;
  }

  static key(node: string, h: string, r: string): string {
    return `${node}/${h}/${r}`;
  }

  running(node: string, h: string, r: string): boolean {
    return this.#running.has(SimAgents.key(node, h, r));
  }

  /** Nodes where any of `resources` of `h` runs. */
  runners(h: string, resources: readonly string[], nodes: readonly string[]): string[] {
    return nodes.filter((n) => resources.some((r) => this.#running.has(SimAgents.key(n, h, r))));
  }

  probe(node: string, h: string, r: string): 'running' | 'stopped' | 'not-installed' | 'not-configured' {
    if (this.notInstalled.has(`${node}/${h}`)) return 'not-installed';
    if (this.misconfigured.has(`${h}/${r}`)) return 'not-configured';
    return this.running(node, h, r) ? 'running' : 'stopped';
  }

  /** Decide how an operation will go; `launch` applies what is true from its first instant. */
  plan(kind: OpKind, node: string, h: string, r: string, timeoutMs: number): OpOutcome {
    const key = SimAgents.key(node, h, r);
    if (this.hangs.has(key)) return { durationMs: timeoutMs, ok: false, reason: `timed out after ${timeoutMs} ms` };
    const durationMs = Math.min(this.opMs(kind, key), timeoutMs);
    if (kind === 'start' && this.misconfigured.has(`${h}/${r}`)) return { durationMs, ok: false, fatal: true, reason: 'not-configured (rc 6: injected)' };
    if (kind === 'start' && this.startFails.has(key)) return { durationMs, ok: false, reason: 'error (rc 1: injected)' };
    if (kind === 'stop' && this.stopFails.has(key)) return { durationMs, ok: false, reason: 'error (rc 1: injected)' };
    return { durationMs, ok: true };
  }

  launch(kind: OpKind, node: string, h: string, r: string): void {
    if (kind === 'start') this.#running.add(SimAgents.key(node, h, r));
    this.onChange();
  }

  finish(kind: OpKind, node: string, h: string, r: string, ok: boolean): void {
    const key = SimAgents.key(node, h, r);
    if (kind === 'stop' && ok) this.#running.delete(key);
    this.onChange();
    if (kind === 'stop' && !ok) this.stopFailed.add(`${node}/${h}`);
  }

  /** The resource's process died (monitor will notice). */
  crash(node: string, h: string, r: string): void {
    this.#running.delete(SimAgents.key(node, h, r));
    this.onChange();
  }

  /** Power off: nothing of this node runs any more. */
  powerOff(node: string): void {
    for (const k of [...this.#running]) if (k.startsWith(`${node}/`)) this.#running.delete(k);
    this.onChange();
  }

  isBroken(node: string, h: string, r: string): boolean {
    return this.broken.has(SimAgents.key(node, h, r));
  }
}
