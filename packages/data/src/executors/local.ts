/**
 * Local executor: runs each stage's pending tasks on a pool of worker processes (one per core
 * by default), stage after stage. Worker w runs ranks w, w+W, w+2W, ... of the stage and
 * reports progress over IPC. A task already marked done is skipped, so rerunning after a crash
 * (even kill -9) continues where it stopped.
 */
import { type ChildProcess, fork } from "node:child_process";
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
        // without a message for a while (a long task, a hung or stopped worker) the line is
        // still printed every interval: a stall shows as a growing elapsed time
        const tick = setInterval(() => refresh(), 1000);
        tick.unref();
        try {
          await runPool(
            script,
            planPath(plan.workDir),
            stage.name,
            Array.from({ length: workers }, (_, w) => ranks.filter((_, i) => i % workers === w)),
            onProgress,
            onDone,
            (r) => describeTask(plan, stage.name, r),
            () => `${state.tasksDone - state.tasksSkipped} of ${ranks.length} tasks run`,
          );
        } catch (err) {
          printer.end(state);
          throw err;
        } finally {
          clearInterval(tick);
        }
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

/** "task 3 (slimpajama: train/chunk1/a.jsonl.zst)" for the stages with input files, else "task 3". */
export function describeTask(plan: Plan, stage: string, rank: number): string {
  const t = stage === "signatures" || stage === "pack" ? plan.tasks[rank] : undefined;
  return t
    ? `task ${rank} (${t.source}: ${t.files.map((f) => f.path).join(", ")})`
    : `task ${rank}`;
}

interface WorkerMessage {
  type: string;
  rank: number;
  progress?: Progress;
}

/**
 * One worker process per group of ranks. The first worker to fail (non-zero status, a signal,
 * a failed fork) fails the stage: the others are killed (every task is safe to kill, and a
 * rerun redoes only unfinished ones) and waited for, so that no worker outlives the stage, and
 * the error says which task was running and how the worker ended.
 */
async function runPool(
  script: string,
  plan: string,
  stage: string,
  groups: number[][],
  onProgress: (rank: number, p: Progress) => void,
  onDone: (rank: number) => void,
  describe: (rank: number) => string,
  doneSoFar: () => string,
): Promise<void> {
  const children: ChildProcess[] = [];
  let failure: Error | undefined;
  const fail = (err: Error) => {
    if (failure) return;
    failure = err;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  };
  await Promise.all(
    groups.map(
      (ranks, w) =>
        new Promise<void>((resolve) => {
          const child = fork(
            script,
            ["--plan", plan, "--stage", stage, "--ranks", ranks.join(",")],
            { stdio: ["ignore", "inherit", "inherit", "ipc"] },
          );
          children.push(child);
          let current: number | undefined;
          child.on("message", (m: WorkerMessage) => {
            if (m.type === "start") current = m.rank;
            else if (m.type === "progress" && m.progress) onProgress(m.rank, m.progress);
            else if (m.type === "done") {
              current = undefined;
              onDone(m.rank);
            }
          });
          child.on("error", (err) => {
            fail(new Error(`stage ${stage}: worker ${w}: ${err.message}; rerun to resume`));
            resolve();
          });
          child.on("exit", (code, signal) => {
            if (code !== 0 && !failure) {
              const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
              const during =
                current !== undefined ? `during ${describe(current)}` : "between tasks";
              fail(
                new Error(
                  `stage ${stage}: worker ${w} (pid ${child.pid}, tasks ${ranks.join(",")}) ${how} ${during}; ` +
                    `stopped the other workers (${doneSoFar()}); rerun to resume`,
                ),
              );
            }
            resolve();
          });
        }),
    ),
  );
  if (failure) throw failure;
}

/** Used by cli/task.ts: run the given ranks of a stage in this process, reporting over IPC. */
export async function runRanks(
  plan: Plan,
  stage: Plan["stages"][number]["name"],
  ranks: number[],
  onStart?: (rank: number) => void,
): Promise<void> {
  // the coordinator is gone (killed, even with -9, or interrupted): stop rather than run on
  // as an orphan; the task is redone by the next run, like one killed mid-write
  const gone = () => {
    console.error(
      `task ${stage}: data:prepare (the coordinating process) is gone; stopping (rerun to resume)`,
    );
    process.exit(1);
  };
  if (process.send) {
    if (!process.connected) gone();
    process.on("disconnect", gone);
  }
  // a message the closing channel cannot take is no error of the task: disconnect handles it.
  // A busy task may reach the event loop's I/O phase (and the 'disconnect' event) only
  // seconds later: a new parent process id (the orphan's reaper) says so at once.
  const parent = process.ppid;
  const send = (m: WorkerMessage) => {
    if (process.connected && process.ppid !== parent) gone();
    if (process.connected) process.send?.(m, undefined, undefined, () => {});
  };
  try {
    for (const rank of ranks) {
      onStart?.(rank);
      send({ type: "start", rank });
      await runTask(plan, stage, rank, (progress) => send({ type: "progress", rank, progress }));
      send({ type: "done", rank });
    }
  } finally {
    // a 'disconnect' listener keeps the IPC channel, and so this process, alive
    process.off("disconnect", gone);
  }
}
