// Junk UDP at line rate from child processes (flood-sender.ts), for bench/flood.ts and the
// integration test that floods a running daemon. Each sender reports its packets per second.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setPriority } from 'node:os';

const SENDER = fileURLToPath(new URL('./flood-sender.ts', import.meta.url));

export interface FloodOptions {
  targets: Array<{ host: string; port: number }>;
  /** Source IPs to bind; each sender binds `ports` sockets on each. */
  sources: string[];
  ports: number;
  /** Sender processes. */
  senders: number;
  seconds: number;
  cluster: string;
  /** Node names the forged heartbeats claim to be. */
  claim: string[];
  /** Fraction of 60 KiB packets. */
  large?: number;
  /** Nice value of the senders (default: as this process): on one machine the senders are also CPU load. */
  nice?: number;
}

export interface SenderSecond {
  t: number;
  sent: number;
  bytes: number;
  errors: number;
}

export class Flood {
  readonly seconds: SenderSecond[][] = [];
  private readonly procs: ChildProcess[] = [];
  private readonly exited: Array<Promise<void>> = [];

  constructor(opts: FloodOptions) {
    for (let i = 0; i < opts.senders; i++) {
      const p = spawn(process.execPath, [SENDER, JSON.stringify({ ...opts, senders: undefined, nice: undefined })], { stdio: ['ignore', 'pipe', 'inherit'] });
      const mine: SenderSecond[] = [];
      this.seconds.push(mine);
      createInterface({ input: p.stdout! }).on('line', (l) => {
        try {
          mine.push(JSON.parse(l) as SenderSecond);
        } catch {
          /* not a report */
        }
      });
      if (opts.nice !== undefined && p.pid !== undefined) setPriority(p.pid, opts.nice);
      this.procs.push(p);
      this.exited.push(new Promise((res) => p.once('exit', () => res())));
    }
  }

  /** Packets sent per whole second, all senders together (the first and last, partial, left out). */
  perSecond(): number[] {
    const bySecond = new Map<number, number>();
    for (const s of this.seconds) for (const x of s.slice(1, -1)) bySecond.set(Math.round(x.t / 1000), (bySecond.get(Math.round(x.t / 1000)) ?? 0) + x.sent);
    return [...bySecond.values()];
  }

  total(): { sent: number; bytes: number; errors: number } {
    let sent = 0;
    let bytes = 0;
    let errors = 0;
    for (const s of this.seconds) for (const x of s) (sent += x.sent), (bytes += x.bytes), (errors += x.errors);
    return { sent, bytes, errors };
  }

  /** Resolves when every sender has finished (its time is up, or stop()). */
  done(): Promise<void> {
    return Promise.all(this.exited).then(() => {});
  }

  async stop(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGTERM');
    const t = setTimeout(() => {
      for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
    }, 3000);
    await this.done();
    clearTimeout(t);
  }
}
