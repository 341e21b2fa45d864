/**
 * Agreement with SentencePiece itself (the C++ library compiled to WebAssembly, npm
 * `sentencepiece-js`) on the fixture tokenizer.model: encoding and DecodeIds.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import spjs from "sentencepiece-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaTokenizer } from "./index.js";
import { bpeModel, pieceField } from "./testing/proto-writer.js";
import { isWellFormed, rng, variedTexts } from "./testing/varied-text.js";

const FIXTURE_MODEL = new URL("./testdata/llama2-tokenizer.model", import.meta.url).pathname;
let tok: LlamaTokenizer;
let sp: InstanceType<typeof spjs.SentencePieceProcessor>;
/** Models written by the tests below, for SentencePiece to load from disk. */
const modelDir = mkdtempSync(join(tmpdir(), "tokenizer-sentencepiece-"));
afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

beforeAll(async () => {
  tok = await LlamaTokenizer.load(FIXTURE_MODEL);
  sp = new spjs.SentencePieceProcessor();
  await sp.load(FIXTURE_MODEL);
});

describe("agreement with SentencePiece (sentencepiece-js)", () => {
  it("encodes varied text to the same ids", () => {
    // sentencepiece-js converts JS strings with Emscripten, which garbles lone surrogates,
    // so those texts are left to the Hugging Face comparison.
    const texts = variedTexts({
      seed: 7,
      count: 600,
      pieces: tok.model.pieces,
      maxLength: 20_000,
    }).filter((t) => isWellFormed(t));
    for (const text of texts) {
      expect(tok.encode(text, { bos: false }), JSON.stringify(text.slice(0, 60))).toEqual(
        sp.encodeIds(text),
      );
    }
  });

  it("decodes random id sequences (bytes, controls, unk, spaces) to the same text", () => {
    const rand = rng(3);
    const special = [0, 1, 2, 13, 29871, 259, 243, 162, 169, 156, 30140, 0xe3 + 3];
    for (let trial = 0; trial < 500; trial++) {
      const n = 1 + Math.floor(rand() * 12);
      const ids: number[] = [];
      for (let i = 0; i < n; i++) {
        ids.push(
          rand() < 0.5 ? special[Math.floor(rand() * special.length)]! : Math.floor(rand() * 32000),
        );
      }
      expect(tok.decode(ids), JSON.stringify(ids)).toBe(sp.decodeIds(ids));
    }
  });
});

describe("USER_DEFINED pieces (matched whole, never merged), against SentencePiece", () => {
  it("encodes like SentencePiece on a model with user-defined pieces appended", async () => {
    // Repeated fields may appear anywhere in a protobuf message: appending pieces adds ids 32000+.
    const extra = [
      ...pieceField("<PRE>", 4),
      ...pieceField("\u2581<SUF>", 4),
      ...pieceField("<P", 4),
      ...pieceField("xyz\u2581\u2581abc", 4),
      ...pieceField("\n\n", 4),
    ];
    const path = join(modelDir, "user-defined.model");
    writeFileSync(path, Buffer.concat([readFileSync(FIXTURE_MODEL), Uint8Array.from(extra)]));
    const ud = await LlamaTokenizer.load(path);
    const ref = new spjs.SentencePieceProcessor();
    await ref.load(path);
    const texts = [
      "<PRE> x <SUF>y",
      "<SUF> a<PRE><P",
      "xyz  abc!",
      " <SUF>",
      "<SUF>",
      "a<PREb",
      "def f():\n    return  1  <PRE>\n\n\n",
      ...variedTexts({ seed: 11, count: 200, pieces: tok.model.pieces, maxLength: 5000 }).filter(
        (t) => isWellFormed(t),
      ),
    ];
    for (const text of texts) {
      const ids = ud.encode(text, { bos: false });
      expect(ids, JSON.stringify(text.slice(0, 60))).toEqual(ref.encodeIds(text));
      expect(ud.decode(ids)).toBe(ref.decodeIds(ids));
    }
    expect(ud.encode("<PRE> x", { bos: false })).toEqual([29871, 32000, 921]);
  });
});

describe("characters that are not pieces but occur inside pieces, against SentencePiece", () => {
  it("merges them like SentencePiece ('a' is not a piece, 'ab' is) and falls back to bytes alone", async () => {
    const path = join(modelDir, "tiny.model");
    writeFileSync(
      path,
      bpeModel([
        ["\u2581", -1],
        ["b", -2],
        ["ab", -3],
        ["\u2581ab", -4],
        ["c", -5],
        ["abc", -6],
        ["x", -7],
        ["é", -8],
        ["éx", -9],
        ["🦙", -10],
        ["🦙é", -3],
      ]),
    );
    const tiny = await LlamaTokenizer.load(path);
    expect(tiny.model.extraChars).toEqual([0x61]);
    const ref = new spjs.SentencePieceProcessor();
    await ref.load(path);
    const texts = [
      "ab",
      "aab",
      "abab",
      " ab",
      "abc",
      "a",
      "éx",
      "ééx",
      "🦙éx",
      "a🦙é",
      "zab",
      "a b  c\n",
    ];
    for (const text of texts) {
      expect(tiny.encode(text, { bos: false }), JSON.stringify(text)).toEqual(ref.encodeIds(text));
    }
    expect(tiny.encode("aab", { bos: false })).toEqual([259, 3 + 0x61, 261]);
  });
});

describe("normaliser switches of a tokenizer.model, against SentencePiece", () => {
  for (const spec of [
    { addDummyPrefix: false },
    { removeExtraWhitespaces: true },
    { addDummyPrefix: false, removeExtraWhitespaces: true },
  ]) {
    it(JSON.stringify(spec), async () => {
      const path = join(modelDir, `spec-${JSON.stringify(spec).length}.model`);
      const pieces: Array<[string, number]> = [
        ["\u2581", -1],
        ["\u2581\u2581", -1e9],
        ["a", -2],
        ["b", -3],
        ["\u2581a", -4],
        ["ab", -5],
        ["\u2581ab", -6],
      ];
      writeFileSync(path, bpeModel(pieces, spec));
      const t = await LlamaTokenizer.load(path);
      const ref = new spjs.SentencePieceProcessor();
      await ref.load(path);
      for (const text of ["ab", " ab", "  ab  ab   ", "a\tb \n b", "   ", " ", "b  a b"]) {
        expect(t.encode(text, { bos: false }), JSON.stringify(text)).toEqual(ref.encodeIds(text));
        expect(t.decode(ref.encodeIds(text)), JSON.stringify(text)).toBe(
          ref.decodeIds(ref.encodeIds(text)),
        );
      }
    });
  }
});
