// Prometheus metrics during a real failover: two daemons with `metrics.listen`, kill -9 of the
// master, the survivor scraped every 50 ms throughout. A scrape taken mid-failover (n1 already
// down, web not yet in service on n2) passes Debian's `promtool check metrics`; afterwards the
// failover counter moved by one and the last failover's timings are set and add up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';

const hasDummy = existsSync('/usr/lib/ocf/resource.d/heartbeat/Dummy');
const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
const skip = !hasDummy ? 'resource-agents not installed' : !hasPromtool ? 'promtool (Debian package prometheus) not installed' : false;

let c: LocalCluster;
const port = 19464 + Math.floor(Math.random() * 500);
const url = (node: string) => `http://127.87.9.${node.slice(1)}:${port}/metrics`;

before(async () => {
  if (skip) return;
  c = new LocalCluster({
    net: 87,
    nodes: ['n1', 'n2'],
    hierarchies: { 'web.yaml': diskAndApp('web', ['n1', 'n2'], { agent: 'ocf:heartbeat:Dummy', app: ['monitor: [ { interval: 500ms } ]'] }) },
  });
  // One host, two nodes: each gets its own endpoint (the per-node override of metrics.listen).
  let text = readFileSync(c.clusterFile, 'utf8');
  for (const n of c.nodes) text = text.replace(`  - name: ${n}\n`, `  - name: ${n}\n    metrics: { listen: "127.87.9.${n.slice(1)}:${port}" }\n`);
  writeFileSync(c.clusterFile, text);
  for (const n of c.nodes) c.start(n);
});

after(async () => {
  if (c) await c.teardown(process.env.KEEP === '1');
});

async function scrape(node: string): Promise<string | null> {
  try {
    const r = await fetch(url(node), { signal: AbortSignal.timeout(1000) });
    return r.ok ? await r.text() : null;
  } catch {
    return null;
  }
}

/** The value of one sample, by name and labels (all given labels must match). */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function promtool(text: string) {
  return spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
}

test('a scrape taken mid-failover passes promtool; counters and timings move', { skip }, async () => {
  await c.waitFor('web on n1', async () => (await c.runners('web')).join() === 'n1', 30_000, 100);
  const before = await c.waitFor('n2 metrics', () => scrape('n2'), 20_000, 100);
  assert.equal(value(before, 'harness_failovers_total', { hierarchy: 'web' }) ?? 0, 0);
  assert.equal(value(before, 'harness_peer_up', { peer: 'n1' }), 1);
  assert.equal(value(before, 'harness_hierarchy_running_here', { hierarchy: 'web' }), 0);
  assert.ok(value(before, 'harness_heartbeats_received_total')! > 0);

  // Scrape n2 all through the failover.
  const scrapes: string[] = [];
  let stop = false;
  const scraper = (async () => {
    while (!stop) {
      const s = await scrape('n2');
      if (s) scrapes.push(s);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  c.signalNode('n1', 'SIGKILL');
  await c.waitFor('web on n2', async () => (await c.runners('web', ['n2'])).join() === 'n2', 30_000, 25);
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await scraper;

  // Mid-failover: n1 seen down, web not running here yet.
  const mid = scrapes.find((s) => value(s, 'harness_peer_up', { peer: 'n1' }) === 0 && value(s, 'harness_hierarchy_running_here', { hierarchy: 'web' }) === 0);
  assert.ok(mid, `a scrape between n1 down and web in service on n2 (of ${scrapes.length})`);
  const check = promtool(mid);
  assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  // promtool has teeth: a counter without _total is refused.
  assert.notEqual(promtool('# HELP bad a counter\n# TYPE bad counter\nbad 1\n').status, 0);

  // The first recurring monitor runs one interval after the start.
  const after = await c.waitFor('a routine monitor timed', async () => {
    const s = await scrape('n2');
    return s && (value(s, 'harness_agent_operation_duration_seconds_count', { hierarchy: 'web', resource: 'app', operation: 'monitor', result: 'success' }) ?? 0) >= 1 ? s : undefined;
  }, 10_000, 100);
  assert.equal(promtool(after).status, 0);
  assert.equal(value(after, 'harness_failovers_total', { hierarchy: 'web' }), 1);
  assert.equal(value(after, 'harness_hierarchy_running_here', { hierarchy: 'web' }), 1);
  assert.equal(value(after, 'harness_hierarchy_phase', { hierarchy: 'web', phase: 'in-service' }), 1);
  const [detect, race, recover, total] = ['detect', 'race', 'recover', 'total'].map((w) => value(after, `harness_last_failover_${w}_seconds`, { hierarchy: 'web' })!);
  console.log(`# ${scrapes.length} scrapes; last failover: detect ${detect} s + race ${race} s + recover ${recover} s, total ${total} s`);
  for (const v of [detect, race, recover, total]) assert.ok(v !== undefined && v >= 0 && v < 20, String(v));
  assert.ok(detect! > 0.5, 'detection is at least most of the dead time');
  assert.ok(total! >= detect! + race! + recover! - 0.01, 'the parts fit in the total');
  assert.ok(total! - (detect! + race! + recover!) < 1, 'and account for nearly all of it');
  // Agent operations, ownership checks and decision rounds are observed.
  assert.ok(value(after, 'harness_agent_operation_duration_seconds_count', { hierarchy: 'web', resource: 'app', operation: 'start', result: 'success' })! >= 1);
  assert.ok(value(after, 'harness_agent_operation_duration_seconds_count', { hierarchy: 'web', resource: 'app', operation: 'monitor', result: 'success' })! >= 1, 'routine monitors are timed although not logged');
  assert.ok(value(after, 'harness_ownership_check_seconds_count', { hierarchy: 'web' })! >= 0);
  assert.ok(value(after, 'harness_decision_round_seconds_count')! > 0);
  assert.ok(value(after, 'process_resident_memory_bytes')! > 10e6);
  assert.ok(value(after, 'nodejs_eventloop_lag_seconds') !== undefined);
  assert.equal(value(after, 'harness_path_up', { peer: 'n1', path: '0' }), 0);
});
