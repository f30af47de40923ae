// Hostile load on a running daemon (issue 12, item 6): three real daemons on loopback, and junk
// UDP at the owner from another process as fast as it can send: 1024 source ports of a stranger's
// IP and of a peer's IP, small packets, 60 KiB packets, heartbeats naming a peer signed with a
// wrong key. The invariants, not a speed: no false failover (the hierarchy stays where it is, and
// no node that is not flooded declares a peer down: the owner keeps sending), every junk packet is
// dropped before the HMAC, and the owner's log stays within its drop-log budget (comm.ts: once a
// second per (reason, source IP), at most 10 a second per reason plus one count).
// The flooded node itself may lose peers: its socket buffers are full of junk, the kernel drops
// what does not fit (about half of all packets here, peers' heartbeats among them), and a peer
// silent for a dead time is down as designed. Asserting that it never happens asserted the
// machine's speed (it failed once in a loaded run); it is counted and printed instead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { Flood } from '../../bench/lib/flood.ts';
import { diskAndApp } from './fixtures.ts';

const NET = 79;
const FLOOD_S = 10;
let c: LocalCluster;

before(async () => {
  c = new LocalCluster({ net: NET, hierarchies: { 'h.yaml': diskAndApp('h', ['n1', 'n2', 'n3']) } });
  for (const n of c.nodes) c.start(n, { HARNESS_LOG_LEVEL: 'info' });
});

after(async () => {
  await c.teardown(process.env.KEEP === '1');
});

function target(node: string, path: number): { host: string; port: number } {
  const a = c.addresses(node)[path]!;
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
}

test('a junk flood from 1024 source ports at the owner: no peer down, h stays on n1, drops counted, log within budget', async (t) => {
  await c.waitFor('h in service on n1', async () => (await c.runners('h')).join() === 'n1', 30_000, 100);
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  const flood = new Flood({
    targets: [target('n1', 0), target('n1', 1)],
    // A stranger, and n2's own IP on ports other than its heartbeat port.
    sources: [`127.${NET}.0.200`, `127.${NET}.0.2`],
    ports: 512,
    senders: 1,
    seconds: FLOOD_S,
    cluster: 'local',
    claim: ['n2', 'n3'],
    // The sender is this machine's load, not the attack: it yields to the daemons where it can.
    nice: 10,
  });
  let moved = 0;
  let samples = 0;
  try {
    const sampling = (async () => {
      while (Date.now() - t0 < FLOOD_S * 1000) {
        const r = await c.runners('h');
        samples++;
        if (r.join() !== 'n1' && r.length > 0) moved++;
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    await flood.done();
    await sampling;
  } finally {
    await flood.stop();
  }
  const t1 = Date.now();
  // A second after: drop summaries are written, peers settled.
  await new Promise((r) => setTimeout(r, 2000));
  const sent = flood.total().sent;
  const status = await c.status('n1');
  const dropped = (status.counters as { dropped: Record<string, number> }).dropped;
  const junkDrops = (dropped.unknownNode ?? 0) + (dropped.wrongPath ?? 0);
  assert.ok(sent > 10_000, `the flood sent ${sent} packets`);
  assert.ok(junkDrops > 1000, `n1 received and dropped ${junkDrops} of them (the rest the kernel dropped): ${JSON.stringify(dropped)}`);
  assert.equal(dropped.badMac ?? 0, 0, 'no junk reached the HMAC: none came from a configured source address');

  const during = (n: string) => c.events(n).filter((e) => e.time >= t0 && e.time <= t1 + 2000);
  const downs = (n: string) => during(n).filter((e) => e.event === 'peer-down' || /^comm: node \S+ (down|not heard)/.test(e.msg));
  for (const n of c.nodes.filter((x) => x !== 'n1')) {
    assert.deepEqual(downs(n).map((e) => `${n}: ${e.msg}`), [], `no peer down seen by ${n}`);
  }
  const suspects = during('n1').filter((e) => e.event === 'peer-suspect').length;
  t.diagnostic(`the flooded n1 found a peer suspect ${suspects} times and down ${downs('n1').length} times (${downs('n1').map((e) => e.msg).join('; ')})`);
  assert.equal(moved, 0, `h stayed on n1 (${samples} samples)`);
  assert.equal((await c.runners('h')).join(), 'n1');

  // Log rate on the owner: every line it wrote during the flood, per second.
  const perSecond = new Map<number, number>();
  for (const e of during('n1')) perSecond.set(Math.floor(e.time / 1000), (perSecond.get(Math.floor(e.time / 1000)) ?? 0) + 1);
  const worst = Math.max(0, ...perSecond.values());
  const total = during('n1').length;
  // The flood's drops are one reason (unknownNode) from two IPs: 2 lines a second per IP and
  // reason at most (a line and a count), 11 per reason; 40 a second leaves room for the rest.
  t.diagnostic(`sent ${sent}, n1 dropped ${JSON.stringify(dropped)}, log lines per second ${[...perSecond.values()].join(' ')}`);
  assert.ok(worst <= 40, `n1 wrote at most ${worst} lines in one second (${[...perSecond.values()].join(', ')})`);
  assert.ok(total <= 40 * (FLOOD_S + 3), `n1 wrote ${total} lines during a ${FLOOD_S} s flood`);
  const held = during('n1').reduce((s, e) => s + (typeof e.suppressed === 'number' ? e.suppressed : 0), 0);
  assert.ok(held > 0, 'the drops not logged one by one are counted in the log');
});
