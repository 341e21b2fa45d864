/**
 * Agreement, id for id, with Hugging Face `tokenizers` configured as reference/tokenizer.md
 * says (the same vocabulary and merges), on ~1 MB of varied text: generated cases
 * (testing/varied-text.ts), this repository's own sources, and /usr/share/common-licenses
 * when the machine has it. The >= 10 MB run is tools/bench/tokenizer/agreement.mjs.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import hf from "tokenizers";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaTokenizer, toHuggingFaceTokenizerJson } from "./index.js";
import { isWellFormed, variedTexts } from "./testing/varied-text.js";

const FIXTURE_MODEL = new URL("./testdata/llama2-tokenizer.model", import.meta.url).pathname;

let tok: LlamaTokenizer;
let fromModel: LlamaTokenizer;
let reference: hf.Tokenizer;
let corpus: string[];

function filesUnder(dir: string, exts: RegExp, limitBytes: number): string[] {
  const out: string[] = [];
  let total = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (total >= limitBytes) return;
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory() && name !== "node_modules" && name !== "dist") walk(p);
      else if (st.isFile() && exts.test(name) && st.size < 200_000) {
        out.push(readFileSync(p, "utf8"));
        total += st.size;
      }
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  tok = await LlamaTokenizer.load();
  fromModel = await LlamaTokenizer.load(FIXTURE_MODEL);
  reference = hf.Tokenizer.fromString(toHuggingFaceTokenizerJson(tok.model));
  corpus = variedTexts({
    seed: 20240101,
    count: 2500,
    pieces: tok.model.pieces,
    maxLength: 30_000,
  });
  const repoRoot = new URL("../../../", import.meta.url).pathname;
  corpus.push(...filesUnder(join(repoRoot, "packages"), /\.(ts|md|json)$/, 300_000));
  if (existsSync("/usr/share/common-licenses")) {
    corpus.push(...filesUnder("/usr/share/common-licenses", /./, 200_000));
  } else {
    console.log("agreement.test: /usr/share/common-licenses not on this machine; not included");
  }
});

function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe("agreement with Hugging Face tokenizers", () => {
  it("uses about a megabyte of varied text", () => {
    const chars = corpus.reduce((s, t) => s + t.length, 0);
    console.log(`agreement.test: ${corpus.length} texts, ${(chars / 1e6).toFixed(2)} M chars`);
    expect(chars).toBeGreaterThan(700_000);
  });

  it("gives the same ids as tokenizers on every text", async () => {
    const theirs = await reference.encodeBatch(corpus);
    let mismatches = 0;
    corpus.forEach((text, i) => {
      const want = theirs[i]!.getIds();
      const got = tok.encodeToInt32Array(text, { bos: false });
      const at = firstDifference(got, want);
      if (at >= 0 && mismatches++ < 3) {
        console.log(
          `text ${i} differs at id ${at}: ${JSON.stringify(text.slice(0, 80))}`,
          got.slice(at, at + 5),
          want.slice(at, at + 5),
        );
      }
    });
    expect(mismatches).toBe(0);
  });

  it("the tokenizer.model fixture (SentencePiece scores) and the bundled merges agree", () => {
    const differing = corpus.filter(
      (text) =>
        firstDifference(fromModel.encodeToInt32Array(text), tok.encodeToInt32Array(text)) >= 0,
    );
    expect(differing.map((t) => t.slice(0, 80))).toEqual([]);
  });

  it("round-trips decode(encode(x)) === x for valid text", () => {
    let checked = 0;
    for (const text of corpus) {
      // U+2581 decodes to a space and lone surrogates become U+FFFD: both documented.
      if (text.includes("\u2581") || !isWellFormed(text)) continue;
      expect(tok.decode(tok.encode(text))).toBe(text);
      checked++;
    }
    expect(checked).toBeGreaterThan(1500);
  });
});
