// harness/liveness.ts, the comm liveness rule, driven with an explicit clock: no sockets, no
// timers, no sleeps. The default timings (150 ms heartbeat, 900 ms dead time): suspect after
// 300 ms, path dead after 900 ms, grace 900 ms, paths taking turns every other interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commTimers, Liveness, type HeartbeatIn, type LivenessChange } from '../../harness/liveness.ts';

const I = 150;
const DEAD = 900;
const timers = commTimers({ heartbeatIntervalMs: I, deadTimeMs: DEAD });
const SELF_INC = 1_000;

function mk(peers = ['b', 'c']): Liveness {
  const l = new Liveness({ self: 'a', selfIncarnation: SELF_INC, peers, paths: 2, timers });
  l.start(0);
  return l;
}

/** A heartbeat of `node` that echoes a's incarnation (override `heard` to test the echo). */
function hb(node: string, path: number, seq: number, o: Partial<HeartbeatIn> = {}): HeartbeatIn {
  return { node, path, incarnation: 7_000, seq, heard: { a: SELF_INC }, hierarchies: {}, ...o };
}

function kinds(changes: LivenessChange[], node = 'b'): string[] {
  return changes
    .filter((c) => c.node === node)
    .map((c) => {
      switch (c.kind) {
        case 'path':
          return `path${c.path}:${c.to}`;
        case 'state':
          return `state:${c.to}${c.cause ? `(${c.cause})` : ''}`;
        case 'suspect':
          return c.suspect ? 'suspect' : 'unsuspect';
        case 'degraded':
          return `degraded${c.path}${c.neverHeard ? '(never)' : ''}`;
        case 'recovered':
          return `recovered${c.path}`;
        case 'info':
          return 'info';
      }
    });
}

/**
 * Run from `from` to `to` (exclusive) in 1 ms steps, as Comm would: every packet due at t is
 * received, then the peers are evaluated. `sends(t)` says which heartbeats of b arrive at t.
 * Returns every change with its time.
 */
function run(l: Liveness, from: number, to: number, sends: (t: number) => HeartbeatIn[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let t = from; t < to; t++) {
    for (const h of sends(t)) {
      const r = l.receive(h, t);
      assert.equal(r.ok, true, `heartbeat at ${t} accepted`);
      for (const k of kinds(r.changes)) out.push([t, k]);
    }
    for (const k of kinds(l.evaluate(t))) out.push([t, k]);
  }
  return out;
}

/** b as Comm sends: every interval from `start`, the paths taking turns (pathStride 2). */
function rotating(start: number, o: { lost?: number; lostFrom?: number; stopAt?: number } = {}) {
  let seq = 0;
  return (t: number): HeartbeatIn[] => {
    if (t < start || (t - start) % I !== 0 || (o.stopAt !== undefined && t >= o.stopAt)) return [];
    const n = (t - start) / I;
    const path = n % timers.pathStride;
    seq++;
    return path === o.lost && t >= (o.lostFrom ?? 0) ? [] : [hb('b', path, seq)];
  };
}

test('liveness: startup grace: unknown until deadTimeMs, then down (never heard), and view waits for evaluate', () => {
  const l = mk();
  assert.equal(timers.startupGraceMs, DEAD);
  assert.deepEqual(l.evaluate(0), []);
  const v = l.view(899).b;
  assert.equal(v?.state, 'unknown');
  assert.equal(v?.suspect, false);
  assert.deepEqual(v?.paths, ['unknown', 'unknown']);
  assert.equal(v?.lastHeardMs, null);
  assert.equal(l.nextDeadline(0), DEAD, 'wake up when the grace ends');
  assert.equal(l.view(DEAD).b?.state, 'unknown', "not 'down' before evaluate has reported it (Comm reads its sockets first)");
  assert.equal(l.view(DEAD).b?.suspect, true);
  const ch = l.evaluate(DEAD);
  assert.deepEqual(kinds(ch), ['path0:down', 'path1:down', 'state:down(never-heard)', 'suspect']);
  assert.deepEqual(kinds(ch, 'c'), ['path0:down', 'path1:down', 'state:down(never-heard)', 'suspect']);
  assert.equal(l.view(DEAD).b?.state, 'down');
  assert.deepEqual(l.evaluate(DEAD + 1), [], 'reported once');
  assert.equal(l.nextDeadline(DEAD), null, 'nothing left to wait for');

  const early = new Liveness({ self: 'a', selfIncarnation: SELF_INC, peers: ['b'], paths: 2, timers });
  assert.equal(early.view(10_000).b?.state, 'unknown', 'before start() every peer is in grace');
  assert.equal(early.nextDeadline(10_000), null);
});

test('liveness: replayed heartbeats are dropped per path, by seq and by incarnation', () => {
  const l = mk();
  assert.equal(l.receive(hb('b', 0, 5), 100).ok, true);
  const again = l.receive(hb('b', 0, 5), 110);
  assert.deepEqual(again, { ok: false, reason: 'replayed', detail: 'seq 5 not above 5', changed: false, changes: [] });
  assert.equal(l.receive(hb('b', 0, 4), 120).ok, false);
  assert.equal(l.receive(hb('b', 1, 5), 130).ok, true, 'the same seq on the other path is its own');
  const old = l.receive(hb('b', 1, 99, { incarnation: 6_999 }), 140);
  assert.equal(old.ok, false);
  assert.ok(!old.ok && old.reason === 'replayed' && /old incarnation 6999 < 7000/.test(old.detail), JSON.stringify(old));
  assert.equal(l.view(140).b?.lastHeardMs, 130, 'a dropped heartbeat is no sign of life');
  assert.equal(l.receive(hb('b', 0, 6), 150).ok, true);
  assert.throws(() => l.receive(hb('zz', 0, 1), 160), /not a peer/);
  assert.throws(() => l.receive(hb('b', 2, 1), 160), /path 2/);
});

test("liveness: a heartbeat counts only once it echoes our incarnation; one that does not keeps the peer 'unknown'", () => {
  const l = mk();
  // b has not heard our current incarnation (a recording, or a link broken one way).
  const r = l.receive(hb('b', 0, 1, { heard: { a: SELF_INC - 1 } }), 100);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.reason === 'unconfirmed');
  assert.deepEqual(l.heard(), { b: 7_000 }, 'we echo what we saw, confirmed or not');
  assert.equal(l.view(100).b?.lastHeardMs, null);
  // It keeps coming past the grace: neither up nor down.
  for (let t = 250, seq = 2; t < 3_000; t += I, seq++) assert.equal(l.receive(hb('b', 0, seq, { heard: {} }), t).ok, false);
  const ch = l.evaluate(3_000);
  assert.deepEqual(kinds(ch), ['path0:down', 'path1:down', 'suspect']);
  assert.equal(l.view(3_000).b?.state, 'unknown');
  // It stops: down once the last unconfirmed one is a dead time old.
  const last = 250 + Math.floor((3_000 - 250 - 1) / I) * I;
  assert.deepEqual(l.evaluate(last + DEAD - 1), []);
  assert.deepEqual(kinds(l.evaluate(last + DEAD)), ['state:down(never-heard)']);
  // Then it echoes us: up at once, on that path.
  const ok = l.receive(hb('b', 0, 100), 5_000);
  assert.equal(ok.ok, true);
  assert.deepEqual(kinds(ok.changes), ['path0:up', 'state:up', 'unsuspect', 'info']);
  assert.ok(ok.changed);
  // A sender of an earlier release sends no echo at all: trusted as before.
  assert.equal(l.receive(hb('c', 0, 1, { heard: undefined }), 5_000).ok, true);
  assert.equal(l.view(5_000).c?.state, 'up');
});

test('liveness: after its incarnation is confirmed, a packet of it that does not echo us is still not life (a replay on a path that had not carried it)', () => {
  const l = mk();
  // b's first packets went out before it heard us: path 0 carries them, unconfirmed.
  assert.equal(l.receive(hb('b', 0, 1, { heard: {} }), 100).ok, false);
  // Then b hears us and path 1 confirms the incarnation.
  assert.equal(l.receive(hb('b', 1, 4), 200).ok, true);
  // b dies. Later the old path-0 packet of seq 1 is replayed: (incarnation, seq) is new on
  // path 0, but it does not echo us: it must not bring b back.
  l.evaluate(200 + DEAD);
  assert.equal(l.view(200 + DEAD).b?.state, 'down');
  const r = l.receive(hb('b', 0, 1, { heard: {} }), 200 + DEAD + 500);
  assert.equal(r.ok, false);
  assert.notEqual(l.view(200 + DEAD + 500).b?.state, 'up');
});

test('liveness: the first unconfirmed heartbeat after the grace reports the peer unknown at once', () => {
  const l = mk(['b']);
  assert.deepEqual(kinds(l.evaluate(DEAD)), ['path0:down', 'path1:down', 'state:down(never-heard)', 'suspect']);
  const r = l.receive(hb('b', 0, 1, { heard: {} }), DEAD + 10);
  assert.ok(!r.ok && r.reason === 'unconfirmed' && r.changed);
  assert.deepEqual(kinds(r.changes), ['state:unknown']);
  const again = l.receive(hb('b', 0, 2, { heard: {} }), DEAD + 20);
  assert.deepEqual(again.changes, [], 'only the first one evaluates');
});

test('liveness: suspect at suspectAfterMs of silence on every path, down at deadTimeMs', () => {
  const l = mk(['b']);
  l.receive(hb('b', 0, 1), 1_000);
  l.receive(hb('b', 1, 1), 1_000);
  assert.deepEqual(kinds(l.evaluate(1_000)), []);
  assert.equal(l.nextDeadline(1_000), 1_000 + timers.suspectAfterMs);
  assert.equal(l.view(1_299).b?.suspect, false);
  assert.deepEqual(kinds(l.evaluate(1_299)), []);
  assert.deepEqual(kinds(l.evaluate(1_300)), ['suspect']);
  assert.equal(l.view(1_300).b?.state, 'up', 'suspect is not down');
  assert.equal(l.nextDeadline(1_300), 1_000 + DEAD);
  assert.deepEqual(kinds(l.evaluate(1_899)), []);
  assert.deepEqual(kinds(l.evaluate(1_900)), ['path0:down', 'path1:down', 'state:down(silent)']);
  assert.deepEqual(l.view(1_900).b?.paths, ['down', 'down']);
});

test('liveness: a single lost path (one way, the sender keeps taking turns) never makes the peer suspect', () => {
  const l = mk(['b']);
  const all = run(l, 0, 6 * DEAD, rotating(0, { lost: 1, lostFrom: 2 * DEAD }));
  const names = all.map(([, k]) => k);
  assert.ok(!names.includes('suspect'), `suspect: ${JSON.stringify(all)}`);
  assert.deepEqual(names, ['path0:up', 'state:up', 'info', 'path1:up', 'path1:down', 'degraded1']);
  // Path 1 last heard at 2*DEAD - I (its turn before the loss); down a path dead time later.
  assert.deepEqual(all[4], [2 * DEAD - I + DEAD, 'path1:down']);
  const v = l.view(6 * DEAD);
  assert.equal(v.b?.state, 'up');
  assert.deepEqual(v.b?.paths, ['up', 'down']);
  assert.deepEqual(l.wantsEveryPath(6 * DEAD), ['b'], 'a peer not heard on every path gets every path');
});

test('liveness: power-off (every path silent): suspect about suspectAfterMs later, down at deadTimeMs exactly', () => {
  const l = mk(['b']);
  const stopAt = 3_000;
  const all = run(l, 0, stopAt + 2 * DEAD, rotating(0, { stopAt }));
  const last = stopAt - I; // b's last heartbeat (path 1's turn; path 0 one interval before)
  const suspectAt = all.find(([, k]) => k === 'suspect')?.[0];
  const onTime = (timers.pathStride + 0.1) * I;
  // Path 0 falls late first: the paths disagree, the relaxed threshold holds until path 1 is late too.
  assert.equal(suspectAt, last + Math.floor(onTime) + 1);
  assert.ok((suspectAt ?? Infinity) - last <= timers.suspectAfterMs + I / 10 + 1, 'at most a tenth of an interval after suspectAfterMs');
  assert.deepEqual(
    all.filter(([t]) => t > last),
    [
      [last + timers.suspectAfterMs + I / 10 + 1, 'suspect'],
      [last - I + DEAD, 'path0:down'],
      [last + DEAD, 'path1:down'],
      [last + DEAD, 'state:down(silent)'],
    ],
  );
  assert.ok(!all.some(([, k]) => k.startsWith('degraded')), 'a dying node is not degraded redundancy');
  // nextDeadline is where Comm's one-shot timer wakes up: the end of the relaxed threshold.
  assert.equal(l.nextDeadline(stopAt + 2 * DEAD), null);
  const l2 = mk(['b']);
  run(l2, 0, stopAt, rotating(0, { stopAt }));
  assert.equal(l2.nextDeadline(last + 200), last + onTime + 1);
  assert.equal(l2.nextDeadline(last + onTime + 1), last - I + DEAD);
  assert.equal(l2.nextDeadline(last - I + DEAD), last + DEAD);
});

test('liveness: a leaving peer is down at once, not suspect, its paths up', () => {
  const l = mk(['b']);
  l.receive(hb('b', 0, 1), 1_000);
  const r = l.receive(hb('b', 0, 2, { leaving: true, hierarchies: { web: { state: 'stopping', epoch: 2, eligible: false } } }), 1_050);
  assert.ok(r.ok);
  assert.deepEqual(kinds(r.changes), ['state:down(leaving)', 'info']);
  const v = l.view(1_050).b;
  assert.equal(v?.state, 'down');
  assert.equal(v?.suspect, false);
  assert.equal(v?.leaving, true);
  assert.equal(v?.advert?.web?.state, 'stopping');
  assert.ok(Object.isFrozen(v?.advert) && Object.isFrozen(v?.advert?.web), 'adverts handed out frozen');
  // It changes its mind.
  const back = l.receive(hb('b', 0, 3), 1_100);
  assert.deepEqual(kinds(back.changes), ['state:up', 'info']);
});

test('liveness: a restarted peer (new incarnation) is accepted; its old incarnation is a replay', () => {
  const l = mk(['b']);
  l.receive(hb('b', 0, 500), 1_000);
  l.evaluate(1_000);
  // Just restarted, b has not heard our incarnation yet: seen (we echo it), not counted.
  const first = l.receive(hb('b', 0, 1, { incarnation: 7_001, heard: {} }), 1_100);
  assert.ok(!first.ok && first.reason === 'unconfirmed');
  assert.deepEqual(l.heard(), { b: 7_001 });
  assert.equal(l.view(1_100).b?.incarnation, 7_000);
  const r = l.receive(hb('b', 0, 2, { incarnation: 7_001 }), 1_250);
  assert.ok(r.ok);
  assert.equal(r.restartedFrom, 7_000);
  assert.deepEqual(kinds(r.changes), ['info']);
  assert.equal(l.view(1_250).b?.incarnation, 7_001);
  assert.equal(l.view(1_250).b?.state, 'up');
  assert.equal(l.receive(hb('b', 1, 501, { incarnation: 7_000 }), 1_300).ok, false, 'the old incarnation on any path');
  const same = l.receive(hb('b', 0, 3, { incarnation: 7_001 }), 1_400);
  assert.ok(same.ok && same.restartedFrom === undefined);
});

test('liveness: one of two paths lost and back: path events, degraded then recovered, the peer stays up', () => {
  const l = mk(['b']);
  const both = (t: number) => (t % I === 0 ? [hb('b', 0, t + 1), hb('b', 1, t + 1)] : []);
  const only0 = (t: number) => (t % I === 0 ? [hb('b', 0, t + 1)] : []);
  const all = run(l, 0, 5_000, (t) => (t < 1_500 || t >= 3_500 ? both(t) : only0(t)));
  assert.deepEqual(
    all.map(([, k]) => k),
    ['path0:up', 'state:up', 'info', 'path1:up', 'path1:down', 'degraded1', 'path1:up', 'recovered1'],
  );
  assert.deepEqual(all[4], [1_350 + DEAD, 'path1:down']);
});

test('liveness: a path that never works is reported after the grace; a late or returning peer is not degraded', () => {
  const l = mk(['b']);
  const all = run(l, 0, 2_000, (t) => (t % I === 0 ? [hb('b', 0, t + 1)] : []));
  assert.deepEqual(
    all.map(([t, k]) => `${t} ${k}`),
    ['0 path0:up', '0 state:up', '0 info', `${DEAD} path1:down`, `${DEAD} degraded1(never)`],
  );

  // A peer that appears after the grace, or comes back after being down: its paths come up
  // microseconds apart, which is no lost path.
  const m = mk(['b']);
  let seq = 0;
  const burst = (from: number, to: number) => (t: number) => (t >= from && t < to && (t - from) % I === 0 ? [hb('b', 0, ++seq), hb('b', 1, seq)] : []);
  const events = [...run(m, 0, 3_000, burst(2_000, 2_500)), ...run(m, 3_000, 6_000, burst(4_000, 4_500))];
  assert.ok(!events.some(([, k]) => k.startsWith('degraded')), JSON.stringify(events));
  assert.equal(events.filter(([, k]) => k === 'state:up').length, 2);
});

test('liveness: another peer is unaffected, and the state is plain data', () => {
  const l = mk(['b', 'c']);
  l.receive(hb('b', 0, 1), 100);
  l.receive(hb('c', 0, 1, { hierarchies: { web: { state: 'in-service', epoch: 1, eligible: true } } }), 100);
  l.evaluate(100);
  const ch = l.evaluate(100 + DEAD);
  assert.deepEqual(kinds(ch, 'b'), ['path0:down', 'path1:down', 'state:down(silent)', 'suspect']);
  assert.deepEqual(kinds(ch, 'c'), ['path0:down', 'path1:down', 'state:down(silent)', 'suspect']);
  l.receive(hb('c', 0, 2), 100 + DEAD);
  assert.equal(l.view(100 + DEAD).c?.state, 'up');
  assert.equal(l.view(100 + DEAD).b?.state, 'down');
  const copy = JSON.parse(JSON.stringify({ startedAt: l.startedAt, peers: l.peers }));
  assert.deepEqual(copy, { startedAt: l.startedAt, peers: l.peers });
});

// --- adverts of wire format 2: a summary in every heartbeat, the advert on news or request --------

const WEB1 = { web: { state: 'starting' as const, epoch: 0, eligible: false } };
const WEB2 = { web: { state: 'in-service' as const, epoch: 1, eligible: true } };
/** A format-2 heartbeat of b: the summary of advert version `v` (digest `d`), the advert when given. */
function hb2(path: number, seq: number, v: number, d: string, o: Partial<HeartbeatIn> = {}): HeartbeatIn {
  const x: HeartbeatIn = { node: 'b', path, incarnation: 7_000, seq, heard: { a: SELF_INC }, advertVersion: v, advertDigest: d, ...o };
  return x;
}

test('liveness format 2: alive without its advert is unknown; the advert is asked for once, then wanted until it comes', () => {
  const l = mk(['b']);
  const r = l.receive(hb2(0, 1, 1, 'd1'), 100);
  assert.ok(r.ok && r.need === true, 'ask at once');
  assert.equal(l.view(100).b?.state, 'unknown', 'alive, but what it runs is not known');
  assert.deepEqual(l.wanted(), ['b']);
  const r2 = l.receive(hb2(1, 2, 1, 'd1'), 200);
  assert.ok(r2.ok && r2.need === undefined, 'asked already: later heartbeats keep asking (wanted), no second immediate ask');
  const r3 = l.receive(hb2(0, 3, 1, 'd1', { hierarchies: WEB1 }), 201);
  assert.ok(r3.ok && r3.changed);
  assert.equal(l.view(201).b?.state, 'up');
  assert.deepEqual(l.view(201).b?.advert, WEB1);
  assert.deepEqual(l.wanted(), []);
  // News lost: the next routine summary names version 2, so it is wanted again.
  const r4 = l.receive(hb2(1, 5, 2, 'd2'), 300);
  assert.ok(r4.ok && r4.need === true);
  assert.equal(l.view(300).b?.state, 'unknown', 'our copy is not the one it names: not acted on');
  assert.deepEqual(l.view(300).b?.advert, WEB1);
  l.receive(hb2(0, 6, 2, 'd2', { hierarchies: WEB2 }), 301);
  assert.deepEqual(l.view(301).b?.advert, WEB2);
  assert.equal(l.view(301).b?.state, 'up');
  assert.deepEqual(l.wanted(), []);
});

test('liveness format 2: an older advert crossing on another path does not roll the copy back', () => {
  const l = mk(['b']);
  l.receive(hb2(0, 2, 2, 'd2', { hierarchies: WEB2 }), 100);
  const r = l.receive(hb2(1, 1, 1, 'd1', { hierarchies: WEB1 }), 101); // sent earlier, on path 1, arrives later
  assert.ok(r.ok && r.need === undefined);
  assert.deepEqual(l.view(101).b?.advert, WEB2);
  assert.deepEqual(l.wanted(), []);
  // Same version, another digest: not ours, want it.
  const r2 = l.receive(hb2(0, 3, 2, 'dX'), 150);
  assert.ok(r2.ok && r2.need === true);
});

test('liveness format 2: a restarted peer is unknown until its new advert; a request for ours is reported', () => {
  const l = mk(['b']);
  l.receive(hb2(0, 1, 1, 'd1', { hierarchies: WEB2 }), 100);
  assert.equal(l.view(100).b?.state, 'up');
  const r = l.receive(hb2(0, 1, 1, 'n1', { incarnation: 8_000, want: ['a'] }), 200);
  assert.ok(r.ok && r.need === true && r.request === true && r.restartedFrom === 7_000);
  assert.equal(l.view(200).b?.state, 'unknown', 'the old incarnation advert is not what it runs now');
  l.receive(hb2(1, 2, 1, 'n1', { incarnation: 8_000, hierarchies: WEB1 }), 201);
  assert.equal(l.view(201).b?.state, 'up');
  assert.deepEqual(l.view(201).b?.advert, WEB1);
  // A request inside a heartbeat that does not echo us is not answered (a replay could ask).
  const r3 = l.receive(hb2(0, 3, 1, 'n1', { incarnation: 8_000, heard: { a: 1 }, want: ['a'] }), 250);
  assert.equal(r3.ok, false);
});

test('liveness: a format-1 sender (previous release) carries its advert in every heartbeat and is never asked', () => {
  const l = mk(['b']);
  const r = l.receive(hb('b', 0, 1, { hierarchies: WEB1 }), 100);
  assert.ok(r.ok && r.need === undefined);
  assert.equal(l.view(100).b?.state, 'up');
  l.receive(hb('b', 1, 2, { hierarchies: WEB2 }), 150);
  assert.deepEqual(l.view(150).b?.advert, WEB2);
  assert.deepEqual(l.wanted(), []);
});

test('liveness: doubts and calm: a peer is calm only while we hear it and its last heartbeat said it hears us; an earlier release never is', () => {
  const l = mk(['b']);
  assert.deepEqual(l.doubts(0), ['b'], 'in the grace, not heard yet: doubted');
  let r = l.receive(hb('b', 0, 1, { doubts: ['a'] }), 10);
  assert.ok(r.ok && r.doubtChanged, 'first word: it doubts us');
  assert.deepEqual(l.doubts(10), [], 'we hear it');
  assert.equal(l.calm('b', 10), false, 'it does not hear us yet');
  r = l.receive(hb('b', 0, 2, { doubts: [] }), 160);
  assert.ok(r.ok && r.doubtChanged);
  assert.equal(l.calm('b', 160), true);
  r = l.receive(hb('b', 1, 3, { doubts: [] }), 310);
  assert.ok(r.ok && !r.doubtChanged, 'the same word again is no change');
  // Silent until suspect (here the relaxed threshold, the paths having taken turns): we doubt
  // it, so it is not calm whatever it said last.
  const suspectAt = Array.from({ length: 1000 }, (_, i) => 310 + i).find((t) => l.derive('b', t).suspect)!;
  assert.ok(suspectAt > 310 + timers.suspectAfterMs - 1 && suspectAt < 310 + DEAD);
  assert.equal(l.calm('b', suspectAt - 1), true);
  assert.equal(l.calm('b', suspectAt), false);
  assert.deepEqual(l.doubts(suspectAt), ['b']);
  // A heartbeat without doubts (format 2, an earlier release): it may be watching our keys.
  r = l.receive(hb('b', 0, 4), 1100);
  assert.ok(r.ok && r.doubtChanged);
  assert.deepEqual(l.doubts(1100), []);
  assert.equal(l.calm('b', 1100), false);
  assert.equal(l.calm('nobody', 1100), false);
});

test("liveness: contested: a hierarchy's listed node not calm with us; with the hierarchy's name, also a peer whose advert says it may run it", () => {
  const l = mk(['b', 'c']);
  // b hears us and says so; c, not in our list for web, advertises web eligible and doubts us.
  l.receive(hb2(0, 1, 1, 'd1', { hierarchies: WEB1, doubts: [] }), 10);
  l.receive({ ...hb2(0, 1, 1, 'd2', { hierarchies: WEB2, doubts: ['a'] }), node: 'c' }, 10);
  assert.equal(l.contested(['a', 'b'], 20), false, 'our list alone: b is calm');
  assert.equal(l.contested(['a', 'b'], 20, 'web'), true, 'c may race for web: it says it may run it, and it doubts us');
  assert.equal(l.contested(['a', 'b'], 20, 'db'), false, 'c says nothing about db');
  // c hears us again: calm everywhere.
  l.receive({ ...hb2(1, 2, 1, 'd2', { doubts: [] }), node: 'c' }, 30);
  assert.equal(l.contested(['a', 'b'], 40, 'web'), false);
  // b (advert: web not eligible) doubts us: contested through the list, not through its advert.
  l.receive(hb2(1, 2, 1, 'd1', { doubts: ['a'] }), 50);
  assert.equal(l.contested(['a'], 60, 'web'), false, 'b is not in that list and does not say it may run web');
  assert.equal(l.contested(['a', 'b'], 60, 'web'), true);
});
