// Utility checks with the real `ping` on loopback: the target passes; when replies stop (its
// ping is frozen) the check fails after two intervals plus the timeout, and passes again when
// replies resume; no ping process outlives stop().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { UtilityChecks } from '../../harness/utility.ts';
import { silentLogger } from '../../harness/log.ts';
import type { HierarchyConfig } from '../../hierarchies/model.ts';

const h = (name: string, target: string) => ({ name, utilityChecks: [{ kind: 'ping', target }] }) as unknown as HierarchyConfig;
function pgrep(args: string[]): number[] {
  try {
    return execFileSync('pgrep', args, { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until `cond` holds (generous: a loaded machine is slow, the test asserts what, not how fast). */
async function waitFor(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(50);
  }
}

test('utility checks: passes, fails when replies stop, passes again; nothing left running', async () => {
  const seen: boolean[] = [];
  const u = new UtilityChecks([h('web', '127.0.0.1')], silentLogger(), () => seen.push(u.ok('web')));
  u.start();
  let pingPids: number[] = [];
  try {
    await waitFor('a long-running ping', () => {
      const wrappers = pgrep(['-f', 'harness-utility-ping']).filter((p) => p !== process.pid);
      pingPids = wrappers.flatMap((w) => pgrep(['-P', String(w)]));
      return pingPids.length >= 1;
    });
    await sleep(1200);
    assert.equal(u.ok('web'), true);
    for (const p of pingPids) process.kill(p, 'SIGSTOP');
    await waitFor('no replies for > 2 intervals + timeout: failing', () => !u.ok('web'));
    for (const p of pingPids) process.kill(p, 'SIGCONT');
    await waitFor('replies again: passing', () => u.ok('web'));
    assert.deepEqual(seen, [false, true]);
  } finally {
    for (const p of pingPids) {
      try {
        process.kill(p, 'SIGCONT');
      } catch {
        // gone already
      }
    }
    u.stop();
  }
  await sleep(500);
  // Gone or a zombie (this machine's PID 1 does not reap orphans): either way, not running.
  assert.deepEqual(pingPids.filter((p) => alive(p)), [], 'no pinger left behind');
});

function alive(pid: number): boolean {
  try {
    return !/^[ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? 'X');
  } catch {
    return false;
  }
}

test('ping gets "--" before its target: a target can never become an option of root\'s ping', async () => {
  const u = new UtilityChecks([h('web', '127.0.0.1')], silentLogger(), () => {});
  u.start();
  try {
    let argv: string[] = [];
    for (let i = 0; i < 50 && argv.length === 0; i++) {
      await sleep(50);
      const wrappers = pgrep(['-f', 'harness-utility-ping']).filter((p) => p !== process.pid);
      for (const p of wrappers.flatMap((w) => pgrep(['-P', String(w)]))) {
        try {
          argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
        } catch {
          /* gone */
        }
      }
    }
    assert.ok(argv.length > 0, 'no ping found');
    assert.deepEqual(argv.slice(-2), ['--', '127.0.0.1'], `ping ran as: ${argv.join(' ')}`);
  } finally {
    u.stop();
  }
});
