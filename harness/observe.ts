// What the daemon reports to the outside, next to its log: alert agents (harness/alerts.ts), the
// failover history (harness/history.ts) and Prometheus metrics (harness/metrics.ts). All of them
// observe the daemon's log records (harness/log.ts tapLog): the executor has one hook, here.
import type { Config } from '../hierarchies/model.ts';
import type { Logger } from './log.ts';
import { Alerts } from './alerts.ts';
import type { NodeDaemon } from './node.ts';

export interface Observers {
  stop(): Promise<void>;
}

export function startObservers(opts: { config: Config; node: string; stateDir: string; log: Logger; daemon: NodeDaemon }): Observers {
  const alerts = opts.config.cluster.alerts?.length ? new Alerts(opts.config.cluster.alerts, opts.node, opts.log) : undefined;
  return {
    async stop() {
      alerts?.stop();
    },
  };
}
