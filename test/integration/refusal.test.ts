// e) bad configuration: invalid YAML, an unknown agent, a missing required parameter -> a clear
//    error naming file, line and field, and the daemon refuses to start (exit 1, nothing touched).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../../harness/local-cluster.ts';

const BIN = fileURLToPath(new URL('../../bin/harness.ts', import.meta.url));

function run(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

const good = `hierarchy: web
priority: { n1: 1, n2: 2 }
resources:
  - name: disk
    disk: { paths: [] }
  - name: http
    agent: ocf:harness:webserver
    params: { port: 18999 }
    requires: [disk]
`;

const cases: Array<{ name: string; yaml: string; expect: RegExp }> = [
  { name: 'invalid YAML', yaml: good.replace('priority: { n1: 1, n2: 2 }', 'priority: { n1: 1, n2: 2'), expect: /web\.yaml:\d+/ },
  { name: 'unknown agent', yaml: good.replace('ocf:harness:webserver', 'ocf:harness:no-such-agent'), expect: /web\.yaml:6.*resources\[1\]\.agent.*no-such-agent/s },
  { name: 'missing required parameter', yaml: good.replace('params: { port: 18999 }', 'params: { address: 127.0.0.1 }'), expect: /web\.yaml:\d+.*resources\[1\].*port/s },
];

for (const c of cases) {
  test(`e) ${c.name}: validate names file, line and field; the daemon refuses to start`, async () => {
    const cl = new LocalCluster({ nodes: ['n1', 'n2'], net: 83, hierarchies: { 'web.yaml': c.yaml } });
    try {
      const v = await run(['validate', cl.clusterFile]);
      assert.equal(v.code, 1);
      assert.match(v.out, c.expect);
      console.log(`# validate: ${v.out.trim().split('\n')[0]}`);
      const s = await run(['start', '--foreground', '--config', cl.clusterFile, '--node', 'n1']);
      assert.equal(s.code, 1, 'daemon refused to start');
      assert.match(s.out, c.expect);
    } finally {
      await cl.teardown();
    }
  });
}

test('e) a good configuration validates', async () => {
  const cl = new LocalCluster({ nodes: ['n1', 'n2'], net: 83, hierarchies: { 'web.yaml': good } });
  try {
    const v = await run(['validate', cl.clusterFile]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /OK/);
  } finally {
    await cl.teardown();
  }
});

test('e) reload: a broken edit is rejected and the daemon keeps its last good configuration; a good one takes effect', async () => {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const cl = new LocalCluster({ nodes: ['n1', 'n2'], net: 85, hierarchies: { 'web.yaml': good } });
  try {
    cl.start('n1');
    cl.start('n2');
    await cl.waitFor('web on n1', async () => (await cl.runners('web')).join() === 'n1', 30_000, 100);
    writeFileSync(join(cl.dir, 'hierarchies', 'bad.yaml'), 'hierarchy: bad\npriority: { n1: 1, n9: 2 }\nresources: []\n');
    await cl.waitFor('reload rejected', () => cl.events('n1').some((e) => e.event === 'reload-rejected'), 10_000, 100);
    const rej = cl.events('n1').find((e) => e.event === 'reload-rejected')!;
    console.log(`# reload rejected: ${rej.msg}`);
    assert.match(rej.msg, /bad\.yaml:\d+/);
    assert.deepEqual(await cl.runners('web'), ['n1'], 'still running on its last good configuration');
    writeFileSync(join(cl.dir, 'hierarchies', 'bad.yaml'), good.replace('hierarchy: web', 'hierarchy: api').replace('18999', '18998').replace('n1: 1, n2: 2', 'n2: 1, n1: 2'));
    await cl.waitFor('api on n2 after a good reload', async () => (await cl.runners('api')).join() === 'n2', 20_000, 100);
    assert.deepEqual(await cl.runners('web'), ['n1']);
  } finally {
    await cl.teardown();
  }
});

test('e) a hierarchy directory others can write (as root: also its group), or an auth key root does not own: the daemon refuses to start, naming the path', async () => {
  const { chmodSync, chownSync, existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  const asRoot = process.getuid?.() === 0;
  const cl = new LocalCluster({ nodes: ['n1', 'n2'], net: 83, hierarchies: { 'web.yaml': good } });
  try {
    const dir = join(cl.dir, 'hierarchies');
    chmodSync(dir, asRoot ? 0o775 : 0o757);
    const s = await run(['start', '--foreground', '--config', cl.clusterFile, '--node', 'n1']);
    assert.equal(s.code, 1, 'daemon refused to start');
    assert.match(s.out, new RegExp(`cluster\\.yaml:\\d+:\\d+: hierarchyDir: hierarchy directory ${dir} is writable by (its group|everyone)`));
    assert.ok(!existsSync(join(cl.dir, 'state', 'n1', 'incarnation')), 'nothing touched');
    chmodSync(dir, 0o755);
    if (!asRoot) return;
    chownSync(join(cl.dir, 'authkey'), 65534, 65534);
    const k = await run(['start', '--foreground', '--config', cl.clusterFile, '--node', 'n1']);
    assert.equal(k.code, 1, 'daemon refused to start');
    assert.match(k.out, new RegExp(`authKeyFile: auth key file ${join(cl.dir, 'authkey')} is owned by uid 65534, not root`));
  } finally {
    await cl.teardown();
  }
});
