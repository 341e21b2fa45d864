// Differential fuzz of @tinyllama/tokenizer against SentencePiece itself (Python
// `sentencepiece`, its C++), id for id, with both ways the package loads Llama 2: the bundled
// vocabulary (Hugging Face merge ranks) and `LlamaTokenizer.load(<tokenizer.model>)` (scores).
// Also checks encodeInto, encodeBatch, the bos/eos options and decode against SentencePiece's
// decode. Lone surrogates (which Python cannot take) are compared as U+FFFD, as documented.
//
//   node tools/bench/tokenizer/sp-fuzz/fuzz.mjs <mode> [seed] [cases]
//     mode: gen (generated cases over every Unicode plane and category, code, long words, ...)
//           | corpus (every text of SP_FUZZ_CORPUS) | special (lengths and counts at the engine's
//           buffer and word-cache limits) | decode (random id sequences)
//   SP_FUZZ_CORPUS: a JSON array of texts (e.g. texts-pipeline-order.json of a
//     tools/bench/data/bench.mjs --keep corpus); gen and special mix slices of it in.
//   SP_FUZZ_OUT: where mismatch-<mode>-<seed>.jsonl and stats-<mode>-<seed>.json go
//     (default: <tmpdir>/sp-fuzz). Needs `pnpm build` and python3 with sentencepiece.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { makeGen, rng } from "./gen.mjs";
import { eq, MODEL, Oracle, ROOT, wellFormed } from "./oracle.mjs";

const { LlamaTokenizer } = await import(
  pathToFileURL(join(ROOT, "packages/tokenizer/dist/index.js")).href
);
const OUT = process.env.SP_FUZZ_OUT ?? join(tmpdir(), "sp-fuzz");
mkdirSync(OUT, { recursive: true });
/** @returns {string[]} */
export function loadCorpus() {
  const path = process.env.SP_FUZZ_CORPUS;
  if (!path) {
    console.error("set SP_FUZZ_CORPUS to a JSON array of texts (see the header of fuzz.mjs)");
    process.exit(2);
  }
  return JSON.parse(readFileSync(path, "utf8"));
}
const [mode = "gen", seedArg = "1", casesArg = "1000"] = process.argv.slice(2);
const seed = Number(seedArg);
const N = Number(casesArg);
const tokB = await LlamaTokenizer.load();
const tokM = await LlamaTokenizer.load(MODEL);
const oracle = new Oracle();
const MISS = join(OUT, `mismatch-${mode}-${seed}.jsonl`);
writeFileSync(MISS, "");
const stats = {
  cases: 0,
  chars: 0,
  spTokens: 0,
  mismatchB: 0,
  mismatchM: 0,
  decMismatchB: 0,
  decMismatchM: 0,
  surrogateCases: 0,
  surrogateReplOk: 0,
  surrogateReplBad: 0,
  roundTripFail: 0,
  optsChecked: 0,
  optsBad: 0,
  intoChecked: 0,
  intoBad: 0,
  batchChecked: 0,
  batchBad: 0,
  roundTripFailOursOnly: 0,
  /** @type {Record<string, number>} */
  byGen: {},
  /** @type {Record<string, number>} */
  mismatchByGen: {},
};
const r = rng(seed ^ 0x5eed);
const logMiss = (/** @type {object} */ o) => appendFileSync(MISS, `${JSON.stringify(o)}\n`);
const hasLone = (/** @type {string} */ s) => /[\ud800-\udfff]/.test(s) && wellFormed(s) !== s;

/**
 * @param {string[]} texts
 * @param {string[]} gens the generator of each text
 */
async function check(texts, gens) {
  const wf = texts.map(wellFormed);
  const pending = oracle.encode(wf);
  const oursB = texts.map((t) => tokB.encode(t, { bos: false }));
  const oursM = texts.map((t) => tokM.encode(t, { bos: false }));
  const doBatch = texts.length > 1 && r() < 0.5;
  const bosB = r() < 0.5;
  const batchP = doBatch
    ? tokB.encodeBatch(texts, { bos: bosB, eos: !bosB, threads: 2 })
    : undefined;
  const sp = await pending;
  for (let i = 0; i < texts.length; i++) {
    const t = /** @type {string} */ (texts[i]);
    const g = /** @type {string} */ (gens[i]);
    const ids = /** @type {number[]} */ (sp.ids[i]);
    stats.cases++;
    stats.chars += t.length;
    stats.spTokens += ids.length;
    stats.byGen[g] = (stats.byGen[g] ?? 0) + 1;
    const okB = eq(oursB[i], ids);
    const okM = eq(oursM[i], ids);
    if (!okB) stats.mismatchB++;
    if (!okM) stats.mismatchM++;
    if (!okB || !okM) {
      stats.mismatchByGen[g] = (stats.mismatchByGen[g] ?? 0) + 1;
      logMiss({
        kind: "encode",
        gen: g,
        text: t.length > 20000 ? undefined : t,
        len: t.length,
        okB,
        okM,
        sp: ids.length > 2000 ? undefined : ids,
        oursB: okB || oursB[i].length > 2000 ? undefined : oursB[i],
        oursM: okM || oursM[i].length > 2000 ? undefined : oursM[i],
      });
    }
    if (hasLone(t)) {
      stats.surrogateCases++;
      if (eq(tokB.encode(wf[i], { bos: false }), oursB[i])) stats.surrogateReplOk++;
      else stats.surrogateReplBad++;
    }
    // decode of SentencePiece's ids (== decode(encode(x)) when the encodings agree)
    const dB = tokB.decode(ids);
    const dM = tokM.decode(ids);
    const spDec = /** @type {string} */ (sp.dec[i]);
    if (dB !== sp.dec[i]) {
      stats.decMismatchB++;
      logMiss({
        kind: "decode",
        gen: g,
        ids: ids.length > 5000 ? undefined : ids,
        ours: dB.length > 5000 ? undefined : dB,
        sp: spDec.length > 5000 ? undefined : spDec,
      });
    }
    if (dM !== sp.dec[i]) stats.decMismatchM++;
    if (okB && tokB.decode(oursB[i]) !== wf[i]) {
      stats.roundTripFail++;
      if (sp.dec[i] === wf[i]) stats.roundTripFailOursOnly++;
    }
    // encode options
    if (r() < 0.2) {
      const bos = r() < 0.5,
        eos = r() < 0.5;
      const want = [...(bos ? [1] : []), ...ids, ...(eos ? [2] : [])];
      stats.optsChecked++;
      const o = tokB.encode(t, { bos, eos });
      const o2 = tokB.encodeToInt32Array(t, { bos, eos });
      if (!eq(o, want) || !eq(o2, want) || !eq(tokB.encode(t), [1, ...ids])) {
        stats.optsBad++;
        logMiss({ kind: "opts", gen: g, text: t, bos, eos });
      }
    }
    if (r() < 0.2) {
      const bos = r() < 0.5,
        eos = r() < 0.5;
      const want = [...(bos ? [1] : []), ...ids, ...(eos ? [2] : [])];
      const Ctor = [Uint16Array, Int32Array, Uint32Array][Math.floor(r() * 3)] ?? Uint16Array;
      const off = Math.floor(r() * 50);
      const tight = r() < 0.5;
      const out = new Ctor(off + (tight ? want.length : want.length + 7)).fill(7777);
      stats.intoChecked++;
      let ok = true;
      try {
        const n = tokB.encodeInto(t, out, off, { bos, eos });
        ok =
          n === want.length &&
          eq(out.subarray(off, off + n), want) &&
          out.subarray(0, off).every((v) => v === 7777) &&
          out.subarray(off + n).every((v) => v === 7777);
      } catch (_e) {
        ok = false;
      }
      // one less room must throw and write nothing
      if (want.length > 0) {
        const small = new Ctor(off + want.length - 1).fill(7777);
        try {
          tokB.encodeInto(t, small, off, { bos, eos });
          ok = false;
        } catch (e) {
          if (!(e instanceof RangeError) || !small.every((v) => v === 7777)) ok = false;
        }
      }
      if (want.length > 3 * t.length + 5) ok = false;
      if (!ok) {
        stats.intoBad++;
        logMiss({ kind: "into", gen: g, text: t, bos, eos, ctor: Ctor.name, off });
      }
    }
  }
  if (batchP) {
    const res = await batchP;
    stats.batchChecked += texts.length;
    for (const [i, text] of texts.entries()) {
      const want = [...(bosB ? [1] : []), ...(oursB[i] ?? []), ...(!bosB ? [2] : [])];
      if (!eq(res[i] ?? [], want)) {
        stats.batchBad++;
        logMiss({
          kind: "batch",
          gen: gens[i],
          text: text.length > 20000 ? undefined : text,
          len: text.length,
        });
      }
    }
  }
}

const t0 = Date.now();
let lastReport = t0;
function report(final = false) {
  const s = { ...stats, seconds: (Date.now() - t0) / 1000 };
  if (final) writeFileSync(join(OUT, `stats-${mode}-${seed}.json`), JSON.stringify(s, null, 1));
  console.log(
    JSON.stringify(
      final
        ? s
        : {
            cases: s.cases,
            chars: s.chars,
            spTokens: s.spTokens,
            mismatchB: s.mismatchB,
            mismatchM: s.mismatchM,
            decB: s.decMismatchB,
            batchBad: s.batchBad,
            intoBad: s.intoBad,
            optsBad: s.optsBad,
            sec: s.seconds,
          },
    ),
  );
}

/** @param {[string, string][]} items a generator's name and a text each */
async function runList(items) {
  // items: [gen, text][]; batch by count and chars
  let texts = [],
    gens = [],
    chars = 0;
  for (const [g, t] of items) {
    texts.push(t);
    gens.push(g);
    chars += t.length;
    if (texts.length >= 500 || chars > 1_000_000) {
      await check(texts, gens);
      texts = [];
      gens = [];
      chars = 0;
    }
    if (Date.now() - lastReport > 30000) {
      lastReport = Date.now();
      report();
    }
  }
  if (texts.length) await check(texts, gens);
}

if (mode === "gen") {
  const corpus = loadCorpus();
  const pieces = tokB.model.pieces.filter(
    (/** @type {string} */ _p, /** @type {number} */ i) => tokB.model.types[i] === 1,
  );
  const G = makeGen(seed, pieces, corpus);
  const BATCH = 500;
  for (let done = 0; done < N; done += BATCH) {
    const items = [];
    for (let k = 0; k < BATCH && done + k < N; k++) items.push(G.next());
    await runList(items);
  }
} else if (mode === "corpus") {
  const corpus = loadCorpus();
  await runList(corpus.map((t) => ["corpus", t]));
} else if (mode === "special") {
  loadCorpus(); // special.mjs slices it too
  const { special } = await import("./special.mjs");
  for (const [g, t] of special()) await runList([[g, t]]);
} else if (mode === "decode") {
  // random id sequences: SentencePiece DecodeIds vs ours
  let _bad = 0;
  for (let b = 0; b < N / 1000; b++) {
    /** @type {number[][]} */
    const seqs = [];
    for (let k = 0; k < 1000; k++) {
      const n = Math.floor(r() ** 2 * 60);
      /** @type {number[]} */
      const s = [];
      for (let j = 0; j < n; j++) {
        const x = r();
        s.push(
          x < 0.4
            ? 3 + Math.floor(r() * 256)
            : x < 0.45
              ? Math.floor(r() * 3)
              : x < 0.5
                ? ([29871, 259, 1678, 268][Math.floor(r() * 4)] ?? 29871)
                : Math.floor(r() * 32000),
        );
      }
      seqs.push(s);
    }
    const sp = await oracle.decode(seqs);
    for (const [k, seq] of seqs.entries()) {
      stats.cases++;
      stats.spTokens += seq.length;
      const dB = tokB.decode(seq),
        dM = tokM.decode(seq);
      if (dB !== sp.dec[k] || dM !== sp.dec[k]) {
        _bad++;
        stats.decMismatchB++;
        logMiss({ kind: "randdecode", ids: seq, ours: dB, sp: sp.dec[k] });
      }
    }
  }
}
report(true);
oracle.close();
await tokB.close();
// any disagreement fails the run (the cases are in the mismatch file)
const failed =
  stats.mismatchB +
  stats.mismatchM +
  stats.decMismatchB +
  stats.decMismatchM +
  stats.surrogateReplBad +
  stats.optsBad +
  stats.intoBad +
  stats.batchBad;
process.exit(failed > 0 ? 1 : 0);
