// Configuration problems as the admin sees them: file, line, column, field, message. Kept apart
// from load.ts (YAML + zod) so the long-running daemon can report issues without loading either:
// the daemon validates in a short-lived child process (hierarchies/validate-child.ts).

export interface ConfigIssue {
  file: string;
  line?: number;
  column?: number;
  /** Field path as written in the YAML, e.g. `resources[2].params.port`; '' for the whole file. */
  field: string;
  message: string;
  /** Absent means 'error'. Warnings never make loading fail. */
  severity?: 'error' | 'warning';
}

export class ConfigError extends Error {
  issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** `file:line:col: field: message` (parts that are unknown are left out). */
export function formatIssue(i: ConfigIssue): string {
  let where = i.file;
  if (i.line !== undefined) where += `:${i.line}${i.column !== undefined ? `:${i.column}` : ''}`;
  const warn = i.severity === 'warning' ? 'warning: ' : '';
  return `${where}: ${warn}${i.field ? `${i.field}: ` : ''}${i.message}`;
}

export function isError(i: ConfigIssue): boolean {
  return i.severity !== 'warning';
}
