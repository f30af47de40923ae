// The control socket cannot be abused (harness/control.ts), on a real 3-node loopback cluster:
//   - a client that pipelines ~1 MiB of status requests and never reads its answers leaves the
//     daemon's RSS bounded and its heartbeats on time (no peer sees it suspect), and is closed by
//     the idle timeout;
//   - a member of controlGroup (a throwaway system user and group) may read status through the
//     read-only socket but is refused stop and hierarchy changes, with a message; it cannot open
//     the root socket at all, and a user outside the group cannot open either;
//   - malformed requests are refused with a message naming the field, on a connection that stays
//     usable, and change nothing (before: {"cmd":"stop","mode":"bogus"} stopped the daemon);
//   - the connection cap and the request size limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { DEFAULTS } from '../../harness/defaults.ts';
import { readOnlySocket } from '../../harness/control.ts';
import { diskAndApp } from './fixtures.ts';

const BIN = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A throwaway group and a member of it (and nobody else in it), removed at the end.
const tag = `hct${process.pid % 100000}`;
const GROUP = `${tag}g`;
const MEMBER = `${tag}u`;
const OUTSIDER = `${tag}o`;
const canMakeUsers = process.getuid?.() === 0 && (() => {
  try {
    execFileSync('sh', ['-c', 'command -v groupadd && command -v useradd && command -v setpriv'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const c = new LocalCluster({ net: 96, hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3']) } });

before(async () => {
  if (canMakeUsers) {
    execFileSync('groupadd', ['--system', GROUP]);
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--gid', GROUP, MEMBER]);
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', OUTSIDER]);
    appendFileSync(c.clusterFile, `controlGroup: ${GROUP}\n`);
    chmodSync(c.dir, 0o755); // the users must reach the sockets and read cluster.yaml
  }
  for (const n of c.nodes) c.start(n);
  await c.waitFor('h on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
});

after(async () => {
  await c.teardown(process.env.KEEP === '1');
  if (canMakeUsers) {
    for (const u of [MEMBER, OUTSIDER]) execFileSync('userdel', [u], { stdio: 'ignore' });
    try {
      execFileSync('groupdel', [GROUP], { stdio: 'ignore' });
    } catch {
      /* userdel removed it already (it was its user group) */
    }
  }
});

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** A raw connection that sends lines and reads one answer line per request, in order. */
async function rawClient(path: string): Promise<{ sock: Socket; ask: (line: string) => Promise<{ ok: boolean; error?: string; result?: unknown }>; closed: Promise<void> }> {
  const sock = createConnection(path);
  await new Promise<void>((res, rej) => {
    sock.once('connect', () => res());
    sock.once('error', rej);
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  let buf = '';
  const waiters: Array<(s: string) => void> = [];
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0 && waiters.length; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiters.shift()!(line);
    }
  });
  const ask = (line: string) =>
    new Promise<{ ok: boolean; error?: string; result?: unknown }>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`no answer to ${line}`)), 5000);
      waiters.push((s) => {
        clearTimeout(t);
        res(JSON.parse(s) as { ok: boolean; error?: string });
      });
      sock.write(line + '\n');
    });
  return { sock, ask, closed };
}

test('flood: a client pipelining 1 MiB of status requests and never reading leaves RSS bounded and heartbeats on time', async () => {
  const pid = c.procs.get('n1')!.pid!;
  await sleep(1000);
  const rssBefore = rssMiB(pid);
  const startedAt = Date.now();

  const sock = createConnection(c.socket('n1'));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.pause(); // never read an answer
  sock.on('error', () => {});
  let closedAt: number | null = null;
  sock.once('close', () => (closedAt = Date.now()));

  // Paced (4 KiB every 20 ms), as a script would send: the daemon reads it as it arrives. (All at
  // once, the old daemon dropped the connection for a 64 KiB read and never buffered.)
  const chunk = '{"cmd":"status"}\n'.repeat(240);
  let sent = 0;
  const writing = (async () => {
    while (sent < 1 << 20 && !sock.destroyed) {
      sock.write(chunk);
      sent += chunk.length;
      await sleep(20);
    }
  })();

  let rssMax = rssBefore;
  let maxGapMs = 0;
  let suspect = false;
  let n1Answers = 0;
  let samples = 0;
  const sample = async () => {
    rssMax = Math.max(rssMax, rssMiB(pid));
    const [s1, s2, s3] = await Promise.all(['n1', 'n2', 'n3'].map((n) => c.tryStatus(n, 1000)));
    if (s1) n1Answers++;
    for (const s of [s2, s3]) {
      const v = s?.nodes.find((x) => x.name === 'n1');
      if (!s || !v || v.lastHeardMs === null) continue;
      samples++;
      maxGapMs = Math.max(maxGapMs, s.time - v.lastHeardMs);
      suspect ||= v.suspect || v.state !== 'up';
    }
  };
  let done = false;
  void writing.then(() => (done = true));
  while (!done) {
    await sample();
    await sleep(100);
  }
  const floodMs = Date.now() - startedAt;
  for (const until = Date.now() + 3000; Date.now() < until; await sleep(100)) await sample();

  const grown = rssMax - rssBefore;
  console.log(`# flood: ${sent} bytes of requests in ${floodMs} ms; n1 RSS ${rssBefore.toFixed(1)} MiB before, max ${rssMax.toFixed(1)} MiB (+${grown.toFixed(1)}); peers' max silence of n1 ${Math.round(maxGapMs)} ms over ${samples} samples (suspect after ${DEFAULTS.suspectAfterMs} ms); n1 answered ${n1Answers} other status requests`);
  assert.ok(sent >= 1 << 20, 'the whole MiB was sent');
  assert.ok(grown < 50, `RSS grew by ${grown.toFixed(1)} MiB`);
  assert.ok(samples > 20, 'peers were sampled throughout');
  assert.equal(suspect, false, 'no peer ever saw n1 suspect');
  assert.ok(maxGapMs < DEFAULTS.suspectAfterMs, `n1's heartbeats stayed on time (max silence ${maxGapMs} ms)`);
  assert.ok(n1Answers > 20, 'n1 kept answering other clients');
  for (const n of ['n2', 'n3']) {
    const bad = c.events(n).filter((e) => e.time >= startedAt && /node n1 suspect|peer n1 is/.test(e.msg));
    assert.deepEqual(bad.map((e) => e.msg), [], `${n} logged nothing about n1`);
  }

  // The daemon closes the connection that no longer reads (idle timeout); it is not kept forever.
  await c.waitFor('the flooding connection closed by the daemon', () => closedAt !== null, DEFAULTS.controlIdleTimeoutMs + 10_000, 100);
  console.log(`# flood: connection closed ${closedAt! - startedAt - floodMs} ms after the last write`);
  assert.deepEqual(await c.runners('h'), ['n1']);
});

function runAs(user: string | null, args: string[]): Promise<{ code: number; out: string }> {
  const cmd = user ? 'setpriv' : process.execPath;
  const argv = user ? [`--reuid=${user}`, `--regid=${user === MEMBER ? GROUP : user}`, '--init-groups', process.execPath, ...args] : args;
  return new Promise((resolve) => {
    execFile(cmd, argv, { timeout: 30_000, cwd: '/', env: { ...process.env, HOME: '/' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

test('controlGroup members may read status but not stop the daemon or change hierarchies', { skip: !canMakeUsers && 'needs root, groupadd, useradd and setpriv' }, async () => {
  const cli = (user: string | null, ...args: string[]) => runAs(user, [BIN, ...args, '--config', c.clusterFile, '--node', 'n1']);
  const status = await cli(MEMBER, 'status', '--json');
  assert.equal(status.code, 0, status.out);
  assert.equal((JSON.parse(status.out) as { node: string }).node, 'n1');
  console.log(`# group member: status OK (through ${readOnlySocket(c.socket('n1'))})`);

  const stop = await cli(MEMBER, 'stop');
  assert.equal(stop.code, 1, stop.out);
  assert.match(stop.out, /stop: refused: .* is read-only \(status, ping\); changes need root \(uid 0\)/);
  console.log(`# group member: harness stop -> ${stop.out.trim()}`);
  const hold = await cli(MEMBER, 'hierarchy', 'h', 'stop');
  assert.equal(hold.code, 1, hold.out);
  assert.match(hold.out, /hierarchy: refused: .* is read-only/);

  // The root socket itself is closed to the group (the kernel says no, whatever is sent).
  const direct = await runAs(MEMBER, ['-e', `const s=require('node:net').createConnection(${JSON.stringify(c.socket('n1'))});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(0)})`]);
  assert.equal(direct.out.trim(), 'EACCES');
  // Outside the group: neither socket.
  const outsider = await cli(OUTSIDER, 'status');
  assert.equal(outsider.code, 1, outsider.out);
  assert.match(outsider.out, /permission denied/);
  console.log(`# outsider: harness status -> ${outsider.out.trim()}`);

  // Root still does everything, through the root socket.
  const rootStatus = await cli(null, 'status');
  assert.equal(rootStatus.code, 0, rootStatus.out);
  await sleep(500);
  assert.deepEqual(await c.runners('h'), ['n1'], 'nothing was stopped');
  assert.equal(c.procs.get('n1')!.exitCode, null, 'n1 still running');
  assert.doesNotMatch((await c.status('n1')).hierarchies[0]!.note, /held/);
});

test('bad requests are refused with a message naming the field; the connection and the daemon survive', async () => {
  const { ask, sock } = await rawClient(c.socket('n1'));
  const cases: Array<[string, RegExp]> = [
    ['{"cmd":"stop","mode":"bogus"}', /^invalid request: mode: "bogus" is not one of "switchover", "stop"$/],
    ['{"cmd":"reboot"}', /^invalid request: cmd: unknown command "reboot" \(expected one of status, ping, stop, hierarchy, node\)$/],
    ['{"mode":"stop"}', /cmd: missing/],
    ['{"cmd":"status","verbose":true}', /"verbose": unknown field \(status takes no other field\)/],
    ['{"cmd":"stop","__proto__":{"mode":"stop"}}', /"__proto__": unknown field \(stop takes mode\)/],
    ['{"cmd":"hierarchy","name":5,"action":"stop"}', /name: expected string, got number/],
    ['{"cmd":"hierarchy","name":"h"}', /action: missing \(one of "stop", "start", "maintenance-on", "maintenance-off", "clear", "move"\)/],
    ['{"cmd":"stop","mode":"\\u001b[2Jx"}', /mode: "\\u001b\[2Jx" is not one of/],
    ['["stop"]', /a request is a JSON object, not an array/],
    ['stop', /request is not JSON/],
  ];
  for (const [line, expect] of cases) {
    const a = await ask(line);
    assert.equal(a.ok, false, line);
    assert.match(a.error!, expect, line);
    console.log(`# ${line} -> ${a.error}`);
  }
  const fine = await ask('{"cmd":"ping"}');
  assert.deepEqual(fine, { ok: true, result: { node: 'n1' } }, 'the same connection still answers');
  sock.destroy();
  await sleep(1000);
  assert.equal(c.procs.get('n1')!.exitCode, null, 'n1 still running');
  assert.deepEqual(await c.runners('h'), ['n1']);
});

test('connection cap, request size limit and idle timeout', async () => {
  // An over-long line: refused and closed.
  const big = await rawClient(c.socket('n1'));
  const tooLong = new Promise<string>((r) => big.sock.once('data', (d) => r(String(d))));
  big.sock.write('{"cmd":"status","x":"' + 'a'.repeat(DEFAULTS.controlMaxRequestBytes) + '"}\n');
  assert.match(await tooLong, new RegExp(`request longer than ${DEFAULTS.controlMaxRequestBytes} bytes`));
  await big.closed;

  // The cap: that many idle clients are served, the next one is told to come back later.
  const idle = await Promise.all(Array.from({ length: DEFAULTS.controlMaxConnections }, () => rawClient(c.socket('n1'))));
  const t0 = Date.now();
  const extra = await rawClient(c.socket('n1'));
  const refusal = await new Promise<string>((r) => extra.sock.once('data', (d) => r(String(d))));
  assert.match(refusal, new RegExp(`too many connections \\(limit ${DEFAULTS.controlMaxConnections}\\)`));
  await extra.closed;
  // ... and the idle timeout frees the slots.
  await Promise.all(idle.map((x) => x.closed));
  const idleMs = Date.now() - t0;
  console.log(`# cap: client ${DEFAULTS.controlMaxConnections + 1} refused; idle connections closed after ${idleMs} ms`);
  assert.ok(idleMs >= DEFAULTS.controlIdleTimeoutMs - 1000 && idleMs < DEFAULTS.controlIdleTimeoutMs + 3000, `${idleMs} ms`);
  assert.equal((await c.status('n1')).node, 'n1');
});
