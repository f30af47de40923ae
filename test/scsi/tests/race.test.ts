// The ownership race on real LIO: three node processes, each with its own I_T nexuses, call
// acquire() (fencing/race.ts) for the same free disk at the same instant, 50 times. Exactly one
// may win each time, and the device itself must stop the losers' writes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Key } from '../../../fencing/backend.ts';
import { formatKey } from '../../../fencing/keys.ts';
import { ScsiBackend } from '../../../fencing/scsi.ts';
import { NODE_NAMES, bound, diskRef, notInBed, wipe } from './lib/bed.ts';
import type { WriteResult } from './lib/bed.ts';
import { startNodes, stopNodes } from './lib/nodes.ts';
import type { NodeProc } from './lib/nodes.ts';

const skip = notInBed();
const ROUNDS = Number(process.env.HARNESS_SCSI_RACE_ROUNDS ?? 50);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`HARNESS_SCSI_RACE_ROUNDS must be a positive integer, got ${process.env.HARNESS_SCSI_RACE_ROUNDS}`);
const scsi = new ScsiBackend();
let nodes: NodeProc[] = [];

type Outcome = { ok: true; key: Key; lateMs: number } | { ok: false; reason: string; detail: string; lateMs: number };

before(async () => {
  if (skip) return;
  await wipe(0);
  nodes = await startNodes([...NODE_NAMES]);
});
after(async () => {
  await stopNodes(nodes);
});

test(`three nodes race for one free disk ${ROUNDS} times: exactly one winner, only it writes`, { skip, timeout: bound(480_000) }, async (t) => {
  const wins = new Map<string, number>(NODE_NAMES.map((n) => [n, 0]));
  const roundMs: number[] = [];
  const skew: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = performance.now();
    // Start line a little ahead, so that all three are waiting for it when it comes.
    const atMs = Date.now() + 400;
    const outcomes = await Promise.all(nodes.map((n) => n.call<Outcome>('race', { atMs, delayMs: 0 })));
    skew.push(Math.max(...outcomes.map((o) => o.lateMs)) - Math.min(...outcomes.map((o) => o.lateMs)));
    const winners = nodes.filter((_, i) => outcomes[i]?.ok);
    const story = outcomes.map((o, i) => `${nodes[i]?.name}: ${o.ok ? `won with ${formatKey(o.key)}` : `${o.reason} (${o.detail})`}`).join('; ');
    assert.equal(winners.length, 1, `round ${round}: ${story}`);
    const winner = winners[0] as NodeProc;
    const winKey = (outcomes[nodes.indexOf(winner)] as { key: Key }).key;
    for (const o of outcomes) if (!o.ok) assert.ok(['lost-race', 'held-by-reachable'].includes(o.reason), `round ${round}: ${story}`);
    wins.set(winner.name, (wins.get(winner.name) ?? 0) + 1);

    // The device agrees (node3's view; node3 may be the winner or a loser).
    const state = await scsi.readReservation(diskRef('node3'));
    assert.equal(state.holder, winKey, `round ${round}: the device names another holder`);

    for (const n of nodes) {
      const writes = await n.call<(WriteResult & { path: string })[]>('write', { block: 8192 + round });
      for (const w of writes) {
        if (n === winner) assert.ok(w.ok, `round ${round}: winner ${n.name} could not write through ${w.path}: ${w.error}`);
        else {
          assert.ok(!w.ok, `round ${round}: loser ${n.name} WROTE through ${w.path} while ${winner.name} holds the disk`);
          assert.match(w.error, /Invalid exchange/, `round ${round}: ${n.name} ${w.path} failed, but not with a reservation conflict`);
        }
      }
    }

    await winner.call('release');
    // No reservation without a registration: no keys left means free, and the losers gave back.
    assert.deepEqual((await scsi.readKeys(diskRef('node2'))).keys, [], `round ${round}: registrations left after the winner released`);
    roundMs.push(performance.now() - t0);
    if (round % 10 === 0) console.log(`race: ${round}/${ROUNDS} rounds, one winner each (last round ${roundMs.at(-1)?.toFixed(0)} ms)`);
  }
  roundMs.sort((a, b) => a - b);
  skew.sort((a, b) => a - b);
  const msg = `wins ${[...wins].map(([n, w]) => `${n}=${w}`).join(' ')}; round time min ${roundMs[0]?.toFixed(0)} / median ${roundMs[Math.floor(roundMs.length / 2)]?.toFixed(0)} / max ${roundMs.at(-1)?.toFixed(0)} ms; start skew (latest minus earliest racer) median ${skew[Math.floor(skew.length / 2)]} ms, max ${skew.at(-1)} ms`;
  t.diagnostic(msg);
  console.log(`race: ${msg}`);
});
