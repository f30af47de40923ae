// `harness status --all` against a real OpenSSH server: three real daemons, each reached over
// SSH (ssh2) on one of its comm-path addresses, host keys checked against known_hosts, every
// node's answer compared. Needs root and /usr/sbin/sshd (Debian's openssh-server).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import { hostOf } from '../../harness/cluster-status.ts';

const SSHD = '/usr/sbin/sshd';
const skip = process.getuid?.() !== 0 ? 'needs root (sshd)' : !existsSync(SSHD) ? 'needs openssh-server (/usr/sbin/sshd)' : false;
const HARNESS = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));
const PORT = 20_000 + Math.floor(Math.random() * 20_000);

const c = new LocalCluster({
  net: 87,
  hierarchies: {
    'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3']),
  },
});
let sshd: ChildProcess | undefined;
const ssh = join(c.dir, 'ssh');
const hostPub = (): string => hostKey.public.split(' ').slice(0, 2).join(' ');
const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
const clientKey = ssh2.utils.generateKeyPairSync('ed25519');
const otherKey = ssh2.utils.generateKeyPairSync('ed25519');

function host(node: string, path: number): string {
  return hostOf(c.addresses(node)[path]!);
}

function waitPort(h: string, port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection({ host: h, port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', () => (Date.now() > until ? reject(new Error(`sshd not listening on ${h}:${port}`)) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

before(async () => {
  if (skip) return;
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation directory
  writeFileSync(join(ssh, 'host_key'), hostKey.private, { mode: 0o600 });
  writeFileSync(join(ssh, 'id'), clientKey.private, { mode: 0o600 });
  writeFileSync(join(ssh, 'authorized_keys'), `${clientKey.public}\n`, { mode: 0o600 });
  // n3's first address is not served: the tool must come in over n3's second path.
  const listen = [host('n1', 0), host('n2', 0), host('n3', 1)];
  writeFileSync(
    join(ssh, 'sshd_config'),
    [
      `Port ${PORT}`,
      ...listen.map((h) => `ListenAddress ${h}`),
      `HostKey ${join(ssh, 'host_key')}`,
      `AuthorizedKeysFile ${join(ssh, 'authorized_keys')}`,
      `PidFile ${join(ssh, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // Plain entries for n1 and n2, a hashed one (as HashKnownHosts writes) for n3's second address.
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(`[${host('n3', 1)}]:${PORT}`).digest('base64')}`;
  writeFileSync(join(ssh, 'known_hosts'), `# test\n[${host('n1', 0)}]:${PORT},[${host('n2', 0)}]:${PORT} ${hostPub()}\n${hashed} ${hostPub()}\n`);
  // n2's key is "wrong" in this one: a man in the middle, as far as the tool can tell.
  writeFileSync(
    join(ssh, 'known_hosts_wrong_n2'),
    `[${host('n1', 0)}]:${PORT} ${hostPub()}\n[${host('n2', 0)}]:${PORT} ${otherKey.public.split(' ').slice(0, 2).join(' ')}\n${hashed} ${hostPub()}\n`,
  );
  sshd = spawn(SSHD, ['-D', '-e', '-f', join(ssh, 'sshd_config')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await Promise.all(listen.map((h) => waitPort(h, PORT, 10_000)));
  for (const n of c.nodes) c.start(n);
  await c.waitFor('h on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
});

after(async () => {
  sshd?.kill('SIGTERM');
  await c.teardown(process.env.KEEP === '1');
});

function statusAll(args: string[], clusterFile = c.clusterFile): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = [
    HARNESS, 'status', '--all', '--config', clusterFile, '--ssh-port', String(PORT), '-i', join(ssh, 'id'),
    '--remote-harness', `${process.execPath} ${HARNESS}`, ...args,
  ];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('every node answers over SSH (n3 over its second path); the views agree: exit 0', { skip }, async () => {
  const t0 = Date.now();
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node']);
  console.log(`# status --all over SSH: ${Date.now() - t0} ms\n${r.stdout.replace(/^/gm, '# ')}`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`n1 \\(via ${host('n1', 0).replace(/\./g, '\\.')}\\)`));
  assert.match(r.stdout, new RegExp(`n3 \\(via ${host('n3', 1).replace(/\./g, '\\.')}\\)`));
  assert.match(r.stdout, /h: in service on n1 /);
  assert.match(r.stdout, /every node answered; no hierarchy runs twice/);
});

test('an admin station without the auth key (the nodes\' secret) still gets the status', { skip }, async () => {
  // The cluster file as an admin would copy it: no key file beside it. Relative paths made absolute
  // so the nodes (this machine) find their control sockets through the same file.
  const station = join(c.dir, 'station');
  mkdirSync(station, { recursive: true });
  const file = join(station, 'cluster.yaml');
  const text = readFileSync(c.clusterFile, 'utf8').replaceAll('./', `${c.dir}/`).replace(/^authKeyFile: .*$/m, `authKeyFile: ${join(station, 'no-such-key')}`);
  writeFileSync(file, text);
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node'], file);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /every node answered; no hierarchy runs twice/);
});

test('--json; the node it runs on is asked on its local socket', { skip }, async () => {
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'n1', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { ok: boolean; nodes: Array<{ node: string; via?: string; status?: { node: string } }>; hierarchies: Array<{ name: string; inServiceOn: string[] }> };
  assert.equal(doc.ok, true);
  assert.deepEqual(doc.nodes.map((n) => [n.node, n.via, n.status?.node]), [['n1', 'local socket', 'n1'], ['n2', host('n2', 0), 'n2'], ['n3', host('n3', 1), 'n3']]);
  assert.deepEqual(doc.hierarchies, [{ name: 'h', inServiceOn: ['n1'], verdict: 'in service on n1' }]);
});

test('a host key that does not match known_hosts: that node is not talked to, said loudly, exit 1', { skip }, async () => {
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts_wrong_n2'), '--node', 'not-a-node']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /n2: NO ANSWER — .*HOST KEY OF .* DOES NOT MATCH/);
  assert.match(r.stdout, /h: in service on n1 \(no answer from n2\)/);
  assert.match(r.stdout, /NOT OK/);
});

/**
 * A remote harness that misbehaves on some nodes (the SSH command line picks the behaviour): it
 * runs the real one, then answers `{}` on n2 and puts terminal escape sequences into n3's
 * (hierarchy name, a peer state), or sends an answer of 5 MiB on n2.
 */
function fakeRemote(mode: 'shapes' | 'huge'): string {
  const file = join(c.dir, 'fake-remote-harness.mjs');
  writeFileSync(
    file,
    `import { execFileSync } from 'node:child_process';
const [mode, harness, ...args] = process.argv.slice(2);
const node = args[args.indexOf('--node') + 1];
const real = () => JSON.parse(execFileSync(process.execPath, [harness, ...args], { encoding: 'utf8' }));
if (mode === 'huge' && node === 'n2') {
  process.stdout.write(' '.repeat(5 * 1024 * 1024) + '{}');
} else if (mode === 'shapes' && node === 'n2') {
  process.stdout.write('{}');
} else if (mode === 'shapes' && node === 'n3') {
  const doc = real();
  doc.hierarchies[0].name = 'h\\u001b[31mEVIL\\u001b]0;owned\\u0007';
  doc.nodes.find((n) => !n.self).state = 'up\\u001b[2J\\u009b6n';
  process.stdout.write(JSON.stringify(doc));
} else {
  process.stdout.write(JSON.stringify(real()));
}
`,
  );
  return `${process.execPath} ${file} ${mode} ${HARNESS}`;
}

test('answers that cannot be used: {} from n2 is reported as such, the rest of the report still printed, exit 1; escape sequences in n3\'s answer are shown escaped', { skip }, async () => {
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node', '--remote-harness', fakeRemote('shapes')]);
  console.log(`# status --all with bad answers:\n${r.stdout.replace(/^/gm, '# ')}`);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, new RegExp(`n2: UNUSABLE ANSWER — ${host('n2', 0).replace(/\./g, '\\.')}: unusable answer: node: .*expected string`));
  assert.match(r.stdout, /n1 \(via /);
  assert.match(r.stdout, /h: in service on n1 \(no answer from n2\)/);
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(r.stdout), `raw control characters in: ${JSON.stringify(r.stdout)}`);
  assert.ok(r.stdout.includes('h\\x1b[31mEVIL\\x1b]0;owned\\x07: '), r.stdout);
  assert.ok(r.stdout.includes('up\\x1b[2J\\x9b6n'), r.stdout);
  assert.match(r.stdout, /NOT OK/);
  const j = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node', '--remote-harness', fakeRemote('shapes'), '--json']);
  assert.equal(j.code, 1, j.stdout + j.stderr);
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(j.stdout), 'raw control characters in the JSON');
  const doc = JSON.parse(j.stdout) as { ok: boolean; nodes: Array<{ node: string; unusable?: boolean; error?: string }> };
  assert.equal(doc.ok, false);
  assert.equal(doc.nodes.find((n) => n.node === 'n2')?.unusable, true);
});

test('an answer larger than the cap is not read further: that node is unusable, the others reported', { skip }, async () => {
  const t0 = Date.now();
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node', '--remote-harness', fakeRemote('huge')]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /n2: UNUSABLE ANSWER — .*unusable answer: longer than 4194304 bytes/);
  assert.match(r.stdout, /n1 \(via .*\n\s+n2: .*\n\s+n3 \(via /);
  console.log(`# huge answer: ${Date.now() - t0} ms`);
});

test('a node whose daemon is down answers with the reason; the others still do', { skip }, async () => {
  await c.stop('n3', 'stop');
  const r = await statusAll(['--known-hosts', join(ssh, 'known_hosts'), '--node', 'not-a-node']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /n3: NO ANSWER — .*remote command exited 1/);
  assert.match(r.stdout, /n1 \(via /);
  c.start('n3');
});

test('history --all merges every node\'s history over SSH; a hand-over counts from out of service on one node to in service on the next', { skip }, async () => {
  // Each node knows only its side: n2 recorded giving x up, n3 taking it 700 ms later.
  const t = Date.now() - 60_000;
  const line = (r: object) => `${JSON.stringify(r)}\n`;
  appendFileSync(join(c.dir, 'state', 'n2', 'history.jsonl'), line({ at: t, hierarchy: 'x', node: 'n2', transition: 'out-of-service', cause: 'stop' }));
  appendFileSync(join(c.dir, 'state', 'n3', 'history.jsonl'), line({ at: t + 700, hierarchy: 'x', node: 'n3', transition: 'in-service', cause: 'start' }));
  const argv = [HARNESS, 'history', 'x', '--all', '--json', '--since', '1h', '--config', c.clusterFile, '--node', 'not-a-node', '--ssh-port', String(PORT), '-i', join(ssh, 'id'), '--known-hosts', join(ssh, 'known_hosts'), '--remote-harness', `${process.execPath} ${HARNESS}`];
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, argv, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout) as { records: { node: string }[]; availability: { hierarchy: string; downMs: number; outages: unknown[] }[]; nodes: { node: string; records?: number; error?: string }[] };
  assert.deepEqual(doc.records.map((x) => x.node).sort(), ['n2', 'n3']);
  assert.deepEqual(doc.nodes.map((n) => n.error), [undefined, undefined, undefined], 'every node answered (n3 over its second path)');
  assert.equal(doc.availability[0]!.downMs, 700);
  // One node's own view does not see the hand-over as downtime.
  const one = JSON.parse(await new Promise<string>((resolve) => execFile(process.execPath, [HARNESS, 'history', 'x', '--json', '--since', '1h', '--config', c.clusterFile, '--node', 'n3'], (_e, out) => resolve(out)))) as { availability: { downMs: number }[] };
  assert.equal(one.availability[0]!.downMs, 0);
});
