// What the daemon reports to the outside, next to its log: alert agents (harness/alerts.ts), the
// failover history (harness/history.ts) and Prometheus metrics (harness/metrics.ts). They observe
// the daemon's log records (harness/log.ts tapLog); metrics also the keeper's timings and the
// decision rounds. The executor (harness/node.ts) calls in here and nowhere else.
import type { Config } from '../hierarchies/model.ts';
import type { Logger } from './log.ts';
import { Alerts } from './alerts.ts';
import { Metrics, type MetricsSource } from './metrics.ts';
import { HistoryWriter } from './history.ts';

export interface Observers {
  /** The keeper's `timing` event: one ownership check or key refresh took `ms`. */
  ownership(kind: 'check' | 'refresh', hierarchy: string, ms: number): void;
  /** One decision round (events through the reducer, effects started) took `ms`. */
  round(ms: number): void;
  stop(): Promise<void>;
}

export async function startObservers(opts: { config: Config; node: string; stateDir: string; log: Logger; daemon: MetricsSource }): Promise<Observers> {
  const { cluster } = opts.config;
  const history = new HistoryWriter({ stateDir: opts.stateDir, node: opts.node, log: opts.log });
  const alerts = cluster.alerts?.length ? new Alerts(cluster.alerts, opts.node, opts.log) : undefined;
  let metrics: Metrics | undefined;
  const listen = cluster.nodes.find((n) => n.name === opts.node)?.metricsListen ?? cluster.metricsListen;
  if (listen) {
    metrics = new Metrics({ node: opts.node, log: opts.log, source: opts.daemon });
    await metrics.listen(listen);
    opts.log.info({ event: 'metrics-listening', address: listen }, `metrics on http://${listen}/metrics`);
  }
  return {
    ownership: (kind, hierarchy, ms) => metrics?.ownership(kind, hierarchy, ms),
    round: (ms) => metrics?.round(ms),
    async stop() {
      alerts?.stop();
      history.stop();
      await metrics?.stop();
    },
  };
}
