// validate-all ahead of a takeover (harness/early-validate.ts): which resources, which results a
// start may use, and that everything else runs again at the start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EarlyValidations, earlyResources } from '../../harness/early-validate.ts';
import { DEFAULTS } from '../../harness/defaults.ts';
import type { RunResult } from '../../agents/runner.ts';
import { hier as fixture } from './lib/hierarchy-fixture.ts';

const hier = () => fixture('web', { n1: 1, n2: 2 });
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

const flush = () => new Promise((r) => setImmediate(r));

test('early validation: a result that passed stands for the start once; a run still going is waited for, and stands pass or fail', async () => {
  const { runs, early } = rig();
  const h = hier();
  const [fs, ip, app] = [h.resources[1]!, h.resources[2]!, h.resources[3]!];
  early.begin(h);
  early.begin(h); // the watch list changed again: no second run while the first is in flight
  assert.deepEqual(runs.map((x) => x.r), ['fs', 'ip']);
  runs[0]!.settle(result('success'));
  await flush();
  assert.equal((await early.take(h, fs))?.result, 'success');
  assert.equal(await early.take(h, fs), null, 'taken once: the next start validates again');
  const waiting = early.take(h, ip);
  runs[1]!.settle(result('not-configured'));
  assert.equal((await waiting)?.result, 'not-configured', 'ended while the start waited: as fresh as a run now, and it blocks the start');
  assert.equal(await early.take(h, app), null, 'app requires fs and ip: never validated early');
});

test('early validation: a failure that ended before the start, an error, a stale result and another definition run again at the start', async () => {
  const { clock, runs, early } = rig();
  const h = hier();
  const [fs, ip] = [h.resources[1]!, h.resources[2]!];
  early.begin(h);
  runs[0]!.settle(result('not-configured'));
  runs[1]!.settle(new Error('spawn failed'));
  await flush();
  assert.equal(await early.take(h, fs), null, 'failed before the start: run again, its own result blocks the start');
  assert.equal(await early.take(h, ip), null, 'no result');

  clock.t += DEFAULTS.earlyValidateEveryMs;
  early.begin(h);
  assert.deepEqual(runs.slice(2).map((x) => x.r), ['fs', 'ip']);
  runs[2]!.settle(result('success'));
  runs[3]!.settle(result('unimplemented'));
  await flush();
  clock.t += DEFAULTS.earlyValidateFreshMs + 1;
  assert.equal(await early.take(h, fs), null, 'stale');
  const redefined = hier(); // a reload: the same names, another definition
  assert.equal(await early.take(redefined, ip), null, 'validated for the definition before the reload');
  early.begin(redefined);
  assert.deepEqual(runs.slice(4).map((x) => x.r), ['fs', 'ip'], 'the new definition is validated anew');
});

test('early validation: bounded: one run per resource per earlyValidateEveryMs, at most earlyValidateMaxInFlight at once, forgotten with its hierarchy', async () => {
  const { clock, runs, early } = rig();
  const h = hier();
  early.begin(h);
  for (const x of runs) x.settle(result('success'));
  await flush();
  clock.t += DEFAULTS.earlyValidateEveryMs - 1;
  early.begin(h); // watched again after a race that backed off: a live holder out of reach
  assert.equal(runs.length, 2, 'no second run within earlyValidateEveryMs');
  clock.t += 1;
  early.begin(h);
  assert.equal(runs.length, 4);
  const many = Array.from({ length: DEFAULTS.earlyValidateMaxInFlight }, (_, i) => ({ ...hier(), name: `h${i}` }));
  for (const x of many) early.begin(x);
  assert.equal(runs.length, 4 + DEFAULTS.earlyValidateMaxInFlight - 2, 'two of ours still run: the cap counts them');
  for (const x of runs.slice(2)) x.settle(result('success'));
  await flush();
  early.keepOnly(new Set(['web']));
  assert.equal(await early.take(many[0]!, many[0]!.resources[1]!), null, 'forgotten with its hierarchy');
  assert.equal((await early.take(h, h.resources[1]!))?.result, 'success');
});
