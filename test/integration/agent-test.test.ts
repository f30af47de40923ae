// `harness agent test` on real agents: Debian's ocf:heartbeat:Dummy, the bundled agents, and the
// deliberately broken shell agents of test/fixtures/agents/fixture/, each of which must fail on
// the check that names its defect and on no check unrelated to it. Debian's ocf-tester runs on
// the same fixtures: the defects it does not see are the README's comparison table.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { BUNDLED_AGENT_DIR, locateAgent } from '../../agents/locate.ts';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { freePort } from './fixtures.ts';
import { agentUnderTest } from '../../harness/agent-test/locate.ts';
import { findResourceProcesses } from '../../harness/agent-test/processes.ts';
import { testAgent } from '../../harness/agent-test/run.ts';
import type { AgentTestReport } from '../../harness/agent-test/run.ts';

const OCF_ROOT = '/usr/lib/ocf';
const HAVE_DUMMY = existsSync(join(OCF_ROOT, 'resource.d', 'heartbeat', 'Dummy'));
const OCF_TESTER = '/usr/sbin/ocf-tester';
const HAVE_XMLLINT = existsSync('/usr/bin/xmllint');
const FIXTURES = fileURLToPath(new URL('../fixtures/agents/fixture/', import.meta.url));
const HARNESS = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));

let rscTmp: string;
before(() => {
  rscTmp = mkdtempSync(join(tmpdir(), 'agent-test-'));
});
after(() => rmSync(rscTmp, { recursive: true, force: true }));

function failed(r: AgentTestReport): string[] {
  return r.checks.filter((c) => c.verdict === 'fail').map((c) => c.name);
}

function explain(r: AgentTestReport): string {
  return r.checks.map((c) => `${c.verdict} ${c.name}: ${c.summary}`).join('\n');
}

async function fixture(name: string, opts: { kill?: boolean; params?: Record<string, string> } = {}): Promise<AgentTestReport> {
  return testAgent({
    agent: agentUnderTest(join(FIXTURES, name), { agentDirs: [], ocfRoot: OCF_ROOT }),
    params: opts.params ?? { name: 'x' },
    ocfRoot: OCF_ROOT,
    depth: 'all',
    kill: !!opts.kill,
    rscTmp,
    instance: `it-${name}-${process.pid}`,
  });
}

describe('harness agent test on stock and bundled agents', () => {
  test('ocf:heartbeat:Dummy: exit 0, a readable report, every check passes', { skip: !HAVE_DUMMY && 'resource-agents not installed' }, async () => {
    const t0 = performance.now();
    const r = await execa('node', [HARNESS, 'agent', 'test', 'ocf:heartbeat:Dummy', '--depth', 'all', '--kill'], { reject: false, env: { HA_RSCTMP: rscTmp } });
    const ms = performance.now() - t0;
    console.log(`# harness agent test ocf:heartbeat:Dummy --depth all --kill: ${Math.round(ms)} ms (with node start-up)\n${r.stdout.split('\n').map((l) => `# ${l}`).join('\n')}`);
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^harness agent test ocf:heartbeat:Dummy \(\/usr\/lib\/ocf\/resource\.d\/heartbeat\/Dummy\)/);
    for (const check of ['meta-data', 'meta-data-schema', 'validate-all', 'probe-stopped', 'start', 'start-again', 'monitor-running', 'stop', 'stop-again', 'leftovers', 'unknown-action']) {
      assert.match(r.stdout, new RegExp(`^  PASS  ${check} `, 'm'), `${check} passes`);
    }
    assert.match(r.stdout.split('\n').at(-1) ?? '', /^OK: \d+ passed, \d+ warnings, 0 failed/);
    // Dummy runs no process: --kill has nothing to kill, and says so instead of passing.
    assert.match(r.stdout, /^  WARN  kill /m);
  });

  test('bundled ocf:harness:webserver: passes at every depth, and its monitor notices a killed server', async () => {
    const port = await freePort();
    const r = await testAgent({
      agent: locateAgent('harness', 'webserver', { agentDirs: [BUNDLED_AGENT_DIR], ocfRoot: OCF_ROOT }),
      params: { port: String(port), address: '127.0.0.1' },
      ocfRoot: OCF_ROOT,
      depth: 'all',
      kill: true,
      rscTmp,
    });
    assert.deepEqual(failed(r), [], explain(r));
    assert.equal(r.checks.find((c) => c.name === 'kill')?.verdict, 'pass', explain(r));
    assert.equal(r.checks.find((c) => c.name === 'monitor-running')?.evidence.length, 2, 'depths 0 and 10');
    assert.equal(r.checks.find((c) => c.name === 'required-params')?.verdict, 'pass', 'port is required and enforced');
  });

  test('the worked example of agents/README.md (ocf:acme:counterd, a setsid daemon): passes everything, --kill included', async () => {
    const r = await testAgent({
      agent: agentUnderTest(fileURLToPath(new URL('../../agents/examples/acme/counterd', import.meta.url)), { agentDirs: [], ocfRoot: OCF_ROOT }),
      params: { logfile: join(rscTmp, 'counterd.log') },
      ocfRoot: OCF_ROOT,
      depth: 'all',
      kill: true,
      rscTmp,
    });
    assert.ok(r.ok, explain(r));
    assert.equal(r.counts.warn + r.counts.skip, 0, explain(r));
    assert.equal(r.checks.find((c) => c.name === 'monitor-running')?.evidence.length, 2, 'depths 0 and 10');
  });

  test('bundled ocf:harness:hang (test agent) with no hang configured: no failure', async () => {
    const r = await testAgent({
      agent: locateAgent('harness', 'hang', { agentDirs: [BUNDLED_AGENT_DIR], ocfRoot: OCF_ROOT }),
      params: {},
      ocfRoot: OCF_ROOT,
      depth: 'all',
      kill: false,
      rscTmp,
    });
    assert.deepEqual(failed(r), [], explain(r));
  });
});

// Each broken fixture, the checks it must fail, and nothing else may fail.
const BROKEN: { name: string; fails: string[]; kill?: boolean; needsXmllint?: boolean }[] = [
  { name: 'not-idempotent', fails: ['start-again'] },
  { name: 'wrong-rc-stopped', fails: ['probe-stopped', 'monitor-stopped', 'monitor-after-stop', 'probe-after-stop'] },
  // A hung stop: killed at its advertised 2 s; the resource is still up, so the monitors after it say so.
  { name: 'hangs', fails: ['timeouts', 'stop', 'stop-again', 'monitor-after-stop', 'probe-after-stop'] },
  { name: 'reason-on-stdout', fails: ['exit-reasons'] },
  { name: 'invalid-xml', fails: ['meta-data', 'meta-data-schema'], needsXmllint: true },
  { name: 'schema-invalid', fails: ['meta-data-schema'], needsXmllint: true },
  { name: 'leaves-child', fails: ['leftovers'] },
  { name: 'unknown-action-ok', fails: ['unknown-action'] },
  { name: 'lax-params', fails: ['required-params'] },
  { name: 'blind-monitor', fails: ['kill'], kill: true },
];

describe('harness agent test on broken agents (test/fixtures/agents/fixture)', () => {
  test('the control fixture, a correct agent on the same base, passes everything, --kill included', async () => {
    const r = await fixture('good', { kill: true });
    assert.ok(r.ok, explain(r));
    assert.equal(r.counts.warn, 0, explain(r));
    assert.equal(r.checks.find((c) => c.name === 'kill')?.verdict, 'pass');
  });

  for (const b of BROKEN) {
    test(`${b.name}: fails ${b.fails.join(', ')} and nothing else`, { skip: b.needsXmllint && !HAVE_XMLLINT && 'xmllint missing' }, async () => {
      const r = await fixture(b.name, { kill: !!b.kill });
      assert.equal(r.ok, false);
      assert.deepEqual(failed(r).sort(), [...b.fails].sort(), explain(r));
      // The evidence names what ran and what it answered.
      const first = r.checks.find((c) => c.name === b.fails[0]);
      assert.ok(first && first.summary.length > 0);
      // Whatever the broken agent left running was ended by the tester.
      assert.deepEqual(findResourceProcesses(r.instance, new Set()), []);
    });
  }

  test('the command line exits 1 on a broken agent and names the failed check', async () => {
    const r = await execa('node', [HARNESS, 'agent', 'test', join(FIXTURES, 'not-idempotent'), '-p', 'name=x', '--json'], { reject: false, env: { HA_RSCTMP: rscTmp } });
    assert.equal(r.exitCode, 1, r.stderr);
    const doc = JSON.parse(r.stdout) as AgentTestReport;
    assert.deepEqual(failed(doc), ['start-again']);
    const ev = doc.checks.find((c) => c.name === 'start-again')?.evidence[0];
    assert.equal(ev?.rc, 1);
    assert.equal(ev?.exitReason, 'already running');
  });
});

describe('Debian ocf-tester on the same fixtures (the README comparison)', { skip: !existsSync(OCF_TESTER) && 'ocf-tester missing (resource-agents)' }, () => {
  // ocf-tester runs meta-data as `nobody` when root: it gets a copy of the fixtures that any user
  // can read (a checkout under /root is not).
  let pub: string;
  before(() => {
    pub = mkdtempSync(join(tmpdir(), 'ocft-'));
    cpSync(join(FIXTURES, '..'), pub, { recursive: true });
    for (const d of [pub, join(pub, 'fixture'), join(pub, 'lib')]) chmodSync(d, 0o755);
    chmodSync(join(pub, 'lib', 'base.sh'), 0o644);
  });
  after(() => rmSync(pub, { recursive: true, force: true }));
  const ocfTester = async (name: string): Promise<{ passed: boolean; out: string }> => {
    const instance = `ocft-${name}-${process.pid}`;
    try {
      const r = await execa(OCF_TESTER, ['-n', instance, '-o', 'name=x', join(pub, 'fixture', name)], {
        reject: false,
        all: true,
        timeout: 120_000,
        env: { HA_RSCTMP: rscTmp, OCF_ROOT },
      });
      return { passed: r.exitCode === 0, out: r.all ?? '' };
    } finally {
      for (const p of findResourceProcesses(instance, new Set())) process.kill(p.pid, 'SIGKILL');
    }
  };
  for (const name of ['not-idempotent', 'wrong-rc-stopped', 'invalid-xml', 'schema-invalid']) {
    test(`ocf-tester also fails ${name}`, async () => {
      const r = await ocfTester(name);
      assert.equal(r.passed, false, r.out);
    });
  }
  for (const name of ['reason-on-stdout', 'leaves-child', 'unknown-action-ok', 'lax-params', 'blind-monitor']) {
    test(`ocf-tester passes ${name}, which harness agent test fails`, async () => {
      const r = await ocfTester(name);
      assert.equal(r.passed, true, r.out);
    });
  }
});

describe('harness agent test --resource: a configured app: resource, as the daemon would run it', () => {
  const SLEEPER = fileURLToPath(new URL('../fixtures/app/sleeper', import.meta.url));
  const app = (name: string, monitor: string): string =>
    [`hierarchy: ${name}`, 'priority: { n1: 1 }', 'fencing: none', 'resources:', '  - name: app', '    app:', `      start: ${SLEEPER} start`, `      stop: ${SLEEPER} stop`, `      monitor: ${monitor}`, '    timeouts: { start: 5s, stop: 5s }', ''].join('\n');
  let c: LocalCluster;
  before(() => {
    c = new LocalCluster({ nodes: ['n1'], net: 99, hierarchies: { 'good.yaml': app('good', `${SLEEPER} status`), 'lying.yaml': app('lying', '/bin/true') } });
  });
  after(async () => c.teardown());
  const run = (resource: string) =>
    execa('node', [HARNESS, 'agent', 'test', '--resource', resource, '-c', c.clusterFile, '--kill', '--json'], { reject: false, env: { HA_RSCTMP: rscTmp } });

  test('a correct app passes everything, its YAML timeouts are the ones used, --kill is noticed', async () => {
    const r = await run('good/app');
    const doc = JSON.parse(r.stdout) as AgentTestReport;
    assert.equal(r.exitCode, 0, explain(doc));
    assert.equal(doc.agent, 'ocf:harness:app');
    assert.equal(doc.checks.find((x) => x.name === 'kill')?.verdict, 'pass', explain(doc));
    assert.equal(doc.checks.find((x) => x.name === 'start')?.evidence[0]?.timeoutMs, 5000);
  });

  test('an app whose monitor always says running fails on the stopped checks', async () => {
    const r = await run('lying/app');
    const doc = JSON.parse(r.stdout) as AgentTestReport;
    assert.equal(r.exitCode, 1);
    assert.ok(failed(doc).includes('probe-stopped'), explain(doc));
  });
});
