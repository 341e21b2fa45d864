// Config files are checked key by key: a misspelt or misplaced key is an error naming its path
// (and the key it probably meant), never silently ignored while the run uses the defaults.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  loadConfigFile,
  resolveConfig,
  sampleConfig,
  stripJsonComments,
  type UserConfig,
} from "./config.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sky = { name: "skypile", local: "x" };
/** resolveConfig's error for `user` (cast: these configs are wrong on purpose). */
const errorOf = (user: unknown): string => {
  try {
    resolveConfig(user as UserConfig, "/base", "prepare.json");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(user)}`);
};

describe("unknown keys", () => {
  it("are refused at every level, with the key's path and the key it probably meant", () => {
    const cases: [unknown, string][] = [
      [
        { sources: [sky], validation_fraction: 0.01 },
        'prepare.json: unknown key "validation_fraction" (did you mean "validationFraction"?)',
      ],
      [
        { sources: [{ ...sky, subset: ["all"] }] },
        'unknown key "sources[0].subset" (did you mean "sources[0].subsets"?)',
      ],
      [
        { sources: [sky], dedup: { minhash: { band: 9, rows: 13 } } },
        'unknown key "dedup.minhash.band" (did you mean "dedup.minhash.bands"?)',
      ],
      [
        { sources: [sky], dedup: { minhash: { bands: 9, row: 13 } } },
        'unknown key "dedup.minhash.row" (did you mean "dedup.minhash.rows"?)',
      ],
      [
        { sources: [sky], dedup: { enable: false } },
        'unknown key "dedup.enable" (did you mean "dedup.enabled"?)',
      ],
      [
        { sources: [{ name: "skypile", hub: { revison: "v1" } }] },
        'unknown key "sources[0].hub.revison" (did you mean "sources[0].hub.revision"?)',
      ],
      [
        { sources: [sky], hub: { cache_dir: "c" } },
        'unknown key "hub.cache_dir" (did you mean "hub.cacheDir"?)',
      ],
      [
        { sources: [sky], slurm: { partiton: "cpu" } },
        'unknown key "slurm.partiton" (did you mean "slurm.partition"?)',
      ],
      [
        { sources: [sky], slurm: { stages: { clustr: { memPerCpu: "64G" } } } },
        'unknown key "slurm.stages.clustr" (did you mean "slurm.stages.cluster"?)',
      ],
      [
        { sources: [sky], slurm: { stages: { cluster: { mem: "64G" } } } },
        'unknown key "slurm.stages.cluster.mem"; "slurm.stages.cluster" takes: partition, time, cpusPerTask, memPerCpu',
      ],
      [
        { sources: [sky], maxFiles: 3 },
        'unknown key "maxFiles"; known keys are: output, workDir, sources,',
      ],
    ];
    for (const [user, message] of cases) expect(errorOf(user)).toContain(message);
  });

  it("lists the keys an object takes when nothing is close", () => {
    expect(errorOf({ sources: [sky], dedup: { frobnicate: 1 } })).toBe(
      'prepare.json: unknown key "dedup.frobnicate"; "dedup" takes: enabled, minhash, minWords',
    );
  });
});

describe("values", () => {
  it("enums, integers and types are checked with the key's path", () => {
    const cases: [unknown, string][] = [
      [
        { sources: [sky], dedup: { minhash: { scheme: "perm" } } },
        'dedup.minhash.scheme must be one of "oph", "permutations", got "perm"',
      ],
      [
        { sources: [sky], tokenizer: "gpt2" },
        'tokenizer must be one of "llama2", "bytes", got "gpt2"',
      ],
      [
        { sources: [{ ...sky, maxFiles: 1.5 }] },
        "sources[0].maxFiles must be a positive integer, got 1.5",
      ],
      [
        { sources: [{ ...sky, maxFiles: "10" }] },
        'sources[0].maxFiles must be a positive integer, got "10"',
      ],
      [
        { sources: [{ ...sky, maxFiles: 0 }] },
        "sources[0].maxFiles must be a positive integer, got 0",
      ],
      [
        { sources: [sky], dedup: { minhash: { bands: "12" } } },
        "dedup.minhash.bands must be a positive integer",
      ],
      [
        { sources: [sky], dedup: { minWords: -1 } },
        "dedup.minWords must be an integer >= 0, got -1",
      ],
      [{ sources: [sky], filesPerTask: 0 }, "filesPerTask must be a positive integer, got 0"],
      [
        { sources: [sky], slurm: { cpusPerTask: 2.5 } },
        "slurm.cpusPerTask must be a positive integer",
      ],
      [
        { sources: [sky], slurm: { extra: "--qos=high" } },
        "slurm.extra must be an array of strings",
      ],
      [{ sources: [sky], strict: "yes" }, 'strict must be true or false, got "yes"'],
      [
        { sources: [sky], validationFraction: 1 },
        "validationFraction must be a number in [0, 1), got 1",
      ],
      [
        { sources: [{ ...sky, subsets: "all" }] },
        'sources[0].subsets must be an array of strings, got "all"',
      ],
      [{ sources: [{ ...sky, hub: "main" }] }, 'sources[0].hub must be an object, got "main"'],
      [{ sources: { name: "skypile" } }, "sources must be an array"],
      [{ sources: [{ local: "x" }] }, "sources[0].name is missing"],
      [[], "a config must be a JSON object, got an array"],
    ];
    for (const [user, message] of cases) expect(errorOf(user)).toContain(message);
  });
});

describe("configs that must keep loading", () => {
  it("the bundled sample's, and a resolved config passed through again (the CLI's overrides)", () => {
    const once = resolveConfig(sampleConfig(join(dir, "data")), dir);
    expect(resolveConfig({ ...once, tokenizer: "bytes" }, dir).tokenizer).toBe("bytes");
  });

  it("the README's example", async () => {
    const readme = await readFile(
      fileURLToPath(new URL("../../README.md", import.meta.url)),
      "utf8",
    );
    const block = /### Config file\s+```jsonc\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const c = resolveConfig(JSON.parse(stripJsonComments(block as string)), "/cfg");
    expect(c.sources.map((s) => s.name)).toEqual([
      "slimpajama",
      "starcoder",
      "proof-pile-2",
      "skypile",
    ]);
    expect(c.dedup.minhash).toMatchObject({ bands: 12, rows: 16, scheme: "oph" });
    expect(c.slurm?.maxArraySize).toBe(1000);
    // per-stage sbatch resources
    expect(c.slurm?.stages?.cluster).toEqual({ memPerCpu: "64G", time: "12:00:00" });
  });

  it("the shapes tools/bench/data writes (bench.mjs, task-scale.mjs, steady.mjs)", () => {
    const sources = [{ name: "slimpajama", local: "c/slimpajama", subsets: ["train"] }];
    resolveConfig({ output: "o", sources, filesPerTask: 1, validationFraction: 0.001 }, dir);
    resolveConfig({ output: "o", sources, tokenizer: "bytes" }, dir);
    resolveConfig({ output: "o", sources, dedup: { enabled: false } }, dir);
  });
});

describe("paths", () => {
  it("resolve against the config file's folder: output, workDir, local and hub.cacheDir", async () => {
    const sub = join(dir, "conf");
    await mkdir(sub, { recursive: true });
    const file = join(sub, "prepare.json");
    await writeFile(
      file,
      JSON.stringify({
        output: "out",
        workDir: "work",
        sources: [
          { name: "skypile", hub: {} },
          { name: "starcoder", local: "../sc" },
        ],
        hub: { cacheDir: "hf-cache" },
      }),
    );
    const c = await loadConfigFile(file);
    expect(c.output).toBe(join(sub, "out"));
    expect(c.workDir).toBe(join(sub, "work"));
    expect(c.sources[1]?.local).toBe(join(dir, "sc"));
    expect(c.hub?.cacheDir).toBe(join(sub, "hf-cache"));
    // absolute ones are kept
    const abs = resolveConfig({ sources: [sky], hub: { cacheDir: "/scratch/hf" } }, sub);
    expect(abs.hub?.cacheDir).toBe("/scratch/hf");
  });

  it("a config file with a bad key names the file", async () => {
    const file = join(dir, "typo.json");
    await writeFile(
      file,
      '{ "sources": [{ "name": "skypile", "local": "x" }], "validation_fraction": 0.1 }',
    );
    await expect(loadConfigFile(file)).rejects.toThrow(
      `${file}: unknown key "validation_fraction" (did you mean "validationFraction"?)`,
    );
  });
});
