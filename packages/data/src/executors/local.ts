/**
 * Local executor: runs each stage's pending tasks on a pool of worker processes (one per core
 * by default), stage after stage. Worker w runs ranks w, w+W, w+2W, ... of the stage and
 * reports progress over IPC. A task already marked done is skipped, so rerunning after a crash
 * (even kill -9) continues where it stopped.
 */
import { fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { type Plan, planPath } from "../pipeline/plan.js";
import { isDone, type Progress, runTask } from "../pipeline/stages.js";
import type { PipelineTokenizer } from "../pipeline/tokenizer.js";
import { ProgressPrinter, type StageProgressState } from "./progress.js";

export interface LocalOptions {
  workers?: number;
  /** Run tasks in this process one by one (tests; no child processes). */
  inProcess?: boolean;
  /** Only for inProcess: a tokenizer object to use instead of loading one. */
  tokenizer?: PipelineTokenizer;
  printer?: ProgressPrinter;
  /** The worker entry (defaults to dist/cli/task.js next to this file). */
  taskScript?: string;
}

export const defaultTaskScript = () => fileURLToPath(new URL("../cli/task.js", import.meta.url));

export interface StageReport {
  stage: string;
  ran: number;
  skipped: number;
  seconds: number;
}

export async function runLocal(plan: Plan, options: LocalOptions = {}): Promise<StageReport[]> {
  const printer = options.printer ?? new ProgressPrinter();
  const reports: StageReport[] = [];
  for (const stage of plan.stages) {
    const ranks: number[] = [];
    let skipped = 0;
    for (let r = 0; r < stage.tasks; r++) {
      if (await isDone(plan.workDir, stage.name, r)) skipped++;
      else ranks.push(r);
    }
    const perTask = stage.name === "signatures" || stage.name === "pack";
    const inputBytes = (r: number) =>
      perTask ? (plan.tasks[r]?.files.reduce((a, f) => a + f.size, 0) ?? 0) : 0;
    const state: StageProgressState = {
      stage: stage.name,
      tasksTotal: stage.tasks,
      tasksDone: skipped,
      tasksSkipped: skipped,
      docs: 0,
      bytes: 0,
      inputBytesDone: 0,
      inputBytesTotal: ranks.reduce((a, r) => a + inputBytes(r), 0),
      startedAt: performance.now(),
    };
    const live = new Map<number, Progress>();
    const finished = { docs: 0, bytes: 0, input: 0 };
    const refresh = (force = false) => {
      let docs = finished.docs;
      let bytes = finished.bytes;
      let input = finished.input;
      for (const p of live.values()) {
        docs += p.docs;
        bytes += p.bytes;
        input += p.inputBytesDone;
      }
      Object.assign(state, { docs, bytes, inputBytesDone: input });
      printer.update(state, force);
    };
    const onProgress = (rank: number, p: Progress) => {
      live.set(rank, p);
      refresh();
    };
    const onDone = (rank: number) => {
      const p = live.get(rank);
      live.delete(rank);
      finished.docs += p?.docs ?? 0;
      finished.bytes += p?.bytes ?? 0;
      finished.input += inputBytes(rank);
      state.tasksDone++;
      refresh();
    };
    const t0 = performance.now();
    if (ranks.length > 0) {
      if (options.inProcess) {
        for (const r of ranks) {
          await runTask(plan, stage.name, r, (p) => onProgress(r, p), options.tokenizer);
          onDone(r);
        }
      } else {
        const workers = Math.max(
          1,
          Math.min(options.workers ?? availableParallelism(), ranks.length),
        );
        const script = options.taskScript ?? defaultTaskScript();
        await Promise.all(
          Array.from({ length: workers }, (_, w) => {
            const mine = ranks.filter((_, i) => i % workers === w);
            return runWorker(script, planPath(plan.workDir), stage.name, mine, onProgress, onDone);
          }),
        );
      }
    }
    printer.end(state);
    reports.push({
      stage: stage.name,
      ran: ranks.length,
      skipped,
      seconds: (performance.now() - t0) / 1000,
    });
  }
  return reports;
}

function runWorker(
  script: string,
  plan: string,
  stage: string,
  ranks: number[],
  onProgress: (rank: number, p: Progress) => void,
  onDone: (rank: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = fork(script, ["--plan", plan, "--stage", stage, "--ranks", ranks.join(",")], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child.on("message", (m: { type: string; rank: number; progress?: Progress }) => {
      if (m.type === "progress" && m.progress) onProgress(m.rank, m.progress);
      else if (m.type === "done") onDone(m.rank);
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `stage ${stage}: worker for tasks ${ranks.join(",")} exited with ${code ?? signal}; rerun to resume`,
          ),
        );
    });
  });
}

/** Used by cli/task.ts: run the given ranks of a stage in this process, reporting over IPC. */
export async function runRanks(
  plan: Plan,
  stage: Plan["stages"][number]["name"],
  ranks: number[],
): Promise<void> {
  for (const rank of ranks) {
    await runTask(plan, stage, rank, (progress) =>
      process.send?.({ type: "progress", rank, progress }),
    );
    process.send?.({ type: "done", rank });
  }
}
