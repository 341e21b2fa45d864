// Packing a token stream into a Uint16Array spool (what packages/data does per task): one
// Int32Array per document copied in (encodeToInt32Array) against encodeInto writing in place.
// Alternates the two, a fresh tokenizer (empty word cache) per pass.
//   node tools/bench/tokenizer/pack.mjs [--scale 0.1] [--rounds 4]
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { buildCorpus } from "./corpus.mjs";
import { loadPackages } from "./load.mjs";

const { values } = parseArgs({
  options: { scale: { type: "string", default: "0.1" }, rounds: { type: "string", default: "4" } },
});
const P = await loadPackages();
const base = await P.LlamaTokenizer.load();
const texts = buildCorpus({ scale: Number(values.scale), ...P, pieces: base.model.pieces }).map(
  (d) => d.text,
);
const mb = texts.reduce((s, t) => s + Buffer.byteLength(t), 0) / 1e6;
const spool = new Uint16Array(1 << 20);

/** @typedef {{ eosId: number, encodeToInt32Array(t: string, o: object): Int32Array, encodeInto(t: string, out: Uint16Array, at: number, o: object): number }} Tok */
/** @type {Record<string, (tok: Tok) => number>} */
const variants = {
  /** The data package's way today: an Int32Array per document, checked and copied in. */
  copy(tok) {
    let fill = 0;
    let total = 0;
    for (const t of texts) {
      const ids = tok.encodeToInt32Array(t, { bos: false });
      if (fill + ids.length + 1 > spool.length) fill = 0;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] ?? -1;
        if (!(id >= 0 && id <= 0xffff)) throw new RangeError(`${id}`);
        spool[fill + i] = id;
      }
      spool[fill + ids.length] = tok.eosId;
      fill += ids.length + 1;
      total += ids.length + 1;
    }
    return total;
  },
  encodeInto(tok) {
    let fill = 0;
    let total = 0;
    for (const t of texts) {
      if (fill + P.maxEncodedLength(t.length) > spool.length) fill = 0;
      const n = tok.encodeInto(t, spool, fill, { bos: false, eos: true });
      fill += n;
      total += n;
    }
    return total;
  },
};
/** @type {Record<string, number[]>} */
const rates = { copy: [], encodeInto: [] };
for (let r = 0; r < Number(values.rounds); r++) {
  for (const [name, run] of Object.entries(variants)) {
    const tok = P.LlamaTokenizer.fromModel(base.model);
    const t0 = performance.now();
    const n = run(tok);
    rates[name]?.push(mb / ((performance.now() - t0) / 1000));
    if (r === 0) console.log(`${name}: ${n} tokens`);
  }
}
for (const [name, xs] of Object.entries(rates)) {
  console.log(`${name}: ${xs.map((x) => x.toFixed(1)).join(" ")} MB/s (${mb.toFixed(2)} MB)`);
}
