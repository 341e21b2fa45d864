/**
 * encodeInto: the ids of encode() written into a caller's typed array at an offset, so a
 * token stream can be packed without one array per document; overflow and misuse are errors
 * that write nothing.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaTokenizer, maxEncodedLength, PieceType, type TokenizerModel } from "./index.js";
import { variedTexts } from "./testing/varied-text.js";

const reference = JSON.parse(
  readFileSync(new URL("./testdata/llama-tokenizer-js-cases.json", import.meta.url), "utf8"),
) as { cases: Array<{ text: string; ids: number[] }> };

let tok: LlamaTokenizer;
let texts: string[];

beforeAll(async () => {
  tok = await LlamaTokenizer.load();
  texts = [
    ...reference.cases.map((c) => c.text),
    "",
    " ",
    "\u{1F999} \uD800 lone surrogate",
    ...variedTexts({ seed: 7, count: 150, pieces: tok.model.pieces, maxLength: 5000 }),
  ];
});

describe("encodeInto", () => {
  for (const [name, make] of [
    ["Uint16Array", (n: number) => new Uint16Array(n)],
    ["Int32Array", (n: number) => new Int32Array(n)],
    ["Uint32Array", (n: number) => new Uint32Array(n)],
  ] as const) {
    it(`packs many texts back to back into one ${name}, id for id as encode()`, () => {
      const opts = { bos: false, eos: true };
      const expected = texts.flatMap((t) => tok.encode(t, opts));
      const out = make(expected.length + 7).fill(0xabc);
      let at = 3;
      for (const t of texts) at += tok.encodeInto(t, out, at, opts);
      expect(at).toBe(3 + expected.length);
      expect(Array.from(out.subarray(3, at))).toEqual(expected);
      // Nothing outside the written range was touched.
      expect(Array.from(out.subarray(0, 3))).toEqual([0xabc, 0xabc, 0xabc]);
      expect(Array.from(out.subarray(at))).toEqual(new Array(4).fill(0xabc));
    });
  }

  it("takes the same bos/eos options as encode (BOS by default)", () => {
    const out = new Int32Array(16);
    expect(tok.encodeInto("Hello world!", out)).toBe(4);
    expect(Array.from(out.subarray(0, 4))).toEqual([1, 15043, 3186, 29991]);
    const n = tok.encodeInto("Hello world!", out, 4, { bos: false, eos: true });
    expect(Array.from(out.subarray(4, 4 + n))).toEqual([15043, 3186, 29991, 2]);
  });

  it("fits exactly at the end; one short throws a RangeError and writes nothing", () => {
    const ids = tok.encode("Hello world!");
    const exact = new Uint16Array(ids.length + 2);
    expect(tok.encodeInto("Hello world!", exact, 2)).toBe(ids.length);
    const short = new Uint16Array(ids.length + 1).fill(7);
    expect(() => tok.encodeInto("Hello world!", short, 2)).toThrow(
      /4 ids do not fit at offset 2 of a buffer of length 5 \(room for 3\); nothing was written/,
    );
    expect(Array.from(short)).toEqual([7, 7, 7, 7, 7]);
    expect(() => tok.encodeInto("x", new Int32Array(0))).toThrow(RangeError);
    // The scratch state is intact after an overflow.
    expect(tok.encode("Hello world!")).toEqual(ids);
  });

  it("rejects a bad offset, a non-string and an unsupported buffer type", () => {
    const out = new Int32Array(8);
    for (const bad of [-1, 9, 1.5, Number.NaN]) {
      expect(() => tok.encodeInto("a", out, bad), String(bad)).toThrow(
        /offset must be an integer in \[0, 8\]/,
      );
    }
    expect(() => tok.encodeInto(null as unknown as string, out)).toThrow(
      /encodeInto: expected a string, got null/,
    );
    for (const bad of [new Float64Array(8), new Uint8Array(8), [0, 0, 0], new Int16Array(8)]) {
      expect(() => tok.encodeInto("a", bad as unknown as Int32Array)).toThrow(TypeError);
    }
  });

  it("refuses a Uint16Array when ids can exceed 65535", () => {
    const n = 70_000;
    const pieces = ["<unk>", "<s>", "</s>", ...Array.from({ length: n - 3 }, (_, i) => `p${i}`)];
    const types = new Uint8Array(n).fill(PieceType.normal);
    types.set([PieceType.unknown, PieceType.control, PieceType.control]);
    const empty = new Int32Array(0);
    const model: TokenizerModel = {
      pieces,
      types,
      mergeLeft: empty,
      mergeRight: empty,
      mergeRank: empty,
      mergeResult: empty,
      extraChars: [],
      unkId: 0,
      bosId: 1,
      eosId: 2,
      byteFallback: false,
      addDummyPrefix: true,
      escapeWhitespaces: true,
      removeExtraWhitespaces: false,
      source: "test model with 70000 pieces",
    };
    const big = LlamaTokenizer.fromModel(model);
    expect(() => big.encodeInto("a", new Uint16Array(8))).toThrow(
      /Uint16Array cannot hold ids of a 70000-piece vocabulary/,
    );
    expect(big.encodeInto("a", new Int32Array(8))).toBe(big.encode("a").length);
  });

  it("maxEncodedLength bounds every text's ids (byte fallback, surrogates, BOS and EOS)", () => {
    const worst = ["\u{10FFFF}\u{E000}", "\uD800\uDC00\uD800", "\u0000\u0001 \t\n", ...texts];
    for (const t of worst) {
      expect(tok.encode(t, { bos: true, eos: true }).length).toBeLessThanOrEqual(
        maxEncodedLength(t.length),
      );
    }
    expect(() => maxEncodedLength(-1)).toThrow(RangeError);
  });
});
