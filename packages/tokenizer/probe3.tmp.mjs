import { readdirSync, readFileSync } from "node:fs";
import hf from "tokenizers";
import { LlamaTokenizer, toHuggingFaceTokenizerJson } from "./dist/index.js";

const tok = await LlamaTokenizer.load();
const t0 = performance.now();
const ref = hf.Tokenizer.fromString(toHuggingFaceTokenizerJson(tok.model));
console.log("hf load", performance.now() - t0);
const cases = [
  "Hello world!",
  "           grabbed",
  "\n",
  "🦙",
  "",
  "a\u0000b",
  "\ud800x",
  " ",
  "x\u2581y",
  "\ufffd",
];
for (const c of cases) {
  const e = await ref.encode(c);
  const ids = Array.from(e.getIds());
  const mine = tok.encode(c, { bos: false });
  console.log(
    JSON.stringify(c),
    JSON.stringify(ids),
    JSON.stringify(ids) === JSON.stringify(mine) ? "OK" : "DIFF " + JSON.stringify(mine),
  );
}
// speed on some prose
let text = "";
for (const f of readdirSync("/usr/share/common-licenses")) {
  try {
    text += readFileSync("/usr/share/common-licenses/" + f, "utf8");
  } catch {}
}
const lines = text.split("\n");
console.log("chars", text.length, "lines", lines.length);
let t = performance.now();
let n = 0;
for (let r = 0; r < 3; r++) for (const l of lines) n += tok.encodeToInt32Array(l).length;
let dt = performance.now() - t;
console.log("mine per line MB/s", (3 * text.length) / 1e6 / (dt / 1000), "tok/s", n / (dt / 1000));
t = performance.now();
n = 0;
for (let r = 0; r < 3; r++) n += tok.encodeToInt32Array(text).length;
dt = performance.now() - t;
console.log("mine whole MB/s", (3 * text.length) / 1e6 / (dt / 1000), n);
t = performance.now();
n = 0;
for (let r = 0; r < 1; r++) for (const l of lines) n += (await ref.encode(l)).getIds().length;
dt = performance.now() - t;
console.log("hf per line MB/s", (1 * text.length) / 1e6 / (dt / 1000), n);
t = performance.now();
const whole = await ref.encode(text);
dt = performance.now() - t;
console.log("hf whole MB/s", text.length / 1e6 / (dt / 1000), whole.getIds().length);
const mine = tok.encode(text, { bos: false });
console.log("agree whole", JSON.stringify(mine) === JSON.stringify(Array.from(whole.getIds())));
t = performance.now();
const b = await ref.encodeBatch(lines);
dt = performance.now() - t;
console.log("hf batch MB/s", text.length / 1e6 / (dt / 1000));
