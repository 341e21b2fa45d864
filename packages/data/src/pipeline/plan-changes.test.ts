// A rerun into the same output after something changed: the config, the source definition, the
// local input files, or the sources listed. Each is refused with what changed and what to do,
// and nothing of two runs is ever mixed in one output (no old manifest over new files).
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { compress } from "zstd-napi";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { skypile } from "../sources/index.js";
import { type PrepareConfig, resolveConfig, type UserConfig } from "./config.js";
import { loadOrMakePlan, StalePlanError } from "./plan.js";
import { runTask } from "./stages.js";
import { bytesTokenizer } from "./tokenizer.js";

const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
const roots: string[] = [];
let dir: string;

const docs = (tag: string, n: number) =>
  `${Array.from({ length: n }, (_, i) => JSON.stringify({ text: `${tag} document ${i}: ${"w".repeat(i % 7)} words ${i * 31} and more` })).join("\n")}\n`;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "plan-changes-"));
  roots.push(dir);
  await mkdir(join(dir, "sky", "data"), { recursive: true });
  await writeFile(join(dir, "sky", "data", "a_zh_head_0000.jsonl"), docs("a", 40));
  await writeFile(join(dir, "sky", "data", "b_zh_head_0000.jsonl"), docs("b", 40));
  await mkdir(join(dir, "pp", "arxiv", "train"), { recursive: true });
  await writeFile(
    join(dir, "pp", "arxiv", "train", "x.jsonl.zst"),
    compress(Buffer.from(docs("p", 40))),
  );
});
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

function config(extra: UserConfig = {}, withProofPile = false): PrepareConfig {
  return resolveConfig(
    {
      output: "out",
      tokenizer: "bytes",
      filesPerTask: 1,
      validationFraction: 0.1,
      sources: [
        { name: "skypile", local: "sky" },
        ...(withProofPile ? [{ name: "proof-pile-2", local: "pp" }] : []),
      ],
      ...extra,
    },
    dir,
  );
}

async function run(cfg: PrepareConfig) {
  const { plan } = await loadOrMakePlan(cfg);
  await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
  return plan;
}

describe("a rerun after a change", () => {
  it("names the settings that changed", async () => {
    await run(config());
    const changed = config({
      validationFraction: 0.2,
      filesPerTask: 2,
      dedup: { minhash: { bands: 9, rows: 13 }, minWords: 3 },
    });
    const err = await loadOrMakePlan(changed).catch((e: Error) => e);
    expect(err).toBeInstanceOf(StalePlanError);
    expect((err as Error).message).toMatch(/another config \(dedup\.minhash\.bands: 12 -> 9, /);
    for (const part of [
      "dedup.minhash.rows: 16 -> 13",
      "dedup.minWords: 5 -> 3",
      "validationFraction: 0.1 -> 0.2",
      "filesPerTask: 1 -> 2",
    ])
      expect((err as Error).message).toContain(part);
    await expect(loadOrMakePlan(config({}, true))).rejects.toThrow(
      /another config \(sources: added proof-pile-2\)/,
    );
  });

  it("refuses a resumed run whose local input files were added, resized or modified", async () => {
    const cfg = config();
    const a = join(dir, "sky", "data", "a_zh_head_0000.jsonl");
    const planned = 1_700_000_000; // whole seconds: restored exactly below
    await utimes(a, planned, planned);
    await run(cfg);
    const added = join(dir, "sky", "data", "c_zh_head_0000.jsonl");
    await writeFile(added, docs("c", 5));
    await expect(loadOrMakePlan(cfg)).rejects.toThrow(
      /local input files changed .*source skypile \(.*\): 1 added: data\/c_zh_head_0000\.jsonl/,
    );
    await rm(added);
    await appendFile(a, docs("late", 3));
    await expect(loadOrMakePlan(cfg)).rejects.toThrow(
      /1 changed: data\/a_zh_head_0000\.jsonl \(\d+ -> \d+ bytes\)/,
    );
    await writeFile(a, docs("A", 40)); // same size, other text
    await expect(loadOrMakePlan(cfg)).rejects.toThrow(/a_zh_head_0000\.jsonl \(modified\)/);
    await writeFile(a, docs("a", 40)); // the planned text, and its time: resumed again
    await utimes(a, planned, planned);
    expect((await loadOrMakePlan(cfg)).resumed).toBe(true);
  });

  it("a task refuses a local file that changed since the plan (a resumed, killed run)", async () => {
    const { plan } = await loadOrMakePlan(config());
    await appendFile(join(dir, "sky", "data", "b_zh_head_0000.jsonl"), docs("late", 3));
    await expect(runTask(plan, "signatures", 1, undefined, bytesTokenizer())).rejects.toThrow(
      /skypile\/data\/b_zh_head_0000\.jsonl changed since the run was planned \(now \d+ bytes, planned \d+/,
    );
  });

  it("refuses a plan made with another source definition", async () => {
    const cfg = config();
    await run(cfg);
    const saved = skypile.meta;
    skypile.meta = () => ({ changed: true });
    try {
      await expect(loadOrMakePlan(cfg)).rejects.toThrow(
        /made with another definition of source skypile/,
      );
    } finally {
      skypile.meta = saved;
    }
    expect((await loadOrMakePlan(cfg)).resumed).toBe(true);
  });

  it("a new plan retires the old manifests and refuses directories of dropped sources", async () => {
    await run(config({}, true));
    const out = join(dir, "out");
    expect(existsSync(join(out, "skypile", "manifest.json"))).toBe(true);
    const next = config({ validationFraction: 0.3 });
    await expect(loadOrMakePlan(next)).rejects.toThrow(/and .*out\/proof-pile-2, whose source/);
    await rm(join(out, ".work"), { recursive: true });
    await expect(loadOrMakePlan(next)).rejects.toThrow(
      /out\/proof-pile-2 holds the shards of an earlier run .*: remove it/,
    );
    await rm(join(out, "proof-pile-2"), { recursive: true });
    const { plan } = await loadOrMakePlan(next);
    // until finalize writes the new manifest, none: the old one listed files pack rewrites
    expect(existsSync(join(out, "skypile", "manifest.json"))).toBe(false);
    await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
    expect(existsSync(join(out, "skypile", "manifest.json"))).toBe(true);
  });
});
