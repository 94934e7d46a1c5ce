// Seeded, portable PRNG (xoshiro128**, seeded through splitmix32). Every random choice the
// engine or a workload makes draws from a stream derived from the run seed, so a run is a
// pure function of (config, seed, recorded inputs).

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `seed` is the run seed; `stream` keys independent streams (e.g. one per link). */
  constructor(seed: number, ...stream: number[]) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    let s = splitmix32(((seed >>> 0) ^ Math.floor(seed / 0x100000000)) >>> 0);
    for (const k of stream) s = splitmix32((s ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0);
    this.a = splitmix32(s);
    this.b = splitmix32(this.a);
    this.c = splitmix32(this.b);
    this.d = splitmix32(this.c) | 1; // never all-zero state
  }

  /** Uniform integer in [0, 2^32). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, bound) for bound <= 2^53. */
  nextBelow(bound: number): number {
    if (!(bound >= 1 && Number.isSafeInteger(bound))) throw new RangeError(`bad bound ${bound}`);
    return Math.floor(this.nextFloat() * bound);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
