// Load time of the built package in fresh processes: import of dist/index.js, then
// LlamaTokenizer.load() (bundled vocabulary), then the first encode. Alternates between
// package directories given with --dist (A/B), so both see the same machine load.
//   node tools/bench/tokenizer/load-time.mjs [--runs 7] [--dist <pkg dir>]...
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { pkgDir } from "./load.mjs";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    dist: { type: "string", multiple: true, default: [pkgDir] },
  },
});
const child = `
  const t0 = performance.now();
  const { LlamaTokenizer } = await import(process.argv[1] + "/dist/index.js");
  const t1 = performance.now();
  const tok = await LlamaTokenizer.load();
  const t2 = performance.now();
  tok.encode("Hello world!");
  const t3 = performance.now();
  console.log(JSON.stringify({ importMs: t1 - t0, loadMs: t2 - t1, firstEncodeMs: t3 - t2, totalMs: t3 - t0 }));
`;
/** @typedef {{ importMs: number, loadMs: number, firstEncodeMs: number, totalMs: number }} Sample */
/** @type {Map<string, Sample[]>} */
const samples = new Map(values.dist.map((d) => [d, []]));
for (let r = 0; r < Number(values.runs); r++) {
  for (const dir of values.dist) {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", child, dir], {
      encoding: "utf8",
    });
    samples.get(dir)?.push(JSON.parse(out));
  }
}
/** @param {number[]} xs @returns {number} */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
for (const [dir, xs] of samples) {
  /** @param {keyof Sample} k */
  const f = (k) =>
    `${median(xs.map((x) => x[k])).toFixed(1)} (${Math.min(...xs.map((x) => x[k])).toFixed(1)}-${Math.max(...xs.map((x) => x[k])).toFixed(1)})`;
  console.log(
    `${dir}: median (min-max) of ${xs.length}, ms: import ${f("importMs")}, load ${f("loadMs")}, first encode ${f("firstEncodeMs")}, total ${f("totalMs")}`,
  );
}
