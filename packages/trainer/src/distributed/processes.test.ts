/**
 * Distributed training as users start it, in real processes: two "nodes" on this host (two
 * `--nproc-per-node 2 --nnodes 2` launchers with different NCCL_HOSTID, rendezvous on
 * 127.0.0.1, hybrid sharding), and a killed rank in a torchrun-style job (one process per rank,
 * no common launcher): the others must exit on their own, naming the dead rank, within seconds.
 * Children run the TypeScript sources through src/test-util/ts-register.mjs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pidAlive } from "@tinyllama/data";
import { freeRendezvousPort as freePort } from "@tinyllama/kernels/collectives";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeHfModel } from "../checkpoint/hf.js";
import { UsageError } from "../cli/args.js";
import { trainCommand } from "../cli/train-command.js";
import { readMetrics, type TrainRecord } from "../metrics/metrics.js";
import { modelConfig, parameterSpecs } from "../model/config.js";
import { writeMicroShards } from "../test-util/distributed.js";
import { llama2Identity } from "../test-util/shards.js";
import { NonFiniteLossError } from "../train/trainer.js";
import { launchLocalRanks, TRAINING_STARTED } from "./launcher.js";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const REGISTER = fileURLToPath(new URL("../test-util/ts-register.mjs", import.meta.url));
const LOOP = fileURLToPath(new URL("../test-util/collective-loop.ts", import.meta.url));
const LOADER = ["--conditions=@tinyllama/source", "--import", REGISTER];
const NODE_ARGS = [...LOADER, CLI];

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "trainer-procs-"));
  data = join(root, "data");
  await writeMicroShards(data, 24, await llama2Identity());
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** tinyllama-test on 2048-token sequences: one block per rank per step. */
function trainArgs(
  out: string,
  globalBatch: number,
  steps: number,
  extra: string[] = [],
): string[] {
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
    "2048",
    "--micro-batch",
    "1",
    "--global-batch",
    String(globalBatch),
    "--scale",
    String((steps * globalBatch * 2048) / 3e12),
    "--eval-batches",
    "0",
    "--save-every",
    "0",
    ...extra,
  ];
}

/** Node i of two, one rank each, training 1 step of 2 sequences into `out`. */
function nodeArgs(out: string, port: number, i: number): string[] {
  const node = ["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", String(i)];
  return [...trainArgs(out, 2, 1), ...node, "--master-port", String(port)];
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}, script: string[] = NODE_ARGS): Run {
  const child = spawn(process.execPath, [...script, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout!.on("data", (d) => {
    text += d;
  });
  child.stderr!.on("data", (d) => {
    text += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (r) => child.on("exit", (code, signal) => r({ code, signal, at: Date.now() })),
  );
  return { child, output: () => text, exited };
}

async function waitFor(run: Run, re: RegExp, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!re.test(run.output())) {
    if (Date.now() - t0 > ms)
      throw new Error(`timed out waiting for ${re}; output:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("distributed processes", () => {
  it("two nodes on one host (NCCL_HOSTID), rendezvous on 127.0.0.1, hybrid sharding, --comm-overlap on", async () => {
    const out = join(root, "two-nodes");
    const port = await freePort();
    const node = (i: number) =>
      start(
        [
          ...trainArgs(out, 4, 1),
          "--nproc-per-node",
          "2",
          "--nnodes",
          "2",
          "--node-rank",
          String(i),
          "--master-addr",
          "127.0.0.1",
          "--master-port",
          String(port),
          "--sharding",
          "hybrid",
          "--comm-overlap",
          "on",
        ],
        { NCCL_HOSTID: `node-${i}` },
      );
    const runs = [node(0), node(1)];
    const timer = setTimeout(() => {
      for (const r of runs) r.child.kill("SIGTERM");
    }, 100_000);
    const ends = await Promise.all(runs.map((r) => r.exited));
    clearTimeout(timer);
    const text = runs.map((r) => r.output()).join("\n");
    expect(
      ends.map((e) => e.code),
      text,
    ).toEqual([0, 0]);
    expect(text).toMatch(
      /distributed: 4 ranks over tcp \(2 node\(s\) x 2\), hybrid sharding: optimizer state in shards of 2 rank\(s\), replicated on 2 nodes; gradients reduced during backward/,
    );
    const train = readMetrics(join(out, "v1.0", "metrics.jsonl")).filter(
      (r): r is TrainRecord => r.kind === "train",
    );
    expect(train.map((r) => r.step)).toEqual([1]);
    for (const r of train) expect(Number.isFinite(r.loss)).toBe(true);
  }, 120_000);

  it("two nodes started with different --seed and --sharding: both refuse at the rendezvous, naming the flags", async () => {
    const out = join(root, "mismatch");
    const port = await freePort();
    const node = (i: number, extra: string[]) =>
      start([...nodeArgs(out, port, i), ...extra], { NCCL_HOSTID: `node-${i}` });
    // Before the check, the seed trained silently (each rank initialised its shard with its own)
    // and the sharding failed with "allReduceHost: rank 1 sent 4 values, rank 0 has 1".
    const runs = [node(0, []), node(1, ["--seed", "1", "--sharding", "hybrid"])];
    const ends = await Promise.all(runs.map((r) => r.exited));
    const text = runs.map((r) => r.output()).join("\n");
    expect(
      ends.map((e) => e.code),
      text,
    ).toEqual([2, 2]);
    for (const r of runs) {
      expect(r.output()).toMatch(
        /train: the ranks were started with different settings .*--seed: rank 0 \(node-0\) has 3407, rank 1 \(node-1\) has 1; --sharding: rank 0 \(node-0\) has full, rank 1 \(node-1\) has hybrid\n/,
      );
    }
    expect(existsSync(join(out, "v1.0"))).toBe(false);
  }, 60_000);

  it("a node whose peer never starts says whom it waits for, then gives up after TINYLLAMA_RENDEZVOUS_TIMEOUT", async () => {
    const out = join(root, "alone");
    const port = await freePort();
    const t0 = Date.now();
    const run = start(nodeArgs(out, port, 0), {
      NCCL_HOSTID: "node-0",
      TINYLLAMA_RENDEZVOUS_TIMEOUT: "3",
    });
    const end = await run.exited;
    const text = run.output();
    expect(end.code, text).not.toBe(0);
    expect(text).toMatch(
      /1 of 2 ranks joined after \d+s, waiting for rank\(s\) 1 \(gives up at 3s\)/,
    );
    expect(text).toMatch(
      /rendezvous timed out after 3s .*rank\(s\) 1 of 2 never connected .*TINYLLAMA_RENDEZVOUS_TIMEOUT sets the wait/,
    );
    expect(end.at - t0).toBeLessThan(30_000);
  }, 60_000);

  it("a killed rank: the others exit by themselves within seconds, naming it", async () => {
    const out = join(root, "killed");
    const port = await freePort();
    const ranks = [0, 1, 2].map((rank) =>
      start(trainArgs(out, 3, 1000), {
        RANK: String(rank),
        WORLD_SIZE: "3",
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: "3",
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
      }),
    );
    await waitFor(ranks[0]!, /step 1\b/, 45_000);
    const killedAt = Date.now();
    ranks[2]!.child.kill("SIGKILL");
    const [e0, e1] = await Promise.all([ranks[0]!.exited, ranks[1]!.exited]);
    const slowest = Math.max(e0.at, e1.at) - killedAt;
    console.log(`killed rank 2: ranks 0 and 1 exited ${slowest} ms later`);
    expect(e0.code).toBe(1);
    expect(e1.code).toBe(1);
    expect(ranks[0]!.output()).toMatch(/train: rank 0: .*rank 2 closed its connection/);
    expect(ranks[1]!.output()).toMatch(/train: rank 1: .*rank 2/);
    expect(slowest).toBeLessThan(10_000);
  }, 120_000);

  it("a hung rank (SIGSTOP): the others time out, name it, and exit", async () => {
    const port = await freePort();
    const ranks = [0, 1, 2].map((rank) =>
      start(
        [],
        {
          RANK: String(rank),
          WORLD_SIZE: "3",
          MASTER_ADDR: "127.0.0.1",
          MASTER_PORT: String(port),
          TINYLLAMA_DIST_TIMEOUT: "2",
        },
        [...LOADER, LOOP],
      ),
    );
    try {
      await waitFor(ranks[0]!, /iteration 20\b/, 45_000);
      const stoppedAt = Date.now();
      ranks[1]!.child.kill("SIGSTOP");
      const [e0, e2] = await Promise.all([ranks[0]!.exited, ranks[2]!.exited]);
      const slowest = Math.max(e0.at, e2.at) - stoppedAt;
      console.log(`hung rank 1 (timeout 2 s): ranks 0 and 2 exited ${slowest} ms later`);
      expect(e0.code).toBe(1);
      expect(e2.code).toBe(1);
      for (const r of [ranks[0]!, ranks[2]!])
        expect(r.output()).toMatch(/rank\(s\) 1 did not answer/);
      expect(slowest).toBeLessThan(8_000);
    } finally {
      ranks[1]!.child.kill("SIGKILL");
    }
  }, 120_000);

  it("--nproc-per-node: SIGINT to the launcher stops every rank at the same step with a checkpoint", async () => {
    const out = join(root, "sigint");
    const run = start([...trainArgs(out, 2, 1000), "--nproc-per-node", "2"]);
    await waitFor(run, /step 1\b/, 60_000);
    run.child.kill("SIGINT");
    const end = await run.exited;
    expect(end.code, run.output()).toBe(0);
    expect(run.output()).toMatch(/launcher: SIGINT -> all ranks/);
    expect(run.output()).toMatch(/checkpoint .*step-0000000000\d\d/);
    expect(run.output()).toMatch(/stopped by SIGINT; rerun the same command to resume/);
  }, 120_000);

  it("--nproc-per-node: a launcher killed with SIGKILL takes its ranks with it; a rerun logs each step once", async () => {
    const out = join(root, "orphans");
    // enough steps that the kill after the step-2 checkpoint lands mid-stage on a fast machine
    const steps = 30;
    const argv = [
      ...trainArgs(out, 2, steps).map((x, i, all) => (all[i - 1] === "--save-every" ? "2" : x)),
      "--nproc-per-node",
      "2",
    ];
    const run = start(argv);
    await waitFor(run, /checkpoint .*step-000000000002 /, 60_000);
    const ranks = [...run.output().matchAll(/launcher: rank \d is pid (\d+)/g)].map((m) =>
      Number(m[1]),
    );
    expect(ranks).toHaveLength(2);
    const killedAt = Date.now();
    run.child.kill("SIGKILL");
    await run.exited;
    while (ranks.some((pid) => pidAlive(pid)) && Date.now() - killedAt < 20_000)
      await new Promise((r) => setTimeout(r, 20));
    const gone = Date.now() - killedAt;
    console.log(`launcher SIGKILLed: both ranks exited ${gone} ms later`);
    expect(ranks.filter((pid) => pidAlive(pid))).toEqual([]);
    // between steps, so within a step or two (0.7-0.9 s here); generous for a loaded CI box
    expect(gone).toBeLessThan(15_000);
    // Nothing more is written by them.
    const stage = join(out, "v1.0");
    const snapshot = () => [
      readFileSync(join(stage, "metrics.jsonl"), "utf8"),
      readdirSync(join(stage, "checkpoints")).join(","),
    ];
    const before = snapshot();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(snapshot()).toEqual(before);
    expect(before[0]).not.toMatch(new RegExp(`"step":${steps},`)); // killed mid-stage
    const rerun = start(argv);
    const end = await rerun.exited;
    expect(end.code, rerun.output()).toBe(0);
    expect(rerun.output()).toMatch(/resuming v1.0 from .*step-0000000000\d\d at step \d+/);
    const train = readMetrics(join(stage, "metrics.jsonl")).filter(
      (r): r is TrainRecord => r.kind === "train",
    );
    expect(train.map((r) => r.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(readdirSync(join(stage, "checkpoints")).filter((n) => n.startsWith("."))).toEqual([]);
    expect(existsSync(join(stage, "checkpoints", `step-${String(steps).padStart(12, "0")}`))).toBe(
      true,
    );
  }, 120_000);

  it("--nproc-per-node refuses what every rank would refuse before starting any: one message, exit 2", async () => {
    const cpu = ["--device", "cpu", "--data", data, "--out", join(root, "launch-checks")];
    // The CPU defaults (global batch 8 of 128-token sequences) on 2 ranks.
    const batch = start([...cpu, "--nproc-per-node", "2"]);
    expect((await batch.exited).code, batch.output()).toBe(2);
    expect(batch.output()).toMatch(
      /^train: impossible batch split: with 2 ranks .* use --global-batch 32 \(16 sequences per rank, 2 micro-batches of 8 each\) \(see --help\)\n$/,
    );
    const port = start([
      ...cpu,
      "--global-batch",
      "32",
      "--nproc-per-node",
      "2",
      "--master-port",
      "70000",
    ]);
    expect((await port.exited).code, port.output()).toBe(2);
    expect(port.output()).toMatch(/--master-port must be a TCP port in 1-65535, got 70000/);
    for (const r of [batch, port]) expect(r.output()).not.toMatch(/launcher:|Rerun/);
  }, 60_000);

  it("the launcher's resume hint only once training started; a rank's usage error is one", async () => {
    const launch = (code: string) =>
      trainCommand(["--device", "cpu", "--global-batch", "32", "--nproc-per-node", "2"], {
        log: () => {},
        entry: ["-e", code, "--"],
      });
    await expect(launch("process.exit(1)")).rejects.toThrow(
      /^rank \d exited with code 1 before training started \(its error is above\); all ranks stopped$/,
    );
    await expect(
      launch(`process.send(${JSON.stringify(TRAINING_STARTED)}, () => process.exit(1))`),
    ).rejects.toThrow(
      /^rank \d exited with code 1; all ranks stopped. Rerun the same command to resume from the last checkpoint$/,
    );
    await expect(launch("process.exit(2)")).rejects.toBeInstanceOf(UsageError);
    // A full disk: rerunning as is would fail again; it says to free space first.
    await expect(
      launch(`process.send(${JSON.stringify(TRAINING_STARTED)}, () => process.exit(3))`),
    ).rejects.toThrow(
      /^rank \d exited with code 3: the disk is full .*all ranks stopped\. Rerunning as is fails the same way: first free space on the filesystem of --out \(--keep \+ 1 checkpoints must fit at once.*then rerun the same command to resume from the last checkpoint$/,
    );
    // --max-bad-steps: a resume is exact, so rerunning as is repeats the same NaN/inf steps.
    const notFinite = launch(
      `process.send(${JSON.stringify(TRAINING_STARTED)}, () => process.exit(4))`,
    );
    await expect(notFinite).rejects.toBeInstanceOf(NonFiniteLossError);
    await expect(notFinite).rejects.toThrow(
      /^rank \d exited with code 4: the loss or gradient norm was not finite for --max-bad-steps steps in a row .*all ranks stopped\. Rerunning as is repeats those steps from the same state: lower the learning rate .*--lr-override.* or check the data, then rerun to resume from the last checkpoint$/,
    );
  }, 60_000);

  it("--nproc-per-node: NaN/inf steps on every rank stop the job after --max-bad-steps, exit 4, no resume hint", async () => {
    // Weights that make every logit NaN: each step is skipped on both ranks.
    const cfg = modelConfig("tinyllama-test");
    const poisoned = join(root, "nan-weights");
    mkdirSync(poisoned, { recursive: true });
    writeHfModel(poisoned, cfg, (n) => {
      const spec = parameterSpecs(cfg).find((s) => s.name === n)!;
      return new Float32Array(spec.shape.reduce((a, b) => a * b, 1)).fill(Number.NaN);
    });
    const out = join(root, "nan-launch");
    const run = start(
      trainArgs(out, 2, 4, ["--from", poisoned, "--max-bad-steps", "2", "--nproc-per-node", "2"]),
    );
    const { code } = await run.exited;
    const text = run.output();
    expect(code, text).toBe(4);
    expect(text).toMatch(
      /step 1: loss NaN \/ grad norm NaN is not finite; update skipped \(1 in a row/,
    );
    expect(text).toMatch(
      /\[rank 0\] train: loss or gradient norm not finite for 2 consecutive steps \(steps 1\.\.2\); stopping\. Last checkpoint: none of this stage \(a rerun starts again from .*nan-weights\)\. Rerunning as is repeats these steps from the same state: lower the learning rate \(--lr-max\/--lr-min\) or check the data/,
    );
    expect(text).toMatch(
      /train: rank \d exited with code 4: the loss or gradient norm was not finite/,
    );
    expect(text).not.toMatch(/Rerun the same command to resume/);
    const rows = readMetrics(join(out, "v1.0", "metrics.jsonl")) as TrainRecord[];
    expect(rows.map((r) => [r.step, r.skipped])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(existsSync(join(out, "v1.0", "checkpoints"))).toBe(false);
  }, 60_000);

  it("the launcher names a child that dies and stops the others", async () => {
    const lines: string[] = [];
    let killed = false;
    const result = await launchLocalRanks({
      nprocPerNode: 3,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: "127.0.0.1",
      masterPort: null,
      command: [...LOADER, LOOP],
      graceMs: 2000,
      log: (l) => lines.push(l),
      out: (l) => {
        const pid = /^\[rank 1\] iteration 10$/.test(l)
          ? lines.find((x) => /rank 1 is pid/.test(x))
          : undefined;
        if (pid && !killed) {
          killed = true;
          process.kill(Number(/pid (\d+)/.exec(pid)![1]), "SIGKILL");
        }
      },
      err: (l) => lines.push(l),
    });
    expect(result.exitCode, lines.join("\n")).toBe(1);
    expect(result.failed).toEqual({ rank: 1, how: "was killed by SIGKILL" });
    expect(lines.join("\n")).toMatch(
      /launcher: rank 1 \(pid \d+\) was killed by SIGKILL; stopping the other ranks/,
    );
  }, 60_000);
});
