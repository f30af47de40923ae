// The Debian package: built by `npm run package`, checked by the real lintian, installed into an
// isolated root with dpkg --root, then run from there: `harness --version`, keygen + validate of
// the shipped example, the unit through `systemd-analyze verify` and the man pages through
// `man -l`. The last two run in a private mount namespace where the package's /usr is overlaid on
// the host's (the unit's ExecStart and man: references must resolve as on an installed system;
// nothing on the host changes). Needs root (dpkg --root, mount) and lintian, systemd, man-db.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const top = new URL('../..', import.meta.url).pathname;
const version = (JSON.parse(readFileSync(join(top, 'package.json'), 'utf8')) as { version: string }).version;
const missing = ['lintian', 'dpkg-deb', 'systemd-analyze', 'man'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
const skip = process.getuid?.() !== 0 ? 'needs root (dpkg --root, mount namespace)' : missing.length ? `missing: ${missing.join(', ')}` : false;

let deb = '';
let root = '';

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Run a shell script in a private mount namespace with the package's /usr over the host's. */
function installed(script: string) {
  return run('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', `mount -t overlay overlay -o lowerdir=${root}/usr:/usr /usr\n${script}`]);
}

before(() => {
  if (skip) return;
  const t0 = performance.now();
  const built = run('npm', ['run', 'package']);
  assert.equal(built.code, 0, built.out + built.err);
  deb = join(top, 'dist', `harness_${version}_${execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim()}.deb`);
  console.log(`built ${deb}: ${(statSync(deb).size / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  root = mkdtempSync(join(tmpdir(), 'harness-root-'));
  for (const d of ['info', 'updates', 'triggers']) mkdirSync(join(root, 'var/lib/dpkg', d), { recursive: true });
  writeFileSync(join(root, 'var/lib/dpkg/status'), '');
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

test('lintian finds no errors', { skip }, () => {
  const r = run('lintian', ['--tag-display-limit', '0', deb]);
  const errors = r.out.split('\n').filter((l) => l.startsWith('E:'));
  console.log(r.out.trim() || 'lintian: clean');
  assert.deepEqual(errors, []);
  assert.ok(r.code === 0 || r.code === 2, `lintian exited ${r.code}: ${r.err}`); // 2: warnings only
});

test('the package installs into an isolated root and runs from there', { skip }, () => {
  // dpkg --root: the package's dependencies are the host's libraries, not in the empty root.
  const r = run('dpkg', ['--root', root, '--force-depends', '--log=/dev/null', '-i', deb]);
  assert.equal(r.code, 0, r.out + r.err);
  const harness = join(root, 'usr/bin/harness');
  assert.equal(run(harness, ['--version']).out.trim(), version);
  for (const f of ['usr/lib/ocf/resource.d/harness/webserver', 'lib/systemd/system/harness.service', 'usr/share/bash-completion/completions/harness', 'etc/logrotate.d/harness', 'usr/share/doc/harness/copyright']) {
    assert.ok(existsSync(join(root, f)), `${f} is installed`);
  }
  assert.ok(!existsSync(join(root, 'etc/harness/authkey')), 'no key is shipped');
  assert.ok((statSync(join(root, 'usr/lib/harness/dist/harness/guard.sh')).mode & 0o111) !== 0, 'the guard is executable');
  // The shipped example validates once it has a key, and so does a hierarchy on a bundled agent
  // (found through the installed program's link to /usr/lib/ocf/resource.d).
  const conf = join(root, 'etc/harness/cluster.yaml');
  assert.equal(run(harness, ['keygen', join(root, 'etc/harness/authkey')]).code, 0);
  const v = run(harness, ['validate', conf]);
  assert.equal(v.code, 0, v.out + v.err);
  assert.match(v.out, /OK — cluster demo, 2 nodes, 0 hierarchies/);
  writeFileSync(join(root, 'etc/harness/hierarchies/web.yaml'), 'hierarchy: web\npriority: { n1: 1, n2: 2 }\nfencing: none\nresources:\n  - name: web\n    agent: ocf:harness:webserver\n    params: { port: 8080 }\n');
  const v2 = run(harness, ['validate', conf]);
  assert.equal(v2.code, 0, v2.out + v2.err);
  assert.match(v2.out, /1 hierarchies/);
  // A hierarchy on an agent that is not there is an error: validate has teeth here.
  writeFileSync(join(root, 'etc/harness/hierarchies/bad.yaml'), 'hierarchy: bad\npriority: { n1: 1 }\nfencing: none\nresources:\n  - name: x\n    agent: ocf:harness:nosuchagent\n');
  assert.equal(run(harness, ['validate', conf]).code, 1);
  rmSync(join(root, 'etc/harness/hierarchies/bad.yaml'));
  // Completion: bash knows the commands.
  const c = run('bash', ['-c', `source ${root}/usr/share/bash-completion/completions/harness; COMP_WORDS=(harness st); COMP_CWORD=1; _harness; echo "\${COMPREPLY[*]}"`]);
  assert.equal(c.out.trim(), 'start stop status');
});

test('the unit passes systemd-analyze verify, installed', { skip }, () => {
  const unit = join(root, 'lib/systemd/system/harness.service');
  const r = installed(`systemd-analyze verify ${unit}`);
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal(r.err.trim(), '', 'no warnings');
  const text = readFileSync(unit, 'utf8');
  assert.match(text, /^ExecStop=\/usr\/bin\/harness stop$/m);
  assert.match(text, /^KillMode=process$/m);
  assert.match(text, /^Restart=on-failure$/m);
  // Teeth: the same check fails on a unit whose command is not installed.
  writeFileSync(join(root, 'bad.service'), text.replace('/usr/bin/harness start', '/usr/bin/harness-nonexistent start'));
  assert.notEqual(installed(`systemd-analyze verify ${join(root, 'bad.service')}`).code, 0);
});

test('the man pages render with man -l, without warnings', { skip }, () => {
  for (const [page, expect] of [['usr/share/man/man8/harness.8.gz', /harness status \[options\]/], ['usr/share/man/man5/harness.yaml.5.gz', /heartbeat\.deadTime/]] as const) {
    const r = run('man', ['--warnings', '-l', join(root, page)], { env: { ...process.env, MANWIDTH: '100', MAN_DISABLE_SECCOMP: '1' } });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err.trim(), '', `${page}: groff warnings`);
    assert.match(r.out, expect);
  }
  const r = installed('man -w harness && man -w harness.yaml');
  assert.equal(r.code, 0, r.err);
  assert.equal(readdirSync(join(root, 'usr/share/man/man8')).length, 1);
});
