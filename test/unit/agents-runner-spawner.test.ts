// The runner's whole suite again, with agents forked by the agent spawner (harness/spawn-helper.ts),
// as the daemon runs them: environment, exit codes, reasons, group kills and drains must not
// depend on who forks. Then what only the spawner can do: die.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runAgent, useAgentSpawner } from '../../agents/runner.ts';

useAgentSpawner(true);
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

test('a run handed to a helper that died fails as not started, and the next run gets a new helper', async () => {
  const req = { agent: { provider: 'p', type: 'true', path: '/bin/true' }, action: 'monitor', instance: 'h.r', params: {}, timeoutMs: 30_000, nodeName: 'n1', ocfRoot: '/usr/lib/ocf', rscTmp: '/tmp' };
  assert.equal((await runAgent(req)).result, 'success');
  const [helper] = helperPids();
  assert.ok(helper, 'the helper runs as a child of this process');
  process.kill(helper, 'SIGKILL');
  const lost = await runAgent(req);
  assert.equal(lost.result, 'spawn-failed');
  assert.match(lost.exitReason ?? '', /agent spawner/);
  const next = await runAgent(req);
  assert.equal(next.result, 'success');
  assert.notEqual(helperPids()[0], helper);
});
