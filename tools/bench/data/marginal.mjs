#!/usr/bin/env node
// The pipeline's per-byte cost against tokenizing alone, without the fixed cost of a run.
//
// bench.mjs divides a whole run's CPU by the tokenizer's; on 30 MB that includes what a run
// pays once whatever its size (loading the tokenizer, compiling the pipeline's code, the
// first task's setup, the small stages), which a 3 TB run spreads over 100,000 times more
// bytes. This script runs bench.mjs on a small and a large corpus, alternating, and reports
//   marginal ratio = (pipeline CPU large - small) / (tokenizer CPU large - small)
// (the cost of one more byte, both in the pipeline's document order), the fixed cost per run,
// and the core-hours projected from the marginal rate.
//
//   node tools/bench/data/marginal.mjs [--small-mb 3] [--mb 30] [--rounds 4] [--repeat 3]
//     [--small <dir> --large <dir>] [--no-dedup] [--json out.json]
// --small/--large reuse corpora kept by `bench.mjs --keep` (built here otherwise).
// Needs what bench.mjs needs (pnpm build; debian-handbook for the corpus).
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { emptyTrash, median } from "./report.mjs";

const bench = join(dirname(fileURLToPath(import.meta.url)), "bench.mjs");
const { values } = parseArgs({
  options: {
    "small-mb": { type: "string" },
    mb: { type: "string" },
    rounds: { type: "string" },
    repeat: { type: "string" },
    small: { type: "string" },
    large: { type: "string" },
    json: { type: "string" },
    "no-dedup": { type: "boolean" },
  },
});
const rounds = Number(values.rounds ?? 4);
const repeat = Number(values.repeat ?? 3);
if (!(rounds >= 1) || !(repeat >= 1)) throw new Error("--rounds and --repeat must be >= 1");

/** Runs bench.mjs and returns its JSON report (all it prints on stdout). @param {string[]} args */
function runBench(args) {
  const r = spawnSync(process.execPath, [bench, ...args], {
    encoding: "utf8",
    // each run's outputs are moved aside, and deleted only at the end (see report.mjs)
    env: { ...process.env, BENCH_KEEP_TRASH: "1" },
  });
  if (r.status !== 0) throw new Error(`bench.mjs ${args.join(" ")} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A kept corpus directory of about `mb` MB of text. @param {string} mb */
function corpus(mb) {
  const dir = runBench(["--mb", mb, "--repeat", "1", "--keep"]).keptCorpus;
  if (typeof dir !== "string") throw new Error("bench.mjs --keep did not report its corpus");
  return dir;
}

/** Corpora built by this run, removed at the end. @type {string[]} */
const built = [];
/** @param {string | undefined} given @param {string} mb */
const corpusDir = (given, mb) => {
  if (given) return given;
  const dir = corpus(mb);
  built.push(dir);
  return dir;
};
const small = corpusDir(values.small, values["small-mb"] ?? "3");
const large = corpusDir(values.large, values.mb ?? "30");

const keyCpu = "pipeline CPU-seconds in tasks (best run)";
const keyTok = "tokenizer-only CPU-seconds, texts in the pipeline's order";
/** @type {{ small: any[], large: any[] }} */
const runs = { small: [], large: [] };
for (let r = 0; r < rounds; r++) {
  for (const [name, dir] of /** @type {const} */ ([
    ["small", small],
    ["large", large],
  ])) {
    const rep = runBench([
      "--reuse",
      dir,
      "--repeat",
      String(repeat),
      ...(values["no-dedup"] ? ["--no-dedup"] : []),
    ]);
    runs[name].push(rep);
    console.error(
      `round ${r + 1}/${rounds} ${name}: ${rep.input.textMB} MB, pipeline ${rep[keyCpu]} CPU-s, tokenizer ${rep[keyTok]} CPU-s`,
    );
  }
}

const med = (/** @type {any[]} */ rs, /** @type {string} */ k) => median(rs.map((r) => r[k]));
const [pS, tS, pL, tL] = [
  med(runs.small, keyCpu),
  med(runs.small, keyTok),
  med(runs.large, keyCpu),
  med(runs.large, keyTok),
];
const mbS = runs.small[0].input.textMB;
const mbL = runs.large[0].input.textMB;
const marginal = (pL - pS) / (tL - tS);
const perRound = runs.large.map(
  (l, i) => (l[keyCpu] - runs.small[i][keyCpu]) / (l[keyTok] - runs.small[i][keyTok]),
);
const secondsPerMb = (pL - pS) / (mbL - mbS);
const bytesPerToken = runs.large[0]["text bytes per token"];
const coreHours = (/** @type {number} */ tokens) =>
  Math.round((((tokens * bytesPerToken) / 1e6) * secondsPerMb) / 3600);
const report = {
  date: new Date().toISOString(),
  machine: runs.large[0].machine,
  commit: runs.large[0].commit,
  command: `node tools/bench/data/marginal.mjs --rounds ${rounds} --repeat ${repeat}${values["no-dedup"] ? " --no-dedup" : ""} (small ${mbS} MB, large ${mbL} MB)`,
  "median CPU-seconds, small: pipeline / tokenizer": [pS, tS],
  "median CPU-seconds, large: pipeline / tokenizer": [pL, tL],
  "whole-run ratio, large (as bench.mjs reports it)": +(pL / tL).toFixed(3),
  "marginal ratio (one more byte: pipeline / tokenizer)": +marginal.toFixed(3),
  "marginal ratio per round": perRound.map((x) => +x.toFixed(3)),
  "fixed pipeline CPU-seconds per run (small run less its bytes at the marginal rate)": +(
    pS -
    marginal * tS
  ).toFixed(2),
  "marginal pipeline MB/s per core": +(1 / secondsPerMb).toFixed(2),
  "projected core-hours at the marginal rate, SlimPajama + StarCoderData (~950B tokens)":
    coreHours(950e9),
  "projected core-hours at the marginal rate, all four corpora (~1,155B tokens)": coreHours(1155e9),
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
for (const d of [small, large]) emptyTrash(d);
for (const d of built) rmSync(d, { recursive: true, force: true });
