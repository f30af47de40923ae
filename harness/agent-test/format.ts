// The human-readable report of `harness agent test`: one line per check, the evidence of every
// check that did not pass indented below it, a summary line last.
import type { AgentTestReport, Evidence } from './run.ts';

const MARK = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'skip' } as const;

function indent(s: string, pad: string): string {
  return s.split('\n').map((l) => pad + l).join('\n');
}

function evidence(e: Evidence): string {
  const lines = [`$ ${e.command}`, `  → rc ${e.rc ?? '-'} (${e.result}) in ${e.durationMs} ms${e.timeoutMs ? ` (timeout ${e.timeoutMs} ms)` : ''}${e.exitReason ? `, exit reason: ${e.exitReason}` : ''}`];
  if (e.stdout) lines.push('  stdout:', indent(e.stdout, '    | '));
  if (e.stderr) lines.push('  stderr:', indent(e.stderr, '    | '));
  return lines.join('\n');
}

export function formatAgentTest(r: AgentTestReport, opts: { verbose?: boolean } = {}): string {
  const out = [`harness agent test ${r.agent} (${r.path}), instance ${r.instance}`];
  for (const c of r.checks) {
    out.push(`  ${MARK[c.verdict]}  ${c.name.padEnd(19)} ${indent(c.summary, ' '.repeat(27)).trimStart()}`);
    if (c.verdict === 'fail' || c.verdict === 'warn' || opts.verbose) for (const e of c.evidence) out.push(indent(evidence(e), '        '));
  }
  if (r.cleanedUp.length) out.push(`  cleanup: killed what the test left running: ${r.cleanedUp.map((p) => `pid ${p.pid} ${p.cmd}`).join('; ')}`);
  out.push(`${r.ok ? 'OK' : 'FAILED'}: ${r.counts.pass} passed, ${r.counts.warn} warnings, ${r.counts.fail} failed, ${r.counts.skip} skipped in ${(r.durationMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}
