// Every timer and default of harness, in one place. The README's "Timers and defaults" table
// is generated from reading this file; keep the comments accurate.
//
// Timing budget of a node power-off with the defaults (see README):
//   detect      = deadTimeMs                       (no heartbeat on any path for this long)
//   disk watch  = max(0, livenessWindowMs - (deadTimeMs - suspectAfterMs))  (overlaps the dead time)
//   race        = one register + one preempt       (a few ms on real hardware)
//   recover     = agents' start time               (children first, siblings in parallel)

export const DEFAULTS = {
  /** UDP heartbeat period on every path. */
  heartbeatIntervalMs: 150,
  /** A peer is dead when every path has been silent this long. */
  deadTimeMs: 900,
  /** Each comm path carries at least this many heartbeats per dead time. Paths take turns when that
   *  allows (default timings, two paths: each path every 300 ms, the peer hears us every 150 ms):
   *  half the packets, the main idle cost. A peer not heard on every path gets every path. */
  heartbeatsPerPathDeadTime: 3,
  /** A peer silent this long on every path is "suspect": challengers start watching its key on disk. */
  suspectAfterMs: 300,
  /** A single path silent this long is logged as lost (degraded redundancy), peer stays up. */
  pathDeadTimeMs: 900,
  /** How long a freshly started node waits for peers before treating the silent ones as dead: the
   *  dead time, unless cluster.yaml `heartbeat.startupGrace` says. A node that starts later than
   *  this after its peers finds its hierarchies taken (intelligent switchback keeps them there):
   *  when the nodes are started together, set it to cover how far apart they come up. */
  startupGraceMs: 900,

  /** Receiving, before the HMAC (harness/recv-budget.ts): a packet from a configured peer's source
   *  address takes a token of that source IP's bucket, and gives it back if it was authentic and
   *  fresh; so these rates bound only what junk with a spoofed peer source may cost (packets from
   *  any other source are dropped before, on a map lookup). Small class (a routine heartbeat, at
   *  most one Ethernet frame): 500/s costs ~1.5 ms of CPU a second per spoofed source (HMAC ~2 µs
   *  plus the packet's handling); a peer sends ~7/s per path. */
  recvBudgetSmallPerSec: 500,
  /** Burst of the small class: a quiet source may send this many at once. */
  recvBudgetSmallBurst: 500,
  /** Large class (adverts: on news, on request, at start; a previous-release peer's every
   *  heartbeat): a 60 KiB packet's HMAC is ~30-60 µs, so 20/s is ~1 ms a second per spoofed
   *  source. Authentic adverts give their token back, so a failover's news does not spend it. */
  recvBudgetLargePerSec: 20,
  /** Burst of the large class. */
  recvBudgetLargeBurst: 20,
  /** Source IPs tracked by the receive budget; past it the least recently seen is forgotten. Only
   *  configured peers' addresses are tracked, so this bounds memory, it is not a working limit. */
  recvBudgetMaxSources: 1024,

  /** Owner refreshes its key generation on disk this often (the disk as the last comm path).
   *  keyRefreshMs and livenessWindowMs are for the default dead time and scale down with a shorter
   *  cluster dead time (ownershipTimers below). */
  keyRefreshMs: 250,
  /** Owner re-reads the keys on every path this often; a missing key = fenced. <= 2 s. */
  ownershipCheckMs: 500,
  /** A challenger must see the holder's key frozen this long before it preempts. */
  livenessWindowMs: 700,
  /** A holder moves its keys only while contested (a node that may race it for the hierarchy does
   *  not hear it, or is not heard: heartbeat `doubts`), and for this many liveness windows after:
   *  a race begun just before the challenger heard us again still watches a whole window. */
  contestHoldWindows: 2,
  /** During the liveness watch a challenger re-reads the holder's key this often. */
  keyPollMs: 100,
  /** The keeper declares ownership lost after this many consecutive check rounds without a good read
   *  (it cannot prove it still owns the disk, and peers may have preempted a key they saw frozen).
   *  A read that shows our key gone is acted on at once; this is only for reads that fail or hang,
   *  which on a CPU-starved host must not stop healthy hierarchies (6 x 500 ms = 3 s). */
  lostAfterFailedChecks: 6,
  /** SCSI backend: one sg_persist/sg_vpd call is killed after this long (a hung path must not hang the keeper). */
  scsiCommandTimeoutMs: 10_000,
  /** File backend: a lock file older than this is stale and may be broken (a frozen or dead node must
   *  not block its preemptor). Kept below livenessWindowMs: a lock left by a node that died in the
   *  middle of a key refresh is then already stale when a challenger preempts it (at 2 s it added up
   *  to 2 s to such takeovers). Breaking early is safe: an owner re-reads its lock right before
   *  publishing and abandons the operation if it was broken. Scales with the dead time. */
  fileLockStaleMs: 600,
  /** Extra wait before reserving a FREE disk, per priority rank beyond the first (race bias). */
  raceDelayPerRankMs: 300,

  /** Default operation timeouts when neither the YAML nor the agent's meta-data says. */
  startTimeoutMs: 20_000,
  stopTimeoutMs: 20_000,
  monitorTimeoutMs: 20_000,
  /** Default recurring monitor interval (as the agents advertise: every monitor is a process spawn,
   *  the main idle cost of a node; set `monitor:` per resource for faster local detection). */
  monitorIntervalMs: 10_000,
  /** A validate-all that passed while the holder was suspect (harness/early-validate.ts) stands for
   *  the one before the start for this long; older, it runs again at the start. */
  earlyValidateFreshMs: 5_000,
  /** At most this many such early runs at once (more watched hierarchies validate at their start),
   *  and one per resource this often (a live holder out of reach is watched on and off). */
  earlyValidateMaxInFlight: 8,
  earlyValidateEveryMs: 30_000,
  /** Stop timeout used when a node must give a hierarchy up at once (fenced). */
  fencedStopTimeoutMs: 5_000,
  /** After SIGTERM to an agent's process group, wait this long before SIGKILL. */
  killGraceMs: 2_000,
  /** Above this resident size the daemon forks its monitors through its agent spawner
   *  (harness/spawn-helper.ts), below it itself. A fork costs the forking process in proportion
   *  to its memory (one Dummy monitor: 1.3 ms of the daemon's CPU at 77 MiB, 3.1 ms at 207 MiB,
   *  6.3 ms at 382 MiB), the spawner's round trip about 3 ms in all (1 ms of it the daemon's): a
   *  small daemon forks for less, a large one (hundreds of hierarchies) saves its loop. */
  spawnerAboveRssMiB: 200,
  /** Policy `halt` (onLoss, onStopFailure): what the guard runs, at once, without stopping anything
   *  first: an immediate reboot, as LifeKeeper's lkscsid and VCS's panic do. A node whose disk was
   *  taken must not run one more instruction of its resources. `haltCommand` in cluster.yaml. */
  haltCommand: 'systemctl reboot --force --force',
  /** The configuration check (a `harness validate` child at start and reload: YAML, schema, every
   *  agent's meta-data) is killed after this long, and start or reload fails naming the step it was
   *  at. It takes well under a second on a real machine. */
  configCheckTimeoutMs: 60_000,
  /** An alert agent (cluster.yaml `alerts:`) is killed after this long unless `timeout:` says (as
   *  Pacemaker's 30 s). Alerts run one at a time per agent, in event order, off the daemon's path. */
  alertTimeoutMs: 30_000,
  /** Alerts waiting per agent beyond this are dropped (oldest first, logged): a hung or slow agent
   *  must not grow the daemon's memory without bound. */
  alertQueueMax: 1_000,
  /** failover history (<stateDir>/history.jsonl) is rotated to history.jsonl.1 past this size. */
  historyMaxBytes: 4 * 1024 * 1024,

  /** Local recovery: restart in place at most this many times within the window, then fail over. */
  maxRestarts: 3,
  restartWindowMs: 600_000,

  /** Utility checks (e.g. ping the gateway) run this often; two consecutive failures make the node ineligible. */
  utilityCheckIntervalMs: 500,
  /** A utility ping not answered within this counts as a failure. */
  utilityCheckTimeoutMs: 400,

  /** The daemon lowers its nice value by this much, on every thread and its session's autogroup
   *  (when allowed: root or CAP_SYS_NICE); agents keep the original one. A failover is a CPU storm
   *  of agents (20 IPaddr2 starts are ~1 CPU-second): at equal priority they delayed the daemon's
   *  heartbeats and key refreshes past a short dead time, and peers took the hierarchies away
   *  again. Corosync runs SCHED_RR for the same reason. */
  daemonPriorityBoost: 10,
  /** Hierarchies brought into / out of service concurrently on one node. Generous on purpose: much
   *  of a takeover is waiting (the frozen-key window, agents sleeping), and a hierarchy queued
   *  behind a full wave waits a whole extra takeover. */
  maxParallelHierarchies: 64,
  /** Control socket: connections served at once, per socket (the root one and the read-only group
   *  one count apart, so the group cannot crowd root out). Each holds at most one request and one
   *  answer; beyond the cap a client is told so and closed. The CLI uses one at a time. */
  controlMaxConnections: 16,
  /** Control socket: longest request line. Requests are a few dozen bytes; without a cap a client
   *  sending no newline makes the daemon buffer without end. */
  controlMaxRequestBytes: 16 * 1024,
  /** Control socket: a connection with no traffic for this long is closed (a client that stopped
   *  reading its answers, or sits idle on a connection slot). Not counted while the daemon is
   *  working on a request. */
  controlIdleTimeoutMs: 10_000,
  /** Admin map (stop, move, maintenance, clear, standby): most entries accepted from a peer or
   *  from stateDir. Four settings per hierarchy and two per node fit a 1000-hierarchy cluster. */
  adminMaxEntries: 8192,
  /** How long `harness hierarchy|node ...` waits for the cluster to reach the requested state
   *  (--timeout overrides): a switchover of slow agents takes their stop and start timeouts. */
  adminWaitMs: 120_000,
  /** Longest the main loop sleeps between two looks at its sensors (freezes, the keeper's verdicts)
   *  even with nothing happening; the heartbeat tick serves when it comes at least this often. The
   *  reducer's own periodic tick (slow time-based changes) is once a second. */
  tickMs: 200,
  /** The reducer decides every hierarchy at least this often (on its periodic tick), a safety net
   *  under the steps that decide only what their event touches (core/scope.ts). Every second it
   *  was a quarter of an idle daemon's CPU at 1000 hierarchies; the simulator checks that a scoped
   *  step decides as the full one would, so the net is for what it has not met. */
  fullDecideMs: 10_000,
  /** A main-loop gap longer than this means this process was frozen (SIGSTOP, VM pause):
   *  ownership is unverified until re-read from disk. */
  freezeDetectMs: 450,
} as const;

export type Defaults = typeof DEFAULTS;

/**
 * Node flags for the long-running daemon process, wherever one is spawned (CLI `start`, local
 * clusters, the bench). The young generation's semi-space may grow to 16 MiB (V8's default): a
 * 1 MiB cap saved ~5 MiB of resident memory on an idle node, but under a burst (a cold start or
 * a takeover of hundreds of hierarchies) it promoted short-lived adverts and states to the old
 * generation and garbage collection took over half the daemon's time (bench/README).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

export interface OwnershipTimers {
  keyRefreshMs: number;
  livenessWindowMs: number;
  fileLockStaleMs: number;
  ownershipCheckMs: number;
  freezeDetectMs: number;
}

/**
 * The ownership timers scale with the cluster's dead time (defaults.ts gives them for the default
 * 900 ms): a tuned cluster that detects a dead peer in 300 ms must not then wait a 700 ms window,
 * and the window must stay ~2.8 key refreshes long so a live owner is always seen changing its key
 * at least twice. Both ways: a slow cluster (long dead time, slow storage) refreshes less often.
 */
export function ownershipTimers(deadTimeMs: number): OwnershipTimers {
  const scale = deadTimeMs / DEFAULTS.deadTimeMs;
  return {
    keyRefreshMs: Math.max(50, Math.round(DEFAULTS.keyRefreshMs * scale)),
    livenessWindowMs: Math.max(150, Math.round(DEFAULTS.livenessWindowMs * scale)),
    fileLockStaleMs: Math.max(100, Math.round(DEFAULTS.fileLockStaleMs * scale)),
    // Checks and the freeze threshold scale up only (never below their defaults); checks are
    // capped at the 2 s they must never exceed. The freeze threshold is the part of the liveness
    // window a freeze may eat before a peer could preempt us; unscaled, a slow cluster (4x dead
    // time on an emulated CPU) saw a "freeze" every few seconds from mere CPU contention, and
    // every one forced an extra disk check on an already busy node.
    ownershipCheckMs: Math.min(2000, Math.max(DEFAULTS.ownershipCheckMs, Math.round(DEFAULTS.ownershipCheckMs * scale))),
    freezeDetectMs: Math.max(DEFAULTS.freezeDetectMs, Math.round(DEFAULTS.freezeDetectMs * scale)),
  };
}
