// The golden corpus: every test/golden/<name>.yaml scenario is run on the simulator (the same code
// as `harness simulate <file>`) and its text report must equal test/golden/<name>.out exactly.
// Each scenario's description says what it shows and what the correct outcome is; an .out file is
// only blessed after reading the timeline against that description.
//
// After an intended change of behaviour or of the report format, rewrite the .out files with
//   UPDATE_GOLDEN=1 npm run test:unit
// (or `UPDATE_GOLDEN=1 node --test test/unit/golden.test.ts`) and review `git diff test/golden`.
//
// Deterministic: the simulator runs on its own clock and seeded random streams (no real time).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatReport, simulate } from '../../sim/report.ts';
import { loadScenario, ScenarioError } from '../../sim/scenario.ts';

const GOLDEN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const MIN_SCENARIOS = 32;

const scenarios = readdirSync(GOLDEN)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

/** The report, with any path to the checkout made relative (the report prints none today). */
async function render(name: string): Promise<string> {
  const text = formatReport(await simulate(join(GOLDEN, `${name}.yaml`)));
  return text.split(GOLDEN).join('test/golden');
}

/** A short diff: the first differing stretch of lines, with two lines of context. */
function shortDiff(expected: string, actual: string, maxLines = 12): string {
  const e = expected.split('\n');
  const a = actual.split('\n');
  let start = 0;
  while (start < e.length && start < a.length && e[start] === a[start]) start++;
  let endE = e.length;
  let endA = a.length;
  while (endE > start && endA > start && e[endE - 1] === a[endA - 1]) {
    endE--;
    endA--;
  }
  const out: string[] = [`first difference at line ${start + 1} (expected ${e.length} lines, got ${a.length})`];
  for (let i = Math.max(0, start - 2); i < start; i++) out.push(`  ${e[i]}`);
  const clip = (lines: string[], mark: string) => {
    for (const l of lines.slice(0, maxLines)) out.push(`${mark} ${l}`);
    if (lines.length > maxLines) out.push(`${mark} ... ${lines.length - maxLines} more`);
  };
  clip(e.slice(start, endE), '-');
  clip(a.slice(start, endA), '+');
  for (let i = endE; i < Math.min(e.length, endE + 2); i++) out.push(`  ${e[i]}`);
  return out.join('\n');
}

test(`golden: the corpus holds at least ${MIN_SCENARIOS} scenarios, each described, each with its .out`, () => {
  assert.ok(scenarios.length >= MIN_SCENARIOS, `only ${scenarios.length} scenarios in ${GOLDEN}`);
  for (const name of scenarios) {
    const s = loadScenario(join(GOLDEN, `${name}.yaml`));
    assert.ok(s.description.trim().length > 0, `${name}.yaml has no description`);
    if (!UPDATE) assert.ok(existsSync(join(GOLDEN, `${name}.out`)), `${name}.out is missing: run UPDATE_GOLDEN=1 npm run test:unit and review it`);
  }
  const orphans = readdirSync(GOLDEN).filter((f) => f.endsWith('.out') && !scenarios.includes(f.slice(0, -'.out'.length)));
  assert.deepEqual(orphans, [], 'an .out file without its scenario');
});

for (const name of scenarios) {
  test(`golden: ${name}`, async () => {
    const out = join(GOLDEN, `${name}.out`);
    const actual = await render(name);
    if (UPDATE) {
      writeFileSync(out, actual);
      return;
    }
    assert.ok(existsSync(out), `${out} is missing: run UPDATE_GOLDEN=1 npm run test:unit and review it`);
    const expected = readFileSync(out, 'utf8');
    if (actual !== expected) {
      assert.fail(`${name}: the report differs from ${name}.out (UPDATE_GOLDEN=1 rewrites it, after you have checked the new timeline)\n${shortDiff(expected, actual)}`);
    }
  });
}

test('golden: a broken scenario fails with the file and the field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'golden-broken-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = ['cluster: { nodes: [n1, n2] }', 'hierarchies:', '  - { name: web, nodes: [n1, n2], resources: [{ name: app }] }'];
  const cases: Array<{ name: string; yaml: string[]; field: string; says: RegExp }> = [
    { name: 'unknown-node', yaml: [...base, 'timeline:', '  - { at: 1s, power-off: n1 }', '  - { at: 2s, crash: n9 }'], field: 'timeline[1]', says: /n9 is not a cluster node/ },
    { name: 'bad-duration', yaml: [...base, 'timeline:', '  - { at: 5 parsecs, power-off: n1 }'], field: 'timeline[0].at', says: /duration/ },
    { name: 'unknown-key', yaml: [...base, 'timeline:', '  - { at: 1s, powr-off: n1 }'], field: 'timeline[0]', says: /Unrecognized key.*powr-off/ },
    { name: 'unknown-top-key', yaml: [...base, 'untill: 5s'], field: '(top level)', says: /Unrecognized key.*untill/ },
    { name: 'unknown-resource-key', yaml: ['cluster: { nodes: [n1, n2] }', 'hierarchies:', '  - { name: web, nodes: [n1, n2], resources: [{ name: app, strat: 1s }] }'], field: 'hierarchies[0].resources[0]', says: /Unrecognized key.*strat/ },
    { name: 'unknown-resource', yaml: [...base, 'timeline:', '  - { at: 1s, resource-dies: { node: n1, resource: web.db } }'], field: 'timeline[0]', says: /no resource db/ },
  ];
  for (const c of cases) {
    const file = join(dir, `${c.name}.yaml`);
    writeFileSync(file, c.yaml.join('\n') + '\n');
    let err: unknown;
    try {
      loadScenario(file);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ScenarioError, `${c.name}: expected a ScenarioError, got ${String(err)}`);
    const line = err.message.split('\n').find((l) => c.says.test(l));
    assert.ok(line, `${c.name}: no line matching ${c.says} in:\n${err.message}`);
    assert.ok(line.startsWith(`${file}: ${c.field}: `), `${c.name}: expected "${file}: ${c.field}: ...", got: ${line}`);
    // simulate() reports it the same way (that is what `harness simulate` prints).
    await assert.rejects(simulate(file), (e: unknown) => e instanceof ScenarioError && e.message.includes(file));
  }
});

test('golden: the short diff shows where the report changed', () => {
  const d = shortDiff('a\nb\nc\nd\ne\n', 'a\nb\nX\nd\ne\n');
  assert.match(d, /first difference at line 3/);
  assert.match(d, /^- c$/m);
  assert.match(d, /^\+ X$/m);
  assert.match(d, /^ {2}b$/m);
});
