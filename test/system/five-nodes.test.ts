// Five real nodes (namespaces, real daemons and agents, the `web` stack, the file backend's disk
// reachable from every node), real network faults (nftables in the nodes' own namespaces), and
// one invariant sampled throughout: never two nodes running `web` with ownership.
//  - two nodes power off at once (the owner and the next in line): the third in line takes over;
//  - a 2|3 partition, the disk and the gateway reachable from both sides: the owner's side keeps
//    it (the other side sees its key move on the disk), nothing moves;
//  - a one-way link loss (the owner hears the most preferred other node, which does not hear the
//    owner and races for the disk): nothing moves either.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Bed } from '../../bench/lib/bed.ts';
import { DEFAULT_PROFILE } from '../../bench/lib/config.ts';
import { daemonStatus, logOffset, readEvents } from '../../bench/lib/daemon.ts';
import type { TestNode } from '../../bench/lib/cluster.ts';

const skip =
  process.getuid?.() !== 0
    ? 'needs root (namespaces)'
    : !existsSync('/usr/lib/ocf/resource.d/heartbeat/IPaddr2')
      ? 'resource-agents not installed'
      : !existsSync('/usr/sbin/nft')
        ? 'nftables not installed'
        : false;

const H = 'web';
/** Generous: a loaded CI machine may be several times slower than the targets. */
const BOUND_MS = 15_000;
let bed: Bed;

before(async () => {
  if (skip) return;
  bed = await Bed.create({ profile: DEFAULT_PROFILE, kind: 'web', nodes: 5 });
  await bed.settle(90_000);
});

after(() => {
  bed?.teardown();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who runs H with ownership, by each live daemon's own word. */
async function runners(): Promise<string[]> {
  const nodes = bed.cluster.nodes.filter((n) => bed.daemonsUp.has(n.name));
  const docs = await Promise.all(nodes.map((n) => daemonStatus(n, 400)));
  return nodes.filter((_n, i) => docs[i]?.hierarchies.some((h) => h.name === H && (h.phase === 'in-service' || h.phase === 'restarting') && h.ownership === 'owned')).map((n) => n.name);
}

/** Sample runners() until stopped; the most nodes ever seen running H at once. */
function sampler() {
  let worst: string[] = [];
  let samples = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      const r = await runners();
      samples++;
      if (r.length > worst.length) worst = r;
      await sleep(50);
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { worst, samples };
    },
  };
}

async function owner(): Promise<TestNode> {
  const owners = await bed.settle(60_000);
  const name = owners.get(H);
  const node = bed.cluster.nodes.find((n) => n.name === name);
  assert.ok(node, `nobody runs ${H}`);
  return node;
}

/** The nodes in H's priority order (the bed lists them n1..n5). */
function after_(node: TestNode, k: number): TestNode {
  const nodes = bed.cluster.nodes;
  return nodes[(nodes.indexOf(node) + k) % nodes.length] as TestNode;
}

/** Did any of `nodes` try to take H and find the owner alive on the disk since the offsets? (the fault was real) */
function refusedOnDisk(nodes: TestNode[], offsets: Map<string, number>): string[] {
  return nodes.filter((n) => readEvents(n, offsets.get(n.name) ?? 0).some((e) => e.event === 'acquire-failed' && e.hierarchy === H && e.reason === 'owner-alive-on-disk')).map((n) => n.name);
}

async function waitRunner(pred: (r: string[]) => boolean, what: string): Promise<string[]> {
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    const r = await runners();
    if (pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`timed out after ${BOUND_MS} ms waiting for ${what} (runners: ${r.join(', ') || 'none'})`);
    await sleep(100);
  }
}

test('five nodes: two power off at once, one more takes over; never two runners', { skip }, async () => {
  const o = await owner();
  const s = sampler();
  const down = [o, after_(o, 1)];
  const t0 = Date.now();
  for (const n of down) {
    bed.cluster.powerOff(n);
    bed.markDown(n);
  }
  const r = await waitRunner((x) => x.length === 1, `${H} in service on a survivor`);
  const ms = Date.now() - t0;
  const { worst, samples } = await s.finish();
  console.log(`# 2 of 5 powered off (${down.map((n) => n.name).join(', ')}): ${H} on ${r[0]} after ${ms} ms; ${samples} samples, at most ${worst.length} runner(s)`);
  assert.ok(worst.length <= 1, `two runners at once: ${worst.join(', ')}`);
  assert.ok(!down.some((n) => n.name === r[0]));
  for (const n of down) await bed.rebootNode(n);
});

test('five nodes: a 2|3 partition with the disk reachable from both sides moves nothing; never two runners', { skip }, async () => {
  const o = await owner();
  const sideA = [o, after_(o, 1)];
  const sideB = bed.cluster.nodes.filter((n) => !sideA.includes(n));
  const offsets = new Map(bed.cluster.nodes.map((n) => [n.name, logOffset(n)]));
  const s = sampler();
  for (const a of sideA) for (const b of sideB) {
    bed.cluster.dropFrom(a, b);
    bed.cluster.dropFrom(b, a);
  }
  try {
    // Long enough for the other side to declare the owner dead and race for the disk.
    await sleep(3 * DEFAULT_PROFILE.deadTimeMs + 2000);
    const { worst, samples } = await s.finish();
    const r = await runners();
    console.log(`# 2|3 partition (${sideA.map((n) => n.name).join(',')} | ${sideB.map((n) => n.name).join(',')}): ${samples} samples, at most ${worst.length} runner(s); ${H} on ${r.join(', ')}`);
    assert.ok(worst.length <= 1, `two runners at once: ${worst.join(', ')}`);
    assert.deepEqual(r, [o.name], `${H} moved during the partition`);
    assert.ok(refusedOnDisk(sideB, offsets).length > 0, 'nobody on the other side raced for the disk: was the partition real?');
  } finally {
    for (const n of bed.cluster.nodes) bed.cluster.clearDrops(n);
  }
});

test('five nodes: a one-way link loss (the most preferred other node does not hear the owner) moves nothing; never two runners', { skip }, async () => {
  const o = await owner();
  // The most preferred other node: not hearing the owner, it is the one that races for the disk.
  const next = bed.cluster.nodes.find((n) => n !== o) as TestNode;
  const offsets = new Map(bed.cluster.nodes.map((n) => [n.name, logOffset(n)]));
  const s = sampler();
  bed.cluster.dropFrom(next, o);
  try {
    await sleep(3 * DEFAULT_PROFILE.deadTimeMs + 2000);
    const { worst, samples } = await s.finish();
    const r = await runners();
    console.log(`# one-way loss ${o.name} -> ${next.name}: ${samples} samples, at most ${worst.length} runner(s); ${H} on ${r.join(', ')}`);
    assert.ok(worst.length <= 1, `two runners at once: ${worst.join(', ')}`);
    assert.deepEqual(r, [o.name], `${H} moved on a one-way link loss`);
    assert.deepEqual(refusedOnDisk([next], offsets), [next.name], `${next.name} never raced for the disk: was the link loss real?`);
  } finally {
    bed.cluster.clearDrops(next);
  }
});
