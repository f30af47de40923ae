// `harness history [<hierarchy>] [--since <dur>] [--json] [--all ...]`: the failovers this node
// recorded (harness/history.ts), or with --all every node's, merged over SSH as `status --all`
// asks (each node only knows what it saw), and the availability over the window.
import * as z from 'zod';
import type { ClusterConfig } from '../hierarchies/model.ts';
import { stateDirFor } from '../hierarchies/load.ts';
import { parseDuration } from '../hierarchies/duration.ts';
import { availability, formatHistory, readHistory, type HistoryRecord } from './history.ts';
import { printable, printableJson, sshAsk, sshContext, type SshOptions } from './cluster-status.ts';
import { shq } from './guard.ts';

/** "30d", "12h", "90m", "1h30m", "500ms": a duration back from now (days too, unlike the YAML's). */
export function parseSince(text: string): number {
  const d = /^(\d+)d(.*)$/.exec(text.trim());
  if (d) return Number(d[1]) * 86_400_000 + (d[2] ? parseDuration(d[2]) : 0);
  return parseDuration(text);
}

const RecordSchema = z.looseObject({
  at: z.number(),
  hierarchy: z.string(),
  node: z.string(),
  transition: z.enum(['in-service', 'out-of-service', 'failed']),
  cause: z.string(),
  downMs: z.number().optional(),
});
const AnswerSchema = z.looseObject({ node: z.string(), records: z.array(RecordSchema) });

export interface HistoryAnswer {
  node: string;
  records?: HistoryRecord[];
  error?: string;
}

export interface HistoryOptions {
  hierarchy?: string;
  since: number;
  now: number;
}

export async function localHistory(cluster: ClusterConfig, node: string, o: HistoryOptions): Promise<HistoryRecord[]> {
  return readHistory(stateDirFor(cluster, node), { since: o.since, ...(o.hierarchy ? { hierarchy: o.hierarchy } : {}) });
}

/** Every node's records: this node's from its file, the others' over SSH (`harness history --json`). */
export async function gatherHistory(cluster: ClusterConfig, self: string | undefined, o: HistoryOptions, ssh: SshOptions): Promise<HistoryAnswer[]> {
  const { kh, auth } = sshContext(ssh);
  return Promise.all(
    cluster.nodes.map(async (n): Promise<HistoryAnswer> => {
      if (n.name === self) return { node: n.name, records: await localHistory(cluster, n.name, o) };
      const command = `${ssh.remoteHarness} history --json --since-epoch ${o.since} --config ${shq(cluster.file)} --node ${shq(n.name)}${o.hierarchy ? ` ${shq(o.hierarchy)}` : ''}`;
      const r = await sshAsk(n, command, ssh, kh, auth, (out) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(out);
        } catch {
          return { unusable: 'not JSON' };
        }
        const a = AnswerSchema.safeParse(parsed);
        if (!a.success) return { unusable: a.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
        if (a.data.node !== n.name || a.data.records.some((x) => x.node !== n.name)) return { unusable: `records of another node than ${n.name}` };
        return { value: a.data.records as HistoryRecord[] };
      });
      return 'value' in r ? { node: n.name, records: r.value } : { node: n.name, error: r.error };
    }),
  );
}

/** The report (or JSON) for answers; `ok` false when a node did not answer. */
export function historyReport(answers: HistoryAnswer[], o: HistoryOptions, json: boolean): { text: string; ok: boolean } {
  const records = answers.flatMap((a) => a.records ?? []);
  const av = availability(records, o.since, o.now);
  const failed = answers.filter((a) => a.error !== undefined);
  if (json) {
    const doc = answers.length === 1 ? { node: answers[0]!.node, since: o.since, now: o.now, records, availability: av } : { since: o.since, now: o.now, records, availability: av, nodes: answers.map((a) => ({ node: a.node, ...(a.error ? { error: a.error } : { records: a.records!.length }) })) };
    return { text: answers.length === 1 ? JSON.stringify(doc) : printableJson(doc), ok: failed.length === 0 };
  }
  const lines = failed.map((a) => printable(`${a.node}: NO ANSWER — ${a.error}`));
  lines.push(...formatHistory(records, av, o.since, o.now).split('\n').map(printable));
  return { text: lines.join('\n'), ok: failed.length === 0 };
}
