// The benchmark's pure analysis (bench/lib/analyze.ts, breakdown.ts) on made-up probe data and
// logs: what counts as an outage, a prober stall, a double answer, and where failover time went.
// No namespaces needed; it lives in the system tier next to the tests whose numbers it computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  doubleAnswers,
  firstAnswer,
  httpDowntime,
  httpFailures,
  localAddresses,
  overlapMs,
  parsePingLine,
  pingDowntime,
  stats,
  unionLength,
  type PingReply,
} from '../../bench/lib/analyze.ts';
import { breakdown, failoversAfter, lastInService, manyRaces, notableEvents } from '../../bench/lib/breakdown.ts';
import { floorLines } from '../../bench/lib/report.ts';
import type { RunRecord } from '../../bench/lib/scenario.ts';
import { stressReport, type StressPhase } from '../../bench/lib/stress.ts';
import type { LogEvent } from '../../bench/lib/daemon.ts';

/** Replies every `every` ms in [from, to), seq numbers continuing from `seq0` at `from`. */
function stream(from: number, to: number, every = 10, seq0 = Math.round(from / every)): PingReply[] {
  const out: PingReply[] = [];
  for (let t = from, s = seq0; t < to; t += every, s++) out.push({ t, seq: s });
  return out;
}

test('ping -D lines parse to epoch ms and seq; other lines are ignored', () => {
  assert.deepEqual(parsePingLine('[1700000000.123456] 64 bytes from 192.168.77.100: icmp_seq=42 ttl=64 time=0.05 ms'), { t: 1700000000123.456, seq: 42 });
  assert.equal(parsePingLine('From 192.168.77.250 icmp_seq=3 Destination Host Unreachable'), null);
  assert.equal(parsePingLine('PING 192.168.77.100 (192.168.77.100) 56(84) bytes of data.'), null);
});

test('an outage with lost requests is downtime from t0 to the first reply after it', () => {
  const replies = [...stream(0, 1000), ...stream(2500, 4000)];
  const d = pingDowntime(replies, 1000, 4000, 50);
  assert.equal(d.downtimeMs, 1500);
  assert.equal(d.gaps.length, 1);
  assert.equal(d.stalls, 0);
});

test('no silence means zero downtime; a silence without lost seq is a prober stall', () => {
  assert.equal(pingDowntime(stream(0, 4000), 1000, 4000, 50).downtimeMs, 0);
  // 200 ms with nothing received, but seq numbers consecutive: the prober was not scheduled.
  const stalled = [...stream(0, 2000), ...stream(2200, 4000, 10, 200)];
  const d = pingDowntime(stalled, 1000, 4000, 50);
  assert.equal(d.downtimeMs, 0);
  assert.equal(d.stalls, 1);
});

test('a service silent at the end never came back; a short end silence is not an outage', () => {
  assert.equal(pingDowntime(stream(0, 1000), 1000, 4000, 50).downtimeMs, null);
  assert.equal(pingDowntime(stream(0, 3900), 1000, 4000, 50).downtimeMs, 0);
});

test('flapping: downtime ends with the last outage, outage time is the sum', () => {
  const replies = [...stream(0, 1000), ...stream(1500, 2000), ...stream(2300, 4000)];
  const d = pingDowntime(replies, 1000, 4000, 50);
  assert.equal(d.downtimeMs, 1300);
  assert.equal(d.outageMs, 500 + 310);
});

test('HTTP downtime: first success started after the last outage', () => {
  const s = [
    { start: 900, end: 905, ok: true },
    { start: 1010, end: 1510, ok: false },
    { start: 1600, end: 2100, ok: false },
    { start: 2110, end: 2150, ok: true },
    { start: 2120, end: 2140, ok: true },
  ];
  assert.equal(httpDowntime(s, 1000), 1140);
  assert.equal(httpFailures(s, 1000), 2);
  assert.equal(httpDowntime([{ start: 1010, end: 1012, ok: true }], 1000), 0);
  assert.equal(httpDowntime([{ start: 1010, end: 1510, ok: false }], 1000), null);
  // A burst of timeouts spanning 100 ms while the server is busy is not an outage.
  const burst = [
    { start: 1000, end: 1005, ok: true },
    ...[0, 20, 40, 60, 80, 100].map((d) => ({ start: 1100 + d, end: 1600 + d, ok: false })),
    { start: 1220, end: 1225, ok: true },
  ];
  assert.equal(httpDowntime(burst, 1000), 0);
  assert.equal(httpFailures(burst, 1000), 6);
});

test('double answers: slots where two watchers both got replies', () => {
  const perNode = new Map<string, number[]>([
    ['n1', stream(0, 1000).map((r) => r.t)],
    ['n2', stream(800, 2000).map((r) => r.t)],
    ['n3', []],
  ]);
  const d = doubleAnswers(perNode, 0, 2000, 10);
  // n1 answers until ~995, n2 from ~795: about 20 slots of overlap.
  assert.ok(d.samples >= 18 && d.samples <= 22, `samples ${d.samples}`);
  assert.deepEqual(d.nodes, ['n1', 'n2']);
  assert.equal(doubleAnswers(new Map([['n1', stream(0, 1000).map((r) => r.t)], ['n2', stream(1100, 2000).map((r) => r.t)]]), 0, 2000, 10).samples, 0);
  assert.deepEqual(firstAnswer(perNode, 500, ['n2', 'n3']), { node: 'n2', t: 800 });
});

test('overlap of configured intervals, union of agent intervals, stats', () => {
  const iv = new Map([
    ['n1', [{ from: 0, to: 100 }]],
    ['n2', [{ from: 50, to: 200 }]],
    ['n3', [{ from: 150, to: 160 }]],
  ]);
  assert.equal(overlapMs(iv, 0, 1000), 50 + 10);
  assert.equal(overlapMs(iv, 60, 1000), 40 + 10);
  assert.equal(unionLength([{ from: 0, to: 10 }, { from: 5, to: 20 }, { from: 30, to: 40 }]), 30);
  assert.deepEqual(stats([3, 1, 2]), { n: 3, min: 1, median: 2, max: 3 });
  assert.equal(stats([1, 2, 3, 4])?.median, 2.5);
  assert.equal(stats([]), null);
});

test('fib_trie: only /32 host LOCAL leaves are local addresses', () => {
  const dump = [
    'Local:',
    '  +-- 192.168.77.0/24 3 0 5',
    '     |-- 192.168.77.1',
    '        /32 host LOCAL',
    '     |-- 192.168.77.100',
    '        /32 host LOCAL',
    '     |-- 192.168.77.255',
    '        /32 link BROADCAST',
  ].join('\n');
  assert.deepEqual([...localAddresses(dump)].sort(), ['192.168.77.1', '192.168.77.100']);
});

test('breakdown of a failover from the taking node\'s log events', () => {
  const t0 = 10_000;
  const ev = (node: string, time: number, event: string, extra: Record<string, unknown> = {}): LogEvent => ({ node, time, event, ...extra });
  const events: LogEvent[] = [
    ev('n1', 9000, 'in-service', { hierarchy: 'web' }),
    ev('n2', 10_900, 'peer-down', { peer: 'n1' }),
    ev('n3', 10_950, 'peer-down', { peer: 'n1' }),
    ev('n2', 11_200, 'acquired', { hierarchy: 'web', durationMs: 300 }),
    ev('n2', 11_700, 'in-service', { hierarchy: 'web', agentMs: 480, acquireMs: 300 }),
  ];
  const b = breakdown(events, t0, 'n1', 'web');
  assert.deepEqual(b, { taker: 'n2', detectMs: 900, ownershipMs: 300, agentsMs: 480, runsElsewhereMs: 1700, overheadMs: 320, overheadExclOwnershipMs: 20, took: 'free' });
  const took = (preempted: string) => breakdown(events.map((e) => (e.event === 'acquired' ? { ...e, preempted } : e)), t0, 'n1', 'web').took;
  assert.equal(took('0x5df6eec3ffffffff'), 'released');
  assert.equal(took('0x5df6eec36b0fd46e'), 'frozen');
  assert.equal(breakdown(events, t0, 'n1', 'db').taker, null);
  assert.deepEqual(failoversAfter(events, t0, 'n1'), [{ node: 'n2', hierarchy: 'web', time: 11_700 }]);
  assert.equal(lastInService(events, t0, ['web'], 'n1'), 1700);
  assert.equal(lastInService(events, t0, ['web', 'db'], 'n1'), null);
  const bad = [...events, ev('n2', 11_500, 'start-failed', { hierarchy: 'web', resource: 'fs', reason: 'mount failed' })];
  assert.deepEqual(notableEvents(bad, t0), ['+1500ms n2 start-failed web/fs: mount failed']);
});

test('many hierarchies: the last ownership won, the slowest race, the last in service', () => {
  const ev = (node: string, time: number, event: string, extra: Record<string, unknown> = {}): LogEvent => ({ node, time, event, ...extra });
  const events: LogEvent[] = [
    ev('n2', 10_800, 'peer-down', { peer: 'n1' }),
    ev('n2', 10_900, 'acquired', { hierarchy: 'h01', durationMs: 90 }),
    ev('n2', 10_950, 'acquired', { hierarchy: 'h02', durationMs: 140 }),
    ev('n2', 11_600, 'in-service', { hierarchy: 'h02' }),
    ev('n2', 11_700, 'in-service', { hierarchy: 'h01' }),
  ];
  assert.deepEqual(manyRaces(events, 10_000, ['h01', 'h02'], 'n1'), { lastAcquiredMs: 950, raceMaxMs: 140, lastHierarchy: 'h01' });
  assert.equal(manyRaces(events, 10_000, ['h01', 'h03'], 'n1').lastHierarchy, null);
});

test('floor lines: last in service split into detect + race + floor + overhead, against detect + race + 1.2 x floor', () => {
  const run = { bed: 'many', profile: 'default', fault: 'power-off', index: 1, lastInServiceMs: 1900, logs: { detectMs: 800 }, races: { lastAcquiredMs: 950, raceMaxMs: 140, lastHierarchy: 'h01', last: null } } as unknown as RunRecord;
  const floors = [{ profile: 'default', samples: [{ startMs: 700, failed: [] }, { startMs: 800, failed: [] }, { startMs: 900, failed: ['h01/vip start rc 1'] }] }];
  const lines = floorLines([run], floors);
  // floor = median of the valid samples (750); bar = 800 + 150 + 900 = 1850 < 1900
  assert.match(lines.at(-1) ?? '', /last in service 1\.900 s = detect 800 \+ race 150 \+ floor 750 \+ harness overhead 200 ms .*bar detect \+ race \+ 1\.2 x floor = 1\.850 s: FAIL \(0\/1 runs under\)/);
  const ok = floorLines([{ ...run, lastInServiceMs: 1800 } as RunRecord], floors);
  assert.match(ok.at(-1) ?? '', /: PASS \(1\/1 runs under\)$/);
});

test('stress report: one row per phase and a summary line', () => {
  const phase = (node: string, role: 'owner' | 'standby', extra: Partial<StressPhase> = {}): StressPhase => ({
    node, role, seconds: 300, stressArgv: [], stressRc: 0, stressTail: '', falseFailovers: [], suspects: 0, peerDowns: 0, pathDowns: 0,
    freezes: 0, longestFreezeMs: 0, maxGapMs: 200, maxGapWho: 'n2 from n1', maxSilenceMs: 150, maxLooseStepMs: 300, polls: 10, after: {}, ...extra,
  });
  const lines = stressReport([phase('n1', 'owner'), phase('n2', 'standby', { suspects: 2, peerDowns: 1, falseFailovers: ['web→n2'], maxGapMs: 950 })], 'default');
  assert.equal(lines.length, 5);
  assert.match(lines[3] ?? '', /n2 \(standby\)\s+300\s+1: web→n2\s+2\s+1/);
  assert.equal(lines[4], 'bench stress [default]: false failovers 1, suspect flaps 3, longest heartbeat gap 950 ms, 2 phases x 300 s');
});
