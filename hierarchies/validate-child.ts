// Validate a configuration in a short-lived child process (`harness validate --json`), for the
// daemon: the YAML parser, the schema library and the agents' meta-data live and die there, so
// the long-running daemon neither carries their memory (~20 MiB) nor can be crashed by a parser
// bug on a bad file. Same checks, same messages as `harness validate`.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Config } from './model.ts';
import type { ConfigIssue } from './issues.ts';

// The same flavour as this file: dist/bin/harness.js from the build, bin/harness.ts from source.
const HARNESS_BIN = fileURLToPath(new URL(`../bin/harness.${import.meta.url.endsWith('.js') ? 'js' : 'ts'}`, import.meta.url));

export function validateInChild(clusterFile: string, timeoutMs = 60_000): Promise<{ config?: Config; issues: ConfigIssue[] }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [HARNESS_BIN, 'validate', '--json', clusterFile],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HARNESS_LOG_LEVEL: 'silent' } },
      (err, stdout, stderr) => {
        try {
          const doc = JSON.parse(stdout) as { config?: Config; issues: ConfigIssue[] };
          resolve(doc);
        } catch {
          const why = err ? `${err.message}${stderr ? `: ${stderr.trim()}` : ''}` : 'no output';
          resolve({ issues: [{ file: clusterFile, field: '', message: `configuration check failed to run (${why})` }] });
        }
      },
    );
  });
}
