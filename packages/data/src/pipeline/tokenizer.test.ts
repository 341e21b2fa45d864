import { fileURLToPath } from "node:url";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { afterAll, describe, expect, it } from "vitest";
import { bytesTokenizer, tokenizerIdentity, wrapLlamaTokenizer } from "./tokenizer.js";

const modelFile = fileURLToPath(
  new URL("../../../tokenizer/src/testdata/llama2-tokenizer.model", import.meta.url),
);

describe("tokenizer identity recorded in manifests", () => {
  const loaded: LlamaTokenizer[] = [];
  afterAll(() => {
    for (const t of loaded) t.close();
  });

  it("is the same for the bundled vocabulary and the same vocabulary read from tokenizer.model", async () => {
    const bundled = await LlamaTokenizer.load();
    const fromFile = await LlamaTokenizer.load(modelFile);
    loaded.push(bundled, fromFile);
    const a = tokenizerIdentity(bundled);
    expect(a).toEqual(tokenizerIdentity(fromFile));
    expect(a).toMatchObject({ name: "llama2-sentencepiece", vocabSize: 32000, eosId: 2 });
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("differs for a vocabulary whose ids mean other pieces", async () => {
    const bundled = await LlamaTokenizer.load();
    loaded.push(bundled);
    const pieces = [...bundled.model.pieces];
    [pieces[300], pieces[301]] = [pieces[301]!, pieces[300]!];
    const swapped = { ...bundled, model: { ...bundled.model, pieces }, vocabSize: 32000, eosId: 2 };
    expect(tokenizerIdentity(swapped).hash).not.toBe(tokenizerIdentity(bundled).hash);
  });

  it("wraps the tokenizer for the pipeline: no BOS, no EOS, Llama 2 ids", async () => {
    const tok = await LlamaTokenizer.load();
    loaded.push(tok);
    const ids = await wrapLlamaTokenizer(tok).encodeBatch(["Hello world!"]);
    expect(Array.from(ids[0]!)).toEqual([15043, 3186, 29991]);
  });

  it("encodeInto writes the ids of encodeBatch plus EOS at an offset, for Llama 2 and bytes", async () => {
    const llama = await LlamaTokenizer.load();
    loaded.push(llama);
    const texts = ["Hello world!", "naïve 中文 \u{1F600} \ud800 lone surrogate", "x"];
    for (const tok of [wrapLlamaTokenizer(llama), bytesTokenizer()]) {
      const expected = (await tok.encodeBatch(texts)).flatMap((ids) => [
        ...Array.from(ids),
        tok.eosId,
      ]);
      const out = new Uint16Array(3 + expected.length + 2).fill(7);
      let at = 3;
      for (const t of texts) at += tok.encodeInto(t, out, at);
      expect(at).toBe(3 + expected.length);
      expect(Array.from(out.subarray(3, at))).toEqual(expected);
      expect(Array.from(out.subarray(0, 3))).toEqual([7, 7, 7]); // before the offset: untouched
      expect(Array.from(out.subarray(at))).toEqual([7, 7]);
    }
  });

  it("encodeInto refuses, writing nothing, when the ids do not fit or the offset is bad", async () => {
    const llama = await LlamaTokenizer.load();
    loaded.push(llama);
    for (const tok of [wrapLlamaTokenizer(llama), bytesTokenizer()]) {
      const out = new Uint16Array(4).fill(9);
      expect(() => tok.encodeInto("Hello world!", out, 1)).toThrow(RangeError);
      expect(Array.from(out)).toEqual([9, 9, 9, 9]);
      expect(() => tok.encodeInto("x", out, 5)).toThrow(RangeError);
      expect(() => tok.encodeInto("x", out, -1)).toThrow(RangeError);
    }
  });
});
