#!/usr/bin/env node
// Synthetic task data for the eval throughput benchmark: records in the real schemas of
// hellaswag, arc_easy, boolq, piqa and winogrande, with lengths like the real splits (hellaswag
// contexts ~40 words and endings ~15; boolq passages ~100 words), made of English words in a
// fixed pseudo-random order. NOT benchmark data: for timing and for the transformers comparison.
//
// usage: node tools/bench/eval/make-bench-data.mjs <outDir> [docsPerTask=500]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [outDir, nArg] = process.argv.slice(2);
if (!outDir) throw new Error("usage: make-bench-data.mjs <outDir> [docsPerTask]");
const n = Number(nArg ?? 500);
const WORDS = (
  "the a of to and in is it that for on with as was he she they at by this from have be or one " +
  "had not but what all were when we there can an your which their said if do will each about " +
  "how up out them then many some so these would other into has more her two like him see time " +
  "could no make than first been its who now people my made over did down only way find use may " +
  "water long little very after words called just where most know get through back much go good " +
  "new write our me man too any day same right look think also around another came come work " +
  "three word must because does part even place well such here take why things help put years " +
  "different away again off went old number great tell men say small every found still between " +
  "name should home big give air line set own under read last never us left end along while " +
  "might next sound below saw something thought both few those always looked show large often " +
  "together asked house world going want school important until form food keep children feet " +
  "land side without boy once animals life enough took sometimes four head above kind began " +
  "almost live page got earth need far hand high year mother light parts country father let " +
  "night following picture being study second eyes soon times story boys since white days ever " +
  "paper hard near sentence better best across during today others however sure means knew its " +
  "try told young miles sun ways thing whole hear example heard several change answer room sea " +
  "against top turned learn point city play toward five using himself usually kettle bicycle"
).split(" ");
let state = 2024;
const rand = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 4294967296;
};
/** @param {number} k */
const words = (k) =>
  Array.from({ length: k }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(" ");
/** @param {number} k */
const around = (k) => Math.max(1, Math.round(k * (0.6 + 0.8 * rand())));
/** @param {number} k */
const sentence = (k) => {
  const s = words(around(k));
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
};
/** @param {number} m */
const pick = (m) => Math.floor(rand() * m);

/** @type {Record<string, (i: number) => object>} */
const tasks = {
  hellaswag: (i) => ({
    ind: i,
    activity_label: words(2),
    ctx_a: `${sentence(18)} ${sentence(14)}`,
    ctx_b: words(around(5)),
    ctx: "",
    endings: Array.from({ length: 4 }, () => sentence(15)),
    source_id: `synthetic-${i}`,
    split: "val",
    split_type: "indomain",
    label: String(pick(4)),
  }),
  arc_easy: (i) => ({
    id: `synthetic-${i}`,
    question: `${sentence(20).slice(0, -1)}?`,
    choices: {
      text: Array.from({ length: 4 }, () => words(around(4))),
      label: ["A", "B", "C", "D"],
    },
    answerKey: "ABCD"[pick(4)],
  }),
  boolq: (i) => ({
    question: words(around(8)),
    passage: `${words(2)} -- ${Array.from({ length: 6 }, () => sentence(16)).join(" ")}`,
    idx: i,
    label: pick(2),
  }),
  piqa: () => ({ goal: sentence(10), sol1: sentence(20), sol2: sentence(20), label: pick(2) }),
  winogrande: () => {
    const a = words(1);
    const b = words(1);
    return {
      sentence: `${sentence(10).slice(0, -1)} because _ ${words(around(8))}.`,
      option1: a,
      option2: b,
      answer: String(1 + pick(2)),
    };
  },
};
mkdirSync(outDir, { recursive: true });
for (const [name, make] of Object.entries(tasks)) {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify(make(i)));
  writeFileSync(join(outDir, `${name}.jsonl`), `${lines.join("\n")}\n`);
}
console.error(`wrote ${Object.keys(tasks).length} x ${n} synthetic docs to ${outDir}`);
