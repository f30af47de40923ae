// validate-all ahead of a takeover (harness/early-validate.ts): which resources, which results a
// start may use, and that everything else runs again at the start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EarlyValidations, earlyResources } from '../../harness/early-validate.ts';
import { DEFAULTS } from '../../harness/defaults.ts';
import type { RunResult } from '../../agents/runner.ts';
import type { HierarchyConfig, ResourceConfig } from '../../hierarchies/model.ts';

function res(name: string, requires: string[] = [], kind: 'agent' | 'disk' = 'agent'): ResourceConfig {
  return { name, kind, params: {}, requires, timeouts: {}, monitors: [], restart: { max: 2, windowMs: 600_000 }, where: 'test', ...(kind === 'agent' ? { provider: 'heartbeat', type: 'Dummy' } : { disk: { paths: [] } }) };
}
function hier(): HierarchyConfig {
  return {
    file: 'web.yaml',
    name: 'web',
    priorities: { n1: 1, n2: 2 },
    switchback: 'intelligent',
    fenced: true,
    onLoss: 'stop',
    probe: 'everywhere',
    onStopFailure: 'block',
    resources: [res('disk', [], 'disk'), res('fs', ['disk']), res('ip'), res('app', ['fs', 'ip'])],
    utilityChecks: [],
  };
}
const result = (r: RunResult['result']): RunResult => ({ action: 'validate-all', rc: r === 'success' ? 0 : 6, result: r, stdout: '', stderr: '', durationMs: 1, timedOut: false });

/** A runner whose runs the test settles by hand, and a clock it sets. */
function rig() {
  const clock = { t: 1_000 };
  const runs: Array<{ r: string; settle: (x: RunResult | Error) => void }> = [];
  const early = new EarlyValidations(
    (_h, r) =>
      new Promise<RunResult>((resolve, reject) => {
        runs.push({ r: r.name, settle: (x) => (x instanceof Error ? reject(x) : resolve(x)) });
      }),
    () => clock.t,
  );
  return { clock, runs, early };
}

test('early validation: only the resources that require disks only (or nothing)', () => {
  assert.deepEqual(earlyResources(hier()).map((r) => r.name), ['fs', 'ip']);
});

test('early validation: a passed result stands for the start once; one still running is waited for', async () => {
  const { runs, early } = rig();
  const h = hier();
  const [fs, ip, app] = [h.resources[1]!, h.resources[2]!, h.resources[3]!];
  early.begin(h);
  early.begin(h); // the watch list changed again: no second run while the first is in flight
  assert.deepEqual(runs.map((x) => x.r), ['fs', 'ip']);
  runs[0]!.settle(result('success'));
  assert.equal(await early.passed(h, fs), true);
  assert.equal(await early.passed(h, fs), false, 'taken once: the next start validates again');
  const waiting = early.passed(h, ip);
  runs[1]!.settle(result('unimplemented'));
  assert.equal(await waiting, true, 'rc 3 (not implemented) passes, as at a start');
  assert.equal(await early.passed(h, app), false, 'app requires fs and ip: never validated early');
});

test('early validation: a failure, an error, a stale result and another definition all run again at the start', async () => {
  const { clock, runs, early } = rig();
  const h = hier();
  const [fs, ip] = [h.resources[1]!, h.resources[2]!];
  early.begin(h);
  runs[0]!.settle(result('not-configured'));
  runs[1]!.settle(new Error('spawn failed'));
  assert.equal(await early.passed(h, fs), false, 'failed early: the start runs it again, and its own result blocks it');
  assert.equal(await early.passed(h, ip), false, 'no result');

  early.begin(h);
  runs[2]!.settle(result('success'));
  runs[3]!.settle(result('success'));
  await new Promise((r) => setImmediate(r));
  clock.t += DEFAULTS.earlyValidateFreshMs + 1;
  assert.equal(await early.passed(h, fs), false, 'stale');
  early.begin(h);
  assert.deepEqual(runs.slice(4).map((x) => x.r), ['fs', 'ip'], 'taken and stale entries run again');
  runs[4]!.settle(result('success'));
  runs[5]!.settle(result('success'));
  const redefined = hier(); // a reload: the same names, another definition
  assert.equal(await early.passed(redefined, fs), false, 'validated for the definition before the reload');
  early.begin(redefined);
  assert.deepEqual(runs.slice(6).map((x) => x.r), ['fs', 'ip'], 'the new definition is validated anew');
});
