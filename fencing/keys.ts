// Reservation keys: 64 bits = node part (high 32) | generation (low 32).
//
// The node part is a stable hash of (cluster, node name), never a position in the node list:
// fence_scsi once derived it from the node's index and removing a node shifted everyone's key,
// so fencing hit the wrong node. A hash only changes when the node is renamed.
//
// The generation part lets the disk act as the last comm path: the holder bumps it every
// keyRefreshMs, so a challenger that sees it change knows the holder is alive (only the network
// is split), and one that sees it frozen knows the holder is dead or hung. It also makes every
// incarnation's key distinct, so a stale registration of an earlier incarnation of ourselves is
// recognisable (same node part, other generation) and can be preempted.
import { createHash } from 'node:crypto';
import type { Key } from './backend.ts';

const MASK32 = 0xffffffffn;
const MAX_KEY = (1n << 64n) - 1n;

/** 32-bit hash of "cluster\0node", never 0 (a 0 node part could yield the illegal key 0). */
export function nodeHash(cluster: string, node: string): number {
  const digest = createHash('sha256').update(`${cluster}\0${node}`, 'utf8').digest();
  // Take the first non-zero 32-bit word; all eight being zero is not going to happen, but the
  // fallback keeps the "never 0" promise unconditional.
  for (let i = 0; i + 4 <= digest.length; i += 4) {
    const word = digest.readUInt32BE(i);
    if (word !== 0) return word;
  }
  return 1;
}

/** Key of `node` in `cluster` at `generation` (only the low 32 bits of it are kept). */
export function nodeKey(cluster: string, node: string, generation: number): Key {
  if (typeof cluster !== 'string' || cluster === '') throw new Error('nodeKey: cluster name is empty');
  if (typeof node !== 'string' || node === '') throw new Error(`nodeKey: node name is empty (cluster ${cluster})`);
  if (!Number.isSafeInteger(generation)) {
    throw new Error(`nodeKey: generation of node ${node} must be an integer, got ${String(generation)}`);
  }
  return (BigInt(nodeHash(cluster, node)) << 32n) | BigInt(generation >>> 0);
}

/** The node part (high 32 bits) of a key. */
export function nodePart(key: Key): number {
  return Number((key >> 32n) & MASK32);
}

/** The generation part (low 32 bits) of a key. */
export function generationOf(key: Key): number {
  return Number(key & MASK32);
}

/** Same node part, another generation. */
export function withGeneration(key: Key, generation: number): Key {
  return (key & ~MASK32 & MAX_KEY) | BigInt(generation >>> 0);
}

/**
 * The generation that says "released": the holder stopped everything of the hierarchy and hands
 * the disk over by leaving its reservation in place under this key. A racer preempts it at once
 * (no liveness window: its holder said so). Releasing never leaves the disk unreserved: under
 * Write Exclusive an unreserved disk takes anyone's writes, also those of a copy that was
 * preempted earlier and has not noticed yet. Only the holder can set it (a conditional REGISTER
 * of its own key), and refreshes never reach it (nextKey skips it).
 */
export const RELEASED_GENERATION = 0xffffffff;

/** The released marker of the node that owns `key`. */
export function releasedKey(key: Key): Key {
  return withGeneration(key, RELEASED_GENERATION);
}

export function isReleasedKey(key: Key): boolean {
  return generationOf(key) === RELEASED_GENERATION;
}

/** The key the holder moves to at its next refresh (generation + 1, wrapping at 2^32, skipping the released marker). */
export function nextKey(key: Key): Key {
  const g = (generationOf(key) + 1) >>> 0;
  return withGeneration(key, g === RELEASED_GENERATION ? 0 : g);
}

/** As sg_persist prints keys: "0x" + lowercase hex, no padding (e.g. 0x1, 0x8c3e0a1200000007). */
export function formatKey(key: Key): string {
  if (typeof key !== 'bigint' || key < 0n || key > MAX_KEY) {
    throw new Error(`formatKey: not a 64-bit reservation key: ${String(key)}`);
  }
  return `0x${key.toString(16)}`;
}

/** Parses "0x…" (any case, as sg_persist prints) or plain decimal digits; rejects anything else. */
export function parseKey(s: string): Key {
  const text = typeof s === 'string' ? s.trim() : '';
  if (!/^0x[0-9a-f]{1,16}$/i.test(text) && !/^[0-9]{1,20}$/.test(text)) {
    throw new Error(`invalid reservation key "${String(s)}": expected 0x followed by up to 16 hex digits`);
  }
  const key = BigInt(text);
  if (key > MAX_KEY) throw new Error(`invalid reservation key "${text}": larger than 64 bits`);
  return key;
}

/**
 * Pairs of distinct node names whose node parts collide: they would be indistinguishable on
 * disk (each could preempt the other as "its own stale key"), so the config must be refused.
 */
export function findKeyCollisions(cluster: string, nodes: string[]): [string, string][] {
  const seen = new Map<number, string[]>();
  const pairs: [string, string][] = [];
  for (const node of new Set(nodes)) {
    const h = nodeHash(cluster, node);
    const earlier = seen.get(h);
    if (earlier) {
      for (const other of earlier) pairs.push([other, node]);
      earlier.push(node);
    } else {
      seen.set(h, [node]);
    }
  }
  return pairs;
}
