// Seeded pseudo-random numbers for the deterministic simulator: the same seed replays the same
// run, bit for bit, on every machine and Node version (integer arithmetic only: Math.imul, >>>).
//
// Generator: xoshiro128** (Blackman & Vigna), 128 bits of state, period 2^128 - 1, good enough
// for choosing faults and latencies; its state is expanded from the 32-bit seed with splitmix32.
// Not for cryptography.
//
// fork(label) derives a child stream from this stream's seed and the label ONLY — not from how
// many numbers were drawn so far. Adding a draw in one place (a new fault, a new node) then does
// not shift every other stream, and the same label always gives the same child:
// rng.fork('node:n1') is the n1 stream of this seed wherever and whenever it is asked for.

const GOLDEN = 0x9e3779b9;

/** One splitmix32 step's output mixer (a 32-bit finaliser with full avalanche). */
function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of `s`. */
function hashLabel(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A 32-bit seed: any integer in [-2^31, 2^32), taken modulo 2^32. */
function checkSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 32) {
    throw new RangeError(`Rng: seed must be a 32-bit integer, got ${String(seed)}`);
  }
  return seed >>> 0;
}

export class Rng {
  /** The seed this stream was made from (unsigned 32-bit): print it, replay it. */
  readonly seed: number;
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  constructor(seed: number) {
    this.seed = checkSeed(seed);
    let a = this.seed;
    const next = (): number => {
      a = (a + GOLDEN) | 0;
      return mix32(a);
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1; // the one forbidden state
  }

  /** Next unsigned 32-bit integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.uint32() / 2 ** 32;
  }

  /** Uniform integer in [lo, hi], both ends included; unbiased (rejection sampling). */
  int(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo > hi) {
      throw new RangeError(`Rng.int: need integers lo <= hi, got ${String(lo)}, ${String(hi)}`);
    }
    const span = hi - lo + 1;
    if (span > 2 ** 32) {
      // Wider than one draw: combine two (53 bits; spans this wide are not used by the simulator).
      const x = (this.uint32() * 2 ** 21 + (this.uint32() >>> 11)) / 2 ** 53;
      return lo + Math.floor(x * span);
    }
    const limit = 2 ** 32 - (2 ** 32 % span); // largest multiple of span that fits
    for (;;) {
      const x = this.uint32();
      if (x < limit) return lo + (x % span);
    }
  }

  /** True with probability p (p <= 0: never, p >= 1: always; still consumes one draw). */
  chance(p: number): boolean {
    if (Number.isNaN(p)) throw new RangeError('Rng.chance: p is NaN');
    return this.next() < p;
  }

  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(arr: readonly T[]): T {
    if (arr.length === 0) throw new RangeError('Rng.pick: empty array');
    return arr[this.int(0, arr.length - 1)] as T;
  }

  /** Shuffles `arr` in place (Fisher-Yates) and returns it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = arr[i] as T;
      arr[i] = arr[j] as T;
      arr[j] = t;
    }
    return arr;
  }

  /** An independent stream derived from this stream's seed and `label` (see the header). */
  fork(label: string): Rng {
    return new Rng(mix32(mix32(this.seed ^ GOLDEN) ^ hashLabel(String(label))));
  }
}
