/**
 * A zero-shot multiple-choice task in the harness's terms. A task file validates one raw record
 * of the hub dataset (`parse`) and builds the doc's requests (`build`); everything else
 * (encoding, scoring, metrics) is shared. Adding a task is one small file plus a line in
 * `tasks/index.ts`.
 */
import type { MultipleChoiceMetric } from "../metrics.js";
import type { TextRequest } from "../types.js";

/** The harness's default `target_delimiter`, used by every task here (Chinese ones included). */
export const TARGET_DELIMITER = " ";

export interface DatasetRef {
  /** Hub dataset repository, e.g. "Rowan/hellaswag". */
  path: string;
  /** Config (subset) name, or null for the default config. */
  name: string | null;
  /** Split evaluated zero-shot. */
  split: string;
  /** Number of documents in that split (for checking a full run). */
  size: number;
}

/** The requests of one doc with what scoring needs. */
export interface DocRequests {
  requests: TextRequest[];
  /** The harness's doc_to_choice strings (their lengths normalise acc_norm). */
  choices: string[];
  gold: number;
}

export interface Task<Doc = unknown> {
  name: string;
  /** The harness task's `metadata.version`. */
  version: number;
  dataset: DatasetRef;
  metrics: readonly MultipleChoiceMetric[];
  /** How the harness's yaml builds requests, for the results' `configs` block. */
  template: { doc_to_text: string; doc_to_choice: string; doc_to_target: string };
  parse(raw: unknown): Doc;
  build(doc: Doc): DocRequests;
}

/** Most tasks: one context, each choice is a continuation `" " + choice`. */
export function contextWithChoices(context: string, choices: string[], gold: number): DocRequests {
  return {
    requests: choices.map((choice) => ({ context, continuation: TARGET_DELIMITER + choice })),
    choices,
    gold,
  };
}

/**
 * The harness's "multiple input" mode (winogrande, xwinograd): one context per choice, one shared
 * continuation; only the continuation is scored ("partial scoring").
 */
export function contextsWithSharedContinuation(
  contexts: string[],
  continuation: string,
  gold: number,
): DocRequests {
  return {
    requests: contexts.map((context) => ({
      context,
      continuation: TARGET_DELIMITER + continuation,
    })),
    choices: contexts,
    gold,
  };
}

export function defineTask<Doc>(task: Task<Doc>): Task<Doc> {
  return task;
}

/** Thrown for a record that does not match the task's dataset schema. */
export class DocSchemaError extends Error {
  constructor(task: string, message: string) {
    super(`${task}: ${message}`);
    this.name = "DocSchemaError";
  }
}

/** Field readers that fail with the task, field and what was found. */
export function fields(task: string, raw: unknown) {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new DocSchemaError(task, `a record must be a JSON object, got ${describe(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  const fail = (field: string, expected: string): never => {
    throw new DocSchemaError(
      task,
      `field "${field}" must be ${expected}, got ${describe(record[field])}`,
    );
  };
  return {
    string(field: string): string {
      const v = record[field];
      return typeof v === "string" ? v : fail(field, "a string");
    },
    int(field: string): number {
      const v = record[field];
      if (typeof v === "bigint") return Number(v);
      return typeof v === "number" && Number.isInteger(v) ? v : fail(field, "an integer");
    },
    /** An integer stored either as a number or as a decimal string (hellaswag's label). */
    intLike(field: string): number {
      const v = record[field];
      if (typeof v === "bigint") return Number(v);
      if (typeof v === "number" && Number.isInteger(v)) return v;
      if (typeof v === "string" && /^[0-9]+$/.test(v)) return Number(v);
      return fail(field, "an integer or a string of digits");
    },
    strings(field: string): string[] {
      const v = record[field];
      return Array.isArray(v) && v.every((x) => typeof x === "string")
        ? (v as string[])
        : fail(field, "an array of strings");
    },
    object(field: string) {
      const v = record[field];
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail(field, "an object");
      return fields(`${task}.${field}`, v);
    },
  };
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing (missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  const s = JSON.stringify(v);
  return `${typeof v} ${s && s.length > 40 ? `${s.slice(0, 40)}...` : s}`;
}
