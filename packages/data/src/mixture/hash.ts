/**
 * Counter-based randomness: every random number is a pure function of (key, domain, a, b), so
 * the value at position i is computed directly, never by stepping a generator i times. That is
 * what makes `restore()` O(1) and lets every rank compute the same global stream.
 *
 * The mixer is a 32-bit avalanche bijection (xorshift-multiply, constants from Chris Wellons'
 * hash-prospector search). A hash absorbs one 32-bit word per round (sponge style), so equal
 * prefixes of input cost nothing extra and inputs that differ in any word diverge completely.
 * Statistical quality (not cryptographic strength) is what matters here; the tests check
 * uniformity and independence of neighbouring counters.
 */

const TWO_POW_32 = 4294967296;

/** A 64-bit key as two uint32 words. */
export type Key = readonly [number, number];

/** Bijective 32-bit mixer with full avalanche. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x21f0aaad);
  h ^= h >>> 15;
  h = Math.imul(h, 0x735a2d97);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Low and high 32-bit words of a non-negative safe integer. */
function lo32(x: number): number {
  return x >>> 0;
}
function hi32(x: number): number {
  return Math.floor(x / TWO_POW_32) >>> 0;
}

/**
 * A keyed hash for one (key, domain) pair: the key and domain are absorbed once, so each call
 * costs 4 mixer rounds (the two 32-bit words of `a`, then of `b`). The state between rounds is
 * 32 bits, like the output of any 32-bit generator.
 */
export class KeyedHash {
  private readonly prefix: number;

  constructor(key: Key, domain: number) {
    let h = mix32(key[0] ^ 0x243f6a88);
    h = mix32(h ^ key[1]);
    this.prefix = mix32(h ^ domain);
  }

  /** uint32 hash of (a, b); a and b are non-negative safe integers (counters, indices). */
  hash(a: number, b = 0): number {
    let h = mix32(this.prefix ^ lo32(a));
    h = mix32(h ^ hi32(a) ^ 0x85a308d3);
    h = mix32(h ^ lo32(b));
    return mix32(h ^ hi32(b) ^ 0x13198a2e);
  }

  /** Uniform double in [0, 1) from (a): 53 bits from two hashes of a. */
  uniform(a: number): number {
    const high = this.hash(a, 0) >>> 5; // 27 bits
    const low = this.hash(a, 1) >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }
}

/** uint32 hash of (key, domain, a, b): `new KeyedHash(key, domain).hash(a, b)`. */
export function hash32(key: Key, domain: number, a: number, b = 0): number {
  return new KeyedHash(key, domain).hash(a, b);
}

/** Uniform double in [0, 1), a pure function of its arguments. */
export function uniform01(key: Key, domain: number, a: number): number {
  return new KeyedHash(key, domain).uniform(a);
}

/**
 * Derives a key from a user seed (a non-negative safe integer or any string) and tags.
 * Integers and strings never collide: they are absorbed under different domains.
 */
export function deriveKey(seed: number | string, ...tags: (number | string)[]): Key {
  let a = 0x6a09e667;
  let b = 0xbb67ae85;
  const absorb = (word: number) => {
    a = mix32(a ^ word);
    b = mix32((b + a) ^ 0x3c6ef372);
  };
  const absorbValue = (v: number | string) => {
    if (typeof v === "number") {
      absorb(0x1001);
      absorb(lo32(v));
      absorb(hi32(v));
    } else {
      absorb(0x2002);
      absorb(v.length);
      for (let i = 0; i < v.length; i++) absorb(v.charCodeAt(i));
    }
  };
  absorbValue(seed);
  for (const t of tags) absorbValue(t);
  return [a, b];
}

/** Checks a seed the way every public constructor does, with one clear message. */
export function checkSeed(seed: unknown, where: string): number | string {
  if (typeof seed === "string") return seed;
  if (typeof seed === "number" && Number.isSafeInteger(seed) && seed >= 0) return seed;
  throw new TypeError(
    `${where}: seed must be a non-negative safe integer or a string, got ${JSON.stringify(seed)}`,
  );
}

/** Short hex digest of a string (for fingerprints in saved state, not for security). */
export function digestHex(text: string): string {
  const [a, b] = deriveKey(text, "digest");
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}
