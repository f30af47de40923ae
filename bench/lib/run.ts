// Running host commands for the namespace test bed. Setup, faults and teardown call `ip`,
// `nsenter`, `losetup`... many times; these wrappers bound every call in time and turn a
// failure into an error that names the command and quotes its stderr.
import { spawnSync, execFile } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command after this long (default 10 s). */
  timeoutMs?: number;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export class CommandError extends Error {
  readonly result: RunResult;
  constructor(argv: readonly string[], result: RunResult, why: string) {
    const err = result.stderr.trim() || result.stdout.trim();
    super(`command failed (${why}): ${argv.join(' ')}${err ? `\n  ${err.split('\n').slice(-5).join('\n  ')}` : ''}`);
    this.name = 'CommandError';
    this.result = result;
  }
}

/**
 * Run synchronously. Used for setup and teardown (teardown must also work from a process
 * 'exit' handler, where nothing asynchronous runs any more).
 */
export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('runSync: empty command');
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 10_000,
    killSignal: 'SIGKILL',
    input: opts.input,
    env: opts.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  const result: RunResult = { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (r.error) {
    if (opts.allowFail) return { ...result, stderr: `${result.stderr}${r.error.message}` };
    throw new CommandError(argv, result, r.error.message);
  }
  if (result.code !== 0 && !opts.allowFail) throw new CommandError(argv, result, r.signal ? `signal ${r.signal}` : `exit ${result.code}`);
  return result;
}

/** Run asynchronously: used while probes are sampling, so the event loop keeps turning. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('run: empty command'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 10_000, killSignal: 'SIGKILL', env: opts.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : -1) : 0;
        const result: RunResult = { code, stdout, stderr };
        if (e && !opts.allowFail) reject(new CommandError(argv, result, e.killed ? 'timed out' : e.message.split('\n')[0] ?? 'failed'));
        else resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` every `everyMs` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(what: string, timeoutMs: number, everyMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await sleep(everyMs);
  }
}
