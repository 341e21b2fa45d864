import { readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  decodeLitpkdsHeader,
  encodeLitpkdsHeader,
  LITPKDS_HEADER_BYTES,
  MANIFEST_FORMAT,
  type ShardManifest,
  ShardSet,
  ShardWriter,
  type TokenizerIdentity,
  TokenizerMismatchError,
  writeManifest,
} from "./index.js";

const tok: TokenizerIdentity = { name: "test", vocabSize: 32000, eosId: 2, hash: "abc" };
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "shards-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function manifestFor(
  files: ShardManifest["splits"][string]["files"],
  blockSize: number,
): ShardManifest {
  const tokens = files.reduce((a, f) => a + f.tokens, 0);
  return {
    format: MANIFEST_FORMAT,
    source: "unit",
    blockSize,
    chunkTokens: blockSize * 4,
    dtype: "uint16",
    tokenizer: tok,
    eosAppended: true,
    splits: {
      train: { files, documents: 1, tokens, blocks: tokens / blockSize, droppedTailTokens: 0 },
    },
    stats: { documentsRead: 1, bytesRead: 1, removed: {}, badRecords: 0, documentsKept: 1 },
    config: {},
    createdAt: new Date(0).toISOString(),
  };
}

describe("LITPKDS header", () => {
  it("matches lit-gpt's struct layout byte for byte", () => {
    // struct.pack("<7sQBQ", b"LITPKDS", 1, 8, 2049 * 1024)
    const expected = Buffer.from("4c4954504b44530100000000000000080004200000000000", "hex");
    expect(encodeLitpkdsHeader(2049 * 1024).equals(expected)).toBe(true);
    expect(decodeLitpkdsHeader(expected)).toEqual({ version: 1, dtypeCode: 8, chunkSize: 2098176 });
  });
  it("rejects a wrong magic, version, or short buffer with the file name", () => {
    const bad = encodeLitpkdsHeader(10);
    bad.write("NOTPKDS", 0, "ascii");
    expect(() => decodeLitpkdsHeader(bad, "x.bin")).toThrow(/x\.bin: not a LITPKDS shard: magic/);
    const v2 = encodeLitpkdsHeader(10);
    v2.writeBigUInt64LE(2n, 7);
    expect(() => decodeLitpkdsHeader(v2, "y.bin")).toThrow(/y\.bin: unsupported LITPKDS version 2/);
    expect(() => decodeLitpkdsHeader(new Uint8Array(5), "z.bin")).toThrow(
      /z\.bin.*shorter than the 24-byte/,
    );
  });
});

describe("ShardWriter + ShardSet", () => {
  const blockSize = 5;
  async function writeSet(tokenCount: number) {
    const w = new ShardWriter({ dir, prefix: "train_unit", blockSize, chunkTokens: blockSize * 4 });
    const all = Array.from({ length: tokenCount }, (_, i) => i % 60000);
    // feed in uneven document-sized pieces
    for (let i = 0; i < all.length; i += 7) await w.add(all.slice(i, i + 7));
    const r = await w.finish();
    await writeManifest(dir, manifestFor(r.files, blockSize));
    return { r, all };
  }

  it("writes full chunks, a shorter last file of whole blocks, and drops the partial block", async () => {
    const { r } = await writeSet(5 * 9 + 3); // 9 blocks + 3 tokens
    expect(r.files.map((f) => [f.name, f.blocks])).toEqual([
      ["train_unit_0000000000.bin", 4],
      ["train_unit_0000000001.bin", 4],
      ["train_unit_0000000002.bin", 1],
    ]);
    expect(r.droppedTailTokens).toBe(3);
    const bytes = await readFile(join(dir, "train_unit_0000000000.bin"));
    expect(bytes.length).toBe(LITPKDS_HEADER_BYTES + 2 * 20);
    expect(decodeLitpkdsHeader(bytes).chunkSize).toBe(20);
    expect(bytes.readUInt16LE(LITPKDS_HEADER_BYTES + 2 * 3)).toBe(3);
  });

  it("writes the same files from Uint16Array runs (the spool's fast copy) as from plain arrays", async () => {
    const all = Array.from({ length: 5 * 9 + 3 }, (_, i) => (i * 7919) % 65536);
    const sums: string[][] = [];
    for (const typed of [false, true]) {
      const w = new ShardWriter({ dir, prefix: `typed_${typed}`, blockSize, chunkTokens: 20 });
      for (let i = 0; i < all.length; i += 7) {
        const run = all.slice(i, i + 7);
        await w.add(typed ? Uint16Array.from(run) : run);
      }
      sums.push((await w.finish()).files.map((f) => f.sha256));
    }
    expect(sums[1]).toEqual(sums[0]);
    expect(sums[0]?.length).toBe(3);
  });

  it("reads back every block in order, by file and by global index", async () => {
    const { all } = await writeSet(5 * 9 + 3);
    const set = await ShardSet.open(dir, { tokenizer: tok });
    expect(set.numBlocks).toBe(9);
    expect(set.files.map((f) => f.blocks)).toEqual([4, 4, 1]);
    const out = new Uint16Array(blockSize);
    const seen: number[] = [];
    for (let g = 0; g < set.numBlocks; g++) seen.push(...set.readGlobalBlock(g, out));
    expect(seen).toEqual(all.slice(0, 45));
    expect([...set.readBlock(1, 2)]).toEqual(all.slice(30, 35));
    expect(set.locate(8)).toEqual({ fileIndex: 2, blockIndex: 0 });
    await set.verifyChecksums();
    set.close();
  });

  it("carries the remainder over instead of writing it", async () => {
    const w = new ShardWriter({ dir, prefix: "p", blockSize, chunkTokens: 10 });
    await w.add([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    const r = await w.finish({ carryOver: true });
    expect(r.files.length).toBe(1);
    expect([...r.remainder]).toEqual([11, 12, 13]);
    expect(r.droppedTailTokens).toBe(0);
  });

  it("a one-block split still works (small validation sets)", async () => {
    await writeSet(5);
    const set = await ShardSet.open(dir);
    expect(set.numBlocks).toBe(1);
    expect([...set.readBlock(0, 0)]).toEqual([0, 1, 2, 3, 4]);
  });

  it("refuses bad inputs with clear errors", async () => {
    expect(() => new ShardWriter({ dir, prefix: "p", blockSize: 5, chunkTokens: 12 })).toThrow(
      /multiple of blockSize/,
    );
    const w = new ShardWriter({ dir, prefix: "p", blockSize: 5, chunkTokens: 10 });
    await expect(w.add([70000])).rejects.toThrow(/70000 does not fit uint16/);
    await expect(ShardSet.open(dir)).rejects.toThrow(/no manifest/);
    await writeSet(5 * 9);
    await expect(ShardSet.open(dir, { tokenizer: { ...tok, hash: "other" } })).rejects.toThrow(
      TokenizerMismatchError,
    );
    await expect(ShardSet.open(dir, { split: "validation" })).rejects.toThrow(
      /no split "validation"/,
    );
    // `tokenizer: tok.identity` on a LlamaTokenizer (no such property) must not skip the check
    const llama = { vocabSize: 32000 } as unknown as { identity?: TokenizerIdentity };
    await expect(ShardSet.open(dir, { tokenizer: llama.identity })).rejects.toThrow(
      "ShardSet.open: options.tokenizer is undefined; pass tokenizerIdentity(tok)",
    );
    await expect(
      ShardSet.open(dir, { tokenizer: llama as unknown as TokenizerIdentity }),
    ).rejects.toThrow(
      "ShardSet.open: options.tokenizer is not a tokenizer identity (no name, hash, eosId)",
    );
    const set = await ShardSet.open(dir);
    expect(() => set.readBlock(0, 4)).toThrow(/out of range/);
    expect(() => set.readBlock(3, 0)).toThrow(/out of range/);
    expect(() => set.assertTokenizer({ ...tok, eosId: 1 })).toThrow(/eosId 2 != 1/);
    await truncate(join(dir, "train_unit_0000000001.bin"), 30);
    await expect(ShardSet.open(dir)).rejects.toThrow(
      /train_unit_0000000001\.bin: 30 bytes.*truncated/,
    );
    await writeFile(join(dir, "manifest.json"), "{ not json");
    await expect(ShardSet.open(dir)).rejects.toThrow(/manifest is not valid JSON/);
  });

  it("reads blocks across many files with at most maxOpenFiles descriptors open", async () => {
    // 40 files of 4 blocks, read in a scattered order as the trainer's permutation does
    const { all } = await writeSet(5 * 4 * 40);
    const fdCount = () => readdirSync("/proc/self/fd").length;
    const before = fdCount();
    const set = await ShardSet.open(dir, { maxOpenFiles: 3 });
    expect(set.files.length).toBe(40);
    let most = 0;
    for (let i = 0; i < set.numBlocks; i++) {
      const g = (i * 37) % set.numBlocks; // 37 is prime to 160: every block once
      expect([...set.readGlobalBlock(g)], `block ${g}`).toEqual(all.slice(5 * g, 5 * g + 5));
      most = Math.max(most, fdCount() - before, set.openFiles);
      expect(set.openFiles).toBeLessThanOrEqual(3);
    }
    expect(most).toBe(3); // the bound is reached and held, not 40
    set.close();
    expect(fdCount()).toBe(before);
    await expect(ShardSet.open(dir, { maxOpenFiles: 0 })).rejects.toThrow(
      /maxOpenFiles must be a positive integer/,
    );
  });

  it("detects a corrupted file by checksum", async () => {
    await writeSet(20);
    const p = join(dir, "train_unit_0000000000.bin");
    const b = await readFile(p);
    b[30] = (b[30] ?? 0) ^ 0xff;
    await writeFile(p, b);
    const set = await ShardSet.open(dir);
    await expect(set.verifyChecksums()).rejects.toThrow(/sha256/);
  });
});
