// The runner's whole suite again, with agents forked by the agent spawner (harness/spawn-helper.ts),
// as the daemon runs them: environment, exit codes, reasons, group kills and drains must not
// depend on who forks. Then what only the spawner can do: die, stall, or be signalled.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgent, useAgentSpawner, type RunRequest } from '../../agents/runner.ts';
import { leadersByEnv, processState } from '../../agents/procgroup.ts';

useAgentSpawner(true, 0); // whatever this process's size
await import('./agents-runner.test.ts');

/** This process's children running the spawner's helper. */
function helperPids(): number[] {
  const kids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return kids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('spawn-helper');
    } catch {
      return false;
    }
  });
}

const dir = mkdtempSync(join(tmpdir(), 'spawner-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let agents = 0;
function agent(body: string): RunRequest['agent'] {
  const path = join(dir, `agent${++agents}`);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return { provider: 'p', type: 't', path };
}
const req = (a: RunRequest['agent'], over: Partial<RunRequest> = {}): RunRequest => ({ agent: a, action: 'monitor', instance: 'h.r', params: {}, timeoutMs: 30_000, nodeName: 'n1', ocfRoot: '/usr/lib/ocf', rscTmp: dir, ...over });

async function helper(): Promise<number> {
  assert.equal((await runAgent(req(agent('exit 0')))).result, 'success');
  const [pid] = helperPids();
  assert.ok(pid, 'the helper runs as a child of this process');
  return pid;
}

describe('the agent spawner', () => {
  test('signals for the daemon (Ctrl-C, TERM, HUP) do not end the helper, which leads a session of its own', async () => {
    const pid = await helper();
    assert.notEqual(Number(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[2]), process.pid, 'not in our process group');
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.kill(pid, sig);
    assert.equal((await runAgent(req(agent('exit 7')))).result, 'not-running');
    assert.equal((await runAgent(req(agent('exit 0')))).result, 'success');
    assert.deepEqual(helperPids(), [pid]);
  });

  test('a helper that dies while an agent runs: the run ends when the agent does, exit status unknown, and the next run gets a new helper', async () => {
    const pid = await helper();
    const marker = join(dir, 'finished');
    const running = join(dir, 'running');
    const run = runAgent(req(agent(`touch ${running}; sleep 1; touch ${marker}`)));
    while (!existsSync(running)) await new Promise((r) => setImmediate(r));
    process.kill(pid, 'SIGKILL');
    const r = await run;
    assert.equal(r.result, 'error');
    assert.equal(r.rc, null);
    assert.match(r.stderr, /agent spawner exited .* exit status is unknown/);
    assert.equal(existsSync(marker), true, 'reported only once the agent had ended');
    assert.equal((await runAgent(req(agent('exit 0')))).result, 'success');
    assert.notDeepEqual(helperPids(), [pid]);
  });

  test('a run handed to a helper that died before reading it is reported not started, truthfully', async () => {
    const pid = await helper();
    const marker = join(dir, 'never');
    process.kill(pid, 'SIGKILL');
    const r = await runAgent(req(agent(`touch ${marker}`)));
    assert.equal(r.result, 'spawn-failed');
    assert.match(r.exitReason ?? '', /not started: the agent spawner exited/);
    assert.equal(existsSync(marker), false);
  });

  test('a stalled helper is killed once a run times out unanswered, and the run is reported not started', async () => {
    const pid = await helper();
    const marker = join(dir, 'stalled');
    process.kill(pid, 'SIGSTOP');
    try {
      const r = await runAgent(req(agent(`touch ${marker}`), { timeoutMs: 300 }));
      assert.equal(r.result, 'spawn-failed');
      assert.equal(existsSync(marker), false);
      assert.ok(processState(pid) === null || processState(pid) === 'Z', 'the stalled helper was killed');
    } finally {
      if (processState(pid) !== null) process.kill(pid, 'SIGKILL');
    }
  });

  test('leadersByEnv finds a tagged group leader, not what it forked', async () => {
    const tag = `t${process.pid}`;
    const p = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { detached: true, stdio: 'ignore', env: { PATH: '/bin:/usr/bin', HARNESS_AGENT_RUN: tag } });
    try {
      assert.equal(leadersByEnv('HARNESS_AGENT_RUN', new Set([tag])).get(tag), p.pid);
    } finally {
      process.kill(-p.pid!, 'SIGKILL');
    }
  });
});
