// The daemon runs at a higher priority than its agents (DEFAULTS.daemonPriorityBoost): a takeover
// is a CPU storm of agents, and heartbeats and key refreshes must not wait behind it. Checked on
// real processes: the daemon's nice value, and the nice value a real agent sees for itself.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { getPriority } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { DEFAULTS } from '../../harness/defaults.ts';
import { statFields } from '../../agents/procgroup.ts';

const root = process.getuid?.() === 0;
const agents = mkdtempSync(join(tmpdir(), 'priority-agents-'));
mkdirSync(join(agents, 'test'));
// Records its own nice value (field 19 of /proc/self/stat) when it starts.
writeFileSync(
  join(agents, 'test', 'nicewriter'),
  `#!/bin/sh
state="$HA_RSCTMP/nicewriter.state"
case "$1" in
start) cut -d' ' -f19 /proc/$$/stat > "$OCF_RESKEY_out"; touch "$state"; exit 0 ;;
stop) rm -f "$state"; exit 0 ;;
monitor) [ -f "$state" ] && exit 0; exit 7 ;;
meta-data)
  # Run by the configuration check (a child of the daemon): its nice value and the check's.
  cut -d' ' -f19 /proc/$$/stat > "${join(agents, 'meta-nice.txt')}"
  cut -d' ' -f19 /proc/$PPID/stat > "${join(agents, 'check-nice.txt')}"
  cat <<'X'
<?xml version="1.0"?>
<resource-agent name="nicewriter"><version>1.0</version><longdesc lang="en">test</longdesc><shortdesc lang="en">test</shortdesc>
<parameters><parameter name="out" required="1"><content type="string"/></parameter></parameters>
<actions><action name="start" timeout="10s"/><action name="stop" timeout="10s"/><action name="monitor" timeout="10s" interval="10s"/><action name="meta-data" timeout="5s"/></actions>
</resource-agent>
X
exit 0 ;;
*) exit 3 ;;
esac
`,
);
chmodSync(join(agents, 'test', 'nicewriter'), 0o755);
const out = join(agents, 'nice.txt');

const c = new LocalCluster({
  net: 88,
  nodes: ['n1'],
  extraAgentDirs: [agents],
  hierarchies: {
    'h.yaml': `hierarchy: h
priority: { n1: 1 }
fencing: none
resources:
  - name: app
    agent: ocf:test:nicewriter
    params: { out: ${JSON.stringify(out)} }
`,
  },
});
after(async () => {
  await c.teardown(process.env.KEEP === '1');
  rmSync(agents, { recursive: true, force: true });
});

test('the daemon runs boosted, its agents at the original nice value', { skip: !root && 'needs root (raising priority)' }, async () => {
  const base = getPriority();
  const p = c.start('n1');
  await c.waitFor('h in service', async () => (await c.tryStatus('n1'))?.hierarchies[0]?.phase === 'in-service', 30_000, 100);
  const daemonNice = Number(statFields(p.pid!)?.[16]);
  assert.equal(daemonNice, Math.max(-20, base - DEFAULTS.daemonPriorityBoost));
  // Every thread (nice is per thread): V8's helpers, which the main thread waits on, too.
  const threads = readdirSync(`/proc/${p.pid}/task`).map((tid) => ({
    name: readFileSync(`/proc/${p.pid}/task/${tid}/comm`, 'utf8').trim(),
    nice: Number(statFields(`${p.pid}/task/${tid}`)?.[16]),
  }));
  assert.ok(threads.length > 1, 'a Node process has helper threads');
  assert.deepEqual(threads.filter((t) => t.nice !== daemonNice), [], 'every thread of the daemon runs boosted');
  assert.equal(Number(readFileSync(out, 'utf8').trim()), base, 'the agent runs at the nice value the daemon started with');
  // The configuration check ran boosted too (it must not starve behind busy peers on a shared
  // host), and ran the agent's meta-data at the original value.
  assert.equal(Number(readFileSync(join(agents, 'check-nice.txt'), 'utf8').trim()), daemonNice, 'the configuration check runs at the daemon\'s priority');
  assert.equal(Number(readFileSync(join(agents, 'meta-nice.txt'), 'utf8').trim()), base, 'meta-data runs at the agents\' nice value');
});

// Autogroup scheduling (sched(7)) shares CPU between sessions first: every agent leads its own
// session, so the daemon's session must carry the boost too. Only a session leader changes it.
test('the daemon\'s session gets the boosted nice value in the kernel\'s autogroup, only when it leads it', { skip: (!root && 'needs root (raising priority)') || (!existsSync('/proc/self/autogroup') && 'kernel without autogroup') }, async () => {
  const script = `import { setAutogroupNice } from ${JSON.stringify(new URL('../../harness/thread-priority.ts', import.meta.url).href)};
const r = setAutogroupNice(-3);
process.stdout.write(JSON.stringify({ r, now: (await import('node:fs')).readFileSync('/proc/self/autogroup', 'utf8').trim() }));`;
  const run = (detached: boolean) =>
    new Promise<{ r: number | string; now: string }>((resolve, reject) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script], { detached, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c));
      p.on('error', reject);
      p.on('close', () => resolve(JSON.parse(out)));
    });
  const leader = await run(true);
  assert.equal(leader.r, -3);
  assert.match(leader.now, / nice -3$/);
  const member = await run(false);
  assert.equal(member.r, 'not a session leader');
  assert.doesNotMatch(member.now, / nice -3$/, 'the shared session is left alone');
});
