import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentNotFoundError, BUNDLED_AGENT_DIR, locateAgent, parseAgentSpec } from '../../agents/locate.ts';

let dir: string;
const site = () => join(dir, 'site');
const root = () => join(dir, 'ocf');

function place(base: string, provider: string, type: string, mode = 0o755): string {
  mkdirSync(join(base, provider), { recursive: true });
  const p = join(base, provider, type);
  writeFileSync(p, '#!/bin/sh\nexit 0\n');
  chmodSync(p, mode);
  return p;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'agents-locate-'));
  place(join(root(), 'resource.d'), 'heartbeat', 'Dummy');
  place(join(root(), 'resource.d'), 'heartbeat', 'IPaddr2');
  place(site(), 'heartbeat', 'IPaddr2'); // the site's override
  place(site(), 'acme', 'noexec', 0o644);
  mkdirSync(join(site(), 'acme', 'adir'), { recursive: true });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('parseAgentSpec', () => {
  assert.deepEqual(parseAgentSpec('ocf:heartbeat:Dummy'), { provider: 'heartbeat', type: 'Dummy' });
  assert.deepEqual(parseAgentSpec('ocf:harness:webserver'), { provider: 'harness', type: 'webserver' });
  assert.deepEqual(parseAgentSpec('ocf:heartbeat:LVM-activate'), { provider: 'heartbeat', type: 'LVM-activate' });
  for (const bad of ['Dummy', 'heartbeat:Dummy', 'lsb:heartbeat:Dummy', 'ocf::Dummy', 'ocf:heartbeat:', 'ocf:../x:y', 'ocf:a:..', 'ocf:a:b/c', 'ocf:a:b:c', 'ocf:a:.hidden', '']) {
    assert.equal(parseAgentSpec(bad), null, bad);
  }
});

test('agentDirs are searched before OCF_ROOT', () => {
  const opts = { agentDirs: [site()], ocfRoot: root() };
  assert.equal(locateAgent('heartbeat', 'IPaddr2', opts).path, join(site(), 'heartbeat', 'IPaddr2'));
  assert.deepEqual(locateAgent('heartbeat', 'Dummy', opts), {
    provider: 'heartbeat',
    type: 'Dummy',
    path: join(root(), 'resource.d', 'heartbeat', 'Dummy'),
  });
});

test('not found: every searched path and why candidates were skipped', () => {
  const opts = { agentDirs: [site()], ocfRoot: root() };
  for (const type of ['nope', 'noexec', 'adir']) {
    assert.throws(
      () => locateAgent('acme', type, opts),
      (e: unknown) => {
        assert.ok(e instanceof AgentNotFoundError);
        assert.deepEqual(e.searched, [join(site(), 'acme', type), join(root(), 'resource.d', 'acme', type)]);
        assert.match(e.message, new RegExp(`ocf:acme:${type}`));
        if (type === 'noexec' && process.getuid?.() !== 0) assert.match(e.message, /not executable/);
        if (type === 'adir') assert.match(e.message, /not a regular file/);
        return true;
      },
    );
  }
});

test('path traversal in provider or type is refused', () => {
  const opts = { agentDirs: [site()], ocfRoot: root() };
  for (const [p, t] of [['..', 'Dummy'], ['heartbeat', '../heartbeat/Dummy'], ['heartbeat/..', 'x'], ['', 'Dummy'], ['heartbeat', '.']]) {
    assert.throws(() => locateAgent(p as string, t as string, opts), (e: unknown) => e instanceof AgentNotFoundError && e.searched.length === 0);
  }
});

test('bundled agents are found in BUNDLED_AGENT_DIR', () => {
  for (const type of ['webserver', 'hang']) {
    const a = locateAgent('harness', type, { agentDirs: [BUNDLED_AGENT_DIR], ocfRoot: root() });
    assert.equal(a.path, join(BUNDLED_AGENT_DIR, 'harness', type));
  }
});
