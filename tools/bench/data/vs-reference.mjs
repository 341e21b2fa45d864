#!/usr/bin/env node
// Our pipeline against the reference's, in one run on one machine: the preparation TinyLlama's
// repository did (lit-gpt's PackedDatasetBuilder fed one document at a time, no dedup;
// reference/litgpt_prepare.py) with both of lit-gpt's tokenizer backends (Hugging Face
// `tokenizers`, SentencePiece), each also tokenizing alone, beside bench.mjs on the same corpus
// (our pipeline with and without dedup, our tokenizer alone). Rounds alternate every variant so
// drift of the machine's speed hits all alike; medians of the CPU-seconds are reported. With
// --small, every variant also runs on a smaller corpus and the report adds its cost per MB of
// one more byte (as marginal.mjs does), free of what a run pays once (loading the tokenizer).
//
//   node tools/bench/data/vs-reference.mjs --corpus <dir kept by bench.mjs --keep>
//     [--small <a smaller kept corpus>] [--rounds 3] [--python python3] [--sp-model tokenizer.model] [--json out.json]
// Needs: pnpm build; python3 with numpy, pyarrow, tokenizers, sentencepiece (the GPU machines
// have them; a variant whose Python module is missing is reported as failed, not skipped).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { emptyTrash, median, retire, runHeader } from "./report.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const { values } = parseArgs({
  options: {
    corpus: { type: "string" },
    small: { type: "string" },
    rounds: { type: "string" },
    python: { type: "string" },
    "sp-model": { type: "string" },
    json: { type: "string" },
  },
});
if (!values.corpus)
  throw new Error("--corpus <dir> is required (a corpus kept by bench.mjs --keep)");
const corpora = values.small ? [values.small, values.corpus] : [values.corpus];
const rounds = Number(values.rounds ?? 3);
if (!(rounds >= 1)) throw new Error("--rounds must be >= 1");
const python = values.python ?? "python3";
const spModel =
  values["sp-model"] ?? join(root, "..", "shared", "fixtures", "llama2-tokenizer.model");
const tokenizerJs = process.env.BENCH_TOKENIZER ?? join(root, "packages/tokenizer/dist/index.js");

// The reference's `tokenizers` backend gets our vocabulary exported as tokenizer.json (the
// tokenizer bench checks it gives identical ids); its SentencePiece backend reads the .model.
const scratch = mkdtempSync(join(tmpdir(), "vs-reference-"));
const tokenizerJson = join(scratch, "tokenizer.json");
{
  const T = await import(pathToFileURL(tokenizerJs).href);
  const tok = await T.LlamaTokenizer.load();
  writeFileSync(tokenizerJson, T.toHuggingFaceTokenizerJson(tok.model));
}

/** @param {string} corpusDir @param {string[]} args @returns {Record<string, any>} */
function runOurs(corpusDir, args) {
  const r = spawnSync(
    process.execPath,
    [join(here, "bench.mjs"), "--reuse", corpusDir, "--repeat", "1", ...args],
    // outputs are moved aside and deleted only at the end (see report.mjs)
    { encoding: "utf8", env: { ...process.env, BENCH_KEEP_TRASH: "1" } },
  );
  if (r.status !== 0) throw new Error(`bench.mjs ${args.join(" ")} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** @param {string} corpusDir @param {"hf" | "sp"} backend @param {"pipeline" | "tokenize"} mode */
function runReference(corpusDir, backend, mode) {
  const out = join(scratch, "ref-out");
  retire(out);
  const r = spawnSync(
    python,
    [
      join(here, "reference", "litgpt_prepare.py"),
      "--backend",
      backend,
      "--mode",
      mode,
      "--corpus",
      join(corpusDir, "corpus"),
      "--texts",
      join(corpusDir, "texts.json"),
      "--tokenizer-json",
      tokenizerJson,
      "--sp-model",
      spModel,
      "--out",
      out,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) return { error: (r.stderr || r.stdout).trim().split("\n").slice(-1)[0] };
  return JSON.parse(r.stdout.trim().split("\n").slice(-1)[0] ?? "{}");
}

/** CPU-seconds per variant, one list per corpus (index as in `corpora`). @type {Record<string, number[][]>} */
const cpu = {};
/** @type {Record<string, string>} */
const failed = {};
/** @param {number} c @param {string} key @param {number | undefined} v */
const record = (c, key, v) => {
  if (typeof v === "number" && Number.isFinite(v)) {
    cpu[key] ??= corpora.map(() => []);
    cpu[key][c]?.push(v);
  }
};
/** text MB of each corpus */
const textMB = corpora.map(() => 0);
let referenceTokens = 0;
for (let round = 1; round <= rounds; round++) {
  for (const [c, dir] of corpora.entries()) {
    const dedup = runOurs(dir, []);
    textMB[c] = dedup.input.textMB;
    record(c, "ours: pipeline (dedup on)", dedup["pipeline CPU-seconds in tasks (best run)"]);
    record(c, "ours: tokenizer alone", dedup["tokenizer-only CPU-seconds"]);
    const plain = runOurs(dir, ["--no-dedup"]);
    record(c, "ours: pipeline --no-dedup", plain["pipeline CPU-seconds in tasks (best run)"]);
    record(c, "ours: tokenizer alone", plain["tokenizer-only CPU-seconds"]);
    for (const backend of /** @type {const} */ (["hf", "sp"])) {
      const name = backend === "hf" ? "tokenizers" : "SentencePiece";
      for (const mode of /** @type {const} */ (["pipeline", "tokenize"])) {
        const key = `reference (${name}): ${mode === "pipeline" ? "pipeline, no dedup" : "tokenizer alone"}`;
        const r = runReference(dir, backend, mode);
        if (r.error) failed[key] = r.error;
        else {
          record(c, key, r.cpuSeconds);
          if (mode === "pipeline" && c === corpora.length - 1) referenceTokens = r.tokens;
        }
      }
    }
  }
  // the report so far after every round, so a run cut short still leaves its figures
  writeReport(round);
  console.error(`round ${round}/${rounds} done`);
}
for (const c of corpora) emptyTrash(c);
rmSync(scratch, { recursive: true, force: true });
console.log(JSON.stringify(writeReport(rounds), null, 2));

/** Medians so far, written to --json; returns the report. @param {number} roundsDone */
function writeReport(roundsDone) {
  const large = corpora.length - 1;
  /** @param {string} key */
  const medianOf = (key, c = large) => median(cpu[key]?.[c] ?? []);
  /** CPU-seconds per MB of one more byte (needs --small). @param {string} key */
  const perMB = (key) =>
    (medianOf(key) - medianOf(key, 0)) / ((textMB[large] ?? 0) - (textMB[0] ?? 0));
  const ours = medianOf("ours: pipeline (dedup on)");
  const oursPerMB = perMB("ours: pipeline (dedup on)");
  const rows = Object.keys(cpu).map((k) => ({
    variant: k,
    "CPU-seconds, median": +medianOf(k).toFixed(3),
    "per round": cpu[k]?.[large],
    "text MB per core-second": +((textMB[large] ?? 0) / medianOf(k)).toFixed(2),
    "our dedup pipeline's cost / this": +(ours / medianOf(k)).toFixed(3),
    ...(corpora.length > 1
      ? {
          "small corpus: CPU-seconds, median": +medianOf(k, 0).toFixed(3),
          "per byte: MB per core-second": +(1 / perMB(k)).toFixed(2),
          "per byte: our dedup pipeline's cost / this": +(oursPerMB / perMB(k)).toFixed(3),
        }
      : {}),
  }));
  const report = {
    ...runHeader(),
    roundsDone,
    command: `node tools/bench/data/vs-reference.mjs --corpus <dir>${values.small ? " --small <dir>" : ""} --rounds ${rounds}`,
    note:
      "CPU-seconds: ours sum every worker's task CPU (tokenizer load included); the reference's time its " +
      "work only (Python start-up and tokenizer load excluded, which favours it). Tokenizer alone: " +
      "the same documents already in memory, one thread.",
    input: {
      textMB: textMB[large],
      ...(values.small ? { smallTextMB: textMB[0] } : {}),
      referenceTokens,
    },
    rows,
    failed,
  };
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
