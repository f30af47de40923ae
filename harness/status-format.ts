// Human output of `harness status`: readable tables, no colours needed to understand them.
import type { StatusDoc } from './status.ts';

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function who(x: { by: string; at: number } | undefined): string {
  return x ? ` (by ${x.by}${x.at ? ` at ${new Date(x.at).toISOString()}` : ''})` : '';
}

function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${(v / 1000).toFixed(3)} s`;
}

export function formatStatus(s: StatusDoc): string {
  const out: string[] = [];
  const mine = s.nodes.find((n) => n.self)?.config ?? null;
  out.push(`cluster ${s.cluster} — seen from ${s.node} (key ${s.key}), ownership: ${s.ownershipBackend}${s.ioFencing ? '' : ' (NOT I/O fencing)'}${s.shuttingDown ? `, SHUTTING DOWN (${s.shuttingDown})` : ''}`);
  out.push('');
  out.push('NODES');
  out.push(
    table([
      ['node', 'state', 'paths', 'last heard', 'admin'],
      ...s.nodes.map((n) => [
        n.name + (n.self ? ' (this node)' : ''),
        n.self ? 'up' : n.state + (n.suspect && n.state === 'up' ? ' (suspect)' : ''),
        n.self ? n.addresses.join(', ') : n.addresses.map((a, i) => `${a} ${n.paths[i] ?? '?'}`).join(', '),
        n.self || n.lastHeardMs === null ? '-' : `${Math.round(Math.max(0, s.time - n.lastHeardMs))} ms ago`,
        [
          n.admin.standby ? `STANDBY${who(n.admin.standby)}` : '',
          n.admin.maintenance ? `MAINTENANCE${who(n.admin.maintenance)}` : '',
          n.config !== null && n.config !== mine ? `CONFIG DIFFERS (${n.config} vs ${mine})` : '',
        ].filter(Boolean).join('; '),
      ]),
    ]),
  );
  for (const h of s.hierarchies) {
    out.push('');
    const where = h.runningOn.length === 0 ? 'not running anywhere visible' : h.runningOn.length === 1 ? `running on ${h.runningOn[0]}` : `RUNNING ON ${h.runningOn.join(' AND ')}`;
    const prio = Object.entries(h.priorities).sort((a, b) => a[1] - b[1]).map(([n, p]) => `${p}:${n}`).join(' ');
    out.push(`HIERARCHY ${h.name} — ${where}${h.fenced ? '' : ' — NOT FENCED'}`);
    out.push(`  priority ${prio}; here: ${h.phase}, ownership ${h.ownership}${h.ownerKey ? ` (key ${h.ownerKey})` : ''}${h.fencedBy ? `, last fenced by ${h.fencedBy}` : ''}`);
    const a = h.admin;
    if (a.stop) out.push(`  OUT OF SERVICE cluster-wide${who(a.stop)}`);
    if (a.maintenance) out.push(`  MAINTENANCE: unmanaged${who(a.maintenance)}`);
    if (a.move) out.push(`  moved to ${a.move.value}${who(a.move)}`);
    out.push(`  nodes: ${Object.entries(h.states).map(([n, x]) => `${n} ${x.state}${x.up ? '' : ' (down: last word)'}`).join(', ')}`);
    if (h.note) out.push(`  decision: ${h.note}`);
    out.push(
      table([
        ['  resource', 'agent', 'state here', 'last action', 'exit reason'],
        ...h.resources.map((r) => [
          `  ${r.name}`,
          r.agent ?? 'disk (own-able)',
          r.state,
          r.lastAction ? `${r.lastAction}: ${r.lastResult}` : '-',
          r.exitReason ?? '',
        ]),
      ]),
    );
    const f = h.lastFailover;
    if (f) {
      out.push(
        `  last in service here: ${new Date(f.at).toISOString()}${f.from ? ` after ${f.from} was lost: total ${ms(f.totalMs)} (detect ${ms(f.detectMs)}, ownership ${ms(f.acquireMs)}, start ${ms(f.startMs)})` : `: ownership ${ms(f.acquireMs)}, start ${ms(f.startMs)}`}`,
      );
    }
  }
  return out.join('\n');
}
