// Structured logs (pino, JSON lines). Every decision and action is logged with `event`,
// `hierarchy`, `resource`, `reason` and `durationMs` where they apply, so a failover can be
// reconstructed (and timed) from the log alone. Level: HARNESS_LOG_LEVEL (default info).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { node: string; destination?: string | number }): Logger {
  const dest = pino.destination({ dest: opts.destination ?? 1, sync: true });
  return pino(
    {
      level: process.env.HARNESS_LOG_LEVEL ?? 'info',
      base: { node: opts.node },
      // epoch ms: the bench and tests compute timings from these.
      timestamp: pino.stdTimeFunctions.epochTime,
    },
    dest,
  );
}

/** A logger that drops everything (unit tests, CLI one-shots). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
