// The two halves together, as the trainer uses them: the sampler picks the source and numbers
// its blocks across ranks; each source's block order turns that number into (file, block, epoch).
import { describe, expect, it } from "vitest";
import { SourceBlockOrder } from "./block-order.js";
import { MixtureSampler } from "./sampler.js";

const manifests: Record<string, { name: string; blocks: number }[]> = {
  // v1.0 in miniature: StarCoder holds an eighth of SlimPajama's blocks, so over 3,002 blocks at
  // 69/31 it goes round about three times (920 reads of 300 blocks) while SlimPajama does not
  // finish its first epoch (2,082 reads of 2,300 blocks).
  slimpajama: Array.from({ length: 23 }, (_, i) => ({
    name: `train_slimpajama_${i}.bin`,
    blocks: 100,
  })),
  starcoder: [
    { name: "train_starcoder_1.bin", blocks: 120 },
    { name: "train_starcoder_0.bin", blocks: 180 },
  ],
};

describe("MixtureSampler + SourceBlockOrder", () => {
  it("reads every block once per epoch across 4 ranks, counts epochs, and resumes on 3 ranks", () => {
    const W = 4;
    const make = (rank: number, worldSize: number) => ({
      sampler: new MixtureSampler({ schedule: "v1.0", seed: 3407, rank, worldSize }),
      orders: Object.fromEntries(
        Object.entries(manifests).map(([name, files]) => [
          name,
          new SourceBlockOrder({ files, seed: 3407, name }),
        ]),
      ),
    });
    const ranks = Array.from({ length: W }, (_, r) => make(r, W));
    const reads = new Map<string, Map<string, number>>(); // source -> "file#block@epoch" -> count
    const read = (r: ReturnType<typeof make>) => {
      const pick = r.sampler.nextBlock();
      const ref = r.orders[pick.source]!.at(pick.sourceBlock);
      const key = `${ref.file}#${ref.block}@${ref.epoch}`;
      const m = reads.get(pick.source) ?? new Map<string, number>();
      m.set(key, (m.get(key) ?? 0) + 1);
      reads.set(pick.source, m);
      return ref;
    };
    for (let round = 0; round < 500; round++) for (const r of ranks) read(r);
    // Resume the same global stream on 3 ranks from rank 1's checkpoint.
    const saved = JSON.parse(JSON.stringify(ranks[1]!.sampler.state()));
    const resumed = [0, 1, 2].map((rank) => ({
      sampler: MixtureSampler.restore(saved, { rank, worldSize: 3 }),
      orders: ranks[0]!.orders,
    }));
    const lastEpoch: Record<string, number> = {};
    for (let round = 0; round < 334; round++) {
      for (const r of resumed) {
        const ref = read(r);
        lastEpoch[ref.file.split("_")[1]!] = ref.epoch;
      }
    }
    const total = 500 * W + 334 * 3;
    const counts = resumed[0]!.sampler.realisedBlocks();
    expect(counts.slimpajama! + counts.starcoder!).toBe(total);
    for (const [source, files] of Object.entries(manifests)) {
      const n = files.reduce((a, f) => a + f.blocks, 0);
      const m = reads.get(source)!;
      // No block read twice within an epoch, over both world sizes.
      expect([...m.values()].every((c) => c === 1)).toBe(true);
      const consumed = counts[source]!;
      expect(m.size).toBe(consumed);
      const fullEpochs = Math.floor(consumed / n);
      for (let e = 0; e < fullEpochs; e++) {
        expect([...m.keys()].filter((k) => k.endsWith(`@${e}`)).length).toBe(n);
      }
    }
    // StarCoder went round about three times (30.6% of 3,002 blocks over 300 blocks).
    expect(Math.floor(counts.starcoder! / 300)).toBe(3);
    expect(lastEpoch).toEqual({ slimpajama: 0, starcoder: 3 });
  });
});
