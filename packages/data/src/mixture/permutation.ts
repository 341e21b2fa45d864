/**
 * A stateless pseudo-random permutation of [0, n): `apply(i)` gives the i-th element of a
 * shuffled order in O(1) time and memory, without materialising the shuffle. That is what
 * lets a per-source block order restore at any position instantly and lets every rank agree
 * on the same shuffle.
 *
 * Construction: a balanced Feistel network over [0, 2^(2h)) with 2^(2h) >= n (h bits per
 * half), keyed round functions from hash32, and cycle walking (re-apply until the value
 * lands in [0, n)). A Feistel network is a bijection for any round function, and cycle
 * walking restricts a bijection of a superset to a bijection of the subset (the cycle through
 * x in [0, n) must come back to [0, n)). Since 2^(2h) < 4n, the expected walk is under 4 steps.
 * Six rounds: Luby-Rackoff needs 4 with ideal round functions; the extra two are cheap margin.
 */
import { hash32, type Key } from "./hash.js";

const ROUNDS = 6;
const DOMAIN_ROUND = 0x5045524d; // "PERM"

/** Largest domain supported: halves of at most 26 bits keep everything in exact doubles. */
export const MAX_PERMUTATION_SIZE = 2 ** 52;

export class FeistelPermutation {
  readonly size: number;
  private readonly key: Key;
  private readonly halfBits: number;
  private readonly halfSize: number;
  private readonly mask: number;

  constructor(size: number, key: Key) {
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_PERMUTATION_SIZE) {
      throw new RangeError(
        `FeistelPermutation: size must be an integer in [1, 2^52], got ${String(size)}`,
      );
    }
    this.size = size;
    this.key = key;
    let bits = 2;
    while (2 ** bits < size) bits += 2;
    this.halfBits = bits / 2;
    this.halfSize = 2 ** this.halfBits;
    this.mask = this.halfSize - 1;
  }

  /** The element at position `index` of the shuffled order; a bijection of [0, size). */
  apply(index: number): number {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`FeistelPermutation: index ${index} outside [0, ${this.size})`);
    }
    if (this.size === 1) return 0;
    let x = index;
    do x = this.encrypt(x);
    while (x >= this.size);
    return x;
  }

  private encrypt(x: number): number {
    let left = Math.floor(x / this.halfSize);
    let right = x - left * this.halfSize;
    for (let round = 0; round < ROUNDS; round++) {
      // (L, R) -> (R, L xor F(R)): invertible whatever F is.
      const f = hash32(this.key, DOMAIN_ROUND, round, right) & this.mask;
      const next = (left ^ f) >>> 0;
      left = right;
      right = next;
    }
    return left * this.halfSize + right;
  }
}
