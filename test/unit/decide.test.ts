// Table-driven tests of the pure decision core: partial views, ties, ineligible nodes,
// switchback policies, ownership loss, local recovery, shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialRuntime, mastership, type DecideInput, type HierarchyRuntime, type PeerView } from '../../harness/decide.ts';
import type { HierarchyConfig } from '../../hierarchies/model.ts';
import { hier, res } from './lib/hierarchy-fixture.ts';

const H = hier('web', { n1: 1, n2: 2, n3: 3 });

function rt(over: Partial<HierarchyRuntime> = {}): HierarchyRuntime {
  const base = initialRuntime(H, 'n1');
  base.phase = 'out-of-service';
  for (const k of Object.keys(base.resources)) base.resources[k] = 'stopped';
  return { ...base, ...over };
}
function running(over: Partial<HierarchyRuntime> = {}): HierarchyRuntime {
  const r = rt({ phase: 'in-service', ownership: 'owned', ...over });
  for (const k of Object.keys(r.resources)) r.resources[k] = 'running';
  return r;
}
const up = (hs: Record<string, PeerView['hierarchies'][string]> = {}): PeerView => ({ state: 'up', leaving: false, hierarchies: hs });
const down: PeerView = { state: 'down', leaving: false, hierarchies: {} };
const unknown: PeerView = { state: 'unknown', leaving: false, hierarchies: {} };
const idle = { state: 'out-of-service' as const, eligible: true };
const active = { state: 'in-service' as const, eligible: true };

function input(self: string, peers: Record<string, PeerView>, local: HierarchyRuntime, over: Partial<DecideInput> = {}): DecideInput {
  return { self, now: 1000, hierarchies: [H], peers, local: { web: local }, shutdown: false, adminStop: [], admin: {}, raceDelayPerRankMs: 300, ...over };
}

const cases: Array<{ name: string; in: DecideInput; expect: string | null; delay?: number }> = [
  { name: 'cold start, all up, n1 is master', in: input('n1', { n2: up({ web: idle }), n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 0 },
  { name: 'cold start, n2 sees n1 up and eligible: standby', in: input('n2', { n1: up({ web: idle }), n3: up({ web: idle }) }, rt()), expect: null },
  { name: 'n1 down: n2 is master', in: input('n2', { n1: down, n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 300 },
  { name: 'n1 and n2 down: n3 is master', in: input('n3', { n1: down, n2: down }, rt()), expect: 'acquire', delay: 600 },
  { name: 'n1, which ran it, down: n2 races its (released) disk without a rank delay', in: input('n2', { n1: { state: 'down', leaving: false, hierarchies: { web: active } }, n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 0 },
  { name: 'n1, which ran it, and n2 down: n3 waits one rank, for n2', in: input('n3', { n1: { state: 'down', leaving: false, hierarchies: { web: active } }, n2: down }, rt()), expect: 'acquire', delay: 300 },
  { name: 'peer still unknown (start-up grace): wait', in: input('n1', { n2: unknown, n3: up({ web: idle }) }, rt()), expect: null },
  { name: 'partial view: n2 does not see n1 (n1 sees n2): n2 races too, the disk decides', in: input('n2', { n1: down, n3: up({ web: idle }) }, rt()), expect: 'acquire' },
  { name: 'in service on a reachable lower-priority node: n1 stays standby (intelligent)', in: input('n1', { n2: up({ web: active }), n3: up({ web: idle }) }, rt()), expect: null },
  { name: 'higher-priority node reachable but ineligible: n2 is master, no rank delay (n1 will not race)', in: input('n2', { n1: up({ web: { state: 'out-of-service', eligible: false } }), n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 0 },
  { name: 'higher-priority node leaving (graceful stop): n2 is master, no rank delay', in: input('n2', { n1: { ...up({ web: idle }), leaving: true }, n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 0 },
  { name: 'higher-priority node reachable but without H yet (a reload in progress there): one rank delay', in: input('n2', { n1: up({}), n3: up({ web: idle }) }, rt()), expect: 'acquire', delay: 300 },
  { name: 'n1 ineligible and reachable, n2 down: n3 waits one rank (for n2 only)', in: input('n3', { n1: up({ web: { state: 'out-of-service', eligible: false } }), n2: down }, rt()), expect: 'acquire', delay: 300 },
  { name: 'node not in the priority list never runs it', in: { ...input('n4', { n1: down, n2: down, n3: down }, rt()) }, expect: null },
  { name: 'a probe said not installed here (OCF 5): not eligible, no cleanup, nothing blocked', in: input('n1', { n2: up({ web: idle }) }, rt({ cannotRun: 'app: not-installed (rc 5)' })), expect: null },
  { name: 'utility check failing: not eligible', in: input('n1', { n2: up({ web: idle }), n3: up({ web: idle }) }, rt({ utilityOk: false })), expect: null },
  { name: 'owner failing utility check gives it up', in: input('n1', { n2: up({ web: idle }) , n3: down }, running({ utilityOk: false })), expect: 'stop' },
  { name: 'intelligent switchback: n2 keeps running when n1 comes back', in: input('n2', { n1: up({ web: idle }), n3: up({ web: idle }) }, running()), expect: null },
  { name: 'automatic switchback: n2 hands back to n1', in: { ...input('n2', { n1: up({ web: idle }), n3: up({ web: idle }) }, running()), hierarchies: [{ ...H, switchback: 'automatic' }] }, expect: 'stop' },
  { name: 'ownership lost while in service: urgent stop, no release', in: input('n1', { n2: up({ web: active }) }, running({ ownership: 'lost' })), expect: 'stop' },
  { name: 'monitor failure within budget: restart in place', in: input('n1', { n2: up({ web: idle }) }, running({ monitorFailures: ['fs'], failuresInWindow: 1 })), expect: 'restart' },
  { name: 'monitor failure past budget: fail over (stop + release)', in: input('n1', { n2: up({ web: idle }) }, running({ monitorFailures: ['fs'], failuresInWindow: 3 })), expect: 'stop' },
  { name: 'OCF hard error (cannot run here) within budget: fail over at once, no restart', in: input('n1', { n2: up({ web: idle }) }, running({ monitorFailures: ['fs'], failuresInWindow: 1, cannotRun: 'fs: not-installed (rc 5)' })), expect: 'stop' },
  { name: 'after failing over, local failures make n1 ineligible', in: input('n1', { n2: down, n3: down }, rt({ failuresInWindow: 3 })), expect: null },
  { name: 'unprobed: probe first', in: input('n1', {}, initialRuntime(H, 'n1')), expect: 'probe' },
  { name: 'found running at probe: claim ownership without delay', in: input('n2', { n1: down }, running({ ownership: 'not-owned', wasRunning: true })), expect: 'acquire', delay: 0 },
  { name: 'found running but ownership refused: stop it', in: input('n2', { n1: up({ web: active }) }, running({ ownership: 'not-owned', acquireBackoffUntil: 5000 })), expect: 'stop' },
  { name: 'busy hierarchy: nothing', in: input('n1', { n2: down }, rt({ busy: true })), expect: null },
  { name: 'stop failed: blocked, no action', in: input('n1', { n2: down }, rt({ phase: 'failed', ownership: 'owned' })), expect: null },
  { name: 'stop failed with onStopFailure halt', in: { ...input('n1', { n2: down }, rt({ phase: 'failed', ownership: 'owned' })), hierarchies: [{ ...H, onStopFailure: 'halt' }] }, expect: 'halt' },
  { name: 'shutdown: stop and release', in: input('n1', { n2: up({ web: idle }) }, running(), { shutdown: 'switchover' }), expect: 'stop' },
  { name: 'held out of service by an admin on a reachable node: nobody takes it', in: input('n2', { n1: up({ web: { state: 'held', eligible: false } }) }, rt()), expect: null },
  { name: 'node left with --mode stop holding it: stays down', in: input('n2', { n1: { state: 'down', leaving: true, hierarchies: { web: { state: 'held', eligible: false } } } }, rt()), expect: null },
  { name: 'node left while H was FAILED there (its stop failed): nobody takes it', in: input('n2', { n1: { state: 'down', leaving: true, hierarchies: { web: { state: 'failed', eligible: false } } } }, rt()), expect: null },
  { name: 'node left with switchover: next node takes it', in: input('n2', { n1: { state: 'down', leaving: true, hierarchies: { web: idle } } }, rt()), expect: 'acquire' },
  { name: 'acquire backoff: master waits', in: input('n2', { n1: down }, rt({ acquireBackoffUntil: 2000 })), expect: null },
  { name: 'owned but out of service and master: start', in: input('n1', { n2: down }, rt({ ownership: 'owned' })), expect: 'start' },
  { name: 'owned, out of service, a better node is back: release', in: input('n2', { n1: up({ web: idle }) }, rt({ ownership: 'owned' })), expect: 'stop' },
  // The disks are ours, so n1's copy lost its reservation: releasing would let it write again.
  { name: 'owned, out of service, H still runs on a reachable node: keep the disks until it stops', in: input('n2', { n1: up({ web: active }) }, rt({ ownership: 'owned' })), expect: null },
  { name: 'disk I/O failing here: not master, a peer takes over', in: input('n1', { n2: up({ web: idle }) }, rt({ diskError: 'h/disk: io' })), expect: null },
  { name: 'registration left behind, not master: drop it', in: input('n2', { n1: up({ web: active }) }, rt({ diskCleanup: true })), expect: 'unregister' },
  { name: 'ownership unverified after a freeze: nothing starts', in: input('n1', { n2: down }, running({ ownership: 'unverified' })), expect: null },
];

for (const c of cases) {
  test(`decide: ${c.name}`, () => {
    const d = decide(c.in);
    const a = d.actions[0];
    assert.equal(a?.kind ?? null, c.expect, `note: ${d.notes.web}`);
    if (c.delay !== undefined && a?.kind === 'acquire') assert.equal(a.delayMs, c.delay);
  });
}

test('decide: restart covers the failed resource and its dependents, in order', () => {
  const d = decide(input('n1', {}, running({ monitorFailures: ['fs'], failuresInWindow: 1 })));
  const a = d.actions[0];
  assert.ok(a && a.kind === 'restart');
  assert.deepEqual(a.stop.flat(), ['app', 'fs']);
  assert.deepEqual(a.start.flat(), ['fs', 'app']);
});

test('decide: start order is children first, stop order the reverse', () => {
  const d = decide(input('n1', { n2: down }, rt({ ownership: 'owned' })));
  const a = d.actions[0];
  assert.ok(a && a.kind === 'start');
  const flat = a.levels.flat();
  assert.ok(flat.indexOf('disk') < flat.indexOf('fs'));
  assert.ok(flat.indexOf('fs') < flat.indexOf('app'));
  assert.ok(flat.indexOf('ip') < flat.indexOf('app'));
});

test('decide: independent hierarchies yield independent actions', () => {
  const H2 = { ...hier('db', { n2: 1, n1: 2 }) };
  const inp: DecideInput = {
    self: 'n1', now: 0, hierarchies: [H, H2], peers: { n2: up({ web: idle, db: idle }) },
    local: { web: rt(), db: rt() }, shutdown: false, adminStop: [], admin: {}, raceDelayPerRankMs: 300,
  };
  const d = decide(inp);
  assert.deepEqual(d.actions.map((a) => `${a.kind}:${a.hierarchy}`), ['acquire:web']);
  assert.match(d.notes.db!, /n2 has higher priority/);
});

test('decide: deterministic — same input, same output', () => {
  const inp = input('n2', { n1: down, n3: up({ web: idle }) }, rt());
  assert.deepEqual(decide(inp), decide(structuredClone(inp)));
});

test('mastership: ties are impossible — priorities are unique, exactly one master among a full view', () => {
  const views: Record<string, Record<string, PeerView>> = {
    n1: { n2: up({ web: idle }), n3: up({ web: idle }) },
    n2: { n1: up({ web: idle }), n3: up({ web: idle }) },
    n3: { n1: up({ web: idle }), n2: up({ web: idle }) },
  };
  const masters = Object.entries(views).filter(([self, peers]) => mastership(H, input(self, peers, rt()), rt()).master);
  assert.deepEqual(masters.map(([n]) => n), ['n1']);
});

test('advert: admin stop advertises held once out of service', () => {
  const d = decide(input('n1', {}, rt(), { adminStop: ['web'] }));
  assert.equal(d.advert.web?.state, 'held');
});

test('advert: unprobed hierarchy is advertised as starting so peers wait', () => {
  const d = decide(input('n1', {}, initialRuntime(H, 'n1')));
  assert.equal(d.advert.web?.state, 'starting');
});
