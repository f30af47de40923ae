// One cluster "node" of the SCSI tier as its own process, using only its own device paths (its
// own I_T nexuses), the way a daemon on a separate machine would. The parent drives it over IPC
// (child_process.fork, 'advanced' serialisation so keys stay bigint); see NodeProc in nodes.ts.
//
// Requests: { id, op, ... }  ->  replies { id, ok: true, value } | { id, ok: false, error, code }
//   race      { atMs, delayMs, reachable, livenessWindowMs, disks }  acquire() at wall-clock atMs
//   keep      { hierarchy }   start the ownership keeper (refresh + check) on what `race` took
//   release   {}              keeper release (or backend release of the raced disks)
//   write     { block }       one O_DIRECT write through every path of disk 0, per-path result
//   ownership { hierarchy }   the keeper's view, and every 'lost' event so far
//   reset     {}              forget keeper and race state without touching the disks
//   backend   { method, args } call one ScsiBackend primitive on this node's DiskRef
import pino from 'pino';
import type { DiskRef, Key } from '../../../../fencing/backend.ts';
import { OwnershipError } from '../../../../fencing/backend.ts';
import { nodeKey, nodePart } from '../../../../fencing/keys.ts';
import { OwnershipKeeper } from '../../../../fencing/ownership.ts';
import { acquire } from '../../../../fencing/race.ts';
import { ScsiBackend } from '../../../../fencing/scsi.ts';
import { DEFAULTS } from '../../../../harness/defaults.ts';
import { CLUSTER, NODE_NAMES, TIME_SCALE, diskRef, writeBlock } from './bed.ts';
import type { NodeName } from './bed.ts';

const self = process.argv[2] as NodeName;
if (!NODE_NAMES.includes(self)) throw new Error(`node.ts: unknown node ${String(process.argv[2])}`);
const log = pino({ level: process.env.HARNESS_SCSI_LOG ?? 'warn', base: { node: self } }, pino.destination(2));
const backend = new ScsiBackend({ log });
const disks: Record<number, DiskRef> = { 0: diskRef(self, 0), 1: diskRef(self, 1) };
let raced: { disks: DiskRef[]; key: Key } | null = null;
let keeper: OwnershipKeeper | null = null;
const lost: { hierarchy: string; by: Key | null; detail: string; atMs: number }[] = [];

/** Node names by the node part of their keys, so holders read as names in outcomes. */
const partToNode = new Map<number, string>();
for (const n of NODE_NAMES) partToNode.set(nodePart(nodeKey(CLUSTER, n, 0)), n);

type Req = { id: number; op: string } & Record<string, unknown>;

async function handle(req: Req): Promise<unknown> {
  switch (req.op) {
    case 'race': {
      const which = (req.disks as number[] | undefined) ?? [0];
      const wait = (req.atMs as number) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const lateMs = Date.now() - (req.atMs as number); // how far behind the start line we began
      const ds = which.map((d) => disks[d] as DiskRef);
      const reachable = req.reachable !== false;
      const outcome = await acquire(backend, ds, {
        cluster: CLUSTER,
        self,
        delayMs: (req.delayMs as number | undefined) ?? 0,
        holderInfo: (key: Key) => ({ node: partToNode.get(nodePart(key)) ?? null, reachable }),
        livenessWindowMs: (req.livenessWindowMs as number | undefined) ?? DEFAULTS.livenessWindowMs * TIME_SCALE,
        keyPollMs: DEFAULTS.keyPollMs * TIME_SCALE,
      });
      if (outcome.ok) raced = { disks: ds, key: outcome.key };
      return { ...outcome, lateMs, tookMs: Date.now() - (req.atMs as number) - lateMs };
    }
    case 'keep': {
      if (!raced) throw new Error('keep: nothing raced for');
      keeper = new OwnershipKeeper({
        backend,
        cluster: CLUSTER,
        self,
        log,
        keyRefreshMs: DEFAULTS.keyRefreshMs * TIME_SCALE,
        ownershipCheckMs: DEFAULTS.ownershipCheckMs * TIME_SCALE,
      });
      keeper.on('lost', (hierarchy: string, by: Key | null, detail: string) => lost.push({ hierarchy, by, detail, atMs: Date.now() }));
      keeper.adopt(req.hierarchy as string, raced.disks, raced.key);
      return null;
    }
    case 'ownership':
      return { state: keeper?.get(req.hierarchy as string) ?? null, lost };
    case 'release': {
      if (keeper) {
        await keeper.release(req.hierarchy as string);
        keeper.stop();
        keeper = null;
      } else if (raced) {
        for (const d of raced.disks) await backend.release(d, raced.key);
      }
      raced = null;
      return null;
    }
    case 'reset': {
      keeper?.stop();
      keeper = null;
      raced = null;
      lost.length = 0;
      return null;
    }
    case 'write': {
      const d = disks[(req.disk as number | undefined) ?? 0] as DiskRef;
      return Promise.all(d.paths.map(async (p) => ({ path: p, ...(await writeBlock(p, req.block as number)) })));
    }
    case 'backend': {
      const d = disks[(req.disk as number | undefined) ?? 0] as DiskRef;
      const args = (req.args as unknown[] | undefined) ?? [];
      const fn = (backend as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[req.method as string];
      if (typeof fn !== 'function') throw new Error(`no backend method ${String(req.method)}`);
      return fn.call(backend, d, ...args);
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

process.on('message', (req: Req) => {
  handle(req).then(
    (value) => process.send?.({ id: req.id, ok: true, value }),
    (err: unknown) =>
      process.send?.({
        id: req.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        code: err instanceof OwnershipError ? err.code : null,
      }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, value: 'ready' });
