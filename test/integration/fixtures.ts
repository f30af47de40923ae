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
