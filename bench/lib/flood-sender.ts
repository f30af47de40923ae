// A junk sender, run as its own process (bench/lib/flood.ts starts it): UDP packets as fast as it
// can to the target addresses, from many source ports, until killed or for `seconds`. Every
// second it prints `{"t":<ms>,"sent":N,"bytes":B,"errors":E}` on stdout (counts of that second).
//
// The junk: small random packets (some start with the heartbeat magic "HBT" and version 2, so they
// get past the magic check), 60 KiB packets, and heartbeats that name a peer (`claim`) but are
// signed with a wrong key. Sockets are bound to the `sources` IPs (a stranger's, a peer's IP), on
// ports the kernel picks: no spoofing (which would take raw sockets), but a flood from one host
// using many ports, and from a peer's own IP on ports that are not its heartbeat port.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { encode } from '../../harness/packet.ts';

interface Args {
  targets: Array<{ host: string; port: number }>;
  sources: string[];
  /** Sockets (source ports) per source IP. */
  ports: number;
  seconds: number;
  cluster: string;
  claim: string[];
  /** Fraction of packets that are 60 KiB (default 0.2). */
  large?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const large = args.large ?? 0.2;

function junk(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 16; i++) out.push(randomBytes(40 + ((i * 37) % 400)));
  for (let i = 0; i < 16; i++) {
    const b = randomBytes(100 + ((i * 53) % 1200));
    Buffer.from('HBT\x02\x00').copy(b);
    out.push(b);
  }
  const wrongKey = randomBytes(32);
  for (const node of args.claim) {
    for (let s = 0; s < 8; s++) {
      out.push(encode({ cluster: args.cluster, node, incarnation: Date.now(), path: s % 2, seq: 1e9 + s, advertVersion: 1, advertDigest: '0123456789abcdef', heard: {} }, wrongKey));
    }
  }
  return out;
}

const small = junk();
const big = Array.from({ length: 4 }, () => {
  const b = randomBytes(60 * 1024);
  Buffer.from('HBT\x02\x01').copy(b);
  return b;
});

const sockets: Socket[] = [];
for (const ip of args.sources) {
  for (let i = 0; i < args.ports; i++) {
    const s = createSocket('udp4');
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind({ address: ip, port: 0 }, () => {
        s.off('error', rej);
        res();
      });
    });
    s.on('error', () => {}); // ECONNREFUSED and the like: junk does not care
    sockets.push(s);
  }
}

let sent = 0;
let bytes = 0;
let errors = 0;
let inFlight = 0;
let n = 0;
const until = Date.now() + args.seconds * 1000;
let second = Date.now();
let stopping = false;

function report(): void {
  process.stdout.write(JSON.stringify({ t: Date.now(), sent, bytes, errors }) + '\n');
  sent = 0;
  bytes = 0;
  errors = 0;
}

const done = (err: Error | null) => {
  inFlight--;
  if (err) errors++;
};

function burst(): void {
  if (stopping) return;
  // A bounded number in flight: dgram queues sends it cannot do at once, and memory must not grow.
  for (let i = 0; i < 512 && inFlight < 2048; i++) {
    n++;
    const sock = sockets[n % sockets.length] as Socket;
    const target = args.targets[n % args.targets.length] as { host: string; port: number };
    const buf = (n % 1000) / 1000 < large ? (big[n % big.length] as Buffer) : (small[n % small.length] as Buffer);
    inFlight++;
    sent++;
    bytes += buf.length;
    try {
      sock.send(buf, target.port, target.host, done);
    } catch {
      inFlight--;
      errors++;
    }
  }
  const now = Date.now();
  if (now - second >= 1000) {
    second = now;
    report();
  }
  if (now >= until) return stop();
  setImmediate(burst);
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  report();
  for (const s of sockets) s.close();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
burst();
