// How Comm's heartbeats travel: one endpoint per comm path. UdpTransport (real sockets) is the
// default; MemoryHub/MemoryTransport carry bytes between Comms of one process, for tests.
//
// A Transport serves one Comm, which binds every path, then sends and receives, then closes it.
// Packets are reported with their source as a canonical "host:port" key (what parseAddress
// gives as `key`): Comm trusts a packet only as far as that source is a configured address.

import { createSocket, type Socket } from 'node:dgram';
import { SocketAddress, isIP } from 'node:net';

export interface PathAddress {
  host: string;
  port: number;
  family: 4 | 6;
  /** Canonical "host:port", as a received packet's source key reads. */
  key: string;
  /** As configured (for messages). */
  text: string;
}

export type PacketHandler = (path: number, bytes: Buffer, sourceKey: string, fromText: string) => void;

export interface Transport {
  /** Set the receiver of every packet on every path (before bind). */
  onPacket(handler: PacketHandler): void;
  /** Set the receiver of errors of a bound path (after bind: a socket error, not a send failure). */
  onError(handler: (path: number, address: PathAddress, err: Error) => void): void;
  /** Take `address` as this node's endpoint on `path`; rejects with the system's reason. */
  bind(path: number, address: PathAddress): Promise<void>;
  /** Send from this node's endpoint on `path`; `done` is called once, with the error if it failed. May throw. */
  send(path: number, to: PathAddress, bytes: Buffer, done: (err: Error | null) => void): void;
  /** Release every endpoint; nothing is reported after it resolves. */
  close(): Promise<void>;
  /** The receive buffer asked for and the one the kernel gave a bound path, both in bytes (UDP only). */
  receiveBuffer?(path: number): ReceiveBuffer | undefined;
}

export interface ReceiveBuffer {
  asked: number;
  /** What the kernel holds for data: Linux reports twice what it grants (the other half is its bookkeeping). */
  got: number;
  /** Less than asked: the kernel capped it (net.core.rmem_max on Linux), or setting it failed. */
  capped: boolean;
  /** Why setting it failed, if it did. */
  error?: string;
}

/** Parse "ip:port" or "[ipv6]:port"; host names are refused (a heartbeat must not wait on DNS). */
export function parseAddress(text: string, where: string): PathAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const host = m?.[1];
  const portText = m?.[2];
  if (!host || !portText) throw new Error(`${where}: address ${JSON.stringify(text)} is not "ip:port" (IPv6 as "[ip]:port")`);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${where}: address ${text}: port must be 1..65535`);
  const fam = isIP(host);
  if (fam !== 4 && fam !== 6) throw new Error(`${where}: address ${text}: ${JSON.stringify(host)} is not an IP address`);
  // Canonical form, because a received packet's source is compared as text.
  const canon = new SocketAddress({ address: host, family: fam === 6 ? 'ipv6' : 'ipv4', port }).address;
  return { host: canon, port, family: fam, key: `${canon}:${port}`, text };
}

// --- UDP -----------------------------------------------------------------------------------------

/** Receive buffer asked for per socket (the kernel caps it at net.core.rmem_max). */
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** One UDP socket per path, bound to this node's address on it. */
export class UdpTransport implements Transport {
  private readonly sockets = new Map<number, Socket>();
  private readonly buffers = new Map<number, ReceiveBuffer>();
  private packet: PacketHandler = () => {};
  private error: (path: number, address: PathAddress, err: Error) => void = () => {};

  onPacket(handler: PacketHandler): void {
    this.packet = handler;
  }

  onError(handler: (path: number, address: PathAddress, err: Error) => void): void {
    this.error = handler;
  }

  bind(path: number, a: PathAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = createSocket({ type: a.family === 6 ? 'udp6' : 'udp4', ipv6Only: a.family === 6 });
      const onError = (err: Error) => {
        sock.close();
        reject(err);
      };
      sock.once('error', onError);
      sock.bind({ address: a.host, port: a.port, exclusive: true }, () => {
        sock.off('error', onError);
        sock.on('error', (err) => this.error(path, a, err));
        // Room for bursts (31 peers' adverts at once at start; a stall's backlog; junk) so real
        // heartbeats are not dropped by the kernel. The kernel caps it at net.core.rmem_max.
        // Comm logs what it got (receiveBuffer): capped, a flood or a stall overflows it sooner.
        this.buffers.set(path, setReceiveBuffer(sock, RECV_BUFFER_BYTES));
        sock.on('message', (msg, rinfo) => {
          const from = rinfo.family === 'IPv6' ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`;
          this.packet(path, msg, `${rinfo.address}:${rinfo.port}`, from);
        });
        this.sockets.set(path, sock);
        resolve();
      });
    });
  }

  send(path: number, to: PathAddress, bytes: Buffer, done: (err: Error | null) => void): void {
    const sock = this.sockets.get(path);
    if (!sock) throw new Error(`udp transport: path ${path} is not bound`);
    sock.send(bytes, to.port, to.host, (err) => done(err ?? null));
  }

  receiveBuffer(path: number): ReceiveBuffer | undefined {
    return this.buffers.get(path);
  }

  async close(): Promise<void> {
    const socks = [...this.sockets.values()];
    this.sockets.clear();
    await Promise.all(
      socks.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve(); // already closed
            }
          }),
      ),
    );
  }
}

/** Ask for `asked` bytes of receive buffer and read back what the kernel granted. */
function setReceiveBuffer(sock: Socket, asked: number): ReceiveBuffer {
  let error: string | undefined;
  try {
    sock.setRecvBufferSize(asked);
  } catch (err) {
    error = (err as Error).message; // the default buffer still works
  }
  let reported = 0;
  try {
    reported = sock.getRecvBufferSize();
  } catch {
    /* unknown: reported as 0, i.e. capped */
  }
  // Linux doubles the value set (SO_RCVBUF: half of it is kernel bookkeeping), capped at rmem_max.
  const got = process.platform === 'linux' ? Math.floor(reported / 2) : reported;
  return { asked, got, capped: got < asked, ...(error ? { error } : {}) };
}

// --- in memory -----------------------------------------------------------------------------------

/**
 * A network in one process: endpoints are the address keys bound on it. Delivery is in a
 * microtask after send (asynchronous like UDP, and in send order); a packet to an address nobody
 * bound is lost without an error, as over UDP.
 */
export class MemoryHub {
  private readonly endpoints = new Map<string, { transport: MemoryTransport; path: number }>();
  /** Test hook: return true to lose this packet (from and to are address keys). */
  drop: ((path: number, fromKey: string, toKey: string) => boolean) | undefined;
  /** Packets delivered so far. */
  delivered = 0;

  transport(): MemoryTransport {
    return new MemoryTransport(this);
  }

  /** Deliver bytes to `toKey` as if sent from `fromKey` (the source is not checked: a spoofer). */
  inject(path: number, fromKey: string, toKey: string, bytes: Buffer): void {
    queueMicrotask(() => {
      const dest = this.endpoints.get(toKey);
      if (!dest) return;
      this.delivered++;
      dest.transport.deliver(dest.path, Buffer.from(bytes), fromKey);
    });
  }

  /** @internal */
  claim(key: string, transport: MemoryTransport, path: number): void {
    if (this.endpoints.has(key)) throw Object.assign(new Error(`bind ${key}: address in use`), { code: 'EADDRINUSE' });
    this.endpoints.set(key, { transport, path });
  }

  /** @internal */
  release(key: string, transport: MemoryTransport): void {
    if (this.endpoints.get(key)?.transport === transport) this.endpoints.delete(key);
  }
}

export class MemoryTransport implements Transport {
  private readonly bound = new Map<number, PathAddress>();
  private packet: PacketHandler = () => {};
  private readonly hub: MemoryHub;

  constructor(hub: MemoryHub) {
    this.hub = hub;
  }

  onPacket(handler: PacketHandler): void {
    this.packet = handler;
  }

  onError(): void {
    // No socket errors in memory.
  }

  async bind(path: number, address: PathAddress): Promise<void> {
    this.hub.claim(address.key, this, path);
    this.bound.set(path, address);
  }

  send(path: number, to: PathAddress, bytes: Buffer, done: (err: Error | null) => void): void {
    const from = this.bound.get(path);
    if (!from) throw new Error(`memory transport: path ${path} is not bound`);
    if (!this.hub.drop?.(path, from.key, to.key)) this.hub.inject(path, from.key, to.key, bytes);
    queueMicrotask(() => done(null));
  }

  async close(): Promise<void> {
    for (const a of this.bound.values()) this.hub.release(a.key, this);
    this.bound.clear();
  }

  /** @internal */
  deliver(path: number, bytes: Buffer, fromKey: string): void {
    if (this.bound.size === 0) return;
    // fromText as UdpTransport writes it: IPv6 hosts in brackets.
    const i = fromKey.lastIndexOf(':');
    const host = fromKey.slice(0, i);
    const from = host.includes(':') ? `[${host}]${fromKey.slice(i)}` : fromKey;
    this.packet(path, bytes, fromKey, from);
  }
}
