// The local control socket: a unix stream socket, one JSON request per line, one JSON answer per
// line. Only root (mode 0600) or, when configured, root and one group (0660) may connect: the
// socket can stop hierarchies, so it is as sensitive as the daemon itself.
import { createServer, createConnection, type Server } from 'node:net';
import { chmodSync, chownSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { execFileSync } from 'node:child_process';

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'stop'; mode?: 'switchover' | 'stop' }
  | { cmd: 'hierarchy'; name: string; action: 'out-of-service' | 'in-service' }
  | { cmd: 'ping' };

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

function groupId(name: string): number {
  // No getgrnam in Node: ask the system database (works with files, LDAP, sssd alike).
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`control group ${name}: not found in the group database`);
  return gid;
}

export async function serveControl(path: string, handler: ControlHandler, group?: string): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  // A socket file left by a dead daemon blocks listen(); a live daemon answers ping — refuse then.
  if (existsSync(path)) {
    const alive = await controlRequest(path, { cmd: 'ping' }, 500).then(() => true, () => false);
    if (alive) throw new Error(`control socket ${path}: another harness daemon is running on it`);
    rmSync(path, { force: true });
  }
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 64 * 1024) return sock.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
        } catch {
          sock.write(JSON.stringify({ ok: false, error: 'request is not JSON' }) + '\n');
          continue;
        }
        handler(req).then(
          (result) => sock.write(JSON.stringify({ ok: true, result }, bigintSafe) + '\n'),
          (err: unknown) => sock.write(JSON.stringify({ ok: false, error: String((err as Error)?.message ?? err) }) + '\n'),
        );
      }
    });
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, () => res());
    });
  } finally {
    process.umask(oldMask);
  }
  if (group) {
    chownSync(path, 0, groupId(group));
    chmodSync(path, 0o660);
  } else {
    chmodSync(path, 0o600);
  }
  return server;
}

export function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
}

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`control socket ${path}: no answer within ${timeoutMs} ms`));
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
      reject(new Error(`control socket ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message} (is the daemon running?)`));
    });
  });
}
