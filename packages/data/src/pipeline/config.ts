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

/** Merges a user config over the defaults and checks it; relative paths resolve against `base`. */
export function resolveConfig(user: UserConfig, base: string, where = "config"): PrepareConfig {
  const fail = (m: string): never => {
    throw new ConfigError(`${where}: ${m}`);
  };
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
  if (!Array.isArray(c.sources) || c.sources.length === 0)
    fail("sources must be a non-empty array");
  const seen = new Set<string>();
  for (const s of c.sources) {
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
