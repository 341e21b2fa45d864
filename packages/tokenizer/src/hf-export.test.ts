/**
 * The tokenizer files a checkpoint carries for transformers' AutoTokenizer: read back by this
 * package and by Hugging Face `tokenizers`, they tokenize as the bundled model does, with BOS
 * prepended as Llama 2's published tokenizer does. (AutoTokenizer itself is checked on the GPU
 * machine, which has transformers: tools/compare/trainer.)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import hf from "tokenizers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { huggingFaceTokenizerFiles, LlamaTokenizer } from "./index.js";
import { isWellFormed, variedTexts } from "./testing/varied-text.js";

let bundled: LlamaTokenizer;
let files: Record<string, string>;
let dir: string;
let texts: string[];

beforeAll(async () => {
  bundled = await LlamaTokenizer.load();
  files = huggingFaceTokenizerFiles(bundled.model, { modelMaxLength: 2048 });
  dir = mkdtempSync(join(tmpdir(), "hf-export-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  texts = [
    "Hello world!",
    " leading space, trailing space ",
    "text with <s> and </s> and <unk> inside",
    "東京 🦙\ttabs\nnewlines\r\n",
    ...variedTexts({ seed: 7, count: 300, pieces: bundled.model.pieces, maxLength: 2000 }),
  ];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("huggingFaceTokenizerFiles", () => {
  it("writes tokenizer.json, tokenizer_config.json and special_tokens_map.json naming Llama 2's special tokens", () => {
    expect(Object.keys(files).sort()).toEqual([
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const config = JSON.parse(files["tokenizer_config.json"]!);
    expect(config).toMatchObject({
      // transformers 5's LlamaTokenizer would rebuild the pipeline (check_tokenizer.py)
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      add_bos_token: true,
      add_eos_token: false,
      model_max_length: 2048,
    });
    expect(JSON.parse(files["special_tokens_map.json"]!)).toEqual({
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
    });
    const added = JSON.parse(files["tokenizer.json"]!).added_tokens;
    expect(added.map((t: { id: number; content: string }) => [t.id, t.content])).toEqual([
      [0, "<unk>"],
      [1, "<s>"],
      [2, "</s>"],
    ]);
  });

  it("is read back by this package (a checkpoint directory) to the same pieces and the same ids", async () => {
    const fromDir = await LlamaTokenizer.load(dir);
    expect(fromDir.model.pieces).toEqual(bundled.model.pieces);
    expect(Array.from(fromDir.model.types)).toEqual(Array.from(bundled.model.types));
    for (const text of texts) {
      expect(Array.from(fromDir.encode(text, { bos: true }))).toEqual(
        Array.from(bundled.encode(text, { bos: true })),
      );
    }
  });

  it("Hugging Face tokenizers: BOS + the bundled ids, and decodes back to the text", async () => {
    const theirs = hf.Tokenizer.fromString(files["tokenizer.json"]!);
    let compared = 0;
    for (const text of texts) {
      // Added special tokens are matched inside text by Hugging Face (as with Llama 2's own
      // tokenizer.json), never by SentencePiece: texts holding them are compared apart.
      if (/<s>|<\/s>|<unk>/.test(text)) continue;
      const enc = await theirs.encode(text);
      const ids = enc.getIds();
      expect(ids).toEqual(Array.from(bundled.encode(text, { bos: true })));
      if (isWellFormed(text)) expect(await theirs.decode(ids, true)).toBe(bundled.decode(ids));
      compared++;
    }
    expect(compared).toBeGreaterThan(250);
    const special = await theirs.encode("a </s> b");
    expect(special.getIds()).toContain(2);
  });

  it("refuses a model without the special pieces, naming it", () => {
    const model = { ...bundled.model, bosId: -1, source: "no-bos.model" };
    expect(() => huggingFaceTokenizerFiles(model, { modelMaxLength: 2048 })).toThrow(
      /no-bos\.model: no <s>, <\/s> or <unk> piece/,
    );
  });
});
