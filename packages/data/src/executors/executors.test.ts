// Subprocess tests of the real CLI (dist/, built by `pnpm build` before tests): kill -9 at
// several moments then rerun gives byte-identical shards; Slurm array scripts run locally with
// SLURM_ARRAY_TASK_ID give the same shards as the local executor.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleDir } from "../pipeline/config.js";
import type { Plan } from "../pipeline/plan.js";

const dist = fileURLToPath(new URL("../../dist/cli/", import.meta.url));
const prepareJs = join(dist, "prepare.js");
let dir: string;

beforeAll(async () => {
  if (!existsSync(prepareJs)) {
    throw new Error(
      `${prepareJs} missing: these tests run the built CLI; run \`npx tsc -p tsconfig.build.json\` in packages/data first`,
    );
  }
  dir = await mkdtemp(join(tmpdir(), "executors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small two-source config: 5 tasks, 7 bucket tasks. */
async function writeConfig(name: string): Promise<string> {
  const s = sampleDir();
  const cfg = {
    output: `out-${name}`,
    tokenizer: "bytes",
    sources: [
      { name: "proof-pile-2", local: `${s}/proofpile2` },
      { name: "skypile", local: `${s}/skypile` },
    ],
    dedup: { minhash: { bands: 6, rows: 4 } },
    chunkTokens: 2049 * 32,
    validationFraction: 0.05,
    filesPerTask: 1,
  };
  const p = join(dir, `${name}.json`);
  await writeFile(p, JSON.stringify(cfg));
  return p;
}

/** sha256 of every shard + the manifests without their timestamps. */
async function fingerprint(out: string): Promise<Record<string, string>> {
  const fp: Record<string, string> = {};
  for (const src of ["proof-pile-2", "skypile"]) {
    for (const f of (await readdir(join(out, src))).sort()) {
      const bytes = await readFile(join(out, src, f));
      if (f === "manifest.json") {
        const m = JSON.parse(bytes.toString());
        m.createdAt = undefined;
        m.config = undefined;
        fp[`${src}/${f}`] = JSON.stringify(m);
      } else fp[`${src}/${f}`] = createHash("sha256").update(bytes).digest("hex");
    }
  }
  return fp;
}

/** The CLI on `config`; two local workers unless the Slurm executor is asked for. */
const run = (config: string, extra: string[] = []) =>
  spawnSync(
    process.execPath,
    [
      prepareJs,
      "--config",
      config,
      ...(extra.includes("slurm") ? [] : ["--workers", "2"]),
      ...extra,
    ],
    { cwd: dir, encoding: "utf8" },
  );

describe("local executor", () => {
  it("kill -9 at any moment, then a rerun, gives the same shards as an uninterrupted run", async () => {
    const clean = run(await writeConfig("clean"));
    expect(clean.status, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/skypile/);
    const expected = await fingerprint(join(dir, "out-clean"));
    expect(Object.keys(expected).length).toBeGreaterThan(4);

    const cfg = await writeConfig("killed");
    for (const delayMs of [150, 450, 800]) {
      const child = spawn(process.execPath, [prepareJs, "--config", cfg, "--workers", "2"], {
        cwd: dir,
        stdio: "ignore",
        detached: true,
      });
      await new Promise((r) => setTimeout(r, delayMs));
      // kill -9 the whole process group: the coordinator and its workers die mid-write
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // already finished
      }
      await new Promise((r) => child.once("exit", r));
    }
    // the kills landed mid-run: the last stage had not finished
    expect(existsSync(join(dir, "out-killed", ".work", "done", "finalize", "1"))).toBe(false);
    const resumed = run(cfg);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(await fingerprint(join(dir, "out-killed"))).toEqual(expected);
  });

  it("a worker that dies fails the stage at once, names its task and signal, and the other workers are stopped", async () => {
    const { runLocal } = await import("./local.js");
    const { ProgressPrinter } = await import("./progress.js");
    const work = join(dir, "pool-fail");
    await mkdir(work, { recursive: true });
    // stand-in for task.js: the worker of rank 0 dies of SIGKILL inside its task, the other one
    // hangs in its task (as a busy worker would be when its sibling dies) after noting its pid.
    // Rank 0 dies only once the other has started (on a loaded machine a fixed delay let it
    // die before its sibling existed) and notes when it died.
    const pidFile = join(work, "hung.pid");
    const diedFile = join(work, "died.at");
    const script = join(dir, "fake-task.mjs");
    await writeFile(
      script,
      `import { existsSync, writeFileSync } from "node:fs";
const ranks = process.argv[process.argv.indexOf("--ranks") + 1].split(",").map(Number);
process.send({ type: "start", rank: ranks[0] });
if (ranks[0] === 0) {
  const wait = setInterval(() => {
    if (!existsSync(${JSON.stringify(pidFile)})) return;
    clearInterval(wait);
    writeFileSync(${JSON.stringify(diedFile)}, String(Date.now()));
    process.kill(process.pid, "SIGKILL");
  }, 20);
} else { writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000); }
`,
    );
    const plan = { workDir: work, stages: [{ name: "buckets", tasks: 2 }], tasks: [] };
    const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
    const err = await runLocal(plan as unknown as Plan, {
      workers: 2,
      taskScript: script,
      printer: new ProgressPrinter(sink),
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    const failedAt = Date.now();
    const hung = Number(await readFile(pidFile, "utf8"));
    const alive = (() => {
      try {
        process.kill(hung, 0);
        return true;
      } catch {
        return false;
      }
    })();
    if (alive) process.kill(hung, "SIGKILL");
    expect(err?.message).toMatch(
      /stage buckets: worker 0 \(pid \d+, tasks 0\) was killed by SIGKILL during task 0; stopped the other workers \(0 of 2 tasks run\); rerun to resume/,
    );
    expect(alive, "the other worker outlived the failed stage").toBe(false);
    // at once: from the worker's death to the stage's error
    expect(failedAt - Number(await readFile(diedFile, "utf8"))).toBeLessThan(5000);
  });

  it("a worker whose data:prepare is gone stops instead of running on as an orphan", async () => {
    const cfg = await writeConfig("orphan");
    expect(run(cfg, ["--executor", "slurm"]).status).toBe(0);
    const plan = join(dir, "out-orphan", ".work", "plan.json");
    const child = spawn(
      process.execPath,
      [join(dist, "task.js"), "--plan", plan, "--stage", "signatures", "--ranks", "0,1,2,3,4"],
      { stdio: ["ignore", "ignore", "pipe", "ipc"] },
    );
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    // what the worker sees when the coordinator is killed (even with -9): its channel closes
    child.disconnect();
    const code = await new Promise((r) => child.once("exit", r));
    if (child.stderr && !child.stderr.readableEnded)
      await new Promise((r) => child.stderr?.once("end", r));
    expect(code).toBe(1);
    expect(stderr).toMatch(/data:prepare \(the coordinating process\) is gone; stopping/);
    expect(stderr).not.toMatch(/Unhandled 'error' event|EPIPE|ERR_IPC_CHANNEL_CLOSED/);
    // it stopped before its last task, which a rerun does
    expect(existsSync(join(dir, "out-orphan", ".work", "done", "signatures", "4"))).toBe(false);
  });

  it("reports bad flags and configs clearly", async () => {
    const r = spawnSync(process.execPath, [prepareJs, "--bogus"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--bogus'/);
    const missing = spawnSync(process.execPath, [prepareJs, "--config", "nope.json"], {
      cwd: dir,
      encoding: "utf8",
    });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/nope\.json: cannot read config/);
    // `pnpm data:prepare -- --config f` hands the `--` on: it is not "positionals follow"
    const dashes = spawnSync(process.execPath, [prepareJs, "--", "--config", "nope.json"], {
      cwd: dir,
      encoding: "utf8",
    });
    expect(dashes.stderr).toMatch(/nope\.json: cannot read config/);
  });

  it("refuses flags that would be ignored or that name no tokenizer, naming the flag (exit 2)", async () => {
    const cfg = await writeConfig("flags");
    const cases: [string[], RegExp][] = [
      [["--submit"], /--submit needs --executor slurm/],
      [["--submit", "--executor", "local"], /--submit needs --executor slurm/],
      [["--executor", "slurm", "--workers", "4"], /--workers has no effect with --executor slurm/],
      [["--tokenizer", "gpt2"], /--tokenizer must be llama2 or bytes, got "gpt2"/],
      [["--executor", "kubernetes"], /--executor must be local or slurm, got "kubernetes"/],
      [["--workers", "0"], /--workers must be a positive integer, got "0"/],
      [["--workers", "1e1"], /--workers must be a positive integer, got "1e1"/],
    ];
    for (const [flags, message] of cases) {
      const r = spawnSync(process.execPath, [prepareJs, "--config", cfg, ...flags], {
        cwd: dir,
        encoding: "utf8",
      });
      expect(r.status, flags.join(" ")).toBe(2);
      expect(r.stderr, flags.join(" ")).toMatch(message);
      expect(r.stderr, flags.join(" ")).toContain("usage: data:prepare");
      expect(r.stderr, flags.join(" ")).not.toMatch(/config:|sample config/);
    }
    // nothing was planned or run
    expect(existsSync(join(dir, "out-flags"))).toBe(false);
  });
});

describe("slurm executor", () => {
  it("writes job arrays whose tasks, run with SLURM_ARRAY_TASK_ID, produce the local executor's shards", async () => {
    const cfg = await writeConfig("slurm");
    const w = run(cfg, ["--executor", "slurm"]);
    expect(w.status, w.stderr).toBe(0);
    const slurmDir = join(dir, "out-slurm", ".work", "slurm");
    const scripts = (await readdir(slurmDir)).filter((f) => f.endsWith(".sbatch")).sort();
    expect(scripts.map((s) => s.replace(/^\d+-/, ""))).toEqual([
      "signatures.sbatch",
      "buckets.sbatch",
      "cluster.sbatch",
      "pack.sbatch",
      "finalize.sbatch",
    ]);
    const submit = await readFile(join(slurmDir, "submit.sh"), "utf8");
    expect(submit).toMatch(/sbatch --parsable \$dep '/);
    expect(submit).toMatch(/--dependency=afterok:\$id --kill-on-invalid-dep=yes/);
    for (const s of scripts) {
      const text = await readFile(join(slurmDir, s), "utf8");
      const array = /#SBATCH --array=0-(\d+)/.exec(text);
      expect(array, s).not.toBeNull();
      const n = Number(array?.[1]) + 1;
      for (let i = 0; i < n; i++) {
        // run the script body as sbatch would, as array element i
        execFileSync("bash", [join(slurmDir, s)], {
          env: { ...process.env, SLURM_ARRAY_TASK_ID: String(i), SLURM_JOB_ID: "1" },
          stdio: "pipe",
        });
      }
    }
    const clean = join(dir, "out-clean");
    if (!existsSync(join(clean, "skypile", "manifest.json")))
      expect(run(await writeConfig("clean")).status).toBe(0);
    expect(await fingerprint(join(dir, "out-slurm"))).toEqual(await fingerprint(clean));
  });

  it("splits stages larger than MaxArraySize into runs of ranks per array element", async () => {
    const { readPlan } = await import("../pipeline/plan.js");
    const { writeSlurmScripts } = await import("./slurm.js");
    const plan = await readPlan(join(dir, "out-slurm", ".work", "plan.json"));
    const s = await writeSlurmScripts(
      { ...plan, workDir: join(dir, "slurm-small") },
      { maxArraySize: 4 },
    );
    const buckets = s.stages.find((x) => x.stage === "buckets");
    expect(buckets).toMatchObject({ tasks: 7, arrayElements: 4 });
    const text = await readFile(buckets?.script as string, "utf8");
    expect(text).toMatch(/#SBATCH --array=0-3\n/);
    expect(text).toMatch(/--stage buckets --ranks-per-element 2$/m);
    // element 3 of a 7-task stage with 2 ranks per element runs only rank 6: it exists and is done
    const r = spawnSync(
      process.execPath,
      [
        join(dist, "task.js"),
        "--plan",
        join(dir, "out-slurm", ".work", "plan.json"),
        "--stage",
        "buckets",
        "--ranks-per-element",
        "2",
      ],
      {
        encoding: "utf8",
        env: { ...process.env, SLURM_ARRAY_TASK_ID: "3" },
      },
    );
    expect(r.status, r.stderr).toBe(0);
  });

  it("submit.sh needs no bash >= 4.4 (runs under dash), chains afterok with --kill-on-invalid-dep, and refuses a second chain", async () => {
    const { writeSlurmScripts } = await import("./slurm.js");
    const work = join(dir, "slurm-submit");
    const stages = [
      { name: "signatures", tasks: 3 },
      { name: "buckets", tasks: 2 },
      { name: "cluster", tasks: 1 },
    ];
    const s = await writeSlurmScripts({ workDir: work, stages } as unknown as Plan);
    const text = await readFile(s.submit, "utf8");
    // `"${dep[@]}"` of an empty array under `set -u` aborts on bash 4.2 (RHEL/CentOS 7):
    // no arrays at all, so dash, which has none, runs it as well as bash does
    expect(text).not.toMatch(/\[@\]/);
    const bin = join(dir, "slurm-bin");
    await mkdir(bin, { recursive: true });
    const log = join(dir, "sbatch.log");
    // stub sbatch: logs its arguments, answers "<id>;<cluster>" as --parsable does
    await writeFile(
      join(bin, "sbatch"),
      `#!/bin/sh\nn=$(($(wc -l < ${JSON.stringify(log)} 2>/dev/null || echo 0) + 101))\necho "$*" >> ${JSON.stringify(log)}\necho "$n;cluster"\n`,
      { mode: 0o755 },
    );
    // stub squeue: reports the listed jobs as queued while $QUEUED is set
    await writeFile(join(bin, "squeue"), `#!/bin/sh\n[ -n "\${QUEUED:-}" ] && echo 101\nexit 0\n`, {
      mode: 0o755,
    });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    for (const shell of ["bash", "dash"]) {
      await rm(log, { force: true });
      await rm(join(s.dir, "jobs"), { force: true });
      const r = spawnSync(shell, [s.submit], { env, encoding: "utf8" });
      expect(r.status, `${shell}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(
        "signatures: job 101 (3 tasks)\nbuckets: job 102 (2 tasks)\ncluster: job 103 (1 tasks)\n",
      );
      expect((await readFile(log, "utf8")).split("\n").filter(Boolean)).toEqual([
        `--parsable ${s.stages[0]?.script}`,
        `--parsable --dependency=afterok:101 --kill-on-invalid-dep=yes ${s.stages[1]?.script}`,
        `--parsable --dependency=afterok:102 --kill-on-invalid-dep=yes ${s.stages[2]?.script}`,
      ]);
    }
    // resubmitting while the first chain is queued would run every task twice at once
    const again = spawnSync("bash", [s.submit], {
      env: { ...env, QUEUED: "1" },
      encoding: "utf8",
    });
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(
      /jobs of an earlier submit are still queued or running: 101 102 103/,
    );
    // once it has finished or been cancelled, resubmitting resumes (markers skip done tasks)
    expect(spawnSync("bash", [s.submit], { env, encoding: "utf8" }).status).toBe(0);
  });

  it("takes per-stage sbatch resources over the run-wide ones", async () => {
    const { writeSlurmScripts } = await import("./slurm.js");
    const stages = [
      { name: "signatures", tasks: 3 },
      { name: "cluster", tasks: 1 },
      { name: "pack", tasks: 3 },
    ];
    const s = await writeSlurmScripts(
      { workDir: join(dir, "slurm-stages"), stages } as unknown as Plan,
      {
        partition: "cpu",
        memPerCpu: "4G",
        time: "04:00:00",
        stages: {
          cluster: { memPerCpu: "64G", time: "12:00:00", partition: "bigmem" },
          pack: { cpusPerTask: 2 },
        },
      },
    );
    const sbatch = async (stage: string) =>
      (await readFile(s.stages.find((x) => x.stage === stage)?.script as string, "utf8"))
        .split("\n")
        .filter((l) => /^#SBATCH --(mem-per-cpu|time|cpus-per-task|partition)=/.test(l));
    expect(await sbatch("signatures")).toEqual([
      "#SBATCH --cpus-per-task=1",
      "#SBATCH --partition=cpu",
      "#SBATCH --time=04:00:00",
      "#SBATCH --mem-per-cpu=4G",
    ]);
    expect(await sbatch("cluster")).toEqual([
      "#SBATCH --cpus-per-task=1",
      "#SBATCH --partition=bigmem",
      "#SBATCH --time=12:00:00",
      "#SBATCH --mem-per-cpu=64G",
    ]);
    expect(await sbatch("pack")).toEqual([
      "#SBATCH --cpus-per-task=2",
      "#SBATCH --partition=cpu",
      "#SBATCH --time=04:00:00",
      "#SBATCH --mem-per-cpu=4G",
    ]);
  });

  it("#SBATCH lines survive sbatch's own parsing: log paths with spaces, # and %, extra lines given with #SBATCH", async () => {
    const { writeSlurmScripts } = await import("./slurm.js");
    // sbatch reads #SBATCH lines itself (src/sbatch/opt.c _get_argument): split at whitespace,
    // "..." and '...' group, backslash escapes, an unquoted # starts a comment
    const sbatchArgs = (script: string): string[] => {
      const args: string[] = [];
      for (const line of script.split("\n")) {
        if (!line.startsWith("#SBATCH")) continue;
        let i = "#SBATCH".length;
        for (let comment = false; !comment; ) {
          while (i < line.length && /\s/.test(line[i] as string)) i++;
          if (i >= line.length) break;
          let arg = "";
          let quote = "";
          for (
            let escaped = false;
            i < line.length && (quote || !/\s/.test(line[i] as string));
            i++
          ) {
            const c = line[i] as string;
            if (escaped) escaped = false;
            else if (c === "\\") {
              escaped = true;
              continue;
            } else if (quote && c === quote) {
              quote = "";
              continue;
            } else if (!quote && (c === '"' || c === "'")) {
              quote = c;
              continue;
            } else if (!quote && c === "#") {
              comment = true;
              break;
            }
            arg += c;
          }
          if (arg) args.push(arg);
        }
      }
      return args;
    };
    // slurmd's filename pattern: %% is a %, %A the array job, %a the element, %u, %j, ... expand
    const expand = (p: string) =>
      p.replace(/%(\d*)([%aAjJnNstux])/g, (_, _w, c: string) =>
        c === "%" ? "%" : c === "A" ? "7" : c === "a" ? "3" : `<${c}>`,
      );
    const work = join(dir, "my runs", "50%u #1");
    const s = await writeSlurmScripts(
      { workDir: work, stages: [{ name: "signatures", tasks: 4 }] } as unknown as Plan,
      { extra: ["#SBATCH --account=proj", "--qos=high"] },
    );
    const args = sbatchArgs(await readFile(s.stages[0]?.script as string, "utf8"));
    const output = args.filter((a) => a.startsWith("--output="));
    expect(output.map((a) => expand(a.slice("--output=".length)))).toEqual([
      join(work, "slurm", "logs", "signatures-7_3.log"),
    ]);
    expect(args).toContain("--account=proj");
    expect(args).toContain("--qos=high");
    expect(args.filter((a) => !a.startsWith("--"))).toEqual([]);
  });

  it("a failing task in an element of several names itself and the tasks it left undone; a rerun does only those", async () => {
    const cfg = await writeConfig("slurm-fail");
    await writeFile(
      cfg,
      JSON.stringify({ ...JSON.parse(await readFile(cfg, "utf8")), slurm: { maxArraySize: 2 } }),
    );
    expect(run(cfg, ["--executor", "slurm"]).status).toBe(0);
    const work = join(dir, "out-slurm-fail", ".work");
    const script = join(work, "slurm", "00-signatures.sbatch");
    expect(await readFile(script, "utf8")).toMatch(/--ranks-per-element 3$/m);
    // task 1's output folder cannot be made: element 0 (tasks 0, 1, 2) fails in its second task
    await mkdir(join(work, "signatures"), { recursive: true });
    await writeFile(join(work, "signatures", "task-00001"), "");
    const env = { ...process.env, SLURM_ARRAY_TASK_ID: "0", SLURM_ARRAY_JOB_ID: "7" };
    const failed = spawnSync("bash", [script], { env, encoding: "utf8" });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(
      /^task signatures: task 1 \(proof-pile-2: [^)]+\) failed \(not run: tasks 2\): EEXIST/m,
    );
    expect(await readdir(join(work, "done", "signatures"))).toEqual(["0"]);
    await rm(join(work, "signatures", "task-00001"));
    const again = spawnSync("bash", [script], { env, encoding: "utf8" });
    expect(again.status, again.stderr).toBe(0);
    expect((await readdir(join(work, "done", "signatures"))).sort()).toEqual(["0", "1", "2"]);
  });

  it("a task without a rank fails clearly", () => {
    const r = spawnSync(
      process.execPath,
      [
        join(dist, "task.js"),
        "--plan",
        join(dir, "out-slurm", ".work", "plan.json"),
        "--stage",
        "pack",
      ],
      {
        encoding: "utf8",
        env: { ...process.env, SLURM_ARRAY_TASK_ID: "" },
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no rank: pass --rank/);
  });
});
