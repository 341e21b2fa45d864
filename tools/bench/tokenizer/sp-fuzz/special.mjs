// Boundary cases: buffer/cache sizes found in src (engine.ts, word-cache.ts, tokenizer.ts).
import { readFileSync } from "node:fs";
import { rng } from "./gen.mjs";
/** @returns {Generator<[string, string]>} a case's kind and text, at the engine's limits */
export function* special() {
  const r = rng(99);
  const int = (/** @type {number} */ lo, /** @type {number} */ hi) =>
    lo + Math.floor(r() * (hi - lo + 1));
  const corpus = JSON.parse(
    readFileSync(/** @type {string} */ (process.env.SP_FUZZ_CORPUS), "utf8"),
  );
  const big = corpus.join("\n");
  const lower = (/** @type {number} */ n) => {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(97 + int(0, 25));
    return s;
  };
  // 1. lengths around 65536 UTF-16 units (and 1<<17, 1<<20): prose, a word without spaces, spaces, astral at the edge
  for (const n of [65535, 65536, 65537, 131072, 262143, 262144, 262145, 1 << 20]) {
    const off = int(0, big.length - n - 1);
    yield [`len${n}-prose`, big.slice(off, off + n)];
    yield [`len${n}-word`, lower(n)];
    yield [`len${n}-spaces`, " ".repeat(n)];
    yield [`len${n}-astralEdge`, "a".repeat(n - 1) + "\u{1F600}"];
    yield [`len${n}-surrogateEdge`, "b".repeat(n - 1) + "\ud83d"];
  }
  // 2. every run of spaces 1..600 (all-▁ pieces: score ties in the .model), alone and after/before a word
  for (let n = 1; n <= 600; n++) {
    yield ["spaces", " ".repeat(n)];
    yield ["spaces-word", `a${" ".repeat(n)}b`];
    yield ["marks", "\u2581".repeat(n)];
    yield ["nl", "\n".repeat((n % 50) + 1) + " ".repeat(n) + "x"];
  }
  for (const n of [100000, 300000]) {
    yield ["bigspaces", " ".repeat(n)];
    yield ["bignl", "\n".repeat(n)];
    yield ["bigcrlf", "\r\n".repeat(n)];
    yield ["bigtabs", " \t".repeat(n)];
  }
  // 3. digit runs / repeated chars of every length 1..300
  for (let n = 1; n <= 300; n++) {
    yield ["digits", "7".repeat(n)];
    yield ["aaaa", "a".repeat(n)];
    yield ["abab", "ab".repeat(n)];
  }
  yield ["bigdigits", "1234567890".repeat(20000)];
  // 4. word cache: > 65536 distinct words in one text, then repeats; and across calls
  const words = new Set();
  while (words.size < 80000) words.add(lower(int(3, 10)));
  const wl = [...words];
  yield ["cache-distinct80k", wl.join(" ")];
  yield ["cache-repeat", wl.slice(0, 5000).join(" ") + " " + wl.slice(70000).join(" ")];
  // long cached words (33..40 symbols): key pool (1<<20) overflows after ~26K distinct words
  const longw = new Set();
  while (longw.size < 40000) longw.add(lower(int(33, 40)));
  const ll = [...longw];
  yield ["cache-long40k", ll.join(" ")];
  yield ["cache-long-repeat", ll.slice(0, 3000).join(" ") + " " + ll.slice(35000).join(" ")];
  // value pool (4 ids per symbol): rare astral chars in 38-40 symbol words
  const ast = [];
  for (let i = 0; i < 9000; i++) {
    let w = "";
    const m = int(20, 40);
    for (let k = 0; k < m; k++) w += String.fromCodePoint(0x20000 + int(0, 40000));
    ast.push(w);
  }
  yield ["cache-astral9k", ast.join(" ")];
  yield ["cache-astral-repeat", ast.slice(0, 1000).join(" ") + " " + ast.slice(8000).join(" ")];
  // across calls: many small texts with distinct words, then the first ones again
  for (let i = 0; i < 2000; i++) yield ["cache-calls", wl.slice(i * 40, i * 40 + 40).join(" ")];
  for (let i = 0; i < 200; i++)
    yield ["cache-calls-again", wl.slice(i * 40, i * 40 + 40).join(" ")];
  for (let i = 0; i < 1000; i++)
    yield ["cache-calls-long", ll.slice(i * 40, i * 40 + 40).join(" ")];
  for (let i = 0; i < 100; i++)
    yield ["cache-calls-long-again", ll.slice(i * 40, i * 40 + 40).join(" ")];
  // 5. one word over LARGE_SCRATCH (1<<20 symbols), then ordinary text (scratch dropped)
  yield ["huge-word", lower((1 << 20) + 3)];
  yield ["after-huge", big.slice(0, 5000)];
  let cjk = "";
  for (let i = 0; i < (1 << 20) + 10; i++) cjk += String.fromCharCode(0x4e00 + int(0, 20900));
  yield ["huge-cjk-word", cjk];
  // 6. > 4M ids (1<<22: output scratch released), then ordinary text
  let rare = "";
  for (let i = 0; i < 1_450_000; i++) rare += String.fromCodePoint(0x20000 + int(0, 40000));
  yield ["huge-output", rare];
  yield ["after-huge-output", big.slice(5000, 9000)];
  // 7. whole corpus documents glued into 8 MB text
  yield ["glued8MB", big.slice(0, 8_000_000)];
}
