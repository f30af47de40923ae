// Runs one test tier: every *.test.ts below a directory, with node:test, and prints the tier's
// summary as the very last line: `<tier>: N passed, N failed` (CI and humans read that line).
// Unit files run in parallel; tiers with real daemons/namespaces/disks run one file at a time
// because they share ports, namespaces and devices.
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const [tier, dir] = process.argv.slice(2);
if (!tier || !dir) {
  console.error('usage: node test/run-tier.ts <tier> <dir>');
  process.exit(2);
}

function findTests(d: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(resolve(p));
  }
  return out;
}

// A single file runs alone (a tier's file picked out by hand, e.g. under test/scsi/run.sh).
const files = statSync(dir).isFile() ? [resolve(dir)] : findTests(dir);
const parallel = tier === 'unit';
let passed = 0;
let failed = 0;

const stream = run({ files, concurrency: parallel ? 2 : 1, timeout: 15 * 60_000 });
stream.on('test:pass', (d) => {
  if (d.details.type !== 'suite' && !d.skip && !d.todo) passed++;
});
stream.on('test:fail', (d) => {
  if (d.details.type !== 'suite') failed++;
});
const reporter = stream.compose(spec);
reporter.pipe(process.stdout);
await new Promise<void>((res) => reporter.on('end', () => res()));
// A file that crashes before registering tests is reported by node:test as a failing test, so
// `failed` covers it. A tier with no tests at all is a misconfiguration, not a pass.
console.log(`${tier}: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
