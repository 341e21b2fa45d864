import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clusterPairs, REMOVE_EXACT, REMOVE_NEAR } from "./cluster.js";
import { readRemoveList, writeRemoveList, writeSortedKeys } from "./files.js";
import { mergeBand } from "./merge.js";
import {
  collisionProbability,
  DEFAULT_MINHASH,
  jaccard,
  MinHasher,
  shingleHashes,
  wordHashes,
} from "./minhash.js";

const text = Array.from({ length: 400 }, (_, i) => `word${i % 97} token${(i * 7) % 31}`).join(" ");

describe("MinHash", () => {
  it("normalises case, digits and punctuation before hashing", () => {
    expect(wordHashes("Hello, World! 2024")).toEqual(wordHashes("hello world 1999"));
    expect(wordHashes("你好世界").length).toBe(4); // each Han character is a word
  });

  it("is deterministic and identical texts share every band", () => {
    const a = new MinHasher().signature(text);
    const b = new MinHasher().signature(`${text.toUpperCase()}!!!`);
    expect([...a.bandKeys]).toEqual([...b.bandKeys]);
    expect(a.exact).toEqual(b.exact);
    const c = new MinHasher().signature(`${text} extra words here`);
    expect(c.exact).not.toEqual(a.exact);
  });

  it("the one-pass signature equals words -> shingles -> minhashes, on every kind of text", () => {
    // deterministic pseudo-random texts: Latin words, digits, punctuation, Han, kana, emoji
    // (surrogates), combining marks, runs of separators, 0-6 words (fewer than the n-gram)
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const pieces = [
      "Word",
      "wörd",
      "ÉTÉ",
      "x1",
      "2024",
      "你",
      "好世界",
      "カナ",
      "😀",
      "e\u0301",
      ", ",
      "  ",
      "\n",
      "-",
      "ß",
      "İ",
    ];
    const texts = ["", " ", "!!", "one", "one two", "a b c d", "a b c d e", "你好世界", "😀😀"];
    for (let t = 0; t < 300; t++) {
      const n = rand(4) === 0 ? rand(7) : 20 + rand(300);
      let s = "";
      for (let i = 0; i < n; i++) s += pieces[rand(pieces.length)] + (rand(3) ? " " : "");
      texts.push(s);
    }
    for (const ngram of [1, 3, 5]) {
      const h = new MinHasher({ ...DEFAULT_MINHASH, ngram });
      for (const s of texts) {
        const fused = h.signature(s);
        const reference = h.signatureOfWords(wordHashes(s));
        expect({ ...fused, bandKeys: [...fused.bandKeys] }, JSON.stringify(s)).toEqual({
          ...reference,
          bandKeys: [...reference.bandKeys],
        });
      }
    }
  });

  it("the one-pass signature stays exact across its word buffer's refills (long documents)", () => {
    // 65,536 buffered words per fold: these documents fold 1-4 times, ending at, just past and
    // well past a refill, and one of them is a single run of Han characters (a word each)
    const word = (i: number) => `w${(i * 2654435761) % 50_021}`;
    const long = (words: number) => Array.from({ length: words }, (_, i) => word(i)).join(" ");
    const texts = [long(65_536), long(65_537), long(65_540), long(200_003), "汉".repeat(70_000)];
    for (const ngram of [1, 5]) {
      const h = new MinHasher({ ...DEFAULT_MINHASH, ngram });
      for (const s of texts) {
        const fused = h.signature(s);
        const reference = h.signatureOfWords(wordHashes(s));
        expect({ ...fused, bandKeys: [...fused.bandKeys] }).toEqual({
          ...reference,
          bandKeys: [...reference.bandKeys],
        });
      }
      // and the buffer holds nothing of the previous document afterwards
      const short = "a short text after the long ones";
      expect(h.signature(short)).toEqual(
        new MinHasher({ ...DEFAULT_MINHASH, ngram }).signature(short),
      );
    }
  });

  it("signature agreement estimates Jaccard", () => {
    const h = new MinHasher({ ...DEFAULT_MINHASH, bands: 32, rows: 8 });
    const words = text.split(" ");
    const edited = [
      ...words.slice(0, 300),
      ...Array.from({ length: 100 }, (_, i) => `new${i}`),
      ...words.slice(300),
    ].join(" ");
    const sa = shingleHashes(wordHashes(text), 5);
    const sb = shingleHashes(wordHashes(edited), 5);
    const j = jaccard(sa, sb);
    const ma = Uint32Array.from(h.minhashes(sa));
    const mb = h.minhashes(sb);
    const agree = ma.filter((v, i) => v === mb[i]).length / ma.length;
    expect(Math.abs(agree - j)).toBeLessThan(0.1);
  });

  it("S-curve of the defaults: steep between 0.7 and 0.9", () => {
    expect(collisionProbability(0.9, DEFAULT_MINHASH)).toBeGreaterThan(0.9);
    expect(collisionProbability(0.95, DEFAULT_MINHASH)).toBeGreaterThan(0.99);
    expect(collisionProbability(0.7, DEFAULT_MINHASH)).toBeLessThan(0.05);
    expect(collisionProbability(0.6, DEFAULT_MINHASH)).toBeLessThan(0.01);
    expect(() => new MinHasher({ ...DEFAULT_MINHASH, bands: 0 })).toThrow(
      /bands must be a positive integer/,
    );
  });
});

describe("dedup stage files", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "dedup-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("merges sorted bands across tasks into pairs and clusters them, keeping the earliest doc", async () => {
    // task 0: docs 0..3, task 1: docs 0..2. Keys: A shared by (0,1),(1,2); B by (0,3),(1,0); C by (1,0),(1,1)
    await writeSortedKeys(
      join(dir, "t0b0"),
      Uint32Array.from([9, 9, 0, 1, 1, 1, 2, 2, 3, 5, 5, 2]),
    );
    await writeSortedKeys(join(dir, "t1b0"), Uint32Array.from([1, 1, 2, 2, 2, 0, 7, 7, 1]));
    await writeSortedKeys(join(dir, "t0b1"), Uint32Array.from([4, 4, 0]));
    await writeSortedKeys(join(dir, "t1b1"), Uint32Array.from([3, 3, 0, 3, 3, 1]));
    const n0 = await mergeBand(
      [
        { task: 0, path: join(dir, "t0b0") },
        { task: 1, path: join(dir, "t1b0") },
      ],
      join(dir, "p0"),
    );
    expect(n0).toBe(2); // A: (0,1)-(1,2); B: (0,3)-(1,0)
    const n1 = await mergeBand(
      [
        { task: 0, path: join(dir, "t0b1") },
        { task: 1, path: join(dir, "t1b1") },
      ],
      join(dir, "p1"),
    );
    expect(n1).toBe(1); // C: (1,0)-(1,1), an exact band
    const lists = clusterPairs([
      { path: join(dir, "p0"), exact: false },
      { path: join(dir, "p1"), exact: true },
    ]);
    // components: {(0,1),(1,2)} keeps (0,1); {(0,3),(1,0),(1,1)} keeps (0,3)
    expect(lists.get(0)).toBeUndefined();
    expect([...(lists.get(1) ?? [])]).toEqual([0, REMOVE_NEAR, 1, REMOVE_EXACT, 2, REMOVE_NEAR]);
    await writeRemoveList(join(dir, "r1"), lists.get(1) as Uint32Array);
    expect(readRemoveList(join(dir, "r1"))).toEqual(
      new Map([
        [0, REMOVE_NEAR],
        [1, REMOVE_EXACT],
        [2, REMOVE_NEAR],
      ]),
    );
    expect(readRemoveList(join(dir, "missing")).size).toBe(0);
  });
});
