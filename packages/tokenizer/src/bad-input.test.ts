/** Every bad input named in the issue: a clear error or a documented, tested result. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileModel } from "./compile.js";
import { BpeEngine } from "./engine.js";
import { LlamaTokenizer, toHuggingFaceTokenizerJson } from "./index.js";
import { field, utf8, varint } from "./testing/proto-writer.js";
import { rng } from "./testing/varied-text.js";

const FIXTURE_MODEL = new URL("./testdata/llama2-tokenizer.model", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "tokenizer-bad-input-"));
let tok: LlamaTokenizer;

beforeAll(async () => {
  tok = await LlamaTokenizer.load();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

const str = utf8;
const piece = (p: string, type: number): number[] =>
  field(1, 2, [...field(1, 2, str(p)), ...field(3, 0, varint(type))]);

describe("text edge cases", () => {
  it("empty string: only BOS/EOS as requested", () => {
    expect(tok.encode("")).toEqual([1]);
    expect(tok.encode("", { bos: false })).toEqual([]);
    expect(tok.encode("", { eos: true })).toEqual([1, 2]);
    expect(tok.decode([])).toBe("");
  });

  it("lone surrogates are encoded as U+FFFD (as a UTF-8 encoder would), never thrown", () => {
    expect(tok.encode("\ud800")).toEqual(tok.encode("\ufffd"));
    expect(tok.encode("a\udc00b\ud83d")).toEqual(tok.encode("a\ufffdb\ufffd"));
    expect(tok.decode(tok.encode("x\ud800y"))).toBe("x\ufffdy");
  });

  it("NUL and other control characters fall back to bytes and round-trip", () => {
    expect(tok.encode("a\u0000b", { bos: false })).toEqual([263, 3, 29890]);
    const controls = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("");
    expect(tok.decode(tok.encode(controls))).toBe(controls);
  });

  it("a 1 MB line without spaces takes linear work (pair lookups grow ~10x for 10x text)", () => {
    const tables = compileModel(tok.model, false);
    // A fresh engine per run: the word cache must not hide work.
    const work = (text: string): number => {
      const engine = new BpeEngine(tables);
      engine.encodeInto(text);
      return engine.pairLookups;
    };
    // Real pieces glued without spaces: the worst case, every position merges many times.
    const glued = tok.model.pieces.filter((p, i) => i > 258 && !p.includes("\u2581"));
    const gluedText = (n: number): string => {
      let s = "";
      for (let i = 0; s.length < n; i++) s += glued[(i * 7919) % glued.length];
      return s.slice(0, n);
    };
    const base64ish = (n: number): string => {
      const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const rand = rng(n);
      let s = "";
      for (let i = 0; i < n; i++) s += abc[Math.floor(rand() * 64)];
      return s;
    };
    for (const make of [gluedText, base64ish, (n: number) => "a".repeat(n)]) {
      const ratio = work(make(1_000_000)) / work(make(100_000));
      console.log(
        `bad-input.test: ${make.name || "repeated a"}: 10x text -> ${ratio.toFixed(2)}x pair lookups`,
      );
      expect(ratio).toBeGreaterThan(8);
      expect(ratio).toBeLessThan(12);
    }
  });

  it("a 16 MB document with spaces encodes and matches its pieces encoded separately", () => {
    const para = "The quick brown fox jumps over the lazy dog. 东京 🦙 x=1;\n";
    const doc = para.repeat(Math.ceil(16e6 / para.length));
    const ids = tok.encodeToInt32Array(doc, { bos: false });
    const one = tok.encode(para, { bos: false });
    // Every paragraph after the first starts after a newline, so it has no dummy prefix.
    const rest = tok
      .encode(`\n${para}`, { bos: false })
      .slice(tok.encode("\n", { bos: false }).length);
    expect(ids.length).toBe(one.length + rest.length * (doc.length / para.length - 1));
    if (process.env.TINYLLAMA_TOKENIZER_HEAVY !== "1") {
      console.log(
        "bad-input.test: the 100 MB document case is opt-in: TINYLLAMA_TOKENIZER_HEAVY=1 (not run)",
      );
    }
  });

  it.runIf(process.env.TINYLLAMA_TOKENIZER_HEAVY === "1")(
    "100 MB documents: with spaces, and without any",
    () => {
      const para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ";
      const doc = para.repeat(Math.ceil(100e6 / para.length));
      expect(tok.encodeToInt32Array(doc).length).toBeGreaterThan(doc.length / 8);
      // The worst case: one 100M-character run that merges at every position (~1 minute, ~3 GB).
      const solid = "b".repeat(100e6);
      const ids = tok.encodeToInt32Array(solid, { bos: false });
      expect(ids.length).toBe(50e6 + 1);
      expect(tok.decode(ids)).toBe(solid);
    },
    600_000,
  );
});

describe("decode rejects ids that are not token ids", () => {
  for (const bad of [-1, 32000, 1e9, 1.5, Number.NaN]) {
    it(`throws RangeError for ${bad}`, () => {
      expect(() => tok.decode([1, 15043, bad])).toThrow(RangeError);
      expect(() => tok.decode([1, 15043, bad])).toThrow(/ids\[2\]/);
    });
  }
});

describe("API misuse", () => {
  it("encode of a non-string is a TypeError", () => {
    expect(() => tok.encode(undefined as unknown as string)).toThrow(TypeError);
    expect(() => tok.encode(42 as unknown as string)).toThrow(/expected a string/);
  });

  it("encodeBatch checks its arguments", async () => {
    await expect(tok.encodeBatch("abc" as unknown as string[])).rejects.toThrow(TypeError);
    await expect(tok.encodeBatch(["a", 3 as unknown as string])).rejects.toThrow(/texts\[1\]/);
    await expect(tok.encodeBatch(["a"], { threads: -1 })).rejects.toThrow(RangeError);
  });

  it("load of a directory takes its tokenizer.model, else its tokenizer.json, else says so", async () => {
    const { mkdirSync, copyFileSync } = await import("node:fs");
    const withModel = join(dir, "ckpt-model");
    mkdirSync(withModel);
    copyFileSync(FIXTURE_MODEL, join(withModel, "tokenizer.model"));
    writeFileSync(join(withModel, "tokenizer.json"), "not json");
    expect((await LlamaTokenizer.load(withModel)).model.source).toMatch(/tokenizer\.model$/);
    const withJson = join(dir, "ckpt-json");
    mkdirSync(withJson);
    writeFileSync(join(withJson, "tokenizer.json"), toHuggingFaceTokenizerJson(tok.model));
    expect((await LlamaTokenizer.load(withJson)).encode("Hello world!")).toEqual([
      1, 15043, 3186, 29991,
    ]);
    const empty = join(dir, "ckpt-empty");
    mkdirSync(empty);
    await expect(LlamaTokenizer.load(empty)).rejects.toThrow(
      /ckpt-empty has no tokenizer\.model or tokenizer\.json/,
    );
  });

  it("load of a missing file names the file", async () => {
    await expect(LlamaTokenizer.load(join(dir, "nope.model"))).rejects.toThrow(
      /nope\.model.*ENOENT/,
    );
    await expect(LlamaTokenizer.load("")).rejects.toThrow(TypeError);
  });
});

describe("corrupt or truncated tokenizer.model", () => {
  const good = readFileSync(FIXTURE_MODEL);

  it("every truncation fails with an error that names the file", async () => {
    for (const frac of [0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.9999]) {
      const p = write(`trunc-${frac}.model`, good.subarray(0, Math.floor(good.length * frac)));
      await expect(LlamaTokenizer.load(p), `truncated at ${frac}`).rejects.toThrow(
        /trunc-.*not a valid SentencePiece model/,
      );
    }
  });

  it("garbage bytes fail with a clear error", async () => {
    const garbage = new Uint8Array(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
    await expect(LlamaTokenizer.load(write("garbage.model", garbage))).rejects.toThrow(
      /not a valid SentencePiece model/,
    );
    await expect(
      LlamaTokenizer.load(write("ff.model", new Uint8Array(64).fill(0xff))),
    ).rejects.toThrow(/not a valid SentencePiece model/);
  });

  it("a model defining a piece twice is refused, as SentencePiece refuses it", async () => {
    const dup = Buffer.concat([good, Uint8Array.from(piece("\u2581\u2581", 4))]);
    await expect(LlamaTokenizer.load(write("dup.model", dup))).rejects.toThrow(
      /"▁▁" is both id 259 and 32000/,
    );
  });

  it("UNUSED pieces are refused by name", async () => {
    const unused = Buffer.concat([good, Uint8Array.from(piece("zzz-unused", 5))]);
    await expect(LlamaTokenizer.load(write("unused.model", unused))).rejects.toThrow(
      /has type UNUSED/,
    );
  });

  it("a Unigram model is refused by name", async () => {
    const unigram = [
      ...piece("<unk>", 2),
      ...piece("<s>", 3),
      ...piece("</s>", 3),
      ...piece("\u2581a", 1),
      ...field(2, 2, field(3, 0, varint(1))),
    ];
    await expect(
      LlamaTokenizer.load(write("unigram.model", Uint8Array.from(unigram))),
    ).rejects.toThrow(/model type UNIGRAM; only BPE/);
  });

  it("a model with an NFKC normaliser is refused rather than encoded differently", async () => {
    const nfkc = [
      ...piece("<unk>", 2),
      ...piece("<s>", 3),
      ...piece("</s>", 3),
      ...piece("\u2581a", 1),
      ...field(2, 2, field(3, 0, varint(2))),
      ...field(3, 2, [...field(1, 2, str("nmt_nfkc")), ...field(2, 2, [1, 2, 3, 4])]),
    ];
    await expect(LlamaTokenizer.load(write("nfkc.model", Uint8Array.from(nfkc)))).rejects.toThrow(
      /normaliser "nmt_nfkc"/,
    );
  });
});

describe("tokenizer.json of another kind", () => {
  const llamaJson = (): Record<string, unknown> =>
    JSON.parse(toHuggingFaceTokenizerJson(tok.model));

  it("the reference tokenizer.json loads and encodes like the bundled vocabulary", async () => {
    const t = await LlamaTokenizer.load(write("llama.json", toHuggingFaceTokenizerJson(tok.model)));
    expect(t.encode("Hello world! 🦙 <s>")).toEqual(tok.encode("Hello world! 🦙 <s>"));
    expect([t.bosId, t.eosId, t.unkId]).toEqual([1, 2, 0]);
  });

  it("Unigram and WordPiece models are refused by type", async () => {
    for (const type of ["Unigram", "WordPiece", "WordLevel"]) {
      const j = llamaJson();
      j.model = { type, vocab: [["<unk>", 0]] };
      await expect(LlamaTokenizer.load(write(`${type}.json`, JSON.stringify(j)))).rejects.toThrow(
        new RegExp(`model type "${type}"; only BPE`),
      );
    }
  });

  it("a byte-level BPE (GPT-2 / Llama 3 style) is refused", async () => {
    const j = llamaJson();
    j.normalizer = null;
    j.pre_tokenizer = {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    };
    await expect(LlamaTokenizer.load(write("bytelevel.json", JSON.stringify(j)))).rejects.toThrow(
      /pre_tokenizer "ByteLevel"/,
    );
  });

  it("NFKC normalisers, BPE dropout and ignore_merges are refused", async () => {
    const j = llamaJson();
    j.normalizer = { type: "NFKC" };
    await expect(LlamaTokenizer.load(write("nfkc.json", JSON.stringify(j)))).rejects.toThrow(
      /normalizer "NFKC"/,
    );
    const k = llamaJson();
    (k.model as Record<string, unknown>).dropout = 0.1;
    await expect(LlamaTokenizer.load(write("dropout.json", JSON.stringify(k)))).rejects.toThrow(
      /dropout/,
    );
    const m = llamaJson();
    (m.model as Record<string, unknown>).ignore_merges = true;
    await expect(LlamaTokenizer.load(write("ignore.json", JSON.stringify(m)))).rejects.toThrow(
      /ignore_merges/,
    );
  });

  it("a truncated tokenizer.json is reported as invalid JSON", async () => {
    const text = toHuggingFaceTokenizerJson(tok.model);
    const p = write("cut.json", `${text.slice(0, text.length / 2)}}`);
    await expect(LlamaTokenizer.load(p)).rejects.toThrow(/cut\.json: not valid JSON/);
  });
});
