// End-to-end pipeline on the bundled sample, in this process, with the bytes tokenizer (ids are
// UTF-8 bytes + 3, so blocks can be decoded back to text and checked).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempSuffix } from "../dedup/files.js";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { ShardSet } from "../shards/shard-set.js";
import { type PrepareConfig, resolveConfig, sampleConfig } from "./config.js";
import { loadOrMakePlan, readPlan, StalePlanError } from "./plan.js";
import { summarize } from "./summary.js";
import { bytesTokenizer } from "./tokenizer.js";

let out: string;
let config: PrepareConfig;
const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
const sources = ["slimpajama", "starcoder", "proof-pile-2", "skypile"];

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), "pipeline-"));
  config = resolveConfig({ ...sampleConfig(join(out, "data")), tokenizer: "bytes" }, out);
  const { plan } = await loadOrMakePlan(config);
  await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
  await summarize(plan, 0);
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe("prepare on the bundled sample", () => {
  it("writes a readable train and validation split per source", async () => {
    for (const s of sources) {
      const train = await ShardSet.open(join(out, "data", s), {
        tokenizer: bytesTokenizer().identity,
      });
      const val = await ShardSet.open(join(out, "data", s), { split: "validation" });
      expect(train.numBlocks, s).toBeGreaterThan(50);
      expect(val.numBlocks, s).toBeGreaterThanOrEqual(1);
      await train.verifyChecksums();
      train.close();
      val.close();
    }
  });

  it("accounts for every document: read = kept + removed, kept = train + validation docs", async () => {
    for (const s of sources) {
      const set = await ShardSet.open(join(out, "data", s));
      const m = set.manifest;
      const removed = Object.values(m.stats.removed).reduce((a, b) => a + b, 0);
      expect(m.stats.documentsRead).toBe(m.stats.documentsKept + removed);
      expect(m.stats.documentsKept).toBe(
        (m.splits.train?.documents ?? 0) + (m.splits.validation?.documents ?? 0),
      );
      expect(m.stats.badRecords).toBe(0);
    }
  });

  it("drops SlimPajama's RedPajamaGithub subset and removes the planted duplicates", async () => {
    const m = (await ShardSet.open(join(out, "data", "slimpajama"))).manifest;
    expect(m.stats.removed.RedPajamaGithub).toBe(12);
    // 17 exact copies and 17 near copies were planted (tools/sample/build-sample.mjs)
    expect(m.stats.removed["exact-duplicate"]).toBeGreaterThanOrEqual(17);
    expect(m.stats.removed["near-duplicate"]).toBeGreaterThanOrEqual(14);
    const sky = (await ShardSet.open(join(out, "data", "skypile"))).manifest;
    expect(
      (sky.stats.removed["exact-duplicate"] ?? 0) + (sky.stats.removed["near-duplicate"] ?? 0),
    ).toBeGreaterThanOrEqual(27);
  });

  it("blocks hold documents + EOS, no BOS, no padding", async () => {
    const set = await ShardSet.open(join(out, "data", "skypile"));
    const tokens: number[] = [];
    for (let g = 0; g < Math.min(set.numBlocks, 20); g++) tokens.push(...set.readGlobalBlock(g));
    expect(tokens.includes(1)).toBe(false); // BOS never appears
    expect(tokens.includes(0)).toBe(false); // nor any padding id
    const text = Buffer.from(tokens.map((t) => (t === 2 ? 0x1e : t - 3))).toString("utf8");
    const docs = text.split("\x1e");
    expect(docs.length).toBeGreaterThan(3);
    expect(docs[0]).toMatch(/[\u4e00-\u9fff]/); // Chinese text survived tokenize -> pack -> read
    expect(set.manifest.splits.train?.droppedTailTokens).toBeLessThan(set.blockSize);
  });

  it("a rerun finds every task done and changes nothing", async () => {
    const before = (await ShardSet.open(join(out, "data", "proof-pile-2"))).manifest;
    const { plan, resumed } = await loadOrMakePlan(config);
    expect(resumed).toBe(true);
    const reports = await runLocal(plan, {
      inProcess: true,
      tokenizer: bytesTokenizer(),
      printer: quiet,
    });
    expect(reports.every((r) => r.ran === 0)).toBe(true);
    const after = (await ShardSet.open(join(out, "data", "proof-pile-2"))).manifest;
    expect(after.splits).toEqual(before.splits);
  });

  it("resumes a local run whose plan.json predates the plan's `sources` record", async () => {
    const { plan } = await loadOrMakePlan(config);
    const path = join(plan.workDir, "plan.json");
    const text = await readFile(path, "utf8");
    const { sources: _dropped, ...older } = JSON.parse(text) as Record<string, unknown>;
    await writeFile(path, JSON.stringify(older));
    try {
      const resumed = await loadOrMakePlan(config);
      expect(resumed.resumed).toBe(true);
      expect(resumed.plan.sources.map((s) => s.name)).toEqual(config.sources.map((s) => s.name));
      expect((await readPlan(path)).sources).toHaveLength(config.sources.length);
      const reports = await runLocal(resumed.plan, {
        inProcess: true,
        tokenizer: bytesTokenizer(),
        printer: quiet,
      });
      expect(reports.every((r) => r.ran === 0)).toBe(true);
    } finally {
      await writeFile(path, text);
    }
  });

  it("a rerun of finalize removes temp files that killed writers left in the output", async () => {
    const dir = join(out, "data", "proof-pile-2");
    const before = (await ShardSet.open(dir)).manifest;
    const planted = join(dir, `${before.splits.train!.files[0]!.name}.tmp-424242`);
    await writeFile(planted, "half a shard");
    const { plan } = await loadOrMakePlan(config);
    await rm(join(plan.workDir, "done", "finalize"), { recursive: true, force: true });
    await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
    expect(existsSync(planted)).toBe(false);
    expect((await readdir(dir)).filter((n) => n.includes(".tmp-"))).toEqual([]);
    const after = (await ShardSet.open(dir)).manifest;
    expect(after.splits).toEqual(before.splits);
  });

  it("a rerun after kill -9 deletes the killed tasks' temp files, and gives the same shards", async () => {
    // what kill -9 mid-write leaves: temps named by a writer pid that is gone (a partial
    // token spool is as large as the task's tokens), one from another host (a task that may
    // still run there after a Slurm requeue: only finalize, once all is done, deletes it) and
    // one of a live process on this host (never deleted by a task start)
    const dead = spawnSync(process.execPath, ["-e", ""]).pid as number;
    const live = spawn("sleep", ["30"]);
    const mine = tempSuffix();
    const of = (pid: number) => mine.replace(/-\d+@/, `-${pid}@`);
    const cfg = resolveConfig({ ...sampleConfig(join(out, "temps")), tokenizer: "bytes" }, out);
    const { plan } = await loadOrMakePlan(cfg);
    const w = plan.workDir;
    const src1 = plan.tasks[1]?.source as string;
    const planted = {
      [join(w, "tokens", `task-00000.bin${of(dead)}`)]: 0,
      [join(w, "tokens", `task-00000.idx${of(dead)}`)]: 0,
      [join(w, "stats", "signatures", `0.json.tmp-${dead}`)]: 0, // an older version's name
      [join(w, "done", "signatures", `0${of(dead)}`)]: 0,
      [join(w, "pack", `task-00001.json${of(dead)}`)]: 1,
      [join(cfg.output, src1, `train_${src1}_t00001_0000000000.bin${of(dead)}`)]: 1,
      [join(w, "tokens", `task-00002.bin.tmp-${dead}@another-node`)]: 2,
      [join(w, "tokens", `task-00002.idx${of(live.pid as number)}`)]: 2,
    };
    try {
      for (const path of Object.keys(planted)) {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, Buffer.alloc(1 << 16, 7));
      }
      await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
    } finally {
      live.kill();
    }
    for (const path of Object.keys(planted)) expect(existsSync(path), path).toBe(false);
    const stats = async (stage: string, rank: number) =>
      JSON.parse(await readFile(join(w, "stats", stage, `${rank}.json`), "utf8")).extra;
    // task starts removed what a dead writer on this host left; finalize the rest
    expect((await stats("signatures", 0)).staleTempFilesRemoved).toBe(4);
    expect((await stats("pack", 1)).staleTempFilesRemoved).toBe(2);
    expect((await stats("signatures", 2)).staleTempFilesRemoved).toBeUndefined();
    const fin = cfg.sources.findIndex((s) => s.name === plan.tasks[2]?.source);
    expect((await stats("finalize", fin)).staleWorkTempFiles).toBe(2);
    // and the shards are those of the run without leftovers
    for (const s of sources) {
      const names = (await readdir(join(out, "data", s))).filter((n) => n.endsWith(".bin"));
      expect((await readdir(join(cfg.output, s))).filter((n) => n.endsWith(".bin"))).toEqual(names);
      for (const n of names)
        expect(await readFile(join(cfg.output, s, n))).toEqual(
          await readFile(join(out, "data", s, n)),
        );
    }
    // a whole run of the sample: 26 s alone on the 2-core dev VM, over 60 s beside the other
    // packages' suites (turbo runs them in parallel)
  }, 240_000);

  it("refuses a plan made for another config", async () => {
    await expect(loadOrMakePlan({ ...config, validationFraction: 0.5 })).rejects.toThrow(
      /another config/,
    );
  });

  it("refuses to resume a plan of an earlier format, whose signatures differ", async () => {
    const { plan } = await loadOrMakePlan(config);
    const path = join(plan.workDir, "plan.json");
    const text = await readFile(path, "utf8");
    await writeFile(path, JSON.stringify({ ...JSON.parse(text), version: 1 }));
    try {
      await expect(loadOrMakePlan(config)).rejects.toThrow(
        /another version of @tinyllama\/data \(plan version 1, this one writes 2\)/,
      );
      // and a task (a queued Slurm array element) refuses to run it
      await expect(readPlan(path)).rejects.toThrow(StalePlanError);
      await expect(readPlan(path)).rejects.toThrow(/plan version 1, this one runs 2/);
    } finally {
      await writeFile(path, text);
    }
  });

  it("starts over from a stale plan only when asked (the sample's default output)", async () => {
    const other = { ...config, output: join(out, "restart"), validationFraction: 0.5 };
    const first = await loadOrMakePlan(other);
    const marker = join(first.plan.workDir, "done-marker-of-the-old-run");
    await writeFile(marker, "");
    const changed = { ...other, validationFraction: 0.25 };
    await expect(loadOrMakePlan(changed)).rejects.toThrow(StalePlanError);
    expect(existsSync(marker)).toBe(true); // refusing removes nothing
    const again = await loadOrMakePlan(changed, undefined, { restartStale: true });
    expect(again.restarted).toMatch(
      /belongs to a run with another config \(validationFraction: 0.5 -> 0.25\)$/,
    );
    expect(again.resumed).toBe(false);
    expect(existsSync(marker)).toBe(false);
    expect((await loadOrMakePlan(changed)).resumed).toBe(true);
  });
});

describe("config files", () => {
  it("accept comments (JSONC) but not in strings", async () => {
    const { stripJsonComments } = await import("./config.js");
    const text = '{\n  // a comment\n  "output": "a//b", /* block */ "x": "/* kept */"\n}';
    expect(JSON.parse(stripJsonComments(text))).toEqual({ output: "a//b", x: "/* kept */" });
  });
});

describe("config errors", () => {
  it("names the problem", () => {
    expect(() => resolveConfig({ sources: [] }, "/")).toThrow(/sources must be a non-empty array/);
    expect(() => resolveConfig({ sources: [{ name: "nope", local: "x" }] }, "/")).toThrow(
      /unknown source "nope"/,
    );
    expect(() => resolveConfig({ sources: [{ name: "skypile" }] }, "/")).toThrow(
      /exactly one of "local" or "hub"/,
    );
    expect(() =>
      resolveConfig({ sources: [{ name: "starcoder", local: "x", subsets: ["klingon"] }] }, "/"),
    ).toThrow(/unknown subset "klingon"/);
    expect(() =>
      resolveConfig({ sources: [{ name: "skypile", local: "x" }], chunkTokens: 100 }, "/"),
    ).toThrow(/multiple of blockSize/);
  });
});
