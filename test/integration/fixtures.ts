import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
// The integration tests' usual hierarchy: an own-able disk (file backend) and one agent resource
// on top of it. `app` adds lines to the agent resource (params, monitor, timeouts...).
export function diskAndApp(name: string, priority: readonly string[], opts: { agent?: string; app?: readonly string[] } = {}): string {
  return [
    `hierarchy: ${name}`,
    `priority: { ${priority.map((n, i) => `${n}: ${i + 1}`).join(', ')} }`,
    'resources:',
    '  - name: disk',
    '    disk: { paths: [] }',
    '  - name: app',
    `    agent: ${opts.agent ?? 'ocf:harness:hang'}`,
    ...(opts.app ?? []).map((l) => `    ${l}`),
    '    requires: [disk]',
    '',
  ].join('\n');
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const addr = srv.address();
  await new Promise<void>((res) => srv.close(() => res()));
  if (!addr || typeof addr !== 'object') throw new Error('no port');
  return addr.port;
}

/**
 * A test agent `ocf:test:<type>` in `<dir>/test/`: `cases` are the sh `case "$1"` branches of its
 * actions (before it: `prelude`); meta-data (advertising start, stop, monitor with
 * `monitorInterval`, validate-all, meta-data, and `params`) and `*) exit 3` are added.
 */
export function shellAgent(dir: string, type: string, o: { prelude?: string; cases: string; params?: string[]; monitorInterval?: string }): void {
  mkdirSync(join(dir, 'test'), { recursive: true });
  const params = (o.params ?? []).map((p) => `<parameter name="${p}"><longdesc lang="en">${p}</longdesc><shortdesc lang="en">${p}</shortdesc><content type="string"/></parameter>`).join('');
  const file = join(dir, 'test', type);
  writeFileSync(
    file,
    `#!/bin/sh
${o.prelude ?? ''}
case "$1" in
${o.cases}
meta-data) cat <<'X'
<?xml version="1.0"?>
<resource-agent name="${type}"><version>1.0</version><longdesc lang="en">test</longdesc><shortdesc lang="en">test</shortdesc>
<parameters>${params}</parameters>
<actions><action name="start" timeout="10s"/><action name="stop" timeout="10s"/><action name="monitor" timeout="10s" interval="${o.monitorInterval ?? '10s'}"/><action name="validate-all" timeout="5s"/><action name="meta-data" timeout="5s"/></actions>
</resource-agent>
X
exit 0 ;;
*) exit 3 ;;
esac
`,
  );
  chmodSync(file, 0o755);
}
