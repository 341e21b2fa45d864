/**
 * A stateless pseudo-random permutation of [0, n): `apply(i)` gives the i-th element of a
 * shuffled order in O(1) time and memory, without materialising the shuffle. That is what
 * lets a per-source block order restore at any position instantly and lets every rank agree
 * on the same shuffle.
 *
 * Construction: a Feistel network over [0, 2^m) with 2^m >= n > 2^(m-1), keyed round
 * functions, and cycle walking (re-apply until the value lands in [0, n)). The halves have
 * a = floor(m/2) and b = ceil(m/2) bits and swap sizes each round ((L, R) -> (R, L xor F(R)),
 * F's output masked to L's width), so odd m needs no padding. Every round is invertible
 * whatever F is, so the network is a bijection of [0, 2^m); cycle walking restricts a
 * bijection of a superset to a bijection of the subset (the cycle through x in [0, n) must
 * come back to [0, n)). Since 2^m < 2n, the expected walk is under 2 steps.
 * Rounds: Luby-Rackoff needs 4 with ideal round functions and large halves; tiny domains need
 * more (with 2-bit halves, 6 rounds left a measurable bias in where pairs of elements land),
 * so 8 rounds, and 12 when the domain is at most 2^8. The tests check single positions and
 * pairs with chi-square.
 */
import { type Key, KeyedHash } from "./hash.js";

const DOMAIN_ROUND = 0x5045524d; // "PERM"

/** Largest domain supported: halves of at most 26 bits keep everything in exact doubles. */
export const MAX_PERMUTATION_SIZE = 2 ** 52;

export class FeistelPermutation {
  readonly size: number;
  private readonly rounds: KeyedHash[];
  /** Widths (bits) of the left half at even rounds and at odd rounds. */
  private readonly leftBits: number;
  private readonly rightBits: number;
  private readonly roundCount: number;
  private readonly leftSize: number;
  private readonly rightSize: number;

  constructor(size: number, key: Key) {
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_PERMUTATION_SIZE) {
      throw new RangeError(
        `FeistelPermutation: size must be an integer in [1, 2^52], got ${String(size)}`,
      );
    }
    this.size = size;
    let bits = 2;
    while (2 ** bits < size) bits++;
    this.leftBits = Math.floor(bits / 2);
    this.rightBits = bits - this.leftBits;
    this.leftSize = 2 ** this.leftBits;
    this.rightSize = 2 ** this.rightBits;
    this.roundCount = bits <= 8 ? 12 : 8;
    this.rounds = Array.from(
      { length: this.roundCount },
      (_, r) => new KeyedHash(key, DOMAIN_ROUND + r),
    );
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
    // x = L * 2^rb + R with L of lb bits and R of rb bits; the widths swap every round, so
    // even rounds see (leftBits, rightBits) and odd rounds the reverse.
    const evenLeftSize = this.leftSize;
    const oddLeftSize = this.rightSize;
    let left = Math.floor(x / this.rightSize);
    let right = x - left * this.rightSize;
    for (let round = 0; round < this.roundCount; round++) {
      const leftMask = (round & 1 ? oddLeftSize : evenLeftSize) - 1; // F must fit L's width
      const next = (left ^ (this.rounds[round]!.hash(right) & leftMask)) >>> 0;
      left = right;
      right = next;
    }
    // An even number of rounds restores the original widths.
    return left * this.rightSize + right;
  }
}
