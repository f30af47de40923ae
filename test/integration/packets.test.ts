// g) forged, replayed, truncated and wrong-cluster heartbeats sent to a real daemon over real UDP
//    are rejected and counted; the daemon keeps running and its view is not poisoned.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster } from '../../harness/local-cluster.ts';
import { diskAndApp } from './fixtures.ts';
import { encode, type Heartbeat } from '../../harness/packet.ts';
import { readAuthKey } from '../../harness/authkey.ts';

const c = new LocalCluster({
  net: 84,
  hierarchies: {
    'h.yaml': diskAndApp('h', ['n1', 'n3']),
  },
});
after(() => c.teardown(process.env.KEEP === '1'));

test('g) forged / replayed / truncated / wrong-cluster heartbeats are dropped and counted', async () => {
  c.start('n1');
  await c.waitFor('n1 answers', () => c.tryStatus('n1'), 15_000, 100);
  const key = readAuthKey(join(c.dir, 'authkey'));
  const [n1host, n1port] = c.addresses('n1')[0]!.split(':') as [string, string];
  const [n3host, n3port] = c.addresses('n3')[0]!.split(':') as [string, string];
  // We impersonate n3's address on path 0 (n3's daemon is not running).
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(Number(n3port), n3host, () => r()));
  const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, Number(n1port), n1host, () => r()));
  const hb = (seq: number, over: Partial<Heartbeat> = {}): Heartbeat => ({
    cluster: 'local', node: 'n3', incarnation: Date.now(), path: 0, seq,
    hierarchies: { h: { state: 'in-service', epoch: 1, eligible: true } }, ...over,
  });
  const inc = Date.now();
  const good = encode(hb(10, { incarnation: inc }), key);
  await send(good); // accepted: n3 is up on path 0
  await send(good); // exact replay
  await send(encode(hb(9, { incarnation: inc }), key)); // older seq
  await send(encode(hb(11, { incarnation: inc - 5000 }), key)); // older incarnation
  const forged = Buffer.from(encode(hb(12, { incarnation: inc, hierarchies: {} }), key));
  forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff; // bad MAC
  await send(forged);
  await send(encode(hb(13, { incarnation: inc }), Buffer.from('not the cluster key at all!!'))); // forged with another key
  await send(good.subarray(0, 6)); // truncated
  await send(encode(hb(14, { incarnation: inc, cluster: 'other' }), key)); // wrong cluster
  await send(Buffer.from('GET / HTTP/1.0\r\n\r\n')); // garbage
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  const s = await c.status('n1');
  const d = (s.counters as { dropped: Record<string, number> }).dropped;
  console.log(`# drop counters: ${JSON.stringify(d)}`);
  assert.ok(d.replayed! >= 3, 'replays counted');
  assert.ok(d.badMac! >= 2, 'forged MACs counted');
  assert.ok(d.truncated! >= 1, 'truncated counted');
  assert.ok(d.wrongCluster! + d.badMac! >= 3, 'wrong cluster rejected (before or after MAC check)');
  assert.ok(d.badMagic! + d.truncated! + d.malformed! >= 2, 'garbage counted');
  // The daemon is alive and only the one authentic packet was believed.
  const again = await c.status('n1');
  assert.equal(again.node, 'n1');
  const log = readFileSync(c.logFile('n1'), 'utf8');
  assert.match(log, /replay/i);
});
