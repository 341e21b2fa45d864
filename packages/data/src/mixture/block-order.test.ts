import { describe, expect, it } from "vitest";
import { BlockOrderError, type BlockOrderState, SourceBlockOrder } from "./block-order.js";
import { deriveKey, uniform01 } from "./hash.js";
import { FeistelPermutation } from "./permutation.js";

const files = [
  { name: "train_starcoder_0000000002.bin", blocks: 5 },
  { name: "train_starcoder_0000000000.bin", blocks: 7 },
  { name: "train_starcoder_0000000003.bin", blocks: 0 },
  { name: "train_starcoder_0000000001.bin", blocks: 3 },
];
const total = 15;

function epochBlocks(order: SourceBlockOrder, epoch: number): string[] {
  return Array.from({ length: order.totalBlocks }, (_, i) => {
    const r = order.at(epoch * order.totalBlocks + i);
    expect(r.epoch).toBe(epoch);
    return `${r.file}#${r.block}`;
  });
}

describe("FeistelPermutation", () => {
  it("is a bijection of [0, n) for many sizes", () => {
    for (const n of [1, 2, 3, 4, 5, 16, 17, 255, 256, 257, 1000, 4099]) {
      const p = new FeistelPermutation(n, deriveKey(n));
      const seen = new Uint8Array(n);
      for (let i = 0; i < n; i++) seen[p.apply(i)]!++;
      expect(seen.every((v) => v === 1)).toBe(true);
    }
  });

  it("handles domains beyond 2^32 and refuses out-of-range input", () => {
    const p = new FeistelPermutation(2 ** 40 + 3, deriveKey(1));
    const a = p.apply(2 ** 40 + 2);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThan(2 ** 40 + 3);
    expect(() => p.apply(2 ** 40 + 3)).toThrow(RangeError);
    expect(() => new FeistelPermutation(0, deriveKey(1))).toThrow(RangeError);
  });

  it("looks uniform: where element 0 lands is spread evenly over keys", () => {
    const n = 10;
    const counts = new Array(n).fill(0);
    const trials = 20000;
    for (let k = 0; k < trials; k++) counts[new FeistelPermutation(n, deriveKey(k)).apply(0)]++;
    const expected = trials / n;
    const chi2 = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(35); // 9 degrees of freedom: p < 1e-4 beyond 33.7
    // Pairs: (where 0 lands, where 1 lands) is uniform over the 90 ordered pairs.
    const pairs = new Map<number, number>();
    for (let k = 0; k < 45000; k++) {
      const p = new FeistelPermutation(n, deriveKey("pairs", k));
      const code = p.apply(0) * n + p.apply(1);
      pairs.set(code, (pairs.get(code) ?? 0) + 1);
    }
    expect(pairs.size).toBe(90);
    const chi2Pairs = [...pairs.values()].reduce((acc, c) => acc + (c - 500) ** 2 / 500, 0);
    expect(chi2Pairs).toBeLessThan(140); // 89 degrees of freedom: p < 1e-4 beyond 137
  });
});

describe("counter-based uniforms", () => {
  it("are uniform and uncorrelated between neighbouring counters", () => {
    const key = deriveKey("x");
    const n = 100000;
    const buckets = new Array(20).fill(0);
    let prev = uniform01(key, 1, 0);
    let corr = 0;
    for (let i = 1; i <= n; i++) {
      const u = uniform01(key, 1, i);
      if (!(u >= 0 && u < 1)) throw new Error(`uniform01 out of range: ${u}`);
      buckets[Math.floor(u * 20)]++;
      corr += (u - 0.5) * (prev - 0.5);
      prev = u;
    }
    const chi2 = buckets.reduce((acc, c) => acc + (c - n / 20) ** 2 / (n / 20), 0);
    expect(chi2).toBeLessThan(50); // 19 degrees of freedom
    expect(Math.abs(corr / n / (1 / 12))).toBeLessThan(0.02);
    expect(deriveKey(1)).not.toEqual(deriveKey("1"));
  });
});

describe("SourceBlockOrder", () => {
  it("reads every block exactly once per epoch and reshuffles each epoch", () => {
    const order = new SourceBlockOrder({ files, seed: 1, name: "starcoder" });
    expect(order.totalBlocks).toBe(total);
    expect(order.emptyFiles).toEqual(["train_starcoder_0000000003.bin"]);
    const all = files
      .flatMap((f) => Array.from({ length: f.blocks }, (_, b) => `${f.name}#${b}`))
      .sort();
    const e0 = epochBlocks(order, 0);
    const e1 = epochBlocks(order, 1);
    expect([...e0].sort()).toEqual(all);
    expect([...e1].sort()).toEqual(all);
    expect(e0).not.toEqual(e1);
    const r = order.at(3 * total + 2);
    expect(r.epoch).toBe(3);
    expect(files[r.fileIndex]!.name).toBe(r.file);
    expect(r.block).toBeLessThan(files[r.fileIndex]!.blocks);
  });

  it("does not depend on the order the files are listed in (glob order), only on names and seed", () => {
    const a = new SourceBlockOrder({ files, seed: 9, name: "s" });
    const b = new SourceBlockOrder({ files: [...files].reverse(), seed: 9, name: "s" });
    const refs = (o: SourceBlockOrder) =>
      Array.from({ length: 40 }, (_, i) => `${o.at(i).file}#${o.at(i).block}`);
    expect(refs(a)).toEqual(refs(b));
    expect(refs(a)).not.toEqual(refs(new SourceBlockOrder({ files, seed: 10, name: "s" })));
    expect(refs(a)).not.toEqual(refs(new SourceBlockOrder({ files, seed: 9, name: "t" })));
  });

  it("gives W ranks disjoint shares whose union is the global stream, for several W", () => {
    const global = new SourceBlockOrder({ files, seed: 4 });
    for (const W of [1, 2, 3, 4, 7, 16]) {
      const ranks = Array.from(
        { length: W },
        (_, rank) => new SourceBlockOrder({ files, seed: 4, rank, worldSize: W }),
      );
      const seen = new Set<number>();
      for (let round = 0; round < 10; round++) {
        for (const r of ranks) {
          const ref = r.next();
          expect(seen.has(ref.index)).toBe(false);
          seen.add(ref.index);
          expect(ref).toEqual(global.at(ref.index));
        }
      }
      expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 10 * W }, (_, i) => i));
      expect(new Set(ranks.map((r) => JSON.stringify(r.state()))).size).toBe(1);
      expect(ranks[0]!.epoch).toBe(Math.floor((10 * W) / total));
    }
  });

  it("restores in O(1) at any point, under another world size, and refuses a changed file list", () => {
    const two = [0, 1].map(
      (rank) => new SourceBlockOrder({ files, seed: 2, name: "x", rank, worldSize: 2 }),
    );
    for (let i = 0; i < 23; i++) for (const r of two) r.next();
    const saved = JSON.parse(JSON.stringify(two[1]!.state())) as BlockOrderState;
    expect(saved.cursor).toBe(46);
    const global = new SourceBlockOrder({ files, seed: 2, name: "x" });
    const three = [0, 1, 2].map((rank) =>
      SourceBlockOrder.restore(saved, { files, rank, worldSize: 3 }),
    );
    for (let i = 0; i < 5; i++) {
      three.forEach((r, rank) => {
        expect(r.next()).toEqual(global.at(46 + 3 * i + rank));
      });
    }
    const grown = [...files, { name: "train_starcoder_0000000004.bin", blocks: 1 }];
    expect(() => SourceBlockOrder.restore(saved, { files: grown })).toThrow(/file list changed/);
    expect(() =>
      SourceBlockOrder.restore({ ...saved, format: "x" } as unknown as BlockOrderState, { files }),
    ).toThrow(BlockOrderError);
    expect(() => SourceBlockOrder.restore({ ...saved, cursor: -1 }, { files })).toThrow(/cursor/);
  });

  it("refuses bad file lists with clear errors", () => {
    expect(() => new SourceBlockOrder({ files: [], seed: 1 })).toThrow(/no blocks to read/);
    expect(
      () => new SourceBlockOrder({ files: [{ name: "a", blocks: 0 }], seed: 1, name: "skypile" }),
    ).toThrow(/skypile.*all empty/);
    expect(
      () =>
        new SourceBlockOrder({
          files: [
            { name: "a", blocks: 1 },
            { name: "a", blocks: 2 },
          ],
          seed: 1,
        }),
    ).toThrow(/listed twice/);
    expect(() => new SourceBlockOrder({ files: [{ name: "a", blocks: -1 }], seed: 1 })).toThrow(
      /blocks -1/,
    );
    expect(() => new SourceBlockOrder({ files: [{ name: "a", blocks: 1.5 }], seed: 1 })).toThrow(
      /blocks 1.5/,
    );
    expect(() => new SourceBlockOrder({ files: [{ name: "", blocks: 1 }], seed: 1 })).toThrow(
      /name/,
    );
    expect(() => new SourceBlockOrder({ files, seed: 1, rank: 3, worldSize: 3 })).toThrow(/rank/);
    expect(() => new SourceBlockOrder({ files, seed: 1 }).at(-1)).toThrow(RangeError);
  });
});
