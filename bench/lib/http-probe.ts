// HTTP client probe, run inside a client station by probes.ts (HttpProbe):
//   node http-probe.ts <url> <everyMs> <timeoutMs> <boundS>
// Sends a GET every everyMs on a fresh connection (a kept-alive socket would stay glued to the
// old node), each bounded by timeoutMs, and prints one line per request:
//   <start epoch ms> <end epoch ms> ok|fail <detail>
// At most `MAX_IN_FLIGHT` requests at once; stops after boundS seconds or on SIGINT/SIGTERM.
// Requests still in flight then are younger than timeoutMs, so their outcome is unknown: they
// are not printed (printing them as failures would fake an outage at the very end).
import { request } from 'node:http';

const [url, everyArg, timeoutArg, boundArg] = process.argv.slice(2);
if (!url || !everyArg || !timeoutArg || !boundArg) {
  console.error('usage: node http-probe.ts <url> <everyMs> <timeoutMs> <boundS>');
  process.exit(2);
}
const everyMs = Number(everyArg);
const timeoutMs = Number(timeoutArg);
const boundMs = Number(boundArg) * 1000;
const MAX_IN_FLIGHT = 100;

const now = (): number => performance.timeOrigin + performance.now();
const inFlight = new Set<number>();
let done = false;

function report(start: number, ok: boolean, detail: string): void {
  process.stdout.write(`${start.toFixed(3)} ${now().toFixed(3)} ${ok ? 'ok' : 'fail'} ${detail}\n`);
}

function probe(): void {
  if (done || inFlight.size >= MAX_IN_FLIGHT) return;
  const start = now();
  inFlight.add(start);
  let finished = false;
  const finish = (ok: boolean, detail: string): void => {
    if (finished) return;
    finished = true;
    inFlight.delete(start);
    if (!done) report(start, ok, detail);
  };
  const req = request(url as string, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
    res.resume();
    res.on('end', () => finish((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, String(res.statusCode)));
    res.on('error', (e) => finish(false, e.message));
  });
  req.on('timeout', () => {
    req.destroy();
    finish(false, 'timeout');
  });
  req.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
  req.end();
}

function stop(): void {
  if (done) return;
  done = true;
  clearInterval(timer);
  process.stdout.write('', () => process.exit(0));
}

const timer = setInterval(probe, everyMs);
setTimeout(stop, boundMs);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
