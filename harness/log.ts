// Structured logs (pino, JSON lines). Every decision and action is logged with `event`,
// `hierarchy`, `resource`, `reason` and `durationMs` where they apply, so a failover can be
// reconstructed (and timed) from the log alone. Level: HARNESS_LOG_LEVEL (default info).
import { pino, type Logger } from 'pino';

export type { Logger };

/** A log record as written: its fields (with `event`), its message, its level name, when. */
export interface LogRecord {
  level: string;
  fields: Record<string, unknown>;
  msg: string;
  at: number;
}
export type LogTap = (rec: LogRecord) => void;
const TAPS = Symbol('harness.logTaps');
type Tapped = Logger & { [TAPS]?: Set<LogTap> };

/**
 * Observe every record the daemon logs (at the logger's level or above): alerts, metrics and the
 * failover history read the same records the admin reads, so the executor needs no second
 * reporting path. A tap must not throw (it is isolated anyway) and must not block.
 */
export function tapLog(log: Logger, tap: LogTap): () => void {
  const l = log as Tapped;
  (l[TAPS] ??= new Set()).add(tap);
  return () => void l[TAPS]?.delete(tap);
}

/** Deliver a record below the log level to the taps only (metrics of routine monitors), unwritten. */
export function tapOnly(log: Logger, level: string, fields: Record<string, unknown>, msg: string): void {
  const taps = (log as Tapped)[TAPS];
  if (taps?.size) deliver(taps, { level, fields, msg, at: Date.now() });
}

function deliver(taps: Set<LogTap>, rec: LogRecord): void {
  for (const t of taps) {
    try {
      t(rec);
    } catch {
      // an observer's bug must never break logging or the caller
    }
  }
}

export function createLogger(opts: { node: string; destination?: string | number }): Logger {
  const dest = pino.destination({ dest: opts.destination ?? 1, sync: true });
  // SIGHUP: a log file is reopened (logrotate moved it away); on stdout (the journal) there is
  // nothing to reopen. Either way the daemon lives on: SIGHUP's default would end it.
  process.on('SIGHUP', () => {
    if (typeof opts.destination === 'string') dest.reopen();
    log.info({ event: 'sighup', reopened: typeof opts.destination === 'string' ? opts.destination : undefined }, typeof opts.destination === 'string' ? `log file ${opts.destination} reopened (SIGHUP)` : 'SIGHUP: logging to stdout, nothing to reopen');
  });
  const log: Logger = pino(
    {
      level: process.env.HARNESS_LOG_LEVEL ?? 'info',
      base: { node: opts.node },
      // epoch ms: the bench and tests compute timings from these.
      timestamp: pino.stdTimeFunctions.epochTime,
      hooks: {
        logMethod(args, method, level) {
          method.apply(this, args);
          const taps = (this as Tapped)[TAPS];
          if (!taps?.size) return;
          const [first, second] = args as unknown[];
          const fields = typeof first === 'object' && first !== null ? (first as Record<string, unknown>) : {};
          const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : '';
          deliver(taps, { level: this.levels.labels[level] ?? String(level), fields, msg, at: Date.now() });
        },
      },
    },
    dest,
  );
  return log;
}

/** A logger that drops everything (unit tests, CLI one-shots). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
