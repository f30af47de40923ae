// Validate a configuration in a short-lived child process (`harness validate --json`), for the
// daemon: the YAML parser, the schema library and the agents' meta-data live and die there, so
// the long-running daemon neither carries their memory (~20 MiB) nor can be crashed by a parser
// bug on a bad file. Same checks, same messages as `harness validate`.
//
// Bounded: the child is killed after `timeoutMs`, and the issue then says so, with how long it ran
// and the step it was at (it reports each step on stderr behind VALIDATE_STEP), so a check that
// starved or hung on one agent's meta-data is named rather than silent.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Config } from './model.ts';
import type { ConfigIssue } from './issues.ts';
import { DEFAULTS } from '../harness/defaults.ts';

// The same flavour as this file: dist/bin/harness.js from the build, bin/harness.ts from source.
const HARNESS_BIN = fileURLToPath(new URL(`../bin/harness.${import.meta.url.endsWith('.js') ? 'js' : 'ts'}`, import.meta.url));

/** Prefix of the progress lines `harness validate --json` writes on stderr. */
export const VALIDATE_STEP = 'validate-step: ';

/** The last step a child reported, and its stderr without the step lines. */
export function splitSteps(stderr: string): { step: string | null; rest: string } {
  let step: string | null = null;
  const rest: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line.startsWith(VALIDATE_STEP)) step = line.slice(VALIDATE_STEP.length);
    else if (line.trim() !== '') rest.push(line);
  }
  return { step, rest: rest.join('\n').slice(-2000) };
}

/** Environment variable: the nice value the child runs agents at (the daemon's agentNice). */
export const AGENT_NICE_ENV = 'HARNESS_AGENT_NICE';

export function validateInChild(
  clusterFile: string,
  timeoutMs: number = DEFAULTS.configCheckTimeoutMs,
  agentNice?: number,
): Promise<{ config?: Config; issues: ConfigIssue[]; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [HARNESS_BIN, 'validate', '--json', clusterFile],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HARNESS_LOG_LEVEL: 'silent', ...(agentNice !== undefined ? { [AGENT_NICE_ENV]: String(agentNice) } : {}) } },
      (err, stdout, stderr) => {
        const ms = Math.round(performance.now() - t0);
        try {
          const doc = JSON.parse(stdout) as { config?: Config; issues: ConfigIssue[] };
          resolve({ ...doc, ms });
        } catch {
          const { step, rest } = splitSteps(stderr);
          const at = step ? `; it was at: ${step}` : '; it reported no step (still starting)';
          const why =
            err && (err as { killed?: boolean }).killed
              ? `did not finish within ${timeoutMs} ms and was killed${at}`
              : `failed to run (${err ? `${err.message.split('\n')[0]}${exitOf(err)}` : 'no output'} after ${ms} ms${rest ? `: ${rest}` : ''})${at}`;
          resolve({ issues: [{ file: clusterFile, field: '', message: `configuration check (${process.execPath} ${HARNESS_BIN} validate --json) ${why}` }], ms });
        }
      },
    );
  });
}

/** ", exit code N" or ", killed by SIGX" for a failed child: the evidence execFile's message leaves out. */
function exitOf(err: Error & { code?: unknown; signal?: unknown }): string {
  if (typeof err.signal === 'string' && err.signal !== '') return `, killed by ${err.signal}`;
  if (typeof err.code === 'number') return `, exit code ${err.code}`;
  return '';
}
