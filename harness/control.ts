// The local control socket: a unix stream socket, one JSON request per line, one JSON answer per
// line, in order.
//
// Who may do what. Node has no API for the peer's credentials (SO_PEERCRED), and guessing the
// peer from /proc is racy (a descriptor can be handed to another process). So the kernel decides,
// by file permissions on two sockets:
//   - `controlSocket` (mode 0600, root): every command. Only root can connect to it.
//   - `controlSocket` + ".ro" (mode 0660, group `controlGroup`; only when that is configured):
//     read-only. status and ping are answered, anything that changes the cluster (stop,
//     hierarchy ...) is refused with a message, whoever the peer is.
// The client (controlRequest) uses the full socket when it may open it, else the read-only one.
// Each socket has its own connection cap, so the group's clients can never crowd root out.
//
// A client cannot make the daemon hold more than one request and one answer per connection: the
// next request is read only after the previous answer was handed to the kernel (socket.write
// returned true or 'drain' came). A client that sends and never reads thus stops being read once
// its socket buffers are full, and is closed by the idle timeout. The connection count, the
// request line length and the idle time are limited (DEFAULTS.control*).
//
// Every request is checked against a strict schema (zod): an unknown command, a missing, extra or
// mistyped field is refused with a message naming the field; the connection stays usable. zod is
// the one part of the schema library the daemon loads itself (about 3 MiB of RSS, measured).
import { Server, createConnection, type Socket } from 'node:net';
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as z from 'zod';
import { DEFAULTS } from './defaults.ts';

const COMMANDS = ['status', 'ping', 'stop', 'hierarchy', 'node'] as const;
/** Commands that change nothing: the only ones the read-only socket answers. */
export const READ_ONLY_COMMANDS: ReadonlySet<string> = new Set(['status', 'ping']);

const requestSchema = z.discriminatedUnion('cmd', [
  z.strictObject({ cmd: z.literal('status') }),
  z.strictObject({ cmd: z.literal('ping') }),
  z.strictObject({ cmd: z.literal('stop'), mode: z.enum(['switchover', 'stop']).optional() }),
  z.strictObject({
    cmd: z.literal('hierarchy'),
    name: z.string().min(1).max(255),
    action: z.enum(['stop', 'start', 'maintenance-on', 'maintenance-off', 'clear', 'move']),
    to: z.string().min(1).max(255).optional(),
    by: z.string().max(128).regex(/^[\x21-\x7e]*$/, 'printable ASCII without spaces').optional(),
  }),
  z.strictObject({
    cmd: z.literal('node'),
    name: z.string().min(1).max(255),
    action: z.enum(['standby', 'online', 'maintenance-on', 'maintenance-off']),
    by: z.string().max(128).regex(/^[\x21-\x7e]*$/, 'printable ASCII without spaces').optional(),
  }),
]);

/** The fields each command takes besides cmd (for messages). */
const FIELDS: Record<string, string[]> = Object.fromEntries(
  requestSchema.options.map((o) => [o.shape.cmd.value, Object.keys(o.shape).filter((k) => k !== 'cmd')]),
);

export type ControlRequest = z.infer<typeof requestSchema>;
export type ControlHandler = (req: ControlRequest) => Promise<unknown>;
export type ControlAccess = 'full' | 'read-only';

/** The read-only socket that goes with a control socket. */
export function readOnlySocket(path: string): string {
  return `${path}.ro`;
}

/** A value as it may appear in a message: JSON (so control characters are escaped), short. */
function shown(v: unknown): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/** Validate one decoded request: the request, or a message naming every offending field. */
export function parseRequest(raw: unknown): { ok: true; req: ControlRequest } | { ok: false; error: string } {
  const r = requestSchema.safeParse(raw);
  if (r.success) return { ok: true, req: r.data };
  const obj = (raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
  const cmd = typeof obj.cmd === 'string' ? obj.cmd : undefined;
  const msgs = r.error.issues.map((i) => {
    const field = i.path.map(String).join('.');
    const value = i.path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), raw);
    switch (i.code) {
      case 'invalid_union':
        return 'cmd' in obj
          ? `cmd: unknown command ${shown(obj.cmd)} (expected one of ${COMMANDS.join(', ')})`
          : `cmd: missing (expected one of ${COMMANDS.join(', ')})`;
      case 'unrecognized_keys': {
        const takes = cmd ? FIELDS[cmd] ?? [] : [];
        return `${i.keys.map(shown).join(', ')}: unknown field${i.keys.length > 1 ? 's' : ''} (${cmd} takes ${takes.length ? takes.join(', ') : 'no other field'})`;
      }
      case 'invalid_value':
        if (value === undefined) return `${field}: missing (one of ${i.values.map((v) => shown(v)).join(', ')})`;
        return `${field}: ${shown(value)} is not one of ${i.values.map((v) => shown(v)).join(', ')}`;
      case 'invalid_type':
        if (field && value === undefined) return `${field}: missing (${i.expected})`;
        return field ? `${field}: expected ${i.expected}, got ${kindOf(value)}` : `a request is a JSON object, not ${kindOf(raw)}`;
      case 'too_small':
        return `${field}: must not be empty`;
      default:
        return `${field || 'request'}: ${i.message}`;
    }
  });
  return { ok: false, error: `invalid request: ${msgs.join('; ')}` };
}

function groupId(name: string): number {
  // No getgrnam in Node: ask the system database (works with files, LDAP, sssd alike).
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`control group ${name}: not found in the group database`);
  return gid;
}

/** A control socket server; close() also drops its open connections (and closes the read-only
 *  companion socket): a client that never reads must not hold up the daemon's shutdown. */
class ControlServer extends Server {
  /** Every open connection, served or being turned away. */
  readonly sockets = new Set<Socket>();
  readonly companions: ControlServer[] = [];
  private served = 0;

  readonly handler: ControlHandler;

  constructor(handler: ControlHandler, access: ControlAccess, what: string) {
    super({ allowHalfOpen: true });
    this.handler = handler;
    this.on('connection', (sock: Socket) => {
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      if (this.served >= DEFAULTS.controlMaxConnections) {
        sock.on('error', () => sock.destroy());
        sock.setTimeout(DEFAULTS.controlIdleTimeoutMs, () => sock.destroy());
        sock.end(answerLine({ ok: false, error: `${what}: too many connections (limit ${DEFAULTS.controlMaxConnections}); try again` }));
        return;
      }
      this.served++;
      sock.once('close', () => this.served--);
      serveConnection(sock, handler, access, what);
    });
  }

  override close(callback?: (err?: Error) => void): this {
    for (const s of this.companions) s.close();
    super.close(callback);
    for (const c of this.sockets) c.destroy();
    return this;
  }
}

function answerLine(ans: { ok: boolean; result?: unknown; error?: string }): string {
  try {
    return JSON.stringify(ans, bigintSafe) + '\n';
  } catch (e) {
    return JSON.stringify({ ok: false, error: `answer not serialisable: ${(e as Error).message}` }) + '\n';
  }
}

/** One connection: one request at a time, the next read only once the answer is written. */
function serveConnection(sock: Socket, handler: ControlHandler, access: ControlAccess, what: string): void {
  const max = DEFAULTS.controlMaxRequestBytes;
  let pending: Buffer = Buffer.alloc(0);
  let busy = false;
  let ended = false;
  let closing = false;
  sock.setTimeout(DEFAULTS.controlIdleTimeoutMs);
  sock.on('timeout', () => sock.destroy());
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: Buffer) => {
    if (closing) return;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    pump();
  });
  sock.on('end', () => {
    ended = true;
    pump();
  });

  const refuse = (error: string) => {
    // Say why, then close; if the client does not read that either, the idle timeout ends it.
    closing = true;
    pending = Buffer.alloc(0);
    sock.pause();
    sock.end(answerLine({ ok: false, error }));
  };

  const answer = async (line: string): Promise<string> => {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return answerLine({ ok: false, error: 'request is not JSON (one JSON object per line)' });
    }
    const parsed = parseRequest(raw);
    if (!parsed.ok) return answerLine({ ok: false, error: parsed.error });
    const req = parsed.req;
    if (access === 'read-only' && !READ_ONLY_COMMANDS.has(req.cmd)) {
      return answerLine({ ok: false, error: `${req.cmd}: refused: ${what} is read-only (${[...READ_ONLY_COMMANDS].join(', ')}); changes need root (uid 0)` });
    }
    try {
      return answerLine({ ok: true, result: await handler(req) });
    } catch (err) {
      return answerLine({ ok: false, error: String((err as Error)?.message ?? err) });
    }
  };

  const pump = (): void => {
    if (busy || closing || sock.destroyed) return;
    const nl = pending.indexOf(10);
    let line: Buffer;
    if (nl > max || (nl < 0 && pending.length > max)) return refuse(`request longer than ${max} bytes`);
    if (nl >= 0) {
      line = pending.subarray(0, nl);
      pending = pending.subarray(nl + 1);
    } else if (ended) {
      // The client finished sending: a last line without newline still counts, then we are done.
      if (pending.toString('utf8').trim() === '') {
        sock.end();
        return;
      }
      line = pending;
      pending = Buffer.alloc(0);
    } else {
      sock.resume();
      return;
    }
    // One request in flight: stop reading until its answer is written. The idle timer does not
    // run while the daemon itself is working on a request.
    busy = true;
    sock.pause();
    sock.setTimeout(0);
    void answer(line.toString('utf8')).then((text) => {
      if (sock.destroyed) return;
      sock.setTimeout(DEFAULTS.controlIdleTimeoutMs);
      const next = () => {
        busy = false;
        pump();
      };
      // The next request in a later turn of the event loop, never in this one: a client that
      // pipelines and reads fast must not hold off heartbeats and timers for a whole batch.
      if (sock.write(text)) setImmediate(next);
      else sock.once('drain', next);
    });
  };
}

async function listen(server: Server, path: string, mode: number, gid?: number): Promise<void> {
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, () => res());
    });
  } finally {
    process.umask(oldMask);
  }
  if (gid !== undefined) chownSync(path, process.getuid?.() ?? 0, gid);
  chmodSync(path, mode);
}

/**
 * Serve the control socket at `path` (root only, every command) and, with `group`, the read-only
 * socket next to it (that group too: status and ping). The returned server's close() closes both.
 */
export async function serveControl(path: string, handler: ControlHandler, group?: string): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const roPath = readOnlySocket(path);
  // A socket file left by a dead daemon blocks listen(); a live daemon answers ping — refuse then.
  if (existsSync(path)) {
    const alive = await controlRequest(path, { cmd: 'ping' }, 500).then(() => true, () => false);
    if (alive) throw new Error(`control socket ${path}: another harness daemon is running on it`);
    rmSync(path, { force: true });
  }
  // Left by an earlier daemon, perhaps one with a controlGroup this one no longer has.
  rmSync(roPath, { force: true });
  const gid = group ? groupId(group) : undefined;
  const main = new ControlServer(handler, 'full', `control socket ${path}`);
  await listen(main, path, 0o600);
  if (gid !== undefined) {
    const ro = new ControlServer(handler, 'read-only', `control socket ${roPath} (group ${group})`);
    main.companions.push(ro);
    try {
      await listen(ro, roPath, 0o660, gid);
    } catch (e) {
      main.close();
      throw e;
    }
  }
  return main;
}

/**
 * Change the read-only socket's group on a running server (a live reload of `controlGroup`):
 * the old companion socket closes (its clients are dropped), a new one opens for `group`.
 */
export async function setControlGroup(server: Server, group: string | undefined): Promise<void> {
  const main = server as ControlServer;
  const path = main.address() as string;
  const gid = group ? groupId(group) : undefined;
  for (const s of main.companions.splice(0)) s.close();
  const roPath = readOnlySocket(path);
  rmSync(roPath, { force: true });
  if (gid === undefined) return;
  const ro = new ControlServer(main.handler, 'read-only', `control socket ${roPath} (group ${group})`);
  main.companions.push(ro);
  await listen(ro, roPath, 0o660, gid);
}

export function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
}

/** The socket a client should use: the full one when it may open it, else the read-only one. */
export function clientSocket(path: string): string {
  const ro = readOnlySocket(path);
  try {
    accessSync(path, constants.W_OK);
    return path;
  } catch {
    return existsSync(ro) ? ro : path;
  }
}

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  const target = clientSocket(path);
  return new Promise((resolve, reject) => {
    const sock = createConnection(target);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`control socket ${target}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        const ans = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
        if (ans.ok) resolve(ans.result);
        else reject(new Error(ans.error ?? 'error'));
      } catch (e) {
        reject(e as Error);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      const code = (e as NodeJS.ErrnoException).code;
      reject(
        new Error(
          code === 'EACCES'
            ? `control socket ${target}: permission denied (root only; members of the cluster's controlGroup may read status)`
            : `control socket ${target}: ${code ?? e.message} (is the daemon running?)`,
        ),
      );
    });
  });
}
