// Real agents through the runner: Debian's ocf:heartbeat:Dummy unmodified, and the bundled
// ocf:harness:webserver serving real HTTP; ocf-tester (resource-agents) on webserver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BUNDLED_AGENT_DIR, locateAgent } from '../../agents/locate.ts';
import type { AgentRef } from '../../agents/locate.ts';
import { isRunning, runAgent } from '../../agents/runner.ts';
import type { RunRequest, RunResult } from '../../agents/runner.ts';
import { freePort } from './fixtures.ts';

const OCF_ROOT = '/usr/lib/ocf';
const HAVE_DUMMY = existsSync(join(OCF_ROOT, 'resource.d', 'heartbeat', 'Dummy'));
const OCF_TESTER = '/usr/sbin/ocf-tester';

let dir: string;
let rscTmp: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'agents-real-'));
  rscTmp = join(dir, 'rsctmp');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A copy of a bundled agent that any user can read: ocf-tester runs part of its checks as
 * `nobody`, and a checkout under /root (mode 700) is not readable to it.
 */
function readableCopy(type: string): string {
  const pub = join(dir, 'public');
  mkdirSync(pub, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(pub, 0o755);
  const copy = join(pub, type);
  copyFileSync(join(BUNDLED_AGENT_DIR, 'harness', type), copy);
  chmodSync(copy, 0o755);
  return copy;
}

function op(agent: AgentRef, instance: string, action: string, over: Partial<RunRequest> = {}): Promise<RunResult> {
  return runAgent({
    agent,
    action,
    instance,
    params: {},
    timeoutMs: 20_000,
    nodeName: 'node-a',
    ocfRoot: OCF_ROOT,
    rscTmp,
    killGraceMs: 1_000,
    ...over,
  });
}

function expectResult(r: RunResult, result: string, what: string): void {
  assert.equal(r.result, result, `${what}: got ${r.result} rc=${r.rc} reason=${r.exitReason ?? ''}\n${r.stderr}`);
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

describe('Debian ocf:heartbeat:Dummy, unmodified', { skip: !HAVE_DUMMY && 'resource-agents not installed' }, () => {
  test('probe -> not running, start, monitor -> running, stop, monitor -> not running', async () => {
    const dummy = locateAgent('heartbeat', 'Dummy', { agentDirs: [], ocfRoot: OCF_ROOT });
    const inst = `it.dummy${process.pid}`;
    expectResult(await op(dummy, inst, 'monitor', { intervalMs: 0 }), 'not-running', 'probe');
    expectResult(await op(dummy, inst, 'validate-all'), 'success', 'validate-all');
    expectResult(await op(dummy, inst, 'start'), 'success', 'start');
    // Dummy keeps its state under HA_RSCTMP: proves the variable reaches it.
    assert.ok(existsSync(join(rscTmp, `Dummy-${inst}.state`)), 'state file under HA_RSCTMP');
    const mon = await op(dummy, inst, 'monitor', { intervalMs: 10_000 });
    expectResult(mon, 'success', 'monitor');
    assert.ok(isRunning(mon));
    expectResult(await op(dummy, inst, 'start'), 'success', 'start again (idempotent)');
    expectResult(await op(dummy, inst, 'stop'), 'success', 'stop');
    expectResult(await op(dummy, inst, 'monitor', { intervalMs: 10_000 }), 'not-running', 'monitor after stop');
    expectResult(await op(dummy, inst, 'stop'), 'success', 'stop again (idempotent)');
  });
});

describe('bundled ocf:harness:webserver', () => {
  const web = (): AgentRef => locateAgent('harness', 'webserver', { agentDirs: [BUNDLED_AGENT_DIR], ocfRoot: OCF_ROOT });

  test('start, monitor depth 0 and 10, real HTTP GET, stop', async () => {
    const port = await freePort();
    const inst = 'web.it1';
    const params = { port: String(port), address: '127.0.0.1' };
    try {
      expectResult(await op(web(), inst, 'monitor', { params }), 'not-running', 'probe');
      const start = await op(web(), inst, 'start', { params });
      expectResult(start, 'success', 'start');
      console.log(`# webserver start (until the port answers): ${Math.round(start.durationMs)} ms`);
      // start returns only once the port answers: no retry needed here.
      const page = await get(`http://127.0.0.1:${port}/`);
      assert.equal(page.status, 200);
      assert.equal(page.body.trim(), `${inst} on node-a`);
      expectResult(await op(web(), inst, 'monitor', { params, depth: 0, intervalMs: 10_000 }), 'success', 'monitor depth 0');
      const deep = await op(web(), inst, 'monitor', { params, depth: 10, intervalMs: 30_000 });
      expectResult(deep, 'success', 'monitor depth 10');
      console.log(`# webserver monitor depth 10: ${Math.round(deep.durationMs)} ms`);
      expectResult(await op(web(), inst, 'start', { params }), 'success', 'start again (idempotent)');
      const stop = await op(web(), inst, 'stop', { params });
      expectResult(stop, 'success', 'stop');
      await assert.rejects(get(`http://127.0.0.1:${port}/`), 'nothing answers after stop');
      expectResult(await op(web(), inst, 'monitor', { params, depth: 10 }), 'not-running', 'monitor after stop');
      expectResult(await op(web(), inst, 'stop', { params }), 'success', 'stop again (idempotent)');
    } finally {
      await op(web(), inst, 'stop', { params });
    }
  });

  test('custom body and docroot; depth 10 catches a server that stopped answering', async () => {
    const port = await freePort();
    const inst = 'web.it2';
    const params = { port: String(port), address: '127.0.0.1', body: 'hello from the test' };
    try {
      expectResult(await op(web(), inst, 'start', { params }), 'success', 'start');
      assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'hello from the test\n');
      // Freeze the server: the process is alive (depth 0 passes) but HTTP does not answer.
      const pid = Number((await execa('cat', [join(rscTmp, `harness-webserver-${inst}.pid`)])).stdout.trim());
      process.kill(pid, 'SIGSTOP');
      try {
        expectResult(await op(web(), inst, 'monitor', { params, depth: 0 }), 'success', 'frozen, depth 0');
        const deep = await op(web(), inst, 'monitor', { params, depth: 10, timeoutMs: 4_000 });
        expectResult(deep, 'error', 'frozen, depth 10');
        assert.match(deep.exitReason ?? '', /does not answer HTTP/);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    } finally {
      expectResult(await op(web(), inst, 'stop', { params }), 'success', 'stop');
    }

    const docroot = join(dir, 'www');
    mkdirSync(docroot);
    writeFileSync(join(docroot, 'index.html'), 'from docroot');
    const p2 = { port: String(port), address: '127.0.0.1', docroot };
    try {
      expectResult(await op(web(), 'web.it3', 'start', { params: p2 }), 'success', 'start with docroot');
      assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'from docroot');
    } finally {
      expectResult(await op(web(), 'web.it3', 'stop', { params: p2 }), 'success', 'stop');
    }
  });

  test('bad configuration and a taken port give OCF errors with exit reasons', async () => {
    const missing = await op(web(), 'web.bad1', 'start', { params: {} });
    expectResult(missing, 'not-configured', 'no port');
    assert.match(missing.exitReason ?? '', /port is required/);
    const junk = await op(web(), 'web.bad2', 'validate-all', { params: { port: '80x' } });
    expectResult(junk, 'not-configured', 'bad port');
    const noDir = await op(web(), 'web.bad3', 'start', { params: { port: '8081', docroot: join(dir, 'nope') } });
    expectResult(noDir, 'not-installed', 'missing docroot');
    assert.match(noDir.exitReason ?? '', /not a directory/);

    const port = await freePort();
    const params = { port: String(port), address: '127.0.0.1' };
    try {
      expectResult(await op(web(), 'web.first', 'start', { params }), 'success', 'first');
      const second = await op(web(), 'web.second', 'start', { params });
      expectResult(second, 'error', 'second on the same port');
      assert.match(second.exitReason ?? '', /already served/);
    } finally {
      await op(web(), 'web.first', 'stop', { params });
    }
  });

  test('ocf-tester passes', { skip: !existsSync(OCF_TESTER) && 'ocf-tester not installed' }, async () => {
    const port = await freePort();
    const agent = readableCopy('webserver');
    const r = await execa(OCF_TESTER, ['-n', 'web.tester', '-o', `port=${port}`, '-o', 'address=127.0.0.1', agent], {
      env: { HA_RSCTMP: rscTmp },
      reject: false,
      timeout: 120_000,
      stdin: 'ignore',
    });
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /passed all tests/);
  });

  test('ocf-tester passes on the hang agent too', { skip: !existsSync(OCF_TESTER) && 'ocf-tester not installed' }, async () => {
    const agent = readableCopy('hang');
    const r = await execa(OCF_TESTER, ['-n', 'hang.tester', agent], {
      env: { HA_RSCTMP: rscTmp },
      reject: false,
      timeout: 60_000,
      stdin: 'ignore',
    });
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
  });
});
