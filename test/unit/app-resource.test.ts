// `app:` resources: the admin's commands become ocf:harness:app's parameters, split into argv
// without a shell (or /bin/sh -c with shell: true), and bad ones are refused with file:line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARG_SEPARATOR, appNodeProblems, appParams, splitCommand } from '../../hierarchies/app.ts';
import { loadConfig, ConfigError } from '../../hierarchies/load.ts';

const root = mkdtempSync(join(tmpdir(), 'harness-app-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('commands split into words as a shell quotes them, nothing expanded', () => {
  assert.deepEqual(splitCommand('/opt/b/start --config /etc/b.conf'), ['/opt/b/start', '--config', '/etc/b.conf']);
  assert.deepEqual(splitCommand(`a 'b c' "d \\"e\\" $HOME" f\\ g ''`), ['a', 'b c', 'd "e" $HOME', 'f g', '']);
  assert.deepEqual(splitCommand('  x   *  $(id) ; y '), ['x', '*', '$(id)', ';', 'y']);
  assert.throws(() => splitCommand(`a 'b`), /single quote is not closed/);
  assert.throws(() => splitCommand('a "b'), /double quote is not closed/);
});

test('the parameters of ocf:harness:app: argv joined by 0x1f; shell: true runs /bin/sh -c', () => {
  const US = ARG_SEPARATOR;
  assert.deepEqual(appParams({ start: "/s 'a b'", stop: '/t', monitor: '/m x', user: 'billing', cwd: '/opt', env: { A: '1', B: 'x y' } }), {
    start: `/s${US}a b`,
    stop: '/t',
    monitor: `/m${US}x`,
    user: 'billing',
    cwd: '/opt',
    env: `A=1${US}B=x y`,
  });
  assert.deepEqual(appParams({ start: 'a | b', stop: 's', monitor: 'm', shell: true }).start, `/bin/sh${US}-c${US}a | b`);
});

test('on this node: missing or non-executable commands, a missing cwd or user are named', () => {
  const bin = join(root, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'ok'), '#!/bin/sh\n');
  chmodSync(join(bin, 'ok'), 0o755);
  writeFileSync(join(bin, 'noexec'), '#!/bin/sh\n');
  const problems = appNodeProblems(
    { start: join(bin, 'ok'), stop: join(bin, 'noexec'), monitor: `no-such-tool-here${ARG_SEPARATOR}x`, cwd: join(root, 'nodir'), user: 'no-such-user-here' },
    bin,
  );
  assert.deepEqual(problems.map((p) => p.field), ['stop', 'monitor', 'cwd', 'user']);
  assert.match(problems[0]!.message, /noexec: not an executable file on this node/);
  assert.match(problems[1]!.message, /no-such-tool-here: not found on this node's PATH/);
  assert.deepEqual(appNodeProblems({ start: 'ok', stop: 'ok', monitor: 'ok' }, bin), []);
});

function config(resource: string): string {
  const dir = mkdtempSync(join(root, 'c'));
  mkdirSync(join(dir, 'hierarchies'));
  writeFileSync(join(dir, 'authkey'), 'k'.repeat(32));
  chmodSync(join(dir, 'authkey'), 0o600);
  writeFileSync(join(dir, 'cluster.yaml'), 'cluster: t\nnodes:\n  - name: n1\n    addresses: ["127.0.0.11:7400"]\nauthKeyFile: ./authkey\nownership: { backend: file, dir: ./own }\n');
  writeFileSync(join(dir, 'hierarchies', 'b.yaml'), `hierarchy: b\npriority: { n1: 1 }\nfencing: none\nresources:\n${resource}`);
  return join(dir, 'cluster.yaml');
}

test('an app: resource loads as ocf:harness:app with its restart policy and monitors', () => {
  const c = loadConfig(config('  - name: billing\n    app:\n      start: /opt/b/start --config "/etc/b c.conf"\n      stop: /opt/b/stop\n      monitor: /opt/b/health\n    monitor: [{ interval: 2s }]\n    restart: { max: 1 }\n'));
  const r = c.hierarchies[0]!.resources[0]!;
  assert.equal(r.kind, 'agent');
  assert.equal(`${r.provider}:${r.type}`, 'harness:app');
  assert.equal(r.params.start, ['/opt/b/start', '--config', '/etc/b c.conf'].join(ARG_SEPARATOR));
  assert.equal(r.restart.max, 1);
  assert.equal(r.monitors[0]!.intervalMs, 2000);
});

test('bad app: resources are refused with file:line and field', () => {
  const cases: [string, RegExp][] = [
    ['  - name: x\n    app: { start: "/a \'b", stop: /s, monitor: /m }\n', /b\.yaml:6:\d+: resources\[0\]\.app\.start: cannot split into words: a single quote is not closed/],
    ['  - name: x\n    agent: ocf:heartbeat:Dummy\n    app: { start: /a, stop: /s, monitor: /m }\n', /resources\[0\]\.app: a resource has one of `agent:`, `disk:` or `app:`, not agent and app/],
    ['  - name: x\n    app: { start: /a, stop: /s, monitor: /m }\n    params: { a: 1 }\n', /resources\[0\]\.params: an `app:` resource takes no `params`/],
    ['  - name: x\n    app: { start: /a, stop: /s }\n', /resources\[0\]\.app\.monitor/],
  ];
  for (const [res, want] of cases) {
    try {
      loadConfig(config(res));
      assert.fail(`accepted: ${res}`);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, want);
    }
  }
});

test('the shipped app: example (examples/app-resource/web-app.yaml) loads', async () => {
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(new URL('../../examples/app-resource/web-app.yaml', import.meta.url), 'utf8');
  const file = config('');
  writeFileSync(join(file, '..', 'hierarchies', 'b.yaml'), text.replace('priority: { n1: 1, n2: 2, n3: 3 }', 'priority: { n1: 1 }'));
  const c = loadConfig(file);
  const web = c.hierarchies[0]!.resources.find((r) => r.name === 'web')!;
  assert.equal(`${web.provider}:${web.type}`, 'harness:app');
  assert.equal(web.params.start!.split(ARG_SEPARATOR).slice(0, 2).join(' '), '/bin/sh -c');
  assert.equal(web.params.env, 'PYTHONUNBUFFERED=1');
});
