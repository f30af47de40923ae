// The daemon's configuration check runs in a child process (hierarchies/validate-child.ts). It is
// bounded: a check that does not finish in time (a starved machine, an agent whose meta-data
// hangs) is killed, and the issue says how long it ran and the step it was at — the scsi tier once
// saw a node's start-up wait on it for over 90 s without a word.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { splitSteps, validateInChild } from '../../hierarchies/validate-child.ts';
import { diskAndApp } from './fixtures.ts';

const agents = join(tmpdir(), `harness-slow-agents-${process.pid}`);
mkdirSync(join(agents, 'test'), { recursive: true });
// An agent whose meta-data takes 30 s: only the check's own bound ends it.
writeFileSync(join(agents, 'test', 'slowmeta'), '#!/bin/sh\n[ "$1" = meta-data ] && exec sleep 30\nexit 0\n');
chmodSync(join(agents, 'test', 'slowmeta'), 0o755);
// An agent whose meta-data kills the check that asked for it (as the OOM killer would).
writeFileSync(join(agents, 'test', 'killparent'), '#!/bin/sh\n[ "$1" = meta-data ] && kill -KILL $PPID && exec sleep 5\nexit 0\n');
chmodSync(join(agents, 'test', 'killparent'), 0o755);

const c = new LocalCluster({ nodes: ['n1', 'n2'], net: 88, extraAgentDirs: [agents], hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2'], { agent: 'ocf:test:slowmeta' }) } });
after(async () => {
  await c.teardown();
  rmSync(agents, { recursive: true, force: true });
});

test('a configuration check that does not finish in time is killed, and says how long and where it was', async () => {
  const r = await validateInChild(c.clusterFile, 3000);
  assert.equal(r.config, undefined);
  assert.equal(r.issues.length, 1);
  const msg = r.issues[0]!.message;
  console.log(`# ${msg}`);
  assert.match(msg, /did not finish within 3000 ms and was killed; it was at: meta-data of ocf:test:slowmeta/);
  assert.ok(r.ms >= 3000 && r.ms < 20_000, `took ${r.ms} ms`);
});

test('a check that dies says how: the signal (or exit code) and how long it ran', async () => {
  const k = new LocalCluster({ nodes: ['n1', 'n2'], net: 88, extraAgentDirs: [agents], hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2'], { agent: 'ocf:test:killparent' }) } });
  try {
    const r = await validateInChild(k.clusterFile, 30_000);
    assert.equal(r.config, undefined);
    const msg = r.issues[0]!.message;
    console.log(`# ${msg}`);
    assert.match(msg, /failed to run \(Command failed: .*, killed by SIGKILL after \d+ ms\); it was at: meta-data of ocf:test:killparent/);
  } finally {
    await k.teardown();
  }
});

test('the child reports its steps; a good check returns the config and its duration', async () => {
  const ok = new LocalCluster({ nodes: ['n1', 'n2'], net: 88, hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2']) } });
  try {
    const r = await validateInChild(ok.clusterFile);
    assert.ok(r.config, JSON.stringify(r.issues));
    assert.ok(r.ms > 0);
  } finally {
    await ok.teardown();
  }
  assert.deepEqual(splitSteps('validate-step: loading x\nnoise\nvalidate-step: meta-data of y\n'), { step: 'meta-data of y', rest: 'noise' });
});
