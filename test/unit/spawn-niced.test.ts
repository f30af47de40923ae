// spawnNiced: the child is born at the requested nice value, without nice(1), and the calling
// thread is back at its own right after. Needs root (or CAP_SYS_NICE) to come back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { getPriority } from 'node:os';
import { spawnNiced } from '../../agents/spawn-niced.ts';

const root = process.getuid?.() === 0;

/** The nice value the child reads for itself (field 19 of /proc/self/stat), and what was exec'd. */
async function childNice(nice: number | undefined): Promise<{ nice: number; spawnfile: string }> {
  const child = spawnNiced('/bin/sh', ['-c', "cut -d' ' -f19 /proc/$$/stat"], { stdio: ['ignore', 'pipe', 'inherit'] }, nice);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  await once(child, 'close');
  return { nice: Number(out.trim()), spawnfile: child.spawnfile };
}

test('the child starts at the requested nice value, no nice(1), and the caller stays at its own', { skip: !root && 'needs root to restore its own nice value' }, async () => {
  const own = getPriority();
  const r = await childNice(own + 7);
  assert.equal(r.nice, own + 7);
  assert.equal(r.spawnfile, '/bin/sh', 'spawned directly, not through nice(1)');
  assert.equal(getPriority(), own, 'the calling thread is back at its own nice value');
});

test('undefined, or not above our own: inherited', async () => {
  const own = getPriority();
  assert.equal((await childNice(undefined)).nice, own);
  assert.equal((await childNice(own)).nice, own);
  assert.equal(getPriority(), own);
});
