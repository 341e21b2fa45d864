/**
 * End-to-end training on CPU through the `pnpm train` command path, on the bundled sample's
 * shards (made in process by @tinyllama/data's pipeline) with the tinyllama-test model (32000 vocabulary, 1 layer): the loss falls,
 * an interrupted run resumes to the identical result, stages chain, and bad inputs fail clearly.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TokenizerIdentity } from "@tinyllama/data";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveWeightsDir } from "../checkpoint/hf.js";
import { readSafetensorsHeader, readTensorF32 } from "../checkpoint/safetensors.js";
import { checkpointTestHooks } from "../checkpoint/store.js";
import { readTrainerState, verifyCheckpoint } from "../checkpoint/trainer-checkpoint.js";
import { trainCommand } from "../cli/train-command.js";
import { readMetrics, type TrainRecord } from "../metrics/metrics.js";
import { modelConfig } from "../model/config.js";
import { LlamaModel } from "../model/llama.js";
import { llama2Identity, prepareBundledSample, writeTestShards } from "../test-util/shards.js";
import { assertFitsDevice, explainOutOfMemory } from "./errors.js";
import { mathCodeStarcoderNote, type RunResult } from "./run.js";

let root: string;
let data: string;
let tok: TokenizerIdentity;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "trainer-e2e-"));
  data = join(root, "data");
  tok = await llama2Identity();
  await prepareBundledSample(data);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A tiny CPU run: tinyllama-test, 2 sequences of 64 tokens per step, no saves or evals between. */
function tinyRunArgs(out: string, scale: number, evalBatches: number): string[] {
  return [
    "--device",
    "cpu",
    "--model",
    "tinyllama-test",
    "--data",
    data,
    "--out",
    out,
    "--seq-len",
    "64",
    "--micro-batch",
    "2",
    "--global-batch",
    "2",
    "--scale",
    String(scale),
    "--eval-batches",
    String(evalBatches),
    "--eval-every",
    "0",
    "--save-every",
    "0",
  ];
}

/** 128 tokens per step: 2 sequences of 64. v1.0 at scale s trains 3e12 * s tokens. */
function args(out: string, steps: number, extra: string[] = []): string[] {
  return [...tinyRunArgs(out, (steps * 128) / 3e12, 2), ...extra];
}

async function train(argv: string[], onLog?: (line: string) => void): Promise<RunResult> {
  const lines: string[] = [];
  const r = await trainCommand(argv, {
    log: (l) => {
      lines.push(l);
      onLog?.(l);
    },
    handleSignals: true,
  });
  if (!r) throw new Error("no result");
  return r;
}

function trainLosses(stageDir: string): number[] {
  return readMetrics(join(stageDir, "metrics.jsonl"))
    .filter((r): r is TrainRecord => r.kind === "train")
    .map((r) => r.loss);
}

function weights(checkpoint: string): Float32Array[] {
  const path = join(checkpoint, "model.safetensors");
  const h = readSafetensorsHeader(path);
  return [...h.tensors.keys()].map((n) => readTensorF32(path, h, n));
}

describe("training on CPU", () => {
  it("the loss falls on the bundled sample and the run leaves checkpoint, metrics and plot", async () => {
    const out = join(root, "falls");
    // 30 steps of 4 x 64 tokens (args() counts budgets in 128-token steps).
    const r = await train(
      args(out, 60, ["--lr-max", "1e-2", "--lr-min", "1e-4"]).map((x, i, all) =>
        all[i - 1] === "--micro-batch" || all[i - 1] === "--global-batch" ? "4" : x,
      ),
    );
    expect(r.complete).toBe(true);
    expect(r.steps).toBe(30);
    expect(r.lastLoss!).toBeLessThan(r.firstLoss! - 1.5);
    const metrics = readMetrics(r.metrics);
    const val = metrics.filter((m) => m.kind === "val");
    expect(val.length).toBe(2); // before the first step and at the end
    expect((val[1] as { valLoss: number }).valLoss).toBeLessThan(
      (val[0] as { valLoss: number }).valLoss - 1.5,
    );
    const train0 = metrics.find((m) => m.kind === "train") as TrainRecord;
    for (const k of [
      "step",
      "tokens",
      "loss",
      "lr",
      "gradNorm",
      "tokensPerSec",
      "memoryBytes",
    ] as const) {
      expect(typeof train0[k]).toBe("number");
    }
    expect(existsSync(r.plot!)).toBe(true);
    expect(readFileSync(r.plot!, "utf8")).toMatch(/^<svg[\s\S]*polyline[\s\S]*<\/svg>\n$/);
    for (const f of [
      "model.safetensors",
      "config.json",
      "optimizer.safetensors",
      "trainer-state.json",
    ]) {
      expect(existsSync(join(r.checkpoint!, f))).toBe(true);
    }
    const state = readTrainerState(r.checkpoint!);
    expect(state.step).toBe(30);
    expect(state.tokensSeen).toBe(30 * 256);
    // The Llama 2 tokenizer the shards were made with travels with the weights, for
    // transformers' AutoTokenizer and for eval/generate pointed at the checkpoint.
    const fromCheckpoint = await LlamaTokenizer.load(r.checkpoint!);
    const bundled = await LlamaTokenizer.load();
    const text = "The llama (Lama glama) is a domesticated South American camelid. 東京 42";
    expect(Array.from(fromCheckpoint.encode(text, { bos: true }))).toEqual(
      Array.from(bundled.encode(text, { bos: true })),
    );
    expect(
      JSON.parse(readFileSync(join(r.checkpoint!, "tokenizer_config.json"), "utf8")),
    ).toMatchObject({ bos_token: "<s>", eos_token: "</s>", model_max_length: 2048 });

    // The checkpoint loads as a LlamaModel for scoring; scores agree with raw logits and do
    // not depend on what else is in the batch.
    const model = await LlamaModel.load(out + "/v1.0", { device: "cpu" });
    const seq = [1000, 1017, 1119, 1000 + 17 * 8, 2, 1000];
    const longer = Array.from({ length: 40 }, (_, i) => 1000 + ((i * 17) % 5000));
    const [alone] = model.scoreSequences([seq]);
    const [, together] = model.scoreSequences([longer, seq]);
    const [padded] = model.scoreSequences([seq], { padMultiple: 64 });
    const logits = model.logits(Int32Array.from(seq.slice(0, -1)), 1, seq.length - 1);
    const V = model.config.vocabSize;
    for (let t = 0; t < seq.length - 1; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = Math.max(...row);
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      expect(alone!.logProbs[t]).toBeCloseTo(row[seq[t + 1]!]! - max - Math.log(z), 4);
      expect(together!.logProbs[t]).toBeCloseTo(alone!.logProbs[t]!, 4);
      expect(together!.greedy[t]).toBe(alone!.greedy[t]);
      expect(padded!.logProbs[t]).toBeCloseTo(alone!.logProbs[t]!, 4);
    }
    expect(() => model.scoreSequences([seq], { padMultiple: 0 })).toThrow(/padMultiple/);
    expect(() => model.scoreSequences([[5]])).toThrow(/at least 2/);
    expect(() => model.scoreSequences([[5, 40000]])).toThrow(/outside the vocabulary/);
    model.dispose();
    const bf16 = await LlamaModel.load(resolveWeightsDir(out), {
      device: "cpu",
      computeDtype: "bf16",
    });
    expect(bf16.paramDtype).toBe("bf16");
    const [b] = bf16.scoreSequences([seq]);
    for (let t = 0; t < seq.length - 1; t++)
      expect(Math.abs(b!.logProbs[t]! - alone!.logProbs[t]!)).toBeLessThan(0.1);
    bf16.dispose();
    // The tokenizer files are checked like the weights: an edited one is reported.
    const config = join(r.checkpoint!, "tokenizer_config.json");
    writeFileSync(config, readFileSync(config, "utf8").replace('"</s>"', '"<pad>"'));
    expect(verifyCheckpoint(r.checkpoint!).problem).toMatch(
      /tokenizer_config\.json has \d+ bytes, \d+ when it was saved/,
    );
  });

  it("SIGINT checkpoints and stops; --max-steps stops; resuming continues bit-identically", async () => {
    const straight = await train(args(join(root, "straight"), 10));
    const out = join(root, "interrupted");
    // SIGINT during the first step's progress line: the step finishes, a checkpoint is written.
    let sent = false;
    const first = await train(args(out, 10), (l) => {
      if (!sent && /step 1 \|/.test(l)) {
        sent = true;
        process.emit("SIGINT", "SIGINT");
      }
    });
    expect(first.interrupted).toBe("SIGINT");
    expect(first.steps).toBe(1);
    expect(readTrainerState(first.checkpoint!).step).toBe(1);
    const second = await train(args(out, 10, ["--max-steps", "4"]));
    expect(second.steps).toBe(4);
    expect(second.complete).toBe(false);
    const third = await train(args(out, 10));
    expect(third.steps).toBe(5);
    expect(third.complete).toBe(true);
    expect(trainLosses(third.stageDir)).toEqual(trainLosses(straight.stageDir));
    const a = weights(straight.checkpoint!);
    const b = weights(third.checkpoint!);
    for (let i = 0; i < a.length; i++)
      expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(a[i]!.buffer))).toBe(true);
    // Running a complete stage again does nothing.
    const again = await train(args(out, 10));
    expect(again.steps).toBe(0);
  });

  it("--recompute layers trains the same bits with a smaller activation plan", async () => {
    // tinyllama-4m has two layers: backward rebuilds layer 0 from its input
    const run = (name: string, extra: string[], onLog?: (l: string) => void) =>
      train(
        args(join(root, name), 4, extra).map((x, i, all) =>
          all[i - 1] === "--model" ? "tinyllama-4m" : x,
        ),
        onLog,
      );
    const kept = await run("kept", []);
    let said = false;
    const rebuilt = await run("rebuilt", ["--recompute", "layers"], (l) => {
      if (/layer activations recomputed in backward/.test(l)) said = true;
    });
    expect(said).toBe(true);
    expect(trainLosses(rebuilt.stageDir)).toEqual(trainLosses(kept.stageDir));
    const a = weights(kept.checkpoint!);
    const b = weights(rebuilt.checkpoint!);
    for (let i = 0; i < a.length; i++)
      expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(a[i]!.buffer))).toBe(true);
    const memory = (r: RunResult) =>
      (readMetrics(r.metrics).find((m) => m.kind === "train") as TrainRecord).memoryBytes;
    expect(memory(rebuilt)).toBeLessThan(memory(kept));
    await expect(train(["--recompute", "all"])).rejects.toThrow(
      /--recompute must be one of off, layers/,
    );
  });

  it("after a crash, resumes from the newest undamaged checkpoint and rewrites the lost metrics", async () => {
    const straight = await train(args(join(root, "crash-straight"), 8));
    const out = join(root, "crash");
    const first = await train(
      args(out, 8, ["--max-steps", "5", "--keep", "5"]).map((x, i, all) =>
        all[i - 1] === "--save-every" ? "2" : x,
      ),
    );
    expect(first.steps).toBe(5);
    const ckpts = join(out, "v1.0", "checkpoints");
    // The crash: step 5's checkpoint never made it, step 4's optimizer file is truncated.
    rmSync(join(ckpts, "step-000000000005"), { recursive: true });
    const opt = join(ckpts, "step-000000000004", "optimizer.safetensors");
    writeFileSync(opt, readFileSync(opt).subarray(0, 1000));
    const lines: string[] = [];
    const resumed = await train(args(out, 8), (l) => lines.push(l));
    expect(lines.some((l) => /skipping damaged checkpoint .*step-000000000004/.test(l))).toBe(true);
    expect(lines.some((l) => /resuming v1.0 from .*step-000000000002 at step 2/.test(l))).toBe(
      true,
    );
    expect(resumed.steps).toBe(6);
    expect(trainLosses(resumed.stageDir)).toEqual(trainLosses(straight.stageDir));
  });

  it("a crash before the stage's first checkpoint leaves each step once in metrics.jsonl", async () => {
    const out = join(root, "crash-early");
    await train(args(out, 6, ["--max-steps", "3"]));
    // The crash (SIGKILL before the first save): the metrics of 3 steps, no checkpoint.
    rmSync(join(out, "v1.0", "checkpoints"), { recursive: true });
    const r = await train(args(out, 6));
    const records = readMetrics(r.metrics);
    expect(records.filter((m) => m.kind === "train").map((m) => m.step)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    expect(records.filter((m) => m.kind === "val").map((m) => m.step)).toEqual([0, 6]);
  });

  it("--from a checkpoint of the same stage into a new --out goes on with that stage", async () => {
    const straight = await train(args(join(root, "branch-straight"), 6));
    const first = await train(args(join(root, "branch-src"), 6, ["--max-steps", "2"]));
    const lines: string[] = [];
    const branch = await train(args(join(root, "branch"), 6, ["--from", first.checkpoint!]), (l) =>
      lines.push(l),
    );
    expect(lines.some((l) => /continuing v1.0 from .*step-000000000002 .* at step 2/.test(l))).toBe(
      true,
    );
    // The remaining 4 steps of the budget, on the same data, to the same weights.
    expect(branch.steps).toBe(4);
    expect(branch.complete).toBe(true);
    expect(trainLosses(branch.stageDir)).toEqual(trainLosses(straight.stageDir).slice(2));
    const a = weights(straight.checkpoint!);
    const b = weights(branch.checkpoint!);
    for (let i = 0; i < a.length; i++)
      expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(a[i]!.buffer))).toBe(true);
    await expect(
      train(args(join(root, "branch-again"), 6, ["--from", branch.checkpoint!])),
    ).rejects.toThrow(/is the end of stage v1.0: nothing of it is left to train/);
  });

  it("a resumed stage keeps its lr schedule: other --lr-max/--lr-min are refused unless --lr-override", async () => {
    const lr = ["--lr-max", "1e-2", "--lr-min", "1e-4"];
    const straight = await train(args(join(root, "lr-straight"), 6, lr));
    const out = join(root, "lr");
    await train(args(out, 6, [...lr, "--max-steps", "2"]));
    await expect(train(args(out, 6, ["--lr-max", "3e-3"]))).rejects.toThrow(
      /--lr-max 0.003 \(the checkpoint's: 0.01\) differs from the schedule .*step-000000000002 was trained with: the learning rate jumps from 7\.\d+e-3 to 2\.\d+e-3 at 256 tokens .*add --lr-override/,
    );
    // The flags left out: the checkpoint's schedule (not the CPU defaults), the straight run's lr.
    const lines: string[] = [];
    const resumed = await train(args(out, 6, ["--max-steps", "2"]), (l) => lines.push(l));
    expect(
      lines.some((l) => /continuing the schedule of .*--lr-max 0.01, --lr-min 0.0001/.test(l)),
    ).toBe(true);
    const lrs = (dir: string) =>
      readMetrics(join(dir, "metrics.jsonl"))
        .filter((r): r is TrainRecord => r.kind === "train")
        .map((r) => r.lr);
    expect(lrs(resumed.stageDir)).toEqual(lrs(straight.stageDir).slice(0, 4));
    // On purpose: the given value replaces the checkpoint's, and the jump is announced.
    const said: string[] = [];
    const changed = await train(args(out, 6, ["--lr-max", "3e-3", "--lr-override"]), (l) =>
      said.push(l),
    );
    expect(said.some((l) => /warning: --lr-override: --lr-max 0.003 .* jumps from/.test(l))).toBe(
      true,
    );
    expect(readTrainerState(changed.checkpoint!).schedule).toMatchObject({
      maxLr: 3e-3,
      minLr: 1e-4,
    });
    await expect(train(args(out, 6, ["--lr-override"]))).rejects.toThrow(
      /--lr-override goes with the --lr-max and\/or --lr-min/,
    );
  });

  it("a resume without --global-batch keeps the checkpoint's (also as the launcher checks it); another one is noted", async () => {
    // 4 sequences of 64 tokens per step (args() counts budgets in 128-token steps): 4 steps.
    const gb4 = (a: string[]) => a.map((x, i, all) => (all[i - 1] === "--global-batch" ? "4" : x));
    const noGb = (a: string[]) =>
      a.filter((x, i, all) => x !== "--global-batch" && all[i - 1] !== "--global-batch");
    const straight = await train(gb4(args(join(root, "gb-straight"), 8)));
    const out = join(root, "gb");
    await train(gb4(args(out, 8, ["--max-steps", "2"])));
    // Rerun on other hardware without the flag: the checkpoint's 4 sequences, not the CPU
    // default 8 (which would change the batch silently, and on 2 ranks be refused with a batch
    // that is not the run's).
    await expect(
      trainCommand(noGb(args(out, 8, ["--nproc-per-node", "2"])), { log: () => {} }),
    ).rejects.toThrow(/with 2 ranks each rank trains 2 of the 4 sequences per step/);
    const lines: string[] = [];
    const resumed = await train(noGb(args(out, 8)), (l) => lines.push(l));
    expect(
      lines.some((l) =>
        /note: continuing with the global batch of .*step-000000000002: 4 sequences per step \(--global-batch 4; the default is 8\)/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(resumed.steps).toBe(2);
    expect(readTrainerState(resumed.checkpoint!).globalBatchSequences).toBe(4);
    expect(trainLosses(resumed.stageDir)).toEqual(trainLosses(straight.stageDir));
    const a = weights(straight.checkpoint!);
    const b = weights(resumed.checkpoint!);
    for (let i = 0; i < a.length; i++)
      expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(a[i]!.buffer))).toBe(true);
    // A given batch that differs is used, and said.
    const other = join(root, "gb-other");
    await train(gb4(args(other, 8, ["--max-steps", "2"])));
    const said: string[] = [];
    const changed = await train(args(other, 8), (l) => said.push(l));
    expect(
      said.some((l) =>
        /note: --global-batch 2 changes the global batch of .*step-000000000002 from 4 to 2 sequences per step from step 2/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(readTrainerState(changed.checkpoint!).globalBatchSequences).toBe(2);
  });
  it("says why there is no validation, no profile, no MFU", async () => {
    const lines: string[] = [];
    const r = await train(
      [
        ...tinyRunArgs(join(root, "notes"), (4 * 128) / 3e12, 0),
        ...["--profile-step", "5", "--max-steps", "1", "--peak-tflops", "100"],
      ],
      (l) => lines.push(l),
    );
    expect(r.steps).toBe(1);
    const said = (re: RegExp) => lines.filter((l) => re.test(l)).length;
    expect(said(/validation off \(--eval-batches 0\)/)).toBe(1);
    expect(said(/no validation split/)).toBe(0);
    expect(
      said(
        /no profile written: --profile-step 5 but this invocation trained 1 step \(--max-steps 1\)/,
      ),
    ).toBe(1);
    expect(said(/--peak-tflops is ignored on CPU/)).toBe(1);
  });

  it("shards changed under a checkpoint: a resume is refused naming the source unless --data-changed; the next stage notes it", async () => {
    const onData = (argv: string[], d: string) =>
      argv.map((x, i, all) => (all[i - 1] === "--data" ? d : x));
    const d = join(root, "changing-data");
    cpSync(data, d, { recursive: true });
    const out = join(root, "data-changed");
    const first = await train(onData(args(out, 6, ["--max-steps", "2"]), d));
    expect(Object.keys(readTrainerState(first.checkpoint!).data ?? {}).sort()).toEqual([
      "slimpajama",
      "starcoder",
    ]);
    // The same shards written again (another manifest time, the same files): resumes.
    const same = join(root, "same-data");
    cpSync(d, same, { recursive: true });
    const m = JSON.parse(readFileSync(join(same, "slimpajama", "manifest.json"), "utf8"));
    writeFileSync(
      join(same, "slimpajama", "manifest.json"),
      JSON.stringify({ ...m, createdAt: "2030-01-01T00:00:00.000Z" }),
    );
    const sameOut = join(root, "data-same");
    cpSync(out, sameOut, { recursive: true });
    expect((await train(onData(args(sameOut, 6, ["--max-steps", "1"]), same))).steps).toBe(1);
    // slimpajama re-prepared (here: other shards, another block count): refused, naming it.
    rmSync(join(d, "slimpajama"), { recursive: true });
    await writeTestShards(d, [{ name: "slimpajama", trainBlocks: 40, tokenizer: tok }]);
    await expect(train(onData(args(out, 6), d))).rejects.toThrow(
      /the shards under .*changing-data differ from those .*step-000000000002 was trained on:\n {2}"slimpajama": \d+ files, 132 blocks, prepared .* -> 5 files, 40 blocks, prepared 1970-01-01T00:00:00.000Z\n.*Put back the shards .*--data-changed/s,
    );
    const lines: string[] = [];
    const resumed = await train(onData(args(out, 6, ["--data-changed"]), d), (l) => lines.push(l));
    expect(resumed.steps).toBe(4);
    expect(
      lines.some((l) =>
        /^warning: .*\n {2}"slimpajama": .*--data-changed: continuing v1.0/s.test(l),
      ),
    ).toBe(true);
    expect(lines.join("\n")).not.toMatch(/"starcoder":/);
    // A stage that starts from another stage may use new shards: noted, not refused.
    const chain = join(root, "data-changed-chain");
    const s = 1280 / 1.5e12;
    await train([...onData(tinyRunArgs(chain, s, 1), data), "--stage", "basic"]);
    const said: string[] = [];
    const next = await train(
      [...onData(tinyRunArgs(chain, s, 1), d), "--stage", "continual", "--max-steps", "1"],
      (l) => said.push(l),
    );
    expect(next.steps).toBe(1);
    expect(
      said.some((l) => /^note: shards changed since stage basic, .*\n {2}"slimpajama": /s.test(l)),
    ).toBe(true);
  });

  it("chains basic -> continual (math-code) -> cooldown, continuing steps, tokens and the lr curve", async () => {
    const out = join(root, "chain");
    // basic 1280 tokens (10 steps of 128), continual ~299 (3 steps), cooldown 128: less than
    // one 4 x 128 cooldown batch, so it trains one step.
    const s = 1280 / 1.5e12;
    const common = tinyRunArgs(out, s, 1);
    const basic = await train([...common, "--stage", "basic"]);
    // --from the run directory and the stage directory: their newest checkpoint, with its
    // optimizer state, counters and data position (not bare weights).
    const viaFrom: RunResult[] = [];
    for (const [name, from] of [
      ["from-run", out],
      ["from-stage", join(out, "basic")],
    ] as const) {
      viaFrom.push(
        await train([
          ...tinyRunArgs(join(root, name), s, 1),
          ...["--stage", "continual", "--variant", "math-code", "--from", from],
        ]),
      );
    }
    const lines: string[] = [];
    const cont = await train([...common, "--stage", "continual", "--variant", "math-code"], (l) =>
      lines.push(l),
    );
    const cool = await train([...common, "--stage", "cooldown", "--variant", "math-code"]);
    for (const r of viaFrom) {
      expect(readTrainerState(r.checkpoint!)).toMatchObject({
        step: 13,
        adamStep: 13,
        tokensSeen: 13 * 128,
        stream: readTrainerState(cont.checkpoint!).stream,
      });
      expect(trainLosses(r.stageDir)).toEqual(trainLosses(cont.stageDir));
    }
    // The lr table in token order (the stage starts after the end of warmup), and the steps
    // of this stage beside the run's.
    const table = lines.flatMap((l) => l.split("\n")).filter((l) => / tokens {2}lr /.test(l));
    expect(table.map((l) => l.trim().split(/\s+/)[0])).toEqual([
      "end",
      "continual-math-code",
      "continual-math-code",
      "recipe",
    ]);
    expect(
      lines.some((l) =>
        /stage continual-math-code complete: 3 steps in this stage \(step 13 of the run\)/.test(l),
      ),
    ).toBe(true);
    // a stage of a fraction of a block: the minority sources may get nothing, and it says so
    expect(
      lines.filter((l) =>
        /note: this stage reads about 0\.15 blocks .*proof-pile-2 0\.0\d*, .*starcoder 0\.0\d*.* may get none/.test(
          l,
        ),
      ),
    ).toHaveLength(1);
    for (const r of [basic, cont, cool]) expect(r.complete).toBe(true);
    const sb = readTrainerState(basic.checkpoint!);
    const sc = readTrainerState(cont.checkpoint!);
    const sd = readTrainerState(cool.checkpoint!);
    expect(sb.step).toBe(10);
    expect(sc.step).toBe(13);
    expect(sd.step).toBe(14);
    expect(sd.tokensSeen).toBe(13 * 128 + 512);
    expect(sd.globalBatchSequences).toBe(8);
    expect(cont.checkpoint).toMatch(
      new RegExp(`continual-math-code/checkpoints/step-0+${sc.step}$`),
    );
    // The lr schedule continues across stages (no restart of warmup or cosine).
    const lrs = ["basic", "continual-math-code", "cooldown-math-code"].flatMap((d) =>
      readMetrics(join(out, d, "metrics.jsonl"))
        .filter((r): r is TrainRecord => r.kind === "train")
        .map((r) => r.lr),
    );
    for (let i = 2; i < lrs.length; i++) expect(lrs[i]!).toBeLessThanOrEqual(lrs[i - 1]!);
    // The math-code stage read the domain sources; the basic stage's slimpajama blocks are not re-read.
    expect(sc.stream.sourceOffsets.slimpajama).toBeGreaterThan(0);
    expect(Object.keys(sc.stream.mixture.counts).sort()).toEqual([
      "proof-pile-2",
      "slimpajama",
      "starcoder",
    ]);
    // A run directory resolves to its newest checkpoint (the cooldown's) for eval.
    expect(resolveWeightsDir(out)).toBe(cool.checkpoint);
  });

  it("continuing a checkpoint at another --scale is refused: its warmup and cosine end move, so the lr would jump", async () => {
    const out = join(root, "rescale");
    const s = 1280 / 1.5e12; // basic: 10 steps of 128 tokens
    const at = (scale: number, stage: string[]) => [...tinyRunArgs(out, scale, 0), ...stage];
    await train(at(s, ["--stage", "basic", "--max-steps", "4"]));
    // A resume of the same stage at 4x the scale.
    await expect(train(at(4 * s, ["--stage", "basic"]))).rejects.toThrow(
      /was trained with --scale 8\.53\d*e-10 .* the learning rate jumps from \S+ to \S+ at 512 tokens.*Pass --scale 8\.53\d*e-10/,
    );
    const basic = await train(at(s, ["--stage", "basic"]));
    expect(basic.complete).toBe(true);
    // The next stage at another scale (the CPU and GPU defaults differ: 2e-8 and 1).
    const next = ["--stage", "continual", "--variant", "chinese"];
    await expect(train(at(4 * s, next))).rejects.toThrow(
      /the learning rate jumps from \S+ to \S+ at 1\.3k tokens.*Pass --scale 8\.53\d*e-10/,
    );
    // At the checkpoint's scale the curve continues.
    const cont = await train(at(s, next));
    expect(cont.complete).toBe(true);
    const lrs = ["basic", "continual-chinese"].flatMap((d) =>
      readMetrics(join(out, d, "metrics.jsonl"))
        .filter((r): r is TrainRecord => r.kind === "train")
        .map((r) => r.lr),
    );
    for (let i = 2; i < lrs.length; i++) expect(lrs[i]!).toBeLessThanOrEqual(lrs[i - 1]!);
  });
});

/** args() with periodic checkpoints every `every` steps. */
function saving(out: string, steps: number, every: number, extra: string[] = []): string[] {
  return args(out, steps, extra).map((x, i, all) =>
    all[i - 1] === "--save-every" ? String(every) : x,
  );
}

function trainSteps(stageDir: string): number[] {
  return readMetrics(join(stageDir, "metrics.jsonl"))
    .filter((r): r is TrainRecord => r.kind === "train")
    .map((r) => r.step);
}

function expectSameWeights(x: string, y: string): void {
  const a = weights(x);
  const b = weights(y);
  for (let i = 0; i < a.length; i++)
    expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(a[i]!.buffer))).toBe(true);
}

/** The pid of a process that has exited (and was reaped). */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!;

describe("crash safety", () => {
  it("a stop right after a periodic save writes that step once; a kill while re-writing a step loses nothing (--keep 1)", async () => {
    const straight = await train(args(join(root, "resave-straight"), 6));
    const out = join(root, "resave");
    const lines: string[] = [];
    let sent = false;
    const first = await train(saving(out, 6, 2, ["--keep", "1"]), (l) => {
      lines.push(l);
      if (!sent && /^checkpoint .*step-000000000002 /.test(l)) {
        sent = true;
        process.emit("SIGINT", "SIGINT");
      }
    });
    expect(first.interrupted).toBe("SIGINT");
    expect(first.checkpoint).toMatch(/step-000000000002$/);
    expect(lines.filter((l) => /^checkpoint /.test(l))).toHaveLength(1);
    // What a kill between the two renames of a re-write left: the good checkpoint renamed aside,
    // the new one not yet in place. The old code then found no checkpoint and, with --keep 1,
    // started the stage again from scratch, deleting metrics.jsonl.
    const ckpts = join(out, "v1.0", "checkpoints");
    const pid = deadPid();
    const aside = join(ckpts, `.replaced-step-000000000002-${pid}`);
    renameSync(join(ckpts, "step-000000000002"), aside);
    const tmp = join(ckpts, `.tmp-step-000000000002-${pid}`);
    cpSync(aside, tmp, { recursive: true });
    rmSync(join(tmp, "trainer-state.json")); // the new one was still being written
    const said: string[] = [];
    const resumed = await train(saving(out, 6, 2, ["--keep", "1"]), (l) => said.push(l));
    expect(said.some((l) => /restored .*step-000000000002 from .*\.replaced-step/.test(l))).toBe(
      true,
    );
    expect(said.some((l) => /resuming v1.0 from .*step-000000000002 at step 2/.test(l))).toBe(true);
    expect(resumed.steps).toBe(4);
    expect(trainSteps(resumed.stageDir)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(trainLosses(resumed.stageDir)).toEqual(trainLosses(straight.stageDir));
    expectSameWeights(straight.checkpoint!, resumed.checkpoint!);
    expect(readdirSync(ckpts)).toEqual(["step-000000000006"]);
  });

  it("every checkpoint damaged: stops naming each; --restart-stage moves them aside and retrains", async () => {
    const straight = await train(args(join(root, "alldamaged-straight"), 6));
    const out = join(root, "alldamaged");
    await train(saving(out, 6, 2, ["--max-steps", "4", "--keep", "2"]));
    const ckpts = join(out, "v1.0", "checkpoints");
    const opt = join(ckpts, "step-000000000004", "optimizer.safetensors");
    writeFileSync(opt, readFileSync(opt).subarray(0, 1000));
    writeFileSync(join(ckpts, "step-000000000002", "trainer-state.json"), "{ truncated");
    const metricsBefore = readFileSync(join(out, "v1.0", "metrics.jsonl"), "utf8");
    await expect(train(saving(out, 6, 2, ["--keep", "2"]))).rejects.toThrow(
      /every checkpoint of .*v1.0 is damaged, so the stage cannot resume:\n {2}.*step-000000000004: .*optimizer.safetensors.*\n {2}.*step-000000000002: .*unreadable trainer state.*\nNothing was changed\. .*--restart-stage/,
    );
    // Nothing was changed: no restart, no metrics deleted.
    expect(readdirSync(ckpts).sort()).toEqual(["step-000000000002", "step-000000000004"]);
    expect(readFileSync(join(out, "v1.0", "metrics.jsonl"), "utf8")).toBe(metricsBefore);
    const said: string[] = [];
    const again = await train(saving(out, 6, 2, ["--keep", "2", "--restart-stage"]), (l) =>
      said.push(l),
    );
    expect(said.filter((l) => /^moved damaged checkpoint .* to .*damaged/.test(l))).toHaveLength(2);
    expect(said.some((l) => /starting v1.0 from the reference initialisation/.test(l))).toBe(true);
    expect(again.complete).toBe(true);
    expect(trainLosses(again.stageDir)).toEqual(trainLosses(straight.stageDir));
    // The damaged ones (steps 2 and 4) did not push the new checkpoints out of --keep 2.
    expect(readdirSync(ckpts).sort()).toEqual([
      "damaged",
      "step-000000000004",
      "step-000000000006",
    ]);
    expect(readdirSync(join(ckpts, "damaged")).sort()).toEqual([
      "step-000000000002",
      "step-000000000004",
    ]);
  });

  it("same-size corruption is found by the recorded SHA-256: falls back with a warning; older checkpoints load with a note", async () => {
    const straight = await train(args(join(root, "flip-straight"), 6));
    const out = join(root, "flip");
    await train(saving(out, 6, 2, ["--max-steps", "4", "--keep", "5"]));
    const ckpts = join(out, "v1.0", "checkpoints");
    const state = readTrainerState(join(ckpts, "step-000000000004"));
    expect(Object.keys(state.files!).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "optimizer.safetensors",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const path = join(ckpts, "step-000000000004", "model.safetensors");
    const bytes = readFileSync(path);
    const mid = bytes.length >> 1;
    for (let i = mid; i < mid + 4; i++) bytes[i]! ^= 0x40;
    writeFileSync(path, bytes);
    // A checkpoint written before hashes were recorded.
    const old = join(ckpts, "step-000000000002", "trainer-state.json");
    const { files: _, ...withoutFiles } = readTrainerState(join(ckpts, "step-000000000002"));
    writeFileSync(old, JSON.stringify(withoutFiles));
    const said: string[] = [];
    const resumed = await train(saving(out, 6, 2, ["--keep", "5"]), (l) => said.push(l));
    expect(
      said.some((l) =>
        /warning: skipping damaged checkpoint .*step-000000000004: .*model.safetensors: SHA-256 \w+… differs from \w+… recorded when it was saved/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(said.some((l) => /note: .*step-000000000002 predates recorded checksums/.test(l))).toBe(
      true,
    );
    expect(said.some((l) => /resuming v1.0 from .*step-000000000002 at step 2/.test(l))).toBe(true);
    expect(trainLosses(resumed.stageDir)).toEqual(trainLosses(straight.stageDir));
    expectSameWeights(straight.checkpoint!, resumed.checkpoint!);
  });

  it("a full disk: says which checkpoint, how much room, --keep + 1; no temporary directory; stale ones go at start-up", async () => {
    const straight = await train(args(join(root, "full-straight"), 6));
    const out = join(root, "full");
    checkpointTestHooks.afterWrite = (tmp) => {
      if (!/step-000000000004/.test(tmp)) return;
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    };
    try {
      await expect(train(saving(out, 6, 2))).rejects.toThrow(
        /no space left on the device while writing checkpoint step-000000000004 into .*checkpoints .*One checkpoint of this run takes about \d+\.\d [KM]iB, and with --keep 3 there must be room for 4 of them at once .*then rerun the same command to resume from .*step-000000000002$/,
      );
    } finally {
      checkpointTestHooks.afterWrite = undefined;
    }
    const ckpts = join(out, "v1.0", "checkpoints");
    expect(readdirSync(ckpts)).toEqual(["step-000000000002"]);
    const resumed = await train(saving(out, 6, 2));
    expect(trainLosses(resumed.stageDir)).toEqual(trainLosses(straight.stageDir));
    // Temporary directories of dead writers go at start-up, also when the stage is complete;
    // one of a live process (another job writing) stays.
    const stale = join(ckpts, `.tmp-step-000000000008-${deadPid()}`);
    mkdirSync(stale);
    const live = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
    try {
      const busy = join(ckpts, `.tmp-step-000000000008-${live.pid}`);
      mkdirSync(busy);
      const said: string[] = [];
      const again = await train(saving(out, 6, 2), (l) => said.push(l));
      expect(again.steps).toBe(0);
      expect(said.some((l) => /already complete/.test(l))).toBe(true);
      expect(
        said.some((l) => /note: removed .*\.tmp-step-000000000008-\d+, a temporary/.test(l)),
      ).toBe(true);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(busy)).toBe(true);
    } finally {
      live.kill("SIGKILL");
    }
  });
});

describe("bad inputs", () => {
  it("missing or mismatched shards", async () => {
    const withData = (d: string) =>
      args(join(root, "bad-run"), 2).map((x, i, all) => (all[i - 1] === "--data" ? d : x));
    await expect(train(withData(join(root, "nowhere")))).rejects.toThrow(
      /missing shards for source\(s\) slimpajama, starcoder .*run `pnpm data:prepare` first/,
    );
    // Shards of another tokenizer (the pipeline's byte-level test tokenizer, or another hash).
    const bytes = { name: "utf8-bytes+3", vocabSize: 259, eosId: 2, hash: "0123456789abcdef" };
    const other = join(root, "other-tok");
    await writeTestShards(other, [
      { name: "slimpajama", trainBlocks: 2, tokenizer: tok },
      { name: "starcoder", trainBlocks: 2, tokenizer: bytes },
    ]);
    await expect(train(withData(other))).rejects.toThrow(
      /starcoder.*(vocabSize 259 != 32000|hash)/,
    );
    const renamed = join(root, "renamed-tok");
    await writeTestShards(renamed, [
      { name: "slimpajama", trainBlocks: 2, tokenizer: { ...tok, hash: "feedface" } },
      { name: "starcoder", trainBlocks: 2, tokenizer: tok },
    ]);
    await expect(train(withData(renamed))).rejects.toThrow(/slimpajama.*vocabulary hash feedface/);
  });

  it("a shard holding a token id outside the vocabulary", async () => {
    const dir = join(root, "bad-ids");
    await writeTestShards(dir, [
      { name: "slimpajama", trainBlocks: 2, tokenizer: tok, blocksPerFile: 2 },
      { name: "starcoder", trainBlocks: 2, tokenizer: tok, blocksPerFile: 2 },
    ]);
    for (const f of [
      "slimpajama/train_slimpajama_0000000000.bin",
      "starcoder/train_starcoder_0000000000.bin",
    ]) {
      const path = join(dir, f);
      const bytes = readFileSync(path);
      for (let i = 0; i < 2 * 2049; i += 97) bytes.writeUInt16LE(40000, 24 + 2 * i);
      writeFileSync(path, bytes);
    }
    const argv = args(join(root, "bad-ids-run"), 2).map((x, i, all) =>
      all[i - 1] === "--data" ? dir : x,
    );
    await expect(train(argv)).rejects.toThrow(
      /shard train_\w+_0000000000\.bin of source "\w+", block \d, holds token id 40000 outside the model's vocabulary of 32000/,
    );
  });

  it("a checkpoint of another config, a missing previous stage, an impossible batch split", async () => {
    const src = await train(args(join(root, "src"), 2));
    await expect(
      train(
        [...args(join(root, "other"), 2, ["--from", src.checkpoint!])].map((x) =>
          x === "tinyllama-test" ? "tinyllama-4m" : x,
        ),
      ),
    ).rejects.toThrow(
      /is a tinyllama-test model and does not fit --model tinyllama-4m \(hiddenSize 32 != 64\)/,
    );
    // A Hugging Face directory of the same shapes but another norm epsilon / RoPE base: training
    // it under --model's values would silently change the model (and the config it is saved with).
    const { writeHfModel } = await import("../checkpoint/hf.js");
    for (const [name, diff, re] of [
      ["hf-eps", { rmsNormEps: 1e-6 }, /\(rmsNormEps \(rms_norm_eps\) 0\.000001 != 0\.00001\)/],
      ["hf-theta", { ropeTheta: 500000 }, /\(ropeTheta \(rope_theta\) 500000 != 10000\)/],
    ] as const) {
      const hf = join(root, name);
      mkdirSync(hf, { recursive: true });
      const cfg = { ...modelConfig("tinyllama-test"), ...diff };
      writeHfModel(hf, cfg, (n) =>
        readTensorF32(
          join(src.checkpoint!, "model.safetensors"),
          readSafetensorsHeader(join(src.checkpoint!, "model.safetensors")),
          n,
        ),
      );
      await expect(train(args(join(root, `${name}-run`), 2, ["--from", hf]))).rejects.toThrow(re);
    }
    await expect(
      train([...args(join(root, "nobasic"), 100), "--stage", "continual"]),
    ).rejects.toThrow(/starts from the last checkpoint of basic.*run --stage basic first/);
    await expect(
      train([...args(join(root, "nobasic"), 100), "--stage", "cooldown", "--variant", "chinese"]),
    ).rejects.toThrow(
      /starts from the last checkpoint of continual-chinese.*run --stage continual --variant chinese first/,
    );
    await expect(
      train(
        args(join(root, "split"), 2).map((x, i, all) =>
          all[i - 1] === "--global-batch" ? "3" : x,
        ),
      ),
    ).rejects.toThrow(
      /impossible batch split: a global batch of 3 sequences is not a multiple of micro-batch 2/,
    );
  });

  it("unknown stage or variant, a variant on a stage without one, 1.1B on CPU", async () => {
    await expect(train(["--stage", "final"])).rejects.toThrow(
      /--stage must be one of v1.0, basic, continual, cooldown/,
    );
    await expect(train(["--stage", "continual", "--variant", "german"])).rejects.toThrow(
      /--variant must be one of base, math-code, chinese/,
    );
    await expect(train(["--stage", "basic", "--variant", "chinese"])).rejects.toThrow(
      /applies to the continual and cooldown/,
    );
    await expect(train(["--device", "cpu", "--model", "tinyllama-1.1b"])).rejects.toThrow(
      /tinyllama-1.1b on CPU is not sensible: 1.10B parameters need about 18 GB/,
    );
    await expect(train(["--micro-batch", "0"])).rejects.toThrow(/--micro-batch must be at least 1/);
    await expect(train(["--seq-len", "100", "--device", "cpu"])).rejects.toThrow(
      /--seq-len 100 must divide 2048/,
    );
  });

  it("--device cuda without a usable GPU explains what to do", async () => {
    const { builtBackends } = await import("@tinyllama/kernels");
    if (builtBackends().cuda) {
      console.log(
        "not run: this machine has a CUDA build of the kernels (the no-GPU error cannot be provoked)",
      );
      return;
    }
    await expect(train(["--device", "cuda", "--data", data])).rejects.toThrow(
      /--device cuda: no usable GPU backend: .*pass --device cpu/,
    );
  });

  it("NaN/inf loss: steps are skipped, then the run stops naming the steps", async () => {
    const src = await train(args(join(root, "nan-src"), 1));
    // Poison the weights: every logit becomes NaN.
    const path = join(src.checkpoint!, "model.safetensors");
    const { writeHfModel } = await import("../checkpoint/hf.js");
    const { modelConfig, parameterSpecs } = await import("../model/config.js");
    const cfg = modelConfig("tinyllama-test");
    const h = readSafetensorsHeader(path);
    const poisoned = join(root, "poisoned");
    (await import("node:fs")).mkdirSync(poisoned, { recursive: true });
    writeHfModel(poisoned, cfg, (n) => {
      const w = readTensorF32(path, h, n);
      if (n === "model.norm.weight") w.fill(Number.NaN);
      return w;
    });
    expect(parameterSpecs(cfg).length).toBeGreaterThan(0);
    const lines: string[] = [];
    await expect(
      train(args(join(root, "nan"), 5, ["--from", poisoned, "--max-bad-steps", "2"]), (l) =>
        lines.push(l),
      ),
    ).rejects.toThrow(/not finite for 2 consecutive steps \(steps 1\.\.2\); stopping/);
    expect(lines.some((l) => /step 1: loss NaN .* update skipped/.test(l))).toBe(true);
  });

  it("GPU out of memory suggests a smaller micro-batch", () => {
    const e = explainOutOfMemory(new Error("cudaMalloc failed: out of memory"), {
      device: "cuda",
      microBatch: 8,
      seqLen: 2048,
    });
    expect(e.message).toMatch(
      /cuda out of memory for micro-batch 8 x 2048 tokens; try --micro-batch 4/,
    );
    // Checked before allocating, from the plan and the device's memory.
    const big = modelConfig("tinyllama-1.1b");
    const h100 = { backend: "cuda", name: "NVIDIA H100 80GB HBM3", totalMemory: 79.6 * 2 ** 30 };
    expect(() => assertFitsDevice(big, 8, 2048, h100)).not.toThrow();
    expect(() => assertFitsDevice(big, 32, 2048, h100)).toThrow(
      /NVIDIA H100 80GB HBM3 out of memory: tinyllama-1.1b with micro-batch 32 x 2048 tokens needs about \d+\.\d GiB .* try --recompute layers \(about \d+\.\d GiB, one more forward pass per step\), or --micro-batch (8|16):/,
    );
    // With recomputation micro-batch 32 fits; 256 does not even with it, and the advice is then
    // the largest micro-batch that fits with recomputation.
    expect(() => assertFitsDevice(big, 32, 2048, h100, { recompute: true })).not.toThrow();
    expect(() => assertFitsDevice(big, 256, 2048, h100, { recompute: true })).toThrow(
      /micro-batch 256 x 2048 tokens needs about .* try --micro-batch (32|64) /,
    );
    expect(() => assertFitsDevice(big, 1, 2048, { ...h100, totalMemory: 8 * 2 ** 30 })).toThrow(
      /even micro-batch 1 does not fit/,
    );
    const other = new Error("something else");
    expect(explainOutOfMemory(other, { device: "cuda", microBatch: 8, seqLen: 2048 })).toBe(other);
  });
});

describe("Math&Code stage and the starcoder shards' subsets", () => {
  const config = (subsets?: string[]) => ({
    sources: [{ name: "slimpajama" }, { name: "starcoder", ...(subsets ? { subsets } : {}) }],
  });
  it("notes shards prepared from other StarCoderData subsets than Python and Jupyter", () => {
    expect(mathCodeStarcoderNote(config())).toMatch(
      /prepared from subsets all; .*"python", "jupyter"/,
    );
    expect(mathCodeStarcoderNote(config(["python", "java"]))).toMatch(/subsets python, java;/);
    expect(mathCodeStarcoderNote(config(["python", "jupyter"]))).toBeNull();
    expect(mathCodeStarcoderNote(config(["python", "jupyter-structured-clean-dedup"]))).toBeNull();
    expect(mathCodeStarcoderNote(undefined)).toBeNull(); // a manifest without a config says nothing
  });
});
