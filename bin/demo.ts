#!/usr/bin/env node
// `npm run demo`: a 3-node harness cluster on this machine, explained as it runs.
//
//  - three daemons n1, n2, n3 as separate processes, talking UDP over two loopback "paths" each;
//  - the embedded shared-file ownership backend (NOT I/O fencing: a demo/test backend);
//  - two hierarchies running the bundled ocf:harness:webserver agent (a real HTTP server):
//      web  prefers n1 (then n2, n3), served on http://127.0.0.100:8080/
//      api  prefers n2 (then n3, n1), served on http://127.0.0.101:8081/
//  - a client polls both URLs every 20 ms and reports which node answered and every outage.
//
// Keys: [k] kill -9 the node running "web" (daemon and agents: a crash), [s] SIGSTOP it (hang),
// [c] SIGCONT it, [r] restart dead nodes, [q] quit. With --auto (or no terminal) it kills the
// node running "web" once, shows the failover and exits.
import { LocalCluster } from '../harness/local-cluster.ts';
import { formatStatus } from '../harness/status-format.ts';
import { get } from 'node:http';

const auto = process.argv.includes('--auto') || !process.stdin.isTTY;

function hierarchy(name: string, prio: string[], address: string, port: number): string {
  return `# ${name}: a web server that moves between nodes
hierarchy: ${name}
priority: { ${prio.map((n, i) => `${n}: ${i + 1}`).join(', ')} }
switchback: intelligent
resources:
  - name: disk
    disk: { paths: [] }          # the own-able resource: with the file backend, a lock file stands in for the disk
  - name: http
    agent: ocf:harness:webserver
    params: { address: "${address}", port: ${port}, body: "${name} is served by the node running it" }
    requires: [disk]
    monitor: [ { interval: 1s, depth: 10 } ]
`;
}

const cluster = new LocalCluster({
  net: 78,
  basePort: 17600,
  hierarchies: {
    'web.yaml': hierarchy('web', ['n1', 'n2', 'n3'], '127.0.0.100', 8080),
    'api.yaml': hierarchy('api', ['n2', 'n3', 'n1'], '127.0.0.101', 8081),
  },
});

const urls = { web: 'http://127.0.0.100:8080/', api: 'http://127.0.0.101:8081/' };

function probe(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 200 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : null));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => {
      req.destroy();
      resolve(null);
    });
  });
}

// The webserver agent writes "<body> (node <name>)" — find out who answered from the node's own rsctmp.
const clientLog: string[] = [];
const down: Record<string, number | null> = { web: null, api: null };
let polling = true;
async function client(): Promise<void> {
  while (polling) {
    for (const [name, url] of Object.entries(urls)) {
      const body = await probe(url);
      const now = Date.now();
      if (!body && down[name] === null) down[name] = now;
      if (body && down[name] !== null) {
        const line = `${new Date(now).toISOString().slice(11, 23)}  client: ${name} answered again after ${((now - down[name]!) / 1000).toFixed(3)} s of downtime (${body.trim()})`;
        clientLog.push(line);
        down[name] = null;
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runningOn(h: string): Promise<string | null> {
  return (await cluster.runners(h))[0] ?? null;
}

function banner(): void {
  console.log(`
harness demo — 3 nodes on this machine (config in ${cluster.dir})
  web: priority n1 > n2 > n3, ${urls.web}
  api: priority n2 > n3 > n1, ${urls.api}
  ownership backend: shared file (demo only, NOT I/O fencing)
`);
}

async function show(viewFrom?: string): Promise<void> {
  const alive = cluster.nodes.filter((n) => cluster.pids(n).length > 0);
  const from = viewFrom ?? alive[alive.length - 1];
  if (!from) return;
  const s = await cluster.tryStatus(from);
  if (s) console.log(formatStatus(s));
  for (const l of clientLog.splice(0)) console.log(l);
}

async function cleanup(code: number): Promise<never> {
  polling = false;
  await cluster.teardown();
  process.exit(code);
}
process.on('SIGINT', () => void cleanup(130));

banner();
for (const n of cluster.nodes) cluster.start(n);
console.log('starting n1, n2, n3 … (each probes its resources, then the priority-1 node of each hierarchy takes it)');
try {
  await cluster.waitFor('web and api in service', async () => (await runningOn('web')) && (await runningOn('api')), 30_000, 200);
} catch (e) {
  console.error(`demo: ${(e as Error).message}; logs in ${cluster.dir}/logs`);
  await cluster.teardown(true);
  process.exit(1);
}
void client();
await show('n3');

if (auto) {
  await new Promise((r) => setTimeout(r, 1000));
  const victim = (await runningOn('web'))!;
  console.log(`\n>>> kill -9 of ${victim} (daemon and agents) at ${new Date().toISOString().slice(11, 23)} — watch web move\n`);
  cluster.signalNode(victim, 'SIGKILL');
  const t0 = Date.now();
  const others = cluster.nodes.filter((n) => n !== victim);
  const to = await cluster.waitFor('web elsewhere', async () => (await cluster.runners('web', others))[0], 20_000, 50);
  console.log(`web is in service on ${to}, ${((Date.now() - t0) / 1000).toFixed(3)} s after the kill (as seen by polling status)`);
  await cluster.waitFor('client answered', () => down.web === null, 5000, 20).catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  await show(to);
  await cleanup(0);
} else {
  console.log('\nkeys: [k] kill -9 the node running web  [s] SIGSTOP it  [c] SIGCONT  [r] restart dead nodes  [enter] status  [q] quit\n');
  process.stdin.setRawMode(true);
  process.stdin.resume();
  let stopped: string | null = null;
  process.stdin.on('data', async (b: Buffer) => {
    const k = b.toString();
    if (k === 'q' || k === '\u0003') return void cleanup(0);
    if (k === 'k' || k === 's') {
      const v = await runningOn('web');
      if (!v) return console.log('web is not running anywhere right now');
      if (k === 'k') {
        console.log(`>>> kill -9 of ${v} at ${new Date().toISOString().slice(11, 23)}`);
        cluster.signalNode(v, 'SIGKILL');
      } else {
        stopped = v;
        console.log(`>>> SIGSTOP of ${v}: it stops heartbeating and refreshing its key; a peer will preempt it. Press [c] to resume it and watch it find out.`);
        cluster.signalNode(v, 'SIGSTOP');
      }
      return;
    }
    if (k === 'c' && stopped) {
      cluster.signalNode(stopped, 'SIGCONT');
      console.log(`>>> SIGCONT of ${stopped}`);
      stopped = null;
      return;
    }
    if (k === 'r') {
      for (const n of cluster.nodes) if (cluster.pids(n).length === 0) { console.log(`>>> restarting ${n}`); cluster.start(n); }
      return;
    }
    await show();
  });
  setInterval(() => { for (const l of clientLog.splice(0)) console.log(l); }, 200).unref();
}
