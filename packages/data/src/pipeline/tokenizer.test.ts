import { fileURLToPath } from "node:url";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { afterAll, describe, expect, it } from "vitest";
import { tokenizerIdentity, wrapLlamaTokenizer } from "./tokenizer.js";

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
});
