// The parent's side of lib/node.ts: start the three node processes, call them with bounded
// waits, kill them (SIGKILL = a node that died with its disk reservation in place).
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NodeName } from './bed.ts';
import { bound } from './bed.ts';

const NODE_SCRIPT = fileURLToPath(new URL('./node.ts', import.meta.url));

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
  code?: string | null;
}

export class NodeError extends Error {
  readonly code: string | null;
  constructor(message: string, code: string | null) {
    super(message);
    this.code = code;
  }
}

export class NodeProc {
  readonly name: NodeName;
  readonly child: ChildProcess;
  #next = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;

  constructor(name: NodeName) {
    this.name = name;
    this.child = fork(NODE_SCRIPT, [name], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      this.#waiting.set(0, { resolve: () => resolve(), reject });
    });
    this.child.on('message', (m: Reply) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.value);
      else w.reject(new NodeError(`${name}: ${m.error ?? 'failed'}`, m.code ?? null));
    });
    this.child.on('exit', (code, signal) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`${name} exited (${signal ?? code}) before answering`));
      this.#waiting.clear();
    });
  }

  /** Send a request and wait at most timeoutMs for the answer. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}, timeoutMs = bound(60_000)): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, op, ...args });
    });
  }

  /** Kill the process outright and wait (bounded) until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill(signal);
    await Promise.race([gone, new Promise((r) => setTimeout(r, bound(10_000)))]);
  }
}

/** Start the given nodes and wait (bounded) until each has loaded. */
export async function startNodes(names: NodeName[]): Promise<NodeProc[]> {
  const procs = names.map((n) => new NodeProc(n));
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`node processes did not start within ${bound(60_000)} ms`)), bound(60_000)).unref());
  await Promise.race([Promise.all(procs.map((p) => p.ready)), timeout]);
  return procs;
}

/**
 * Bring a set of nodes back to a known state between tests: a node that was killed is started
 * again, a live one forgets its keeper and race state (the disks are wiped separately).
 */
export async function resetNodes(procs: NodeProc[]): Promise<NodeProc[]> {
  const fresh = procs.map((p) => (p.child.exitCode !== null || p.child.signalCode !== null ? new NodeProc(p.name) : p));
  for (const p of fresh) p.child.kill('SIGCONT'); // a test may have left it stopped
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`node processes did not restart within ${bound(60_000)} ms`)), bound(60_000)).unref());
  await Promise.race([Promise.all(fresh.map((p) => (procs.includes(p) ? p.call('reset') : p.ready))), timeout]);
  return fresh;
}

export async function stopNodes(procs: NodeProc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.kill()));
}
