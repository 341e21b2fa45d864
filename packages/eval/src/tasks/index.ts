import { arcChallenge, arcEasy } from "./arc.js";
import { boolq } from "./boolq.js";
import { hellaswag } from "./hellaswag.js";
import { openbookqa } from "./openbookqa.js";
import { piqa } from "./piqa.js";
import type { Task } from "./task.js";
import { winogrande, xwinogradZh } from "./winograd.js";
import { xcopaZh } from "./xcopa.js";
import { xnliZh } from "./xnli.js";
import { xstoryclozeZh } from "./xstorycloze.js";

/** Every task by its harness name, in the order of the paper's tables. */
export const TASKS: Readonly<Record<string, Task<never>>> = Object.freeze(
  Object.fromEntries(
    [
      hellaswag,
      openbookqa,
      winogrande,
      arcChallenge,
      arcEasy,
      boolq,
      piqa,
      xwinogradZh,
      xstoryclozeZh,
      xnliZh,
      xcopaZh,
    ].map((t) => [t.name, t as unknown as Task<never>]),
  ),
);

/** Table 3 (English commonsense) and Table 5 (Chinese) of the TinyLlama paper. */
export const TASK_GROUPS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  commonsense: [
    "hellaswag",
    "openbookqa",
    "winogrande",
    "arc_challenge",
    "arc_easy",
    "boolq",
    "piqa",
  ],
  chinese: ["xwinograd_zh", "xstorycloze_zh", "xnli_zh", "xcopa_zh"],
});

/** Resolves a comma-separated list of task and group names; unknown names are an error. */
export function resolveTasks(list: string): Task<never>[] {
  const names = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new Error("no task named; known: " + knownNames());
  const out: Task<never>[] = [];
  for (const name of names) {
    const group = name === "all" ? Object.keys(TASKS) : TASK_GROUPS[name];
    for (const n of group ?? [name]) {
      const task = TASKS[n];
      if (!task) throw new Error(`unknown task "${n}"; known: ${knownNames()}`);
      if (!out.includes(task)) out.push(task);
    }
  }
  return out;
}

function knownNames(): string {
  return [...Object.keys(TASKS), ...Object.keys(TASK_GROUPS), "all"].join(", ");
}

export type { DocRequests, Task } from "./task.js";
export {
  arcChallenge,
  arcEasy,
  boolq,
  hellaswag,
  openbookqa,
  piqa,
  winogrande,
  xcopaZh,
  xnliZh,
  xstoryclozeZh,
  xwinogradZh,
};
