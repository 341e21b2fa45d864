/**
 * The configuration of one `pnpm data:prepare` run, as read from `--config <file.json>`.
 * Every field has a default; the bundled-sample config is `sampleConfig()`.
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_MINHASH, type MinHashParams } from "../dedup/minhash.js";
import { DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_TOKENS } from "../shards/litpkds.js";
import { SOURCES } from "../sources/index.js";
import type { StageName } from "./plan.js";

export interface SourceInput {
  /** A registered source name (slimpajama, starcoder, proof-pile-2, skypile): the mixture presets' names, and the output directory under data/. */
  name: string;
  /** Local dataset root laid out like the hub repo. Exactly one of local/hub. */
  local?: string;
  /** Read from the hub: repo defaults to the source's, revision to "main". */
  hub?: { repo?: string; revision?: string };
  /** Subset names (see the source definition); defaults to the source's. */
  subsets?: string[];
  /** Keep only the first N files after sorting (for trial runs). */
  maxFiles?: number;
}

export interface PrepareConfig {
  output: string;
  /** Intermediate files and completion markers; default <output>/.work */
  workDir?: string;
  sources: SourceInput[];
  dedup: {
    enabled: boolean;
    minhash: MinHashParams;
    /** Documents with fewer normalised words take part in exact dedup only. */
    minWords: number;
  };
  tokenizer: "llama2" | "bytes";
  blockSize: number;
  chunkTokens: number;
  /** Fraction of documents (by hash of their id) held out for the validation split. */
  validationFraction: number;
  /** Input files per task: the unit of parallelism, resume and Slurm array index. */
  filesPerTask: number;
  /** Bad records are fatal instead of skipped and counted. */
  strict: boolean;
  hub?: { cacheDir?: string };
  /** sbatch settings for --executor slurm (partition, time, cpusPerTask, maxArraySize, ...). */
  slurm?: import("../executors/slurm.js").SlurmOptions;
}

/** A config as written in a file: every field optional, dedup settings merged field by field. */
export type UserConfig = Omit<Partial<PrepareConfig>, "dedup"> & {
  dedup?: Partial<Omit<PrepareConfig["dedup"], "minhash">> & { minhash?: Partial<MinHashParams> };
};

export const DEFAULTS: Omit<PrepareConfig, "sources" | "output"> = {
  dedup: { enabled: true, minhash: DEFAULT_MINHASH, minWords: 5 },
  tokenizer: "llama2",
  blockSize: DEFAULT_BLOCK_SIZE,
  chunkTokens: DEFAULT_CHUNK_TOKENS,
  validationFraction: 0.0005,
  filesPerTask: 4,
  strict: false,
};

/** packages/data/sample, found relative to this file in src/ or dist/. */
export function sampleDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "sample");
}

/** The bundled sample: all four corpora, Python + Jupyter + one more StarCoder language. */
export function sampleConfig(output = "data"): PrepareConfig {
  const root = sampleDir();
  return {
    ...DEFAULTS,
    output,
    sources: [
      { name: "slimpajama", local: `${root}/slimpajama`, subsets: ["train"] },
      { name: "starcoder", local: `${root}/starcoderdata`, subsets: ["all"] },
      { name: "proof-pile-2", local: `${root}/proofpile2` },
      { name: "skypile", local: `${root}/skypile` },
    ],
    // a few blocks per source for the trainer's validation loss
    validationFraction: 0.06,
    // small chunks so the sample's few hundred blocks spread over several files
    chunkTokens: DEFAULT_BLOCK_SIZE * 64,
    filesPerTask: 1,
  };
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The shape of a config file: every key it may hold, at every level, with its type. */
type Field =
  | { type: "string" | "boolean" | "string[]" }
  | { type: "number"; min?: number; below?: number } // min <= value < below
  | { type: "integer"; min: number }
  | { type: "enum"; values: readonly string[] }
  | { type: "object"; fields: Record<string, Field> }
  | { type: "array"; items: Field };

const str: Field = { type: "string" };
const bool: Field = { type: "boolean" };
const int = (min: number): Field => ({ type: "integer", min });

/** The stages a `slurm.stages` override may name (plan.ts runs them in this order). */
const STAGE_NAMES = [
  "signatures",
  "buckets",
  "cluster",
  "pack",
  "finalize",
] as const satisfies readonly StageName[];

const slurmResources: Record<string, Field> = {
  partition: str,
  time: str,
  cpusPerTask: int(1),
  memPerCpu: str,
};

const SCHEMA: Record<string, Field> = {
  output: str,
  workDir: str,
  sources: {
    type: "array",
    items: {
      type: "object",
      fields: {
        name: str,
        local: str,
        hub: { type: "object", fields: { repo: str, revision: str } },
        subsets: { type: "string[]" },
        maxFiles: int(1),
      },
    },
  },
  dedup: {
    type: "object",
    fields: {
      enabled: bool,
      minhash: {
        type: "object",
        fields: {
          ngram: int(1),
          bands: int(1),
          rows: int(1),
          seed: int(0),
          scheme: { type: "enum", values: ["oph", "permutations"] },
        },
      },
      minWords: int(0),
    },
  },
  tokenizer: { type: "enum", values: ["llama2", "bytes"] },
  blockSize: int(2),
  chunkTokens: int(1),
  validationFraction: { type: "number", min: 0, below: 1 },
  filesPerTask: int(1),
  strict: bool,
  hub: { type: "object", fields: { cacheDir: str } },
  slurm: {
    type: "object",
    fields: {
      ...slurmResources,
      // per-stage overrides of the resources (the cluster task may need far more memory)
      stages: {
        type: "object",
        fields: Object.fromEntries(
          STAGE_NAMES.map((stage) => [stage, { type: "object", fields: slurmResources }]),
        ),
      },
      maxConcurrent: int(1),
      maxArraySize: int(1),
      extra: { type: "string[]" },
      nodeBinary: str,
      taskScript: str,
    },
  },
};

/** Edit distance, for "did you mean" on a misspelt key. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = cur;
  }
  return prev[b.length] as number;
}

/** The known key `key` most likely meant (case, "_" and "-" ignored; a few edits), if any. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (k: string) => k.toLowerCase().replace(/[_-]/g, "");
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

/**
 * Checks a config as written against SCHEMA: an unknown key anywhere, a value of the wrong
 * type, an enum outside its values or a non-integer count is a ConfigError naming the key's
 * path. Spreading unchecked keys let `"subset"` or `"minhash": {"band": 9}` load and the run
 * silently use the defaults instead.
 */
function checkShape(value: unknown, field: Field, path: string, fail: (m: string) => never): void {
  if (value === undefined) return; // absent (a default applies)
  const got = (want: string) =>
    fail(`${path} must be ${want}, got ${JSON.stringify(value) ?? typeName(value)}`);
  switch (field.type) {
    case "string":
      if (typeof value !== "string") got("a string");
      return;
    case "boolean":
      if (typeof value !== "boolean") got("true or false");
      return;
    case "string[]":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
        got("an array of strings");
      return;
    case "number": {
      const { min = -Infinity, below = Infinity } = field;
      if (typeof value !== "number" || !(value >= min && value < below))
        got(`a number in [${min}, ${below})`);
      return;
    }
    case "integer":
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < field.min)
        got(field.min === 1 ? "a positive integer" : `an integer >= ${field.min}`);
      return;
    case "enum":
      if (typeof value !== "string" || !field.values.includes(value))
        got(`one of ${field.values.map((v) => JSON.stringify(v)).join(", ")}`);
      return;
    case "array":
      if (!Array.isArray(value)) got("an array");
      (value as unknown[]).forEach((v, i) => {
        checkShape(v, field.items, `${path}[${i}]`, fail);
      });
      return;
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) got("an object");
      checkKeys(value as Record<string, unknown>, field.fields, path, fail);
    }
  }
}

function checkKeys(
  obj: Record<string, unknown>,
  fields: Record<string, Field>,
  path: string,
  fail: (m: string) => never,
): void {
  const known = Object.keys(fields);
  for (const [key, v] of Object.entries(obj)) {
    const at = path ? `${path}.${key}` : key;
    const field = fields[key];
    if (!field) {
      const close = closestKey(key, known);
      fail(
        `unknown key "${at}"${close ? ` (did you mean "${path ? `${path}.` : ""}${close}"?)` : ""}; ` +
          `${path ? `"${path}" takes` : "known keys are"}: ${known.join(", ")}`,
      );
    }
    checkShape(v, field as Field, at, fail);
  }
}

/** Merges a user config over the defaults and checks it; relative paths resolve against `base`. */
export function resolveConfig(user: UserConfig, base: string, where = "config"): PrepareConfig {
  const fail = (m: string): never => {
    throw new ConfigError(`${where}: ${m}`);
  };
  if (typeof user !== "object" || user === null || Array.isArray(user))
    fail(`a config must be a JSON object, got ${typeName(user)}`);
  checkKeys(user as Record<string, unknown>, SCHEMA, "", fail);
  const c: PrepareConfig = {
    ...DEFAULTS,
    ...user,
    output: user.output ?? "data",
    sources: user.sources ?? fail("no sources"),
    dedup: {
      ...DEFAULTS.dedup,
      ...user.dedup,
      minhash: { ...DEFAULTS.dedup.minhash, ...user.dedup?.minhash },
    },
  } as PrepareConfig;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  c.output = abs(c.output);
  if (c.workDir) c.workDir = abs(c.workDir);
  // every path of the config resolves against its file's folder, the download cache included
  if (c.hub?.cacheDir) c.hub = { ...c.hub, cacheDir: abs(c.hub.cacheDir) };
  if (!Array.isArray(c.sources) || c.sources.length === 0)
    fail("sources must be a non-empty array");
  const seen = new Set<string>();
  // copies: resolving paths below must not write into the caller's objects
  c.sources = c.sources.map((s) => ({ ...s }));
  for (const [i, s] of c.sources.entries()) {
    if (s.name === undefined) fail(`sources[${i}].name is missing`);
    const def = SOURCES[s.name];
    if (!def) fail(`unknown source "${s.name}" (known: ${Object.keys(SOURCES).join(", ")})`);
    if (seen.has(s.name)) fail(`source "${s.name}" listed twice`);
    seen.add(s.name);
    if ((s.local === undefined) === (s.hub === undefined))
      fail(`source "${s.name}": give exactly one of "local" or "hub"`);
    if (s.local) s.local = abs(s.local);
    for (const sub of s.subsets ?? []) {
      if (!def?.subsets[sub])
        fail(
          `source "${s.name}": unknown subset "${sub}" (known: ${Object.keys(def?.subsets ?? {}).join(", ")})`,
        );
    }
  }
  if (!["llama2", "bytes"].includes(c.tokenizer)) fail(`tokenizer must be "llama2" or "bytes"`);
  if (!Number.isInteger(c.blockSize) || c.blockSize < 2) fail("blockSize must be an integer >= 2");
  if (!Number.isInteger(c.chunkTokens) || c.chunkTokens % c.blockSize !== 0 || c.chunkTokens <= 0) {
    fail(
      `chunkTokens (${c.chunkTokens}) must be a positive multiple of blockSize (${c.blockSize})`,
    );
  }
  if (!(c.validationFraction >= 0 && c.validationFraction < 1))
    fail("validationFraction must be in [0, 1)");
  if (!Number.isInteger(c.filesPerTask) || c.filesPerTask < 1)
    fail("filesPerTask must be a positive integer");
  return c;
}

export async function loadConfigFile(path: string): Promise<PrepareConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read config: ${(err as Error).message}`);
  }
  let json: UserConfig;
  try {
    json = JSON.parse(stripJsonComments(text));
  } catch (err) {
    throw new ConfigError(`${path}: config is not valid JSON: ${(err as Error).message}`);
  }
  return resolveConfig(json, dirname(resolve(path)), path);
}

/** Removes line and block comments outside strings, so configs can be JSONC (as in the README). */
export function stripJsonComments(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
    } else out += c;
  }
  return out;
}
