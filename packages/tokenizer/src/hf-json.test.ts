/** The tokenizer.json layouts Llama-family repos ship, all read to the same tokenizer. */
import { beforeAll, describe, expect, it } from "vitest";
import {
  LlamaTokenizer,
  PieceType,
  parseHfTokenizerJson,
  toHuggingFaceTokenizerJson,
} from "./index.js";

let bundled: LlamaTokenizer;
let base: Record<string, unknown>;
const sample = "Hello world!  <s> 🦙\tx\n東京 ▁▁ end";

beforeAll(async () => {
  bundled = await LlamaTokenizer.load();
  base = JSON.parse(toHuggingFaceTokenizerJson(bundled.model));
});

const load = (j: Record<string, unknown>): LlamaTokenizer =>
  LlamaTokenizer.fromModel(parseHfTokenizerJson(JSON.stringify(j), "test.json"));

describe("tokenizer.json variants", () => {
  it("Llama 2 layout: <unk>/<s>/</s> as special added tokens become unknown/control pieces", () => {
    const j = structuredClone(base);
    j.added_tokens = ["<unk>", "<s>", "</s>"].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
    const t = load(j);
    expect(Array.from(t.model.types.subarray(0, 4))).toEqual([
      PieceType.unknown,
      PieceType.control,
      PieceType.control,
      PieceType.byte,
    ]);
    expect(t.encode(sample)).toEqual(bundled.encode(sample));
    expect(t.decode(t.encode(sample))).toBe(bundled.decode(bundled.encode(sample)));
  });

  it('merges as "left right" strings (Llama 2 layout) and as [left, right] pairs (newer)', () => {
    const j = structuredClone(base);
    const model = j.model as { merges: Array<[string, string]> };
    expect(Array.isArray(model.merges[0])).toBe(true);
    expect(load(j).encode(sample)).toEqual(bundled.encode(sample));
    (j.model as { merges: unknown }).merges = model.merges.map(([a, b]) => `${a} ${b}`);
    expect(load(j).encode(sample)).toEqual(bundled.encode(sample));
  });

  it("newer layout: Metaspace pre-tokenizer (prepend_scheme first, split false), no normaliser", () => {
    const j = structuredClone(base);
    j.normalizer = null;
    j.pre_tokenizer = {
      type: "Metaspace",
      replacement: "\u2581",
      prepend_scheme: "first",
      split: false,
    };
    expect(load(j).encode(sample)).toEqual(bundled.encode(sample));
    j.pre_tokenizer = {
      type: "Metaspace",
      replacement: "\u2581",
      prepend_scheme: "first",
      split: true,
    };
    expect(() => load(j)).toThrow(/split: true/);
  });

  it("without the Prepend normaliser there is no dummy prefix", () => {
    const j = structuredClone(base);
    j.normalizer = {
      type: "Sequence",
      normalizers: [{ type: "Replace", pattern: { String: " " }, content: "\u2581" }],
    };
    const t = load(j);
    expect(t.encode("Hello", { bos: false })).toEqual([10994]);
    expect(bundled.encode("Hello", { bos: false })).toEqual([15043]);
  });
});
