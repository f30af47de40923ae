// Failover history (harness/history.ts): records from log records, availability and class of
// nines from records, rotation by size and streaming reads of both files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availability, historyOf, ninesOf, readHistory, HistoryWriter, type HistoryRecord } from '../../harness/history.ts';
import { silentLogger } from '../../harness/log.ts';

const rec = (at: number, hierarchy: string, node: string, transition: HistoryRecord['transition'], more: Partial<HistoryRecord> = {}): HistoryRecord => ({ at, hierarchy, node, transition, cause: 'x', ...more });

test('a failover log record becomes a record with its timings', () => {
  const r = historyOf({ level: 'info', fields: { event: 'in-service', hierarchy: 'web', from: 'n1', detectMs: 900.4, totalMs: 1100, acquireMs: 120, startMs: 70 }, msg: '', at: 5000 }, 'n2')!;
  assert.deepEqual(r, { at: 5000, hierarchy: 'web', node: 'n2', transition: 'in-service', cause: 'failover from n1', from: 'n1', detectMs: 900, raceMs: 120, recoverMs: 70, downMs: 1100 });
  assert.equal(historyOf({ level: 'info', fields: { event: 'in-service', hierarchy: 'web', from: null, totalMs: null, acquireMs: 1, startMs: 2 }, msg: '', at: 1 }, 'n2')!.downMs, undefined, 'a cold start is no outage');
  assert.equal(historyOf({ level: 'info', fields: { event: 'stopped', hierarchy: 'web' }, msg: '', at: 1 }, 'n2')!.transition, 'out-of-service');
  assert.equal(historyOf({ level: 'error', fields: { event: 'stop-failed', hierarchy: 'web' }, msg: 'web/app: STOP FAILED', at: 1 }, 'n2')!.cause, 'web/app: STOP FAILED');
  assert.equal(historyOf({ level: 'info', fields: { event: 'action' }, msg: '', at: 1 }, 'n2'), null);
});

test('availability: failovers, hand-overs between nodes, overlaps counted once, clipped to the window', () => {
  const records = [
    rec(10_000, 'web', 'n2', 'in-service', { downMs: 1_000 }), // outage 9000..10000
    rec(20_000, 'web', 'n2', 'out-of-service'), // hand-over to n1: 20000..20500
    rec(20_500, 'web', 'n1', 'in-service'),
    rec(30_000, 'web', 'n1', 'in-service', { downMs: 1_500 }), // 28500..30000
    rec(30_200, 'web', 'n3', 'in-service', { downMs: 1_000 }), // 29200..30200, overlaps: +200
    rec(1_000, 'db', 'n1', 'in-service', { downMs: 3_000 }), // -2000..1000, clipped to 0..1000
  ];
  const [db, web] = availability(records, 0, 100_000);
  assert.equal(web!.downMs, 1_000 + 500 + 1_500 + 200);
  assert.equal(web!.failovers, 3);
  assert.equal(web!.percent, 100 * (1 - 3_200 / 100_000));
  assert.equal(web!.nines, 1);
  assert.equal(db!.downMs, 1_000);
  // A hand-over seen by one node only (no in-service elsewhere) is not guessed.
  assert.equal(availability([rec(5, 'x', 'n1', 'out-of-service'), rec(9, 'x', 'n1', 'in-service')], 0, 10)[0]!.downMs, 0);
});

test('class of nines', () => {
  assert.equal(ninesOf(0, 1000), null);
  assert.equal(ninesOf(1, 1000), 3); // 99.9 %
  assert.equal(ninesOf(5, 10_000), 3); // 99.95 %
  assert.equal(ninesOf(1, 100_000), 5);
  assert.equal(ninesOf(500, 1000), 0); // 50 %
  assert.equal(ninesOf(86_400_000 * 0.01, 86_400_000), 2);
});

test('the history rotates by size and is read back from both files, filtered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'harness-history-'));
  try {
    const w = new HistoryWriter({ stateDir: dir, node: 'n1', log: silentLogger(), maxBytes: 400 });
    for (let i = 0; i < 12; i++) w.append(rec(i * 1000, i % 2 ? 'web' : 'db', 'n1', 'in-service', { downMs: 10 }));
    w.stop();
    assert.ok(existsSync(join(dir, 'history.jsonl.1')), 'rotated');
    assert.ok(readFileSync(join(dir, 'history.jsonl')).length < 400 + 200);
    const all = await readHistory(dir);
    const kept = all.map((r) => r.at);
    assert.deepEqual(kept, [...kept].sort((a, b) => a - b), 'oldest first');
    assert.equal(kept.at(-1), 11_000, 'the newest is kept');
    const web = await readHistory(dir, { hierarchy: 'web', since: 5_000 });
    assert.ok(web.every((r) => r.hierarchy === 'web' && r.at >= 5_000) && web.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
