// Prometheus metrics (prom-client), served on cluster.yaml `metrics: { listen: "ip:port" }` at
// /metrics; off unless configured. What the daemon does is read from its log records (harness/log.ts
// tapLog: agent operations, failovers), the keeper's `timing` events and the decision rounds;
// what it is (phases, peers, paths, packet counters) is read from the daemon at scrape time.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LocalPhase } from './decide.ts';
import type { CommCounters } from './comm.ts';
import type { PeerInfo } from './liveness.ts';
import { tapLog, type Logger, type LogRecord } from './log.ts';
import { parseAddress } from './transport.ts';

const PHASES: LocalPhase[] = ['unprobed', 'out-of-service', 'acquiring', 'starting', 'in-service', 'restarting', 'stopping', 'failed'];

/** What the scrape reads from the daemon (NodeDaemon satisfies it). */
export interface MetricsSource {
  phases(): Record<string, LocalPhase>;
  commView(): Record<string, PeerInfo>;
  commCounters(): CommCounters;
}

// Agent operations: from a fast monitor (ms) to a slow start (minutes).
const AGENT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
// Disk checks and decision rounds: sub-millisecond to a stalled disk.
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  readonly registry = new Registry();
  private server?: Server;
  private readonly untap: () => void;
  private readonly failovers: Counter;
  private readonly last: Record<'detect' | 'race' | 'recover' | 'total', Gauge>;
  private readonly agentOps: Histogram;
  private readonly checks: Histogram;
  private readonly refreshes: Counter;
  private readonly rounds: Histogram;

  constructor(opts: { node: string; log: Logger; source: MetricsSource }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: opts.node });
    // process_resident_memory_bytes, nodejs_eventloop_lag_seconds, heap, GC...
    collectDefaultMetrics({ register: this.registry });
    // Gauges named *_total: `promtool check metrics` refuses them (non-counter with a counter's
    // suffix), and they say nothing about failover.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    // Scraped before the daemon has joined (or while it leaves): report what there is.
    const safe = <T>(read: () => T, none: T): T => {
      try {
        return read();
      } catch {
        return none;
      }
    };
    const src: MetricsSource = {
      phases: () => safe(() => opts.source.phases(), {}),
      commView: () => safe(() => opts.source.commView(), {}),
      commCounters: () => safe(() => opts.source.commCounters(), { sent: 0, received: 0, sentBytes: 0, receivedBytes: 0, unconfirmed: 0, sendErrors: 0, dropped: {} as CommCounters['dropped'] }),
    };
    new Gauge({
      name: 'harness_hierarchy_phase',
      help: 'Local phase of each hierarchy on this node (1 for the current phase)',
      labelNames: ['hierarchy', 'phase'],
      registers,
      collect() {
        this.reset();
        for (const [h, phase] of Object.entries(src.phases())) for (const p of PHASES) this.set({ hierarchy: h, phase: p }, p === phase ? 1 : 0);
      },
    });
    new Gauge({
      name: 'harness_hierarchy_running_here',
      help: 'Whether the hierarchy runs on this node (in service or restarting in place)',
      labelNames: ['hierarchy'],
      registers,
      collect() {
        this.reset();
        for (const [h, phase] of Object.entries(src.phases())) this.set({ hierarchy: h }, phase === 'in-service' || phase === 'restarting' ? 1 : 0);
      },
    });
    this.failovers = new Counter({ name: 'harness_failovers_total', help: 'Times a hierarchy came into service here after the node running it was lost', labelNames: ['hierarchy'], registers });
    const lastGauge = (what: string, help: string) => new Gauge({ name: `harness_last_failover_${what}_seconds`, help, labelNames: ['hierarchy'], registers });
    this.last = {
      detect: lastGauge('detect', 'Last failover here: from the lost node last heard to declared down'),
      race: lastGauge('race', 'Last failover here: the ownership race (acquire of the disks)'),
      recover: lastGauge('recover', 'Last failover here: starting the resources'),
      total: lastGauge('total', 'Last failover here: from the lost node last heard to in service here'),
    };
    this.agentOps = new Histogram({ name: 'harness_agent_operation_duration_seconds', help: 'OCF agent operations (start, stop, monitor) by hierarchy, resource and result', labelNames: ['hierarchy', 'resource', 'operation', 'result'], buckets: AGENT_BUCKETS, registers });
    new Gauge({
      name: 'harness_peer_up',
      help: 'Peer state as this node sees it (1 up, 0 down or not heard yet)',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const [peer, p] of Object.entries(src.commView())) this.set({ peer }, p.state === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'harness_path_up',
      help: 'Comm path state to each peer (1 up)',
      labelNames: ['peer', 'path'],
      registers,
      collect() {
        this.reset();
        for (const [peer, p] of Object.entries(src.commView())) p.paths.forEach((s, i) => this.set({ peer, path: String(i) }, s === 'up' ? 1 : 0));
      },
    });
    new Counter({
      name: 'harness_heartbeats_received_total',
      help: 'Authentic heartbeats received (all peers and paths)',
      registers,
      collect() {
        this.reset();
        this.inc(src.commCounters().received);
      },
    });
    new Counter({
      name: 'harness_heartbeats_sent_total',
      help: 'Heartbeats sent (all peers and paths)',
      registers,
      collect() {
        this.reset();
        this.inc(src.commCounters().sent);
      },
    });
    new Counter({
      name: 'harness_packets_dropped_total',
      help: 'Packets dropped, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const c = src.commCounters();
        for (const [reason, n] of Object.entries(c.dropped)) this.inc({ reason }, n);
        this.inc({ reason: 'unconfirmed' }, c.unconfirmed);
      },
    });
    this.checks = new Histogram({ name: 'harness_ownership_check_seconds', help: 'Owner re-reading its keys on every disk path of a hierarchy', labelNames: ['hierarchy'], buckets: FAST_BUCKETS, registers });
    this.refreshes = new Counter({ name: 'harness_ownership_key_refreshes_total', help: 'Key generation refreshes on the disks of owned hierarchies', labelNames: ['hierarchy'], registers });
    this.rounds = new Histogram({ name: 'harness_decision_round_seconds', help: 'One decision round: events through the reducer and their effects started', buckets: FAST_BUCKETS, registers });
    this.untap = tapLog(opts.log, (rec) => this.onRecord(rec));
  }

  private onRecord(rec: LogRecord): void {
    const f = rec.fields;
    if (typeof f.event !== 'string') return;
    if (f.event.startsWith('agent-') && typeof f.durationMs === 'number') {
      this.agentOps.observe({ hierarchy: String(f.hierarchy), resource: String(f.resource), operation: f.event.slice(6), result: String(f.result) }, f.durationMs / 1000);
    } else if (f.event === 'in-service' && f.from) {
      const hierarchy = String(f.hierarchy);
      this.failovers.inc({ hierarchy });
      const s = (v: unknown) => (typeof v === 'number' ? v / 1000 : null);
      const set = (g: Gauge, v: number | null) => v !== null && g.set({ hierarchy }, v);
      set(this.last.detect, s(f.detectMs));
      set(this.last.race, s(f.acquireMs));
      set(this.last.recover, s(f.startMs));
      set(this.last.total, s(f.totalMs));
    }
  }

  /** The keeper's `timing` event. */
  ownership(kind: 'check' | 'refresh', hierarchy: string, ms: number): void {
    if (kind === 'check') this.checks.observe({ hierarchy }, ms / 1000);
    else this.refreshes.inc({ hierarchy });
  }

  round(ms: number): void {
    this.rounds.observe(ms / 1000);
  }

  async listen(address: string): Promise<void> {
    const a = parseAddress(address, 'metrics.listen');
    this.server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404).end('not found: GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(a.port, a.host, () => resolve());
    });
  }

  async stop(): Promise<void> {
    this.untap();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
