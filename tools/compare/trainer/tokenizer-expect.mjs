#!/usr/bin/env node
// Writes what check_tokenizer.py compares transformers' AutoTokenizer against: texts and the
// ids this project's tokenizer gives them with BOS, as generate and eval --harness 0.4.9.2 encode.
// Texts: edge cases (spaces, newlines, digits, emoji, CJK, byte fallback) and the lines of
// this repository's READMEs. No literal <s>, </s> or <unk>: Hugging Face matches those inside
// text, SentencePiece never does (packages/tokenizer/src/hf-export.test.ts covers that split).
//   node tools/compare/trainer/tokenizer-expect.mjs > .gpu/tokenizer-expect.json
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { LlamaTokenizer } = await import(
  pathToFileURL(join(root, "packages/tokenizer/dist/index.js")).href
);
const tok = await LlamaTokenizer.load();
const texts = [
  "Hello world",
  " leading space",
  "two  spaces   and three",
  "trailing space ",
  "line one\nline two\n\n\ttabbed",
  "digits 1234567890 and 3.14159",
  "emoji 🦙🚀 and a zero-width joiner 👩‍💻",
  "東京は日本の首都です。北京是中国的首都。",
  "Привет, мир! Γειά σου Κόσμε! مرحبا بالعالم",
  "def f(x):\n    return x ** 2  # comment\n",
  "\u0001\u0002 control bytes \u00a0nbsp \u200b zwsp",
  "▁ a literal U+2581",
];
for (const f of ["README.md", "packages/data/README.md", "packages/eval/README.md"]) {
  for (const line of readFileSync(join(root, f), "utf8").split("\n")) {
    if (line.trim() && !/<s>|<\/s>|<unk>/.test(line)) texts.push(line);
  }
}
const cases = texts.map((text) => {
  const ids = Array.from(tok.encode(text, { bos: true }));
  // SentencePiece's decode, not always the text: a literal U+2581 comes back as a space
  return { text, ids, decoded: tok.decode(ids) };
});
console.log(JSON.stringify({ bosId: tok.bosId, eosId: tok.eosId, cases }));
