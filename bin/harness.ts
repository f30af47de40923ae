#!/usr/bin/env node
// The harness command line: start | stop | status [--json] | hierarchy | node | validate | simulate | keygen.
// Which node am I? --node, else $HARNESS_NODE, else the host name (as LifeKeeper and VCS do).
// Which config? --config, else $HARNESS_CONFIG, else /etc/harness/cluster.yaml.
import { Command, Option } from 'commander';
import { hostname } from 'node:os';
import { constants as fsConstants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatIssue, ConfigError, isError } from '../hierarchies/issues.ts';
import { controlRequest } from '../harness/control.ts';
import type { StatusDoc } from '../harness/status.ts';
import type { ClusterConfig } from '../hierarchies/model.ts';
import { AGENT_NICE_ENV, VALIDATE_STEP } from '../hierarchies/validate-child.ts';

// Heavy modules are imported where they are used: the daemon process (`start --foreground`) must
// not carry the YAML parser and the configuration schema for its whole life (they run in a child
// process). zod itself is in the daemon, for the control socket's requests (harness/control.ts).
async function loadCluster(file: string, opts: { authKey?: boolean } = {}): Promise<ClusterConfig> {
  return (await import('../hierarchies/load.ts')).loadCluster(file, opts);
}
async function validateAll(file: string, onStep?: (what: string) => void) {
  return (await import('../hierarchies/validate.ts')).validateAll(file, onStep ? { onStep } : {});
}

const DEFAULT_CONFIG = '/etc/harness/cluster.yaml';
/** The background daemon's log file, passed to it by `harness start` (reopened on SIGHUP). */
const LOG_FILE_ENV = 'HARNESS_LOG_FILE';

interface Common {
  config: string;
  node: string;
}

function common(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --config <file>', 'cluster file').env('HARNESS_CONFIG').default(DEFAULT_CONFIG))
    .addOption(new Option('-n, --node <name>', 'this node\'s name').env('HARNESS_NODE').default(hostname()));
}

/** The node's control socket. Talking to our own daemon needs no auth key (see loadCluster). */
async function socketOf(opts: Common): Promise<string> {
  const cluster = await loadCluster(resolve(opts.config), { authKey: false });
  const me = cluster.nodes.find((n) => n.name === opts.node);
  if (!me) throw new Error(`${cluster.file}: no node named ${opts.node} (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`);
  return me.controlSocket;
}

function fail(e: unknown): never {
  if (e instanceof ConfigError) {
    for (const i of e.issues) console.error(formatIssue(i));
  } else {
    console.error(`harness: ${(e as Error).message}`);
  }
  process.exit(1);
}

const program = new Command('harness').description('resource-driven failover harness').showHelpAfterError();
program.version((await import('../harness/version.ts')).VERSION, '-V, --version', 'print the version and exit');

common(program.command('start').description('start this node\'s daemon'))
  .option('-f, --foreground', 'run in the foreground, JSON logs on stdout')
  .option('--log <file>', 'log file when running in the background (default <stateDir>/harness.log)')
  .action(async (opts: Common & { foreground?: boolean; log?: string }) => {
    const configFile = resolve(opts.config);
    if (opts.foreground) {
      const { createLogger } = await import('../harness/log.ts');
      const { NodeDaemon } = await import('../harness/node.ts');
      // Started in the background (below): the log file by name, so SIGHUP can reopen it (logrotate).
      const log = createLogger({ node: opts.node, ...(process.env[LOG_FILE_ENV] ? { destination: process.env[LOG_FILE_ENV] } : {}) });
      const daemon = new NodeDaemon({ configFile, node: opts.node, log });
      try {
        await daemon.start();
      } catch (e) {
        log.fatal({ event: 'start-refused', err: (e as Error).message }, `refusing to start: ${(e as Error).message}`);
        await daemon.close().catch(() => {});
        fail(e);
      }
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => daemon.requestShutdown(daemon.config.cluster.onStop));
      await daemon.whenStopped();
      process.exit(0);
    }
    // Background: validate first so errors reach the admin's terminal, then detach.
    try {
      const { issues } = await validateAll(configFile);
      const errors = issues.filter(isError);
      if (errors.length) throw new ConfigError(errors);
      const cluster = await loadCluster(configFile);
      const me = cluster.nodes.find((n) => n.name === opts.node);
      if (!me) throw new Error(`${configFile}: no node named ${opts.node}`);
      const stateDir = me.stateDir ?? join('/var/lib/harness', opts.node);
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const logFile = opts.log ?? join(stateDir, 'harness.log');
      // Appended to, never opened through a symlink.
      const out = openSync(logFile, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o644);
      const self = fileURLToPath(import.meta.url);
      const { DAEMON_NODE_FLAGS } = await import('../harness/defaults.ts');
      const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, self, 'start', '--foreground', '--config', configFile, '--node', opts.node], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, [LOG_FILE_ENV]: logFile } });
      child.unref();
      // For logrotate's postrotate (kill -HUP): the daemon reopens its log file.
      const { writeFileAtomic } = await import('../harness/safe-files.ts');
      writeFileAtomic(join(stateDir, 'daemon.pid'), `${child.pid}\n`, { mode: 0o644 });
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`daemon exited (${child.exitCode}); see ${logFile}`);
        const ok = await controlRequest(me.controlSocket, { cmd: 'ping' }, 500).then(() => true, () => false);
        if (ok) {
          console.log(`harness: node ${opts.node} started (pid ${child.pid}, log ${logFile})`);
          process.exit(0);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`daemon did not answer on ${me.controlSocket} within 15 s; see ${logFile}`);
    } catch (e) {
      fail(e);
    }
  });

common(program.command('stop').description('stop this node\'s daemon: hand hierarchies over (switchover) or just stop them'))
  .addOption(new Option('--mode <mode>', 'what to do with hierarchies in service here').choices(['switchover', 'stop']))
  .option('--no-wait', 'do not wait for the daemon to finish')
  .action(async (opts: Common & { mode?: 'switchover' | 'stop'; wait: boolean }) => {
    try {
      const sock = await socketOf(opts);
      await controlRequest(sock, { cmd: 'stop', ...(opts.mode ? { mode: opts.mode } : {}) });
      if (!opts.wait) return;
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const alive = await controlRequest(sock, { cmd: 'ping' }, 500).then(() => true, () => false);
        if (!alive) {
          console.log(`harness: node ${opts.node} stopped`);
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error('daemon still running after 120 s (a stop may be hanging; see `harness status`)');
    } catch (e) {
      fail(e);
    }
  });

/** The SSH options of the commands that ask every node (`status --all`, `history --all`). */
interface SshFlags {
  sshUser: string;
  sshPort: string;
  identity?: string;
  knownHosts?: string;
  remoteHarness: string;
}
function sshFlags(cmd: Command): Command {
  return cmd
    .option('--ssh-user <user>', 'SSH user on the nodes', 'root')
    .option('--ssh-port <port>', 'SSH port on the nodes', '22')
    .option('-i, --identity <file>', 'SSH private key (default: SSH agent, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa)')
    .option('--known-hosts <file>', 'host keys the nodes must match (default ~/.ssh/known_hosts)')
    .option('--remote-harness <command>', 'how to run harness on the nodes', 'harness');
}
async function sshOptions(opts: SshFlags) {
  const { SSH_DEFAULTS } = await import('../harness/cluster-status.ts');
  const port = Number(opts.sshPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--ssh-port: expected a port number, got "${opts.sshPort}"`);
  return { ...SSH_DEFAULTS, user: opts.sshUser, port, remoteHarness: opts.remoteHarness, ...(opts.identity ? { identity: opts.identity } : {}), ...(opts.knownHosts ? { knownHosts: opts.knownHosts } : {}) };
}

sshFlags(common(program.command('status').description('show this node\'s view of the cluster (--all: every node\'s, over SSH)')))
  .option('--json', 'machine-readable output')
  .option('-a, --all', 'ask every node over SSH (any of its addresses) and compare their views; exit 1 unless all answer and nothing runs twice')
  .action(async (opts: Common & SshFlags & { json?: boolean; all?: boolean }) => {
    try {
      if (opts.all) {
        const { gatherClusterStatus, formatClusterStatus, judge, printableJson } = await import('../harness/cluster-status.ts');
        const cluster = await loadCluster(resolve(opts.config), { authKey: false });
        const answers = await gatherClusterStatus(cluster, opts.node, await sshOptions(opts));
        const verdict = judge(answers);
        console.log(opts.json ? printableJson({ ok: verdict.ok, hierarchies: verdict.hierarchies, divergences: verdict.divergences, nodes: answers }) : formatClusterStatus(answers, verdict));
        process.exit(verdict.ok ? 0 : 1);
      }
      const doc = (await controlRequest(await socketOf(opts), { cmd: 'status' })) as StatusDoc;
      const { formatStatus } = await import('../harness/status-format.ts');
      console.log(opts.json ? JSON.stringify(doc, null, 2) : formatStatus(doc));
    } catch (e) {
      fail(e);
    }
  });

sshFlags(common(program.command('history').description('failovers and availability (percent, downtime, class of nines) from the failover history (--all: every node\'s, merged over SSH)')))
  .argument('[hierarchy]', 'only this hierarchy')
  .option('--since <duration>', 'window: this far back from now (30d, 12h, 90m)', '30d')
  .addOption(new Option('--since-epoch <ms>', 'window start as epoch milliseconds (used by --all)').hideHelp())
  .option('--json', 'machine-readable output')
  .option('-a, --all', 'merge every node\'s history over SSH (any of its addresses); exit 1 unless all answer')
  .action(async (hierarchy: string | undefined, opts: Common & SshFlags & { since: string; sinceEpoch?: string; json?: boolean; all?: boolean }) => {
    try {
      const { parseSince, localHistory, gatherHistory, historyReport } = await import('../harness/history-cli.ts');
      const now = Date.now();
      const since = opts.sinceEpoch !== undefined ? Number(opts.sinceEpoch) : now - parseSince(opts.since);
      if (!Number.isFinite(since)) throw new Error(`--since-epoch: expected epoch milliseconds, got "${opts.sinceEpoch}"`);
      const cluster = await loadCluster(resolve(opts.config), { authKey: false });
      if (!cluster.nodes.some((n) => n.name === opts.node) && !opts.all) throw new Error(`${cluster.file}: no node named ${opts.node}`);
      const o = { since, now, ...(hierarchy ? { hierarchy } : {}) };
      const answers = opts.all ? await gatherHistory(cluster, opts.node, o, await sshOptions(opts)) : [{ node: opts.node, records: await localHistory(cluster, opts.node, o) }];
      const r = historyReport(answers, o, !!opts.json);
      console.log(r.text);
      process.exit(r.ok ? 0 : 1);
    } catch (e) {
      fail(e);
    }
  });

/** `--timeout 90s`, `2m`, `1500ms`, or plain seconds. */
function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new Error(`--timeout: expected a duration like 90s, 2m or 1500ms, got ${JSON.stringify(v)}`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

/** Who asks, for status ("who set it"): the invoking user (through sudo too) at this host. */
function requester(): string {
  const user = process.env.SUDO_USER || process.env.USER || 'root';
  return `${user}@${hostname()}`.replace(/[^\x21-\x7e]/g, '?').slice(0, 128);
}

interface AdminOpts extends Common {
  wait: boolean;
  timeout?: string;
}

/**
 * Send an admin request to this node's daemon (it reaches every node in the heartbeats) and,
 * unless --no-wait, follow the cluster until it is where the request asked. Exit 0 only then;
 * 1 when refused or a hierarchy FAILED on the way; 2 when the time ran out.
 */
async function adminCommand(cmd: import('../harness/admin-wait.ts').AdminCommand, opts: AdminOpts): Promise<void> {
  const { verdict, progressLine } = await import('../harness/admin-wait.ts');
  const { DEFAULTS } = await import('../harness/defaults.ts');
  const timeoutMs = opts.timeout !== undefined ? parseDuration(opts.timeout) : DEFAULTS.adminWaitMs;
  const sock = await socketOf(opts);
  const t0 = Date.now();
  const elapsed = () => `+${((Date.now() - t0) / 1000).toFixed(2)} s`;
  const req = cmd.target === 'hierarchy'
    ? { cmd: 'hierarchy' as const, name: cmd.name, action: cmd.action, ...(cmd.to ? { to: cmd.to } : {}), by: requester() }
    : { cmd: 'node' as const, name: cmd.name, action: cmd.action, by: requester() };
  const ans = (await controlRequest(sock, req)) as { message: string; version: number; to?: string };
  console.log(`harness: ${ans.message} (accepted by ${opts.node} in ${Date.now() - t0} ms)`);
  if (!opts.wait) return;
  let last = '';
  for (;;) {
    const s = (await controlRequest(sock, { cmd: 'status' })) as StatusDoc;
    const line = progressLine(s, cmd);
    if (line !== last) console.log(`  ${elapsed()}  ${line}`);
    last = line;
    const v = verdict(s, cmd, ans.version, ans.to);
    if (v.done) {
      console.log(`harness: done in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
      return;
    }
    if (v.failed) {
      console.error(`harness: ${v.failed} (after ${((Date.now() - t0) / 1000).toFixed(2)} s)`);
      process.exit(1);
    }
    if (Date.now() - t0 > timeoutMs) {
      console.error(`harness: not there after ${(timeoutMs / 1000).toFixed(1)} s: ${v.waiting} (the request stays in effect; see \`harness status\`)`);
      process.exit(2);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function adminOptions(cmd: Command): Command {
  return common(cmd)
    .option('--no-wait', 'return once the request is accepted')
    .option('--timeout <duration>', 'longest wait for the outcome (e.g. 90s, 2m); exit 2 when it runs out');
}

const HIERARCHY_HELP = `
  move [<node>]          switch over to <node> (default: the best eligible other node)
  stop | start           take out of service cluster-wide (held) / put back
  maintenance on|off     unmanaged: no monitors, no recovery, resources left as they are;
                         off = every node probes it (the listed ones with probe: listed),
                         then it is managed again
  clear                  forget failures and FAILED after the cause is fixed (re-probes first)

Works from any node; the request reaches every node and survives restarts. Waits for the
outcome: exit 0 when the cluster got there, 1 when refused or FAILED, 2 on --timeout.`;

adminOptions(program.command('hierarchy').description('day-2 operations on a hierarchy: move, stop|start, maintenance on|off, clear').addHelpText('after', HIERARCHY_HELP))
  .argument('<name>', 'hierarchy')
  .argument('<action>', 'move | stop | start | maintenance | clear')
  .argument('[arg]', 'move: target node; maintenance: on | off')
  .action(async (name: string, action: string, arg: string | undefined, opts: AdminOpts) => {
    try {
      const { parseAdminCommand } = await import('../harness/admin-wait.ts');
      await adminCommand(parseAdminCommand('hierarchy', name, action, arg), opts);
    } catch (e) {
      fail(e);
    }
  });

const NODE_HELP = `
  standby | online       standby: every hierarchy moves off <node>, which runs nothing until online
  maintenance on|off     every hierarchy on <node> unmanaged

Works from any node; the request reaches every node and survives restarts. Waits for the
outcome: exit 0 when the cluster got there, 1 when refused or FAILED, 2 on --timeout.`;

adminOptions(program.command('node').description('day-2 operations on a node: standby|online, maintenance on|off').addHelpText('after', NODE_HELP))
  .argument('<name>', 'node')
  .argument('<action>', 'standby | online | maintenance')
  .argument('[arg]', 'maintenance: on | off')
  .action(async (name: string, action: string, arg: string | undefined, opts: AdminOpts) => {
    try {
      const { parseAdminCommand } = await import('../harness/admin-wait.ts');
      await adminCommand(parseAdminCommand('node', name, action, arg), opts);
    } catch (e) {
      fail(e);
    }
  });

program
  .command('validate')
  .description('check a configuration (cluster file, or a directory holding cluster.yaml) and print every problem')
  .argument('[path]', 'cluster file or configuration directory', process.env.HARNESS_CONFIG ?? DEFAULT_CONFIG)
  .option('--json', 'print {config, issues} as JSON (used by the daemon)')
  .option('--agents', 'also run each agent\'s validate-all here, as the daemon does before a start (needs this node\'s environment)')
  .addOption(new Option('-n, --node <name>', 'this node\'s name (for --agents)').env('HARNESS_NODE').default(hostname()))
  .action(async (path: string, opts: { json?: boolean; agents?: boolean; node: string }) => {
    let file = resolve(path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'cluster.yaml');
    // For the daemon (hierarchies/validate-child.ts): agents at the daemon's agent nice value.
    const agentNice = process.env[AGENT_NICE_ENV];
    if (agentNice !== undefined && /^-?\d+$/.test(agentNice)) (await import('../agents/runner.ts')).setAgentNice(Number(agentNice));
    // For the daemon (hierarchies/validate-child.ts): each step on stderr, so a check that does not
    // finish in time can be reported with what it was doing.
    const { config, issues } = await validateAll(file, opts.json ? (what) => process.stderr.write(`${VALIDATE_STEP}${what}\n`) : undefined);
    if (opts.agents && config) issues.push(...(await (await import('../hierarchies/validate-on-node.ts')).validateAgentsOnNode(config, { nodeName: opts.node })));
    if (opts.json) {
      console.log(JSON.stringify({ config, issues }));
      return;
    }
    for (const i of issues) console.error(formatIssue(i));
    const errors = issues.filter(isError);
    if (errors.length || !config) {
      console.error(`${file}: ${errors.length} error(s)`);
      process.exit(1);
    }
    console.log(`${file}: OK — cluster ${config.cluster.cluster}, ${config.cluster.nodes.length} nodes, ${config.hierarchies.length} hierarchies${config.hierarchies.some((h) => !h.fenced) ? ` (NOT FENCED: ${config.hierarchies.filter((h) => !h.fenced).map((h) => h.name).join(', ')})` : ''}`);
  });

program
  .command('agent')
  .description('resource agents on this node')
  .command('test')
  .description('OCF conformance test of an agent, run exactly as the daemon runs it (exit 0 only when no check fails)')
  .argument('[agent]', 'ocf:<provider>:<type>, or the path of an agent script')
  .option('-r, --resource <hierarchy/resource>', 'test a resource of the configuration instead (an agent: or app: resource, with its parameters and timeouts)')
  .addOption(new Option('-c, --config <file>', 'cluster file (for --resource)').env('HARNESS_CONFIG').default(DEFAULT_CONFIG))
  .option('-p, --param <name=value>', 'an agent parameter (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--json', 'the report as JSON')
  .option('--depth <depth>', 'monitor depth (OCF_CHECK_LEVEL) to test: a number, or "all" advertised depths', '0')
  .option('--kill', 'kill the resource\'s processes after a start: monitor must notice')
  .option('--instance <name>', 'OCF_RESOURCE_INSTANCE (default agent-test-<pid>)')
  .option('--ocf-root <dir>', 'OCF_ROOT', '/usr/lib/ocf')
  .option('--agent-dir <dir>', 'also search this resource.d-style directory (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('-v, --verbose', 'show the evidence of every check')
  .action(async (target: string | undefined, opts: { param: string[]; json?: boolean; depth: string; kill?: boolean; instance?: string; ocfRoot: string; agentDir: string[]; verbose?: boolean; resource?: string; config: string }) => {
    try {
      const { runAgentTestCommand } = await import('../harness/agent-test/cli.ts');
      process.exitCode = await runAgentTestCommand(target, opts);
    } catch (e) {
      fail(e);
    }
  });

program
  .command('simulate')
  .description('what-if: run a scenario (cluster, hierarchies, timeline of faults) on the real decision code in simulated time and print what every node decides and does')
  .argument('<scenario>', 'scenario YAML file (see examples/scenarios/)')
  .option('--json', 'print the same data as JSON')
  .action(async (file: string, opts: { json?: boolean }) => {
    const { simulate, formatReport } = await import('../sim/report.ts');
    const { ScenarioError } = await import('../sim/scenario.ts');
    try {
      const r = await simulate(resolve(file));
      process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatReport(r));
      if (r.violations.length) process.exitCode = 1;
    } catch (e) {
      if (e instanceof ScenarioError) {
        console.error(e.message);
        process.exit(2);
      }
      throw e;
    }
  });

program
  .command('keygen')
  .description('write a new random cluster auth key (mode 0600); copy it to every node')
  .argument('<file>')
  .option('--force', 'overwrite an existing key')
  .action(async (file: string, opts: { force?: boolean }) => {
    try {
      const { generateAuthKey } = await import('../harness/authkey.ts');
      generateAuthKey(resolve(file), { overwrite: !!opts.force });
      console.log(`harness: wrote ${file}`);
    } catch (e) {
      fail(e);
    }
  });

await program.parseAsync();
