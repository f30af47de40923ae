// The OCF runner against real (tiny) agents written to a temp dir, and the bundled `hang` agent:
// environment, exit-code mapping, exit reasons, process-group kill on timeout, and no hang when
// a forked child keeps the agent's stdout open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BUNDLED_AGENT_DIR } from '../../agents/locate.ts';
import type { AgentRef } from '../../agents/locate.ts';
import { isRunning, runAgent } from '../../agents/runner.ts';
import type { RunRequest, RunResult } from '../../agents/runner.ts';
import { processState } from '../../agents/procgroup.ts';

let dir: string;
let rscTmp: string;

function agent(name: string, body: string): AgentRef {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return { provider: 'test', type: name, path };
}

function req(a: AgentRef, over: Partial<RunRequest> = {}): RunRequest {
  return {
    agent: a,
    action: 'monitor',
    instance: 'h1.res',
    params: {},
    timeoutMs: 10_000,
    nodeName: 'node-a',
    ocfRoot: '/usr/lib/ocf',
    rscTmp,
    ...over,
  };
}

/** Dead = gone, or a zombie nobody reaps (PID 1 of a container often does not). */
function dead(pid: number): boolean {
  const s = processState(pid);
  return s === null || s === 'Z' || s === 'X';
}

function pidsOf(r: RunResult): { pid: number; child: number } {
  const m = /hang: pid=(\d+) child=(\d+)/.exec(r.stdout);
  assert.ok(m, `hang agent printed its pids: ${JSON.stringify(r.stdout)}`);
  return { pid: Number(m[1]), child: Number(m[2]) };
}

const hang: AgentRef = { provider: 'harness', type: 'hang', path: join(BUNDLED_AGENT_DIR, 'harness', 'hang') };

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'agents-runner-'));
  rscTmp = join(dir, 'rsctmp', 'nested'); // does not exist yet: the runner must create it
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('environment', () => {
  test('the agent sees the full OCF 1.1 environment and nothing of ours', async () => {
    const probe = agent(
      'probe',
      [
        'env',
        // stdin must not be inherited: reading it gives EOF at once.
        'if read line; then echo "STDIN=data"; else echo "STDIN=eof"; fi',
        // Leader of its own process group: pgid (5th field of stat) == pid.
        'echo "PGID=$(cut -d" " -f5 /proc/$$/stat) PID=$$"',
        'echo "CWD=$(pwd)"',
      ].join('\n'),
    );
    process.env.HA_LOGFILE = '/tmp/should-not-leak';
    process.env.HARNESS_LEAK_CHECK = 'leaked';
    const tricky = `a b $(touch ${join(dir, 'pwned')}) "'; \\ \`id\``;
    let r: RunResult;
    try {
      r = await runAgent(
        req(probe, {
          action: 'monitor',
          params: { ip: '10.0.0.5', tricky },
          timeoutMs: 12_345,
          intervalMs: 5_000,
          depth: 10,
          extraEnv: { EXTRA_ONE: 'x' },
        }),
      );
    } finally {
      delete process.env.HA_LOGFILE;
      delete process.env.HARNESS_LEAK_CHECK;
    }
    assert.equal(r.result, 'success', r.stderr);
    const env = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const k = line.indexOf('=');
      if (k > 0) env.set(line.slice(0, k), line.slice(k + 1));
    }
    const expected: Record<string, string> = {
      OCF_ROOT: '/usr/lib/ocf',
      OCF_RA_VERSION_MAJOR: '1',
      OCF_RA_VERSION_MINOR: '1',
      OCF_RESOURCE_INSTANCE: 'h1.res',
      OCF_RESOURCE_TYPE: 'probe',
      OCF_RESOURCE_PROVIDER: 'test',
      OCF_RESKEY_ip: '10.0.0.5',
      OCF_RESKEY_tricky: tricky,
      OCF_RESKEY_CRM_meta_timeout: '12345',
      OCF_RESKEY_CRM_meta_interval: '5000',
      OCF_RESKEY_CRM_meta_on_node: 'node-a',
      OCF_RESKEY_CRM_meta_name: 'monitor',
      OCF_CHECK_LEVEL: '10',
      OCF_EXIT_REASON_PREFIX: 'ocf-exit-reason:',
      HA_RSCTMP: rscTmp,
      OCF_FUNCTIONS_DIR: '/usr/lib/ocf/lib/heartbeat',
      HA_LOGFACILITY: 'none',
      EXTRA_ONE: 'x',
      STDIN: 'eof',
      CWD: '/',
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(env.get(k), v, k);
    assert.ok(!existsSync(join(dir, 'pwned')), 'parameters never go through a shell');
    assert.ok(existsSync(rscTmp), 'HA_RSCTMP is created');
    assert.equal(env.get('HA_LOGFILE'), undefined, 'the daemon environment does not leak');
    assert.equal(env.get('HARNESS_LEAK_CHECK'), undefined);
    const path = (env.get('PATH') ?? '').split(':');
    for (const p of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) assert.ok(path.includes(p), `PATH has ${p}`);
    for (const p of (process.env.PATH ?? '').split(':').filter(Boolean)) assert.ok(path.includes(p), `PATH keeps ${p}`);
    const m = /PGID=(\d+) PID=(\d+)/.exec(r.stdout);
    assert.ok(m);
    assert.equal(m[1], m[2], 'agent leads its own process group');
  });

  test('a probe gets CRM_meta_interval=0 and OCF_CHECK_LEVEL=0 by default', async () => {
    const a = agent('probe0', 'echo "$OCF_RESKEY_CRM_meta_interval/$OCF_CHECK_LEVEL"');
    const r = await runAgent(req(a));
    assert.equal(r.stdout.trim(), '0/0');
  });

  test('a timeout beyond the 32-bit timer range is not taken as "1 ms"', async () => {
    const a = agent('slowish', 'sleep 0.1; echo "$OCF_RESKEY_CRM_meta_timeout"');
    const r = await runAgent(req(a, { timeoutMs: 3_000_000_000 }));
    assert.equal(r.result, 'success');
    assert.equal(r.stdout.trim(), '3000000000');
  });
});

describe('exit codes', () => {
  const expected: [number, string][] = [
    [0, 'success'],
    [1, 'error'],
    [2, 'bad-args'],
    [3, 'unimplemented'],
    [4, 'no-privilege'],
    [5, 'not-installed'],
    [6, 'not-configured'],
    [7, 'not-running'],
    [8, 'running-promoted'],
    [9, 'failed-promoted'],
    [190, 'degraded'],
    [191, 'degraded-promoted'],
    [42, 'unknown'],
    [255, 'unknown'],
  ];
  test('every OCF 1.1 code maps to its result', async () => {
    const a = agent('rc', 'exit "$OCF_RESKEY_rc"');
    for (const [rc, result] of expected) {
      const r = await runAgent(req(a, { params: { rc: String(rc) } }));
      assert.equal(r.rc, rc);
      assert.equal(r.result, result, `rc ${rc}`);
      assert.equal(r.timedOut, false);
    }
  });

  test('isRunning: success, degraded and promoted variants only', () => {
    const base: RunResult = { action: 'monitor', rc: 0, result: 'success', stdout: '', stderr: '', durationMs: 1, timedOut: false };
    const running = ['success', 'degraded', 'running-promoted', 'degraded-promoted'];
    for (const [, result] of expected) {
      assert.equal(isRunning({ ...base, result } as RunResult), running.includes(result), result);
    }
    assert.equal(isRunning({ ...base, result: 'timeout' }), false);
  });

  test('an agent killed by a signal is an error, with the signal', async () => {
    const a = agent('segv', 'kill -SEGV $$');
    const r = await runAgent(req(a));
    assert.equal(r.rc, null);
    assert.equal(r.result, 'error');
    assert.equal(r.signal, 'SIGSEGV');
  });
});

describe('exit reasons and logging', () => {
  test('the last ocf-exit-reason line of stderr is surfaced; lines are logged at debug', async () => {
    const a = agent(
      'reason',
      ['echo "some noise" >&2', 'echo "ocf-exit-reason:first try" >&2', 'echo out', 'printf "ocf-exit-reason:  disk /dev/sdz missing  \\n" >&2', 'exit 5'].join('\n'),
    );
    const lines: { msg: string; instance?: string; action?: string; stream?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    const log = pino({ level: 'debug' }, sink);
    const r = await runAgent(req(a, { action: 'start' }), log);
    assert.equal(r.result, 'not-installed');
    assert.equal(r.exitReason, 'disk /dev/sdz missing');
    assert.match(r.stderr, /some noise/);
    await new Promise((res) => setImmediate(res));
    const out = lines.find((l) => l.msg === 'out');
    assert.ok(out, 'stdout line logged');
    assert.equal(out.instance, 'h1.res');
    assert.equal(out.action, 'start');
    assert.equal(out.stream, 'stdout');
    assert.ok(lines.some((l) => l.msg === 'some noise' && l.stream === 'stderr'));
  });
});

describe('timeouts kill the whole process group', () => {
  test('SIGTERM to the group ends a hung agent and its child sleep promptly', async () => {
    const r = await runAgent(
      req(hang, { action: 'start', params: { hang_on: 'start' }, timeoutMs: 400, killGraceMs: 3_000 }),
    );
    assert.equal(r.result, 'timeout');
    assert.equal(r.timedOut, true);
    assert.equal(r.rc, null);
    assert.equal(r.signal, 'SIGTERM');
    const { pid, child } = pidsOf(r);
    assert.ok(dead(pid), 'agent is dead');
    assert.ok(dead(child), 'grandchild sleep is dead');
    // Returned once the group was gone, not after the full grace.
    assert.ok(r.durationMs >= 390 && r.durationMs < 400 + 2_500, `took ${r.durationMs} ms`);
    console.log(`# timeout 400 ms, TERM honoured: returned after ${Math.round(r.durationMs)} ms`);
  });

  test('a group that ignores SIGTERM gets SIGKILL after the grace', async () => {
    const r = await runAgent(
      req(hang, { action: 'stop', params: { hang_on: 'stop', ignore_term: 'true' }, timeoutMs: 300, killGraceMs: 500 }),
    );
    assert.equal(r.result, 'timeout');
    assert.equal(r.signal, 'SIGKILL');
    const { pid, child } = pidsOf(r);
    assert.ok(dead(pid), 'agent is dead');
    assert.ok(dead(child), 'grandchild that ignored TERM is dead too');
    assert.ok(r.durationMs >= 790 && r.durationMs < 300 + 500 + 3_000, `took ${r.durationMs} ms`);
    console.log(`# timeout 300 ms + grace 500 ms, TERM ignored: returned after ${Math.round(r.durationMs)} ms`);
  });

  test('a child left running by a finished agent (a started daemon) is not killed', async () => {
    const a = agent('daemon', 'sleep 30 </dev/null >/dev/null 2>&1 &\necho "child=$!"\nexit 0');
    const r = await runAgent(req(a, { action: 'start', timeoutMs: 2_000 }));
    assert.equal(r.result, 'success');
    const child = Number(/child=(\d+)/.exec(r.stdout)?.[1]);
    try {
      await new Promise((res) => setTimeout(res, 100));
      assert.ok(!dead(child), 'daemon still alive');
    } finally {
      process.kill(child, 'SIGKILL');
    }
  });
});

describe('output held open by a forked child', () => {
  test('resolves when the agent exits, not when the pipe closes', async () => {
    // The child inherits stdout and stderr and keeps them open for 30 s.
    const a = agent('holder', 'sleep 30 &\necho "child=$!"\necho "ocf-exit-reason:bye" >&2\nexit 0');
    const r = await runAgent(req(a, { action: 'start', timeoutMs: 20_000 }));
    const child = Number(/child=(\d+)/.exec(r.stdout)?.[1]);
    try {
      assert.equal(r.result, 'success');
      assert.equal(r.exitReason, 'bye', 'output written before exit is kept');
      assert.ok(r.durationMs < 3_000, `took ${r.durationMs} ms`);
      console.log(`# agent exited with a child holding stdout: returned after ${Math.round(r.durationMs)} ms`);
    } finally {
      if (child > 0) process.kill(child, 'SIGKILL');
    }
  });

  test('a child that keeps writing does not hold the result: the drain is capped', async () => {
    const a = agent('chatty', '(while :; do echo tick; sleep 0.01; done) &\necho "child=$!"\nexit 0');
    const r = await runAgent(req(a, { action: 'start', timeoutMs: 20_000 }));
    const child = Number(/child=(\d+)/.exec(r.stdout)?.[1]);
    try {
      assert.equal(r.result, 'success');
      assert.ok(r.durationMs < 3_000, `took ${r.durationMs} ms`);
    } finally {
      if (child > 0) process.kill(child, 'SIGKILL');
    }
  });

  test('everything written right before exit is captured, also with a child holding the pipe', async () => {
    // 2000 lines (~60 KiB: more than one pipe buffer) then exit at once.
    const a = agent('burst', 'sleep 30 &\necho "child=$!"\ni=0; while [ $i -lt 2000 ]; do echo "line $i of the burst"; i=$((i+1)); done\necho "ocf-exit-reason:last words" >&2\nexit 7');
    const r = await runAgent(req(a, { timeoutMs: 20_000 }));
    const child = Number(/child=(\d+)/.exec(r.stdout)?.[1]);
    try {
      assert.equal(r.result, 'not-running');
      assert.match(r.stdout, /line 1999 of the burst\n?$/);
      assert.equal(r.exitReason, 'last words');
    } finally {
      if (child > 0) process.kill(child, 'SIGKILL');
    }
  });
});

describe('agents that cannot run', () => {
  test('missing file, directory, not executable: spawn-failed with the reason', async () => {
    const notExec = join(dir, 'notexec');
    writeFileSync(notExec, '#!/bin/sh\nexit 0\n');
    chmodSync(notExec, 0o644);
    const sub = join(dir, 'adir');
    mkdirSync(sub);
    for (const path of [join(dir, 'missing'), sub]) {
      const r = await runAgent(req({ provider: 'p', type: 't', path }));
      assert.equal(r.result, 'spawn-failed', path);
      assert.equal(r.rc, null);
      assert.ok(r.exitReason?.includes(path), `reason names the path: ${r.exitReason}`);
    }
    if (process.getuid?.() !== 0) {
      const r = await runAgent(req({ provider: 'p', type: 't', path: notExec }));
      assert.equal(r.result, 'spawn-failed');
    }
  });

  test('a bad parameter name is refused without running anything', async () => {
    const marker = join(dir, 'ran');
    const a = agent('never', `touch ${marker}`);
    const r = await runAgent(req(a, { params: { 'bad-name': 'x' } }));
    assert.equal(r.result, 'spawn-failed');
    assert.match(r.exitReason ?? '', /bad-name/);
    assert.ok(!existsSync(marker));
  });

  test('an HA_RSCTMP that cannot be created is reported, not thrown', async () => {
    const file = join(dir, 'plainfile');
    writeFileSync(file, '');
    const r = await runAgent(req(agent('ok', 'exit 0'), { rscTmp: join(file, 'sub') }));
    assert.equal(r.result, 'spawn-failed');
    assert.match(r.exitReason ?? '', /HA_RSCTMP/);
  });
});
