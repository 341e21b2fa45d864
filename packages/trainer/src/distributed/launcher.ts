/**
 * `pnpm train --nproc-per-node N`: starts N ranks of this node as child processes with the
 * variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT; TINYLLAMA_CUDA_DEVICE = local rank), forwards SIGINT/SIGTERM to them, prefixes
 * the output of ranks other than 0 with "[rank r]", and watches them: when one exits with an
 * error or is killed, it says which, stops the others (SIGTERM, then SIGKILL after a grace
 * period) and exits non-zero. Each rank reports over an IPC channel when it is about to take
 * its first step, so the caller can tell a failure a rerun resumes from (after that) from one it
 * would repeat (bad data, a usage error, a failed rendezvous). A rank notices the launcher's
 * death by that channel closing (also after SIGKILL) and exits at once without writing anything
 * more (train-command.ts), so no orphaned rank trains beside a rerun. Several nodes: run it on each with
 * --nnodes, --node-rank and the same --master-addr/--master-port, as with torchrun.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { freeRendezvousPort } from "@tinyllama/kernels/collectives";
import { EXIT_DISK_FULL } from "../checkpoint/store.js";
import { EXIT_NOT_FINITE } from "../train/trainer.js";

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** null: a free port on one node, 29500 across nodes. */
  masterPort: number | null;
  /** What each rank runs: node arguments (script and its flags). */
  command: readonly string[];
  env?: NodeJS.ProcessEnv;
  log: (line: string) => void;
  /** Output of the ranks (rank 0's stdout unprefixed). */
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** SIGTERM -> SIGKILL grace for the other ranks when one fails; default 10 s. */
  graceMs?: number;
}

export interface LaunchResult {
  exitCode: number;
  /** The first rank that failed, with how. */
  failed: { rank: number; how: string } | null;
  /**
   * Whether some rank reported TRAINING_STARTED (it passed every check and loaded its state)
   * before the failure: only then is there progress that rerunning the command resumes.
   */
  trainingStarted: boolean;
  /** Whether some rank exited with EXIT_DISK_FULL (a checkpoint did not fit): rerunning fails again. */
  diskFull: boolean;
  /**
   * Whether some rank exited with EXIT_NOT_FINITE (--max-bad-steps NaN/inf steps in a row):
   * rerunning as is repeats the same steps, since a resume is exact.
   */
  notFinite: boolean;
}

/** What a rank sends over the IPC channel when it is about to take its first step. */
export const TRAINING_STARTED = "tinyllama:training-started";

export async function launchLocalRanks(o: LaunchOptions): Promise<LaunchResult> {
  const N = o.nprocPerNode;
  if (!Number.isInteger(N) || N < 1)
    throw new Error(`--nproc-per-node must be a positive integer, got ${N}`);
  if (!Number.isInteger(o.nnodes) || o.nnodes < 1)
    throw new Error(`--nnodes must be a positive integer, got ${o.nnodes}`);
  if (!Number.isInteger(o.nodeRank) || o.nodeRank < 0 || o.nodeRank >= o.nnodes) {
    throw new Error(`--node-rank must be in [0, ${o.nnodes}), got ${o.nodeRank}`);
  }
  if (
    o.masterPort !== null &&
    !(Number.isInteger(o.masterPort) && o.masterPort >= 1 && o.masterPort <= 65535)
  ) {
    throw new Error(`--master-port must be a TCP port in 1-65535, got ${o.masterPort}`);
  }
  const port = o.masterPort ?? (o.nnodes === 1 ? await freeRendezvousPort(o.masterAddr) : 29500);
  const worldSize = N * o.nnodes;
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = o.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  o.log(
    `launcher: ${N} rank(s) on node ${o.nodeRank} of ${o.nnodes} (world size ${worldSize}), rendezvous at ${o.masterAddr}:${port}`,
  );
  const children: (ChildProcess | null)[] = [];
  let failed: LaunchResult["failed"] = null;
  let trainingStarted = false;
  let diskFull = false;
  let notFinite = false;
  let running = N;
  let killTimer: NodeJS.Timeout | null = null;
  const stopOthers = (signal: NodeJS.Signals) => {
    for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  const result = new Promise<LaunchResult>((resolve) => {
    for (let local = 0; local < N; local++) {
      const rank = o.nodeRank * N + local;
      const env: NodeJS.ProcessEnv = {
        ...(o.env ?? process.env),
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(N),
        GROUP_RANK: String(o.nodeRank),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(port),
        TINYLLAMA_LAUNCHED: "1",
        NCCL_NVLS_ENABLE: (o.env ?? process.env).NCCL_NVLS_ENABLE ?? "0",
      };
      if ((o.env ?? process.env).TINYLLAMA_CUDA_DEVICE === undefined)
        env.TINYLLAMA_CUDA_DEVICE = String(local);
      // An IPC channel beside the pipes: ranks say when training starts (TRAINING_STARTED).
      const child = spawn(process.execPath, [...o.command], {
        env,
        stdio: ["ignore", "pipe", "pipe", "ipc"],
      });
      children.push(child);
      child.on("message", (m) => {
        if (m === TRAINING_STARTED) trainingStarted = true;
      });
      o.log(`launcher: rank ${rank} is pid ${child.pid}`);
      createInterface({ input: child.stdout! }).on("line", (l) =>
        out(rank === 0 ? l : `[rank ${rank}] ${l}`),
      );
      createInterface({ input: child.stderr! }).on("line", (l) => err(`[rank ${rank}] ${l}`));
      child.on("exit", (code, signal) => {
        running--;
        if (code === EXIT_DISK_FULL) diskFull = true;
        if (code === EXIT_NOT_FINITE) notFinite = true;
        if ((code !== 0 || signal) && !failed) {
          const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          failed = { rank, how };
          o.log(`launcher: rank ${rank} (pid ${child.pid}) ${how}; stopping the other ranks`);
          stopOthers("SIGTERM");
          killTimer = setTimeout(() => stopOthers("SIGKILL"), o.graceMs ?? 10_000);
        }
        if (running === 0) {
          if (killTimer) clearTimeout(killTimer);
          process.off("SIGINT", forward);
          process.off("SIGTERM", forward);
          resolve({ exitCode: failed ? 1 : 0, failed, trainingStarted, diskFull, notFinite });
        }
      });
    }
  });
  let forwarded = 0;
  const forward = (sig: NodeJS.Signals) => {
    forwarded++;
    o.log(
      `launcher: ${sig} -> all ranks${forwarded > 1 ? " (again: they exit now)" : " (they checkpoint, then exit)"}`,
    );
    stopOthers(forwarded > 1 ? "SIGKILL" : sig);
  };
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return result;
}

/** Flags the launcher consumes; everything else goes to every rank unchanged. */
export const LAUNCHER_FLAGS = [
  "nproc-per-node",
  "nnodes",
  "node-rank",
  "master-addr",
  "master-port",
] as const;

/** argv without the launcher's own flags (both `--flag value` and `--flag=value`). */
export function stripLauncherFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith("--") ? a.slice(2).split("=")[0]! : "";
    if ((LAUNCHER_FLAGS as readonly string[]).includes(name)) {
      if (!a.includes("=")) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}
