// Generic application resources (`app:` in a hierarchy): an admin's own start, stop and monitor
// commands, no OCF agent to write (LifeKeeper's Generic Application, VCS's Application). They
// run as the bundled agent ocf:harness:app (agents/resource.d/harness/app), so they get exactly
// what agents get: the runner's process-group kill at the timeout, timeouts, monitors with
// intervals, probes, validate-all before every start, restarts, the guard's stop and
// `harness agent test`. This file turns the YAML into that agent's parameters.
//
// Each command is split into argv here, without a shell (quotes '…' and "…" and backslash
// escapes group words, nothing is expanded), or given to /bin/sh -c with `shell: true`. The argv
// travels in one parameter, its words joined by ASCII unit separator (0x1f), which the agent
// splits on: no shell ever re-reads a word.
import { accessSync, constants, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { execFileSync } from 'node:child_process';

export const APP_PROVIDER = 'harness';
export const APP_TYPE = 'app';
export const ARG_SEPARATOR = '\x1f';

export interface AppSpec {
  start: string;
  stop: string;
  monitor: string;
  user?: string | undefined;
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  shell?: boolean | undefined;
}

export const APP_COMMANDS = ['start', 'stop', 'monitor'] as const;

/** Split a command line into words as a shell would for quoting only; throws on an open quote. */
export function splitCommand(cmd: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < cmd.length; i++) {
    const ch = cmd[i] as string;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else cur += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && i + 1 < cmd.length && '"\\$`'.includes(cmd[i + 1] as string)) cur += cmd[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= cmd.length) throw new Error('ends with a lone backslash');
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw new Error(`a ${quote === '"' ? 'double' : 'single'} quote is not closed`);
  if (inWord) words.push(cur);
  return words;
}

/** The argv a command runs as. */
export function argvOf(cmd: string, shell: boolean | undefined): string[] {
  return shell ? ['/bin/sh', '-c', cmd] : splitCommand(cmd);
}

/** What is wrong with the spec's syntax (any node): field → message. */
export function appSyntaxProblems(app: AppSpec): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  for (const c of APP_COMMANDS) {
    let argv: string[];
    try {
      argv = argvOf(app[c], app.shell);
    } catch (e) {
      out.push({ field: c, message: `cannot split into words: ${(e as Error).message} (or set \`shell: true\`)` });
      continue;
    }
    if (argv.length === 0) out.push({ field: c, message: 'empty command' });
    if (argv.some((w) => w.includes(ARG_SEPARATOR) || w.includes('\0'))) out.push({ field: c, message: 'contains a control character (0x1f or NUL)' });
  }
  for (const [k, v] of Object.entries(app.env ?? {})) {
    if (v.includes(ARG_SEPARATOR) || v.includes('\0')) out.push({ field: `env.${k}`, message: 'contains a control character (0x1f or NUL)' });
  }
  return out;
}

/** The parameters of ocf:harness:app for this spec (the spec must be free of syntax problems). */
export function appParams(app: AppSpec): Record<string, string> {
  const params: Record<string, string> = {};
  for (const c of APP_COMMANDS) params[c] = argvOf(app[c], app.shell).join(ARG_SEPARATOR);
  if (app.user !== undefined) params.user = app.user;
  if (app.cwd !== undefined) params.cwd = app.cwd;
  const env = Object.entries(app.env ?? {}).map(([k, v]) => `${k}=${v}`);
  if (env.length) params.env = env.join(ARG_SEPARATOR);
  return params;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Checks that need this node, on ocf:harness:app's parameters: commands exist and are executable, the user and cwd exist. */
export function appNodeProblems(params: Record<string, string>, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  const cwd = params.cwd;
  for (const c of APP_COMMANDS) {
    const prog = (params[c] ?? '').split(ARG_SEPARATOR)[0] ?? '';
    if (prog === '') continue;
    if (prog.includes('/')) {
      if (!isAbsolute(prog) && cwd === undefined) out.push({ field: c, message: `${prog}: a relative path needs \`cwd:\` (commands run in /)` });
      else if (!executable(isAbsolute(prog) ? prog : join(cwd as string, prog))) out.push({ field: c, message: `${prog}: not an executable file on this node` });
    } else if (!path.split(delimiter).some((d) => d !== '' && executable(join(d, prog)))) {
      out.push({ field: c, message: `${prog}: not found on this node's PATH (${path})` });
    }
  }
  if (cwd !== undefined) {
    let dir = false;
    try {
      dir = statSync(cwd).isDirectory();
    } catch {
      // missing
    }
    if (!dir) out.push({ field: 'cwd', message: `${cwd}: no such directory on this node` });
  }
  const user = params.user;
  if (user !== undefined && user !== userInfo().username) {
    try {
      execFileSync('id', ['-u', '--', user], { stdio: 'ignore' });
    } catch {
      out.push({ field: 'user', message: `no user ${user} on this node` });
    }
  }
  return out;
}
