// The simulator has teeth: every deliberately broken safety rule (harness/core/mutants.ts) is
// caught within the default seed count, the mutant list is machine-readable, and a seed replays
// exactly. Real processes: `npm run test:sim` as CI runs it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULT_SEEDS } from '../../sim/run-seed.ts';

const run = promisify(execFile);
const SIM = new URL('../../sim/main.ts', import.meta.url).pathname;

async function sim(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(process.execPath, [SIM, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const listed = await sim(['--list-mutants']);
const mutants = listed.out.split('\n').filter((l) => l !== '');

test('--list-mutants prints at least 6 names, one per line and nothing else', () => {
  assert.equal(listed.code, 0);
  assert.ok(mutants.length >= 6, listed.out);
  for (const m of mutants) assert.match(m, /^[a-z][a-z-]+$/);
  assert.equal(listed.out, mutants.join('\n') + '\n');
});

for (const m of mutants) {
  test(`mutant ${m} is caught within the default ${DEFAULT_SEEDS} seeds`, async () => {
    const r = await sim(['--mutant', m]);
    assert.equal(r.code, 1, r.out.slice(-2000));
    const failed = /FAILED seed (\d+): (\S+)/.exec(r.out);
    assert.ok(failed, r.out.slice(-2000));
    assert.ok(Number(failed[1]) <= DEFAULT_SEEDS);
    assert.match(r.out.trimEnd().split('\n').at(-1)!, /^sim: \d+ passed, [1-9]\d* failed$/);
    console.log(`# ${m}: caught by seed ${failed[1]} (${failed[2]})`);
    // The failing seed replays exactly, and passes without the mutant.
    const a = await sim(['--seed', failed[1]!, '--mutant', m]);
    const b = await sim(['--seed', failed[1]!, '--mutant', m]);
    assert.equal(a.code, 1);
    assert.equal(a.out, b.out);
    const clean = await sim(['--seed', failed[1]!]);
    assert.equal(clean.code, 0, clean.out.slice(-2000));
  });
}

test('an unknown mutant is refused', async () => {
  const r = await sim(['--mutant', 'no-such-rule']);
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown mutant "no-such-rule"/);
});
