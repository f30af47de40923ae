// Real processes racing through the FileBackend: three child processes (this same file, started
// with FENCING_RACE_CHILD=1) play nodes n1..n3 and take commands as JSON lines on stdin.
//  - 50 races for a free disk: exactly one winner each time;
//  - 20 races to preempt a frozen holder: exactly one winner each time;
//  - lock stress: 6 initiators in 3 processes register concurrently, no update is lost;
//  - a process SIGKILLed while it works does not block the others (its lock is stale at once).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { FileBackend } from '../../fencing/file.ts';
import { formatKey, nodeKey, nodePart } from '../../fencing/keys.ts';
import { acquire } from '../../fencing/race.ts';

const CLUSTER = 'itest';
const NODES = ['n1', 'n2', 'n3'];

type Command =
  | { op: 'race'; id: number; disk: string; windowMs: number }
  | { op: 'stress'; id: number; disk: string; count: number }
  | { op: 'exit' };
type Reply = { id: number; node: string; ok: boolean; reason?: string; key?: string; detail?: string; ms: number };

// ---------------------------------------------------------------- child side
async function child(dir: string, self: string): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const nodeOf = (key: bigint): string | null => ['n0', ...NODES].find((x) => nodePart(nodeKey(CLUSTER, x, 0)) === nodePart(key)) ?? null;
  let gen = 1;
  for await (const line of lines) {
    const cmd = JSON.parse(line) as Command;
    if (cmd.op === 'exit') break;
    const t0 = performance.now();
    const disk = { id: cmd.disk, paths: [] };
    let reply: Reply;
    if (cmd.op === 'race') {
      const out = await acquire(new FileBackend({ dir, initiator: self }), [disk], {
        cluster: CLUSTER,
        self,
        delayMs: 0,
        generation: gen++,
        // Peers are "reachable" for a free-disk race; the frozen n0 is not.
        holderInfo: (key) => ({ node: nodeOf(key), reachable: nodeOf(key) !== 'n0' }),
        livenessWindowMs: cmd.windowMs,
        keyPollMs: 10,
      });
      reply = out.ok
        ? { id: cmd.id, node: self, ok: true, key: formatKey(out.key), ms: performance.now() - t0 }
        : { id: cmd.id, node: self, ok: false, reason: out.reason, detail: out.detail, ms: performance.now() - t0 };
    } else {
      // Two initiators (two "paths") per process, working concurrently.
      await Promise.all(
        [`${self}-a`, `${self}-b`].map(async (ini, p) => {
          const b = new FileBackend({ dir, initiator: ini });
          for (let i = 1; i <= cmd.count; i++) await b.registerIgnore(disk, nodeKey(CLUSTER, self, p * 100_000 + i));
        }),
      );
      reply = { id: cmd.id, node: self, ok: true, ms: performance.now() - t0 };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
}

if (process.env.FENCING_RACE_CHILD === '1') {
  await child(process.env.FENCING_RACE_DIR ?? '', process.env.FENCING_RACE_NODE ?? '');
  process.exit(0);
}

// ---------------------------------------------------------------- parent side
interface Kid {
  node: string;
  proc: ChildProcessWithoutNullStreams;
  waiting: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
}

let dir = '';
let kids: Kid[] = [];
let nextId = 1;

function startKid(node: string): Kid {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, FENCING_RACE_CHILD: '1', FENCING_RACE_DIR: dir, FENCING_RACE_NODE: node },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const kid: Kid = { node, proc, waiting: new Map() };
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const r = JSON.parse(line) as Reply;
    kid.waiting.get(r.id)?.resolve(r);
    kid.waiting.delete(r.id);
  });
  proc.on('exit', (code, sig) => {
    for (const [id, w] of kid.waiting) w.reject(new Error(`${node} exited (${code ?? sig}) during command ${id}`));
    kid.waiting.clear();
  });
  proc.stderr.on('data', (d: Buffer) => process.stderr.write(`[${node}] ${d.toString()}`));
  return kid;
}

/** Promise of a kid's reply to command `id`, bounded in time. */
function answer(kid: Kid, id: number, boundMs = 20_000): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kid.node}: no answer to command ${id} within ${boundMs} ms`)), boundMs);
    const settle = <T>(f: (v: T) => void) => (v: T) => {
      clearTimeout(timer);
      f(v);
    };
    kid.waiting.set(id, { resolve: settle(resolve), reject: settle(reject) });
  });
}

/** Send one command to each kid in the same tick (so they really race). */
function all(make: (kid: Kid) => Command): Promise<Reply[]> {
  const id = nextId++;
  const replies = kids.map((kid) => answer(kid, id));
  for (const kid of kids) kid.proc.stdin.write(`${JSON.stringify({ ...make(kid), id })}\n`);
  return Promise.all(replies);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fencing-itest-'));
  kids = NODES.map(startKid);
});

after(async () => {
  for (const kid of kids) {
    if (kid.proc.exitCode === null && kid.proc.signalCode === null) {
      kid.proc.stdin.write(`${JSON.stringify({ op: 'exit' })}\n`);
      const t = setTimeout(() => kid.proc.kill('SIGKILL'), 3000);
      await new Promise((r) => kid.proc.once('exit', r));
      clearTimeout(t);
    }
  }
  await rm(dir, { recursive: true, force: true });
});

test('3 processes race for a free disk 50 times: exactly one winner each time', async () => {
  const spread: number[] = [];
  for (let round = 0; round < 50; round++) {
    const disk = `race/free-${round}`;
    const replies = await all(() => ({ op: 'race', id: 0, disk, windowMs: 1000 }));
    const winners = replies.filter((r) => r.ok);
    assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(replies)}`);
    for (const r of replies.filter((x) => !x.ok)) {
      assert.ok(r.reason === 'lost-race' || r.reason === 'held-by-reachable', `round ${round}: ${JSON.stringify(r)}`);
    }
    const b = new FileBackend({ dir, initiator: 'observer' });
    const res = await b.readReservation({ id: disk, paths: [] });
    assert.equal(res.holder === null ? null : formatKey(res.holder), winners[0]!.key);
    assert.deepEqual((await b.readKeys({ id: disk, paths: [] })).keys.map(formatKey), [winners[0]!.key], 'losers left no registration');
    spread.push(Math.max(...replies.map((r) => r.ms)));
  }
  spread.sort((a, b) => a - b);
  console.log(`free-disk race, slowest racer per round: min ${spread[0]!.toFixed(1)} ms, median ${spread[25]!.toFixed(1)} ms, max ${spread[49]!.toFixed(1)} ms`);
});

test('3 processes race to preempt a frozen holder 20 times: exactly one winner each time', async () => {
  const frozen = new FileBackend({ dir, initiator: 'n0' });
  for (let round = 0; round < 20; round++) {
    const disk = { id: `race/frozen-${round}`, paths: [] };
    const k0 = nodeKey(CLUSTER, 'n0', round + 1);
    await frozen.registerIgnore(disk, k0);
    await frozen.reserve(disk, k0);
    const replies = await all(() => ({ op: 'race', id: 0, disk: disk.id, windowMs: 50 }));
    const winners = replies.filter((r) => r.ok);
    assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(replies)}`);
    // A racer that reads the disk after the winner took it sees a reachable holder instead.
    for (const r of replies.filter((x) => !x.ok)) {
      assert.ok(r.reason === 'lost-race' || r.reason === 'held-by-reachable', JSON.stringify(r));
    }
    const keys = (await frozen.readKeys(disk)).keys.map(formatKey);
    assert.deepEqual(keys, [winners[0]!.key], 'the frozen holder and the losers are gone');
    assert.ok(winners[0]!.ms >= 45, 'the winner watched the liveness window');
  }
});

test('lock stress: 6 initiators in 3 processes, 100 registrations each, none lost', async () => {
  const disk = { id: 'stress/one', paths: [] };
  const t0 = performance.now();
  await all(() => ({ op: 'stress', id: 0, disk: disk.id, count: 100 }));
  const ms = performance.now() - t0;
  const b = new FileBackend({ dir, initiator: 'observer' });
  const keys = await b.readKeys(disk);
  assert.equal(keys.generation, 600);
  assert.equal(keys.keys.length, 6);
  console.log(`lock stress: 600 locked read-modify-writes in ${ms.toFixed(0)} ms (${((ms / 600) * 1000).toFixed(0)} µs each)`);
  const leftovers = (await readdir(dir)).filter((f) => f.startsWith('stress__one.') && f !== 'stress__one.json');
  assert.deepEqual(leftovers, [], 'no lock or temp file left');
});

test('a process SIGKILLed mid-work does not block the others', async () => {
  const disk = { id: 'stress/kill', paths: [] };
  const victim = kids[0]!;
  const survivors = kids.slice(1);
  const id = nextId++;
  const done = survivors.map((kid) => answer(kid, id));
  const victimDone = answer(victim, id).catch((e: Error) => e);
  for (const kid of kids) kid.proc.stdin.write(`${JSON.stringify({ op: 'stress', id, disk: disk.id, count: 150 })}\n`);
  // Kill the victim while it holds the lock if we can catch it (it holds it ~1/3 of the time).
  const lockPath = join(dir, 'stress__kill.json.lock');
  const mark = `"pid":${victim.proc.pid},`;
  let heldAtKill = false;
  for (const end = performance.now() + 2000; performance.now() < end && !heldAtKill; ) {
    heldAtKill = (await readFile(lockPath, 'utf8').catch(() => '')).includes(mark);
  }
  victim.proc.kill('SIGKILL');
  console.log(`victim ${victim.node} (pid ${victim.proc.pid}) SIGKILLed ${heldAtKill ? 'right after it was seen holding the lock' : 'without being seen holding the lock'}`);
  assert.match(String(await victimDone), /exited \(SIGKILL\)/);
  const replies = await Promise.all(done);
  assert.equal(replies.length, 2);
  const b = new FileBackend({ dir, initiator: 'observer' });
  const keys = await b.readKeys(disk); // parses: never a torn state file
  for (const kid of survivors) {
    for (const [p, ini] of ['a', 'b'].entries()) {
      assert.ok(keys.keys.includes(nodeKey(CLUSTER, kid.node, p * 100_000 + 150)), `${kid.node}-${ini} finished`);
    }
  }
  assert.ok(keys.generation >= 600, `generation ${keys.generation}`);
});
