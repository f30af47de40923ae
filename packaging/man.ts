// Man pages and bash completion, generated at package time from what the program itself says, so
// they never drift: harness(8) from `harness --help` and every `harness <command> --help`,
// harness.yaml(5) from the configuration reference (examples/README.md), the completion from the
// same command and option lists.
//
// usage: node packaging/man.ts <harness command...> -- <outdir>
//   e.g. node packaging/man.ts node dist/bin/harness.js -- /tmp/out
import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Help {
  usage: string;
  description: string;
  options: { flags: string; text: string }[];
  commands: { name: string; text: string }[];
  /** Text printed after the options (addHelpText 'after'), kept as laid out. */
  after: string[];
}

/** Parse commander's help text: `Usage:` line, description, `Options:` and `Commands:` blocks. */
export function parseHelp(text: string): Help {
  const lines = text.replace(/\r/g, '').split('\n');
  const usage = (lines[0] ?? '').replace(/^Usage:\s*/, '');
  const help: Help = { usage, description: '', options: [], commands: [], after: [] };
  let section: 'desc' | 'args' | 'options' | 'commands' | 'after' = 'desc';
  const desc: string[] = [];
  let current: { flags: string; text: string } | undefined;
  for (const line of lines.slice(1)) {
    if (/^Arguments:\s*$/.test(line)) section = 'args';
    else if (section === 'args' && !/^Options:\s*$/.test(line)) continue; // the usage line names them
    else if (/^Options:\s*$/.test(line)) section = 'options';
    else if (/^Commands:\s*$/.test(line)) section = 'commands';
    else if (section === 'after') help.after.push(line);
    else if ((section === 'options' || section === 'commands') && !line.trim()) section = 'after';
    else if (section === 'desc') {
      if (line.trim()) desc.push(line.trim());
    } else if (/^ {2}\S/.test(line)) {
      // "  -c, --config <file>   text": flags and text are separated by two or more spaces.
      const m = /^ {2}(\S.*?)(?: {2,}(.*))?$/.exec(line)!;
      current = { flags: m[1]!.trim(), text: (m[2] ?? '').trim() };
      if (section === 'options') help.options.push(current);
      else help.commands.push({ name: current.flags, text: current.text });
    } else if (line.trim() && current) {
      // continuation of the previous entry's text
      const target = section === 'options' ? help.options.at(-1)! : help.commands.at(-1)!;
      target.text = `${target.text} ${line.trim()}`.trim();
    }
  }
  help.description = desc.join(' ');
  return help;
}

/** roff-escape one line of text (backslashes, leading dots/quotes, hyphens in options). */
export function roff(s: string): string {
  return s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/, '\\&$1');
}

/** Markdown inline markup to roff: `code` bold, **strong** bold. */
function inline(s: string): string {
  return roff(s)
    .replace(/`([^`]*)`/g, '\\fB$1\\fR')
    .replace(/\*\*([^*]*)\*\*/g, '\\fB$1\\fR')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
}

function header(name: string, section: number, title: string, version: string): string {
  return `.TH ${name.toUpperCase()} ${section} "" "harness ${version}" "${title}"\n`;
}

/** harness(8): the synopsis and every command's options, from the CLI's own help. */
export function manHarness(top: Help, subs: Map<string, Help>, version: string): string {
  let out = header('harness', 8, 'System Administration', version);
  out += `.SH NAME\nharness \\- ${roff(top.description)}\n.SH SYNOPSIS\n`;
  for (const [name, h] of subs) out += `.B harness ${roff(name)}\n${roff(h.usage.replace(/^harness \S+\s*/, ''))}\n.br\n`;
  out += '.SH DESCRIPTION\n';
  out += 'Every node of a cluster runs the harness daemon; each decides on its own, for every hierarchy of resources, whether it is the master, and the ownership of the hierarchy\'s disks (SCSI\\-3 persistent reservations) is the final arbiter.\n';
  out += 'The configuration is described in\n.BR harness.yaml (5).\n';
  out += '.SH OPTIONS\n';
  for (const o of top.options) out += `.TP\n.B ${roff(o.flags)}\n${roff(o.text)}\n`;
  out += '.SH COMMANDS\n';
  for (const h of subs.values()) {
    out += `.SS ${roff(`harness ${h.usage.replace(/^harness /, '')}`)}\n${roff(h.description)}\n`;
    for (const o of h.options) out += `.TP\n.B ${roff(o.flags)}\n${roff(o.text)}\n`;
    const after = h.after.join('\n').replace(/^\n+|\s+$/g, '');
    if (after) out += `.PP\n.nf\n${after.split('\n').map(roff).join('\n')}\n.fi\n`;
  }
  out += '.SH ENVIRONMENT\n.TP\n.B HARNESS_CONFIG\nthe cluster file (default /etc/harness/cluster.yaml)\n.TP\n.B HARNESS_NODE\nthis node\'s name (default: the host name)\n.TP\n.B HARNESS_LOG_LEVEL\nlog level (default info)\n';
  out += '.SH FILES\n.TP\n.I /etc/harness/cluster.yaml\nthe cluster file\n.TP\n.I /etc/harness/hierarchies/\none file per hierarchy\n.TP\n.I /var/lib/harness/<node>/\nstate: incarnation, the guard\'s stop script\n.SH SEE ALSO\n.BR harness.yaml (5),\n.BR systemctl (1)\n';
  return out;
}

/** harness.yaml(5): the configuration reference in examples/README.md, tables as tagged paragraphs. */
export function manConfig(markdown: string, version: string): string {
  let out = header('harness.yaml', 5, 'File Formats', version);
  out += '.SH NAME\nharness.yaml \\- harness cluster and hierarchy configuration\n';
  let inCode = false;
  let para: string[] = [];
  const flush = () => {
    if (para.length) out += `.PP\n${inline(para.join(' '))}\n`;
    para = [];
  };
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      flush();
      out += inCode ? '.fi\n.RE\n' : '.RS\n.nf\n';
      inCode = !inCode;
      continue;
    }
    if (inCode) {
      out += `${roff(line)}\n`;
      continue;
    }
    const h = /^(#+)\s+(.*)$/.exec(line);
    if (h) {
      flush();
      out += h[1]!.length <= 1 ? '.SH DESCRIPTION\n' : `.SH ${roff(h[2]!.toUpperCase())}\n`;
      continue;
    }
    if (line.startsWith('|')) {
      flush();
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      if (cells.every((c) => /^-+$/.test(c)) || cells[0] === 'field') continue;
      const [field, meaning, def] = cells;
      out += `.TP\n${inline(field ?? '')}\n${inline(meaning ?? '')}${def ? ` (default: ${inline(def)})` : ''}\n`;
      continue;
    }
    if (/^- /.test(line)) {
      flush();
      out += `.IP \\(bu 2\n${inline(line.slice(2))}\n`;
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line.trim());
  }
  flush();
  out += '.SH SEE ALSO\n.BR harness (8)\n';
  return out;
}

/** bash completion: commands, then each command's long options. */
export function completion(subs: Map<string, Help>): string {
  const cases = [...subs]
    .map(([name, h]) => {
      const opts = h.options.flatMap((o) => o.flags.split(/[ ,]+/).filter((f) => f.startsWith('--')));
      return `    ${name}) opts="${opts.join(' ')}" ;;`;
    })
    .join('\n');
  return `# bash completion for harness (generated from its --help)
_harness() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${[...subs.keys()].join(' ')} --help --version" -- "$cur") )
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    *) opts="--help" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -F _harness harness
`;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const sep = args.indexOf('--');
  const [cmd, ...cmdArgs] = args.slice(0, sep);
  const outDir = args[sep + 1]!;
  // Wide lines (no wrapping to parse back), and no build host's name as the default node name.
  const { HARNESS_NODE: _n, HARNESS_CONFIG: _c, ...rest } = process.env;
  const env = { ...rest, COLUMNS: '1000' };
  const run = (...a: string[]) => execFileSync(cmd!, [...cmdArgs, ...a], { env, encoding: 'utf8' }).replaceAll(`"${hostname()}"`, 'the host name');
  const top = parseHelp(run('--help'));
  const subs = new Map<string, Help>();
  for (const c of top.commands) {
    const name = c.name.split(' ')[0]!;
    if (name === 'help') continue;
    subs.set(name, parseHelp(run(name, '--help')));
  }
  const version = run('--version').trim();
  const readme = readFileSync(new URL('../examples/README.md', import.meta.url), 'utf8');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'harness.8'), manHarness(top, subs, version));
  writeFileSync(join(outDir, 'harness.yaml.5'), manConfig(readme, version));
  writeFileSync(join(outDir, 'harness.bash-completion'), completion(subs));
}
