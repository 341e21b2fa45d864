// The >= 10 MB agreement run: this package vs Hugging Face `tokenizers` (reference config of
// reference/tokenizer.md) id for id on every document, plus the tokenizer.model fixture path,
// encodeBatch on worker threads, round trips, and SentencePiece itself (sentencepiece-js) on a
// well-formed subset. Exit code 1 on any mismatch. Writes a JSON summary.
//
//   npx tsc -p packages/tokenizer/tsconfig.build.json
//   node tools/bench/tokenizer/agreement.mjs [--scale 1] [--out tools/bench/tokenizer/agreement.json]
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { buildCorpus, summarize } from "./corpus.mjs";
import { FIXTURE_MODEL, loadPackages } from "./load.mjs";

const { values } = parseArgs({
  options: {
    scale: { type: "string", default: "1" },
    out: { type: "string", default: new URL("./agreement.json", import.meta.url).pathname },
    "sp-mb": { type: "string", default: "3" },
  },
});
const P = await loadPackages();
const tok = await P.LlamaTokenizer.load();
const fromModel = await P.LlamaTokenizer.load(FIXTURE_MODEL);
const reference = P.hf.Tokenizer.fromString(P.toHuggingFaceTokenizerJson(tok.model));
const docs = buildCorpus({
  scale: Number(values.scale),
  variedTexts: P.variedTexts,
  rng: P.rng,
  pieces: tok.model.pieces,
});
const totalBytes = docs.reduce((s, d) => s + Buffer.byteLength(d.text), 0);
console.log(`corpus: ${docs.length} documents, ${(totalBytes / 1e6).toFixed(2)} MB`);
console.table(summarize(docs));

/** @param {ArrayLike<number>} a @param {ArrayLike<number>} b */
const same = (a, b) => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};
/** @type {Array<{ kind: string, category: string, source: string, detail: string }>} */
const failures = [];
/** @param {string} kind @param {import("./corpus.mjs").Doc} d @param {string} detail */
const fail = (kind, d, detail) => {
  failures.push({ kind, category: d.category, source: d.source, detail });
  if (failures.length <= 10) console.log(`MISMATCH ${kind} in ${d.source}: ${detail}`);
};

const started = performance.now();
let doneBytes = 0;
let lastReport = started;
let tokens = 0;
let roundTrips = 0;
const CHUNK = 256;
let spool = new Uint16Array(1 << 22);
let spoolUsed = 0;
for (let start = 0; start < docs.length; start += CHUNK) {
  const chunk = docs.slice(start, start + CHUNK);
  const texts = chunk.map((d) => d.text);
  const [theirs, batch] = await Promise.all([
    reference.encodeBatch(texts),
    tok.encodeBatchToInt32Arrays(texts, { bos: false }),
  ]);
  chunk.forEach((d, i) => {
    const want = theirs[i].getIds();
    const single = tok.encodeToInt32Array(d.text, { bos: false });
    tokens += want.length;
    if (!same(single, want)) {
      let at = 0;
      while (single[at] === want[at]) at++;
      fail(
        "vs-hf",
        d,
        `at id ${at}: ours ${Array.from(single.slice(at, at + 4))} hf ${want.slice(at, at + 4)}`,
      );
    }
    if (!same(batch[i], single)) fail("encodeBatch-vs-encode", d, "worker result differs");
    // encodeInto packs into one shared spool (Uint16Array) at a moving offset.
    const room = P.maxEncodedLength(d.text.length);
    if (room > spool.length) spool = new Uint16Array(room);
    if (spoolUsed + room > spool.length) spoolUsed = 0;
    const n = tok.encodeInto(d.text, spool, spoolUsed, { bos: false });
    if (!same(spool.subarray(spoolUsed, spoolUsed + n), single))
      fail("encodeInto-vs-encode", d, "packed ids differ");
    spoolUsed += n;
    if (!same(fromModel.encodeToInt32Array(d.text, { bos: false }), single))
      fail("model-vs-bundled", d, "");
    if (P.isWellFormed(d.text) && !d.text.includes("\u2581")) {
      roundTrips++;
      if (tok.decode(single) !== d.text) fail("round-trip", d, "decode(encode(x)) !== x");
    }
    doneBytes += Buffer.byteLength(d.text);
  });
  const now = performance.now();
  if (now - lastReport > 5000 || start + CHUNK >= docs.length) {
    lastReport = now;
    const rate = doneBytes / 1e6 / ((now - started) / 1000);
    console.log(
      `agreement: ${(doneBytes / 1e6).toFixed(1)}/${(totalBytes / 1e6).toFixed(1)} MB, ${rate.toFixed(2)} MB/s, ` +
        `ETA ${((totalBytes - doneBytes) / 1e6 / rate).toFixed(0)} s, mismatches ${failures.length}`,
    );
  }
}

// SentencePiece itself on a well-formed subset (its Emscripten string conversion garbles lone
// surrogates, so those are compared with Hugging Face only).
const sp = new P.spjs.SentencePieceProcessor();
await sp.load(FIXTURE_MODEL);
let spBytes = 0;
let spDocs = 0;
for (const d of docs) {
  if (spBytes >= Number(values["sp-mb"]) * 1e6) break;
  if (!P.isWellFormed(d.text) || d.text.length > 200_000) continue;
  if (!same(fromModel.encode(d.text, { bos: false }), sp.encodeIds(d.text)))
    fail("vs-sentencepiece", d, "");
  spBytes += Buffer.byteLength(d.text);
  spDocs++;
}
await tok.close();
await fromModel.close();

const result = {
  date: new Date().toISOString(),
  corpus: summarize(docs),
  documents: docs.length,
  megabytes: +(totalBytes / 1e6).toFixed(2),
  tokens,
  roundTripsChecked: roundTrips,
  sentencepieceDocuments: spDocs,
  sentencepieceMegabytes: +(spBytes / 1e6).toFixed(2),
  mismatches: failures.length,
  failures: failures.slice(0, 50),
  seconds: +((performance.now() - started) / 1000).toFixed(1),
};
writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `agreement: ${docs.length} documents, ${result.megabytes} MB, ${tokens} tokens vs tokenizers; ` +
    `${roundTrips} round trips; ${spDocs} documents (${result.sentencepieceMegabytes} MB) vs SentencePiece; ` +
    `${failures.length} mismatches -> ${values.out}`,
);
process.exit(failures.length === 0 ? 0 : 1);
