// The validated, normalised configuration model. Everything downstream (decision core, daemon,
// fencing, agents) reads these types only; YAML shapes stay in hierarchies/schema.ts.

export type NodeName = string;

export interface NodeConfig {
  name: NodeName;
  /** One address per comm path ("ip:port"); path i of every node forms comm path i. */
  addresses: string[];
  /** Control socket of this node's daemon (unix path). */
  controlSocket: string;
  /** This node's state directory: ClusterConfig.stateDir with `{node}` replaced (always set by load.ts). */
  stateDir?: string;
  /** This node's metrics endpoint, when it differs from the cluster's `metrics.listen`. */
  metricsListen?: string;
}

export interface ClusterConfig {
  /** Absolute path of the cluster file, for messages. */
  file: string;
  cluster: string;
  nodes: NodeConfig[];
  heartbeatIntervalMs: number;
  deadTimeMs: number;
  /** How long a starting node waits to hear its peers before it takes the silent ones for dead;
   *  the dead time unless `heartbeat.startupGrace` says (then at least the dead time). */
  startupGraceMs?: number;
  /** Path of the shared HMAC key file (must be mode 0600). */
  authKeyFile: string;
  /** State directory template, may contain `{node}`; use NodeConfig.stateDir for a given node. */
  stateDir: string;
  /** Directory holding hierarchies/*.yaml. */
  hierarchyDir: string;
  ownership: OwnershipConfig;
  /** Extra directories searched for OCF agents (provider/type layout), before OCF_ROOT. */
  agentDirs: string[];
  ocfRoot: string;
  maxParallelHierarchies: number;
  /** What `harness stop` does with hierarchies in service here. */
  onStop: 'switchover' | 'stop';
  /** Unix group allowed to use the control socket (besides root). */
  controlGroup?: string;
  /** Shell command the guard runs to halt this node (policy `halt`): DEFAULTS.haltCommand unless set. */
  haltCommand: string;
  /** Alert agents (Pacemaker's interface), run on every event: harness/alerts.ts. */
  alerts?: AlertConfig[];
  /** Prometheus endpoint `ip:port`, off unless set: harness/metrics.ts. */
  metricsListen?: string;
}

export interface AlertConfig {
  path: string;
  timeoutMs: number;
  recipient?: string;
}

export type OwnershipConfig =
  | { backend: 'file'; dir: string }
  | { backend: 'scsi' };

export type Switchback = 'intelligent' | 'automatic';

export interface MonitorOp {
  intervalMs: number;
  timeoutMs?: number;
  /** OCF_CHECK_LEVEL: 0, 10 or 20. */
  depth: number;
}

export interface ResourceConfig {
  /** Unique within the hierarchy (OCF_RESOURCE_INSTANCE is `<hierarchy>.<name>`). */
  name: string;
  kind: 'agent' | 'disk';
  /** kind agent: provider and type of `ocf:<provider>:<type>`. */
  provider?: string;
  type?: string;
  params: Record<string, string>;
  /** Names of resources this one depends on (started before it, stopped after it). */
  requires: string[];
  timeouts: { startMs?: number; stopMs?: number; monitorMs?: number };
  monitors: MonitorOp[];
  restart: { max: number; windowMs: number };
  /** kind disk: every path (block device) of the one LUN, and its expected identity. */
  disk?: { paths: string[]; wwn?: string };
  /** YAML position, for messages at run time. */
  where: string;
}

export interface UtilityCheck {
  /** e.g. "ping": this node must reach `target` over the network. */
  kind: 'ping';
  target: string;
}

export interface HierarchyConfig {
  file: string;
  name: string;
  /** Node → priority (1 = most preferred). */
  priorities: Record<NodeName, number>;
  switchback: Switchback;
  /** false only when the YAML says `fencing: none` explicitly: shown everywhere as "not fenced". */
  fenced: boolean;
  /** What a node does when it finds its reservation taken: stop the hierarchy, or halt itself. */
  onLoss: 'stop' | 'halt';
  /** What to do when a stop fails or times out: keep ownership and mark failed, or halt the node. */
  onStopFailure: 'block' | 'halt';
  /**
   * Which nodes probe H at start-up (and after a clear or maintenance): `everywhere` (a copy may
   * have been started anywhere), or only the `listed` nodes of its priority list: the admin's
   * promise that H never runs elsewhere, as Pacemaker's resource-discovery=exclusive.
   */
  probe: 'everywhere' | 'listed';
  resources: ResourceConfig[];
  utilityChecks: UtilityCheck[];
}

export interface Config {
  cluster: ClusterConfig;
  hierarchies: HierarchyConfig[];
}
