import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it, onTestFinished } from "vitest";
import { BUNDLED_VOCAB_URL, parseBundled } from "./bundled.js";
import { mergesFromPairList } from "./model.js";

describe("bundled vocabulary", () => {
  it("is reproduced byte for byte by the generator from the installed llama-tokenizer-js", () => {
    const dir = mkdtempSync(join(tmpdir(), "tokenizer-vocab-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "llama2.tltk.gz");
    const script = new URL("../scripts/build-default-vocab.mjs", import.meta.url).pathname;
    execFileSync(process.execPath, [script, "--out", out]);
    expect(readFileSync(out).equals(readFileSync(BUNDLED_VOCAB_URL))).toBe(true);
  });

  it("records its provenance in the header", () => {
    const model = parseBundled(readFileSync(BUNDLED_VOCAB_URL), "vocab");
    expect(model.source).toMatch(/llama-tokenizer-js@1\.2\.2, sha256 34a7b9f7/);
    expect(model.pieces).toHaveLength(32000);
    expect(model.mergeLeft).toHaveLength(61249);
  });

  it("reads merges from id pairs exactly as the string merge-list reader builds them", () => {
    const model = parseBundled(readFileSync(BUNDLED_VOCAB_URL), "vocab");
    const pairs = Array.from(model.mergeLeft, (a, i): [string, string] => [
      model.pieces[a]!,
      model.pieces[model.mergeRight[i]!]!,
    ]);
    const fromStrings = mergesFromPairList(model.pieces, pairs, "vocab");
    expect(model.mergeResult).toEqual(fromStrings.mergeResult);
    expect(model.mergeLeft).toEqual(fromStrings.mergeLeft);
    expect(model.mergeRight).toEqual(fromStrings.mergeRight);
    expect(model.mergeRank).toEqual(fromStrings.mergeRank);
  });

  it("refuses a damaged file", () => {
    const good = readFileSync(BUNDLED_VOCAB_URL);
    expect(() => parseBundled(good.subarray(0, 1000), "cut")).toThrow(/cut: not a gzip-compressed/);
    expect(() => parseBundled(gzipSync(Buffer.from("NOPE0000000000")), "magic")).toThrow(
      /bad magic/,
    );
  });
});
