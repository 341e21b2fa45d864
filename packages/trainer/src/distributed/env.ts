/**
 * Where this process sits in a distributed job, read from the launcher's environment:
 * torchrun / `pnpm train --nproc-per-node` (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT), Open MPI (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE) or
 * Slurm srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE or
 * SLURM_TASKS_PER_NODE, master = first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST).
 * The node a rank belongs to (hybrid sharding's shard group) is its host id: NCCL_HOSTID, else
 * TINYLLAMA_HOST_ID, else the hostname; different NCCL_HOSTIDs make "nodes" on one host.
 */
import { hostname } from "node:os";

export type LaunchSource = "torchrun" | "openmpi" | "slurm";

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  hostId: string;
  source: LaunchSource;
}

export class DistEnvError extends Error {
  override name = "DistEnvError";
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, min: number): number {
  const raw = env[name];
  const v = Number(raw);
  if (raw === undefined || raw.trim() === "" || !Number.isSafeInteger(v) || v < min) {
    throw new DistEnvError(
      `${name} must be an integer >= ${min}, got ${raw === undefined ? "nothing" : `"${raw}"`}`,
    );
  }
  return v;
}

/** First host of a Slurm node list: "gpu[03-05,9],cpu1" -> "gpu03". */
export function firstSlurmHost(list: string): string {
  const m = /^([^,[]+)(?:\[([^\]]+)\])?/.exec(list.trim());
  if (!m) throw new DistEnvError(`cannot read the Slurm node list "${list}"`);
  const prefix = m[1]!;
  if (!m[2]) return prefix;
  const first = m[2].split(",")[0]!.split("-")[0]!;
  return prefix + first;
}

/** Tasks on this node from SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE ("4(x2),3" -> 4). */
function slurmTasksPerNode(env: Env): number {
  const raw = env.SLURM_NTASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE;
  if (!raw)
    throw new DistEnvError(
      "under Slurm, SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE is needed (srun sets it)",
    );
  const v = Number.parseInt(raw, 10);
  if (!(v >= 1)) throw new DistEnvError(`cannot read tasks per node from "${raw}"`);
  return v;
}

function port(env: Env, fallback: number | null, how: string): number {
  if (env.MASTER_PORT === undefined || env.MASTER_PORT === "") {
    if (fallback === null) throw new DistEnvError(`MASTER_PORT is not set (${how})`);
    return fallback;
  }
  const p = int(env, "MASTER_PORT", 1);
  if (p > 65535) throw new DistEnvError(`MASTER_PORT must be at most 65535, got ${p}`);
  return p;
}

/**
 * The distributed environment, or null for a plain single-process run (no launcher variables,
 * or a world of one).
 */
export function detectDistEnv(env: Env = process.env): DistEnv | null {
  const hostId = env.NCCL_HOSTID || env.TINYLLAMA_HOST_ID || hostname();
  let d: DistEnv;
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const worldSize = int(env, "WORLD_SIZE", 1);
    const rank = int(env, "RANK", 0);
    if (!env.MASTER_ADDR)
      throw new DistEnvError("RANK/WORLD_SIZE are set but MASTER_ADDR is not (torchrun sets both)");
    d = {
      rank,
      worldSize,
      localRank: env.LOCAL_RANK !== undefined ? int(env, "LOCAL_RANK", 0) : rank,
      localWorldSize:
        env.LOCAL_WORLD_SIZE !== undefined ? int(env, "LOCAL_WORLD_SIZE", 1) : worldSize,
      masterAddr: env.MASTER_ADDR,
      masterPort: port(env, null, "torchrun sets it; or pass --master-port"),
      hostId,
      source: "torchrun",
    };
  } else if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    const worldSize = int(env, "OMPI_COMM_WORLD_SIZE", 1);
    if (worldSize > 1 && !env.MASTER_ADDR) {
      throw new DistEnvError(
        "under mpirun, MASTER_ADDR must name the host of rank 0: mpirun -x MASTER_ADDR=<host> -x MASTER_PORT=29500 ...",
      );
    }
    d = {
      rank: int(env, "OMPI_COMM_WORLD_RANK", 0),
      worldSize,
      localRank: int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0),
      localWorldSize: int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1),
      masterAddr: env.MASTER_ADDR ?? "127.0.0.1",
      masterPort: port(env, 29500, ""),
      hostId,
      source: "openmpi",
    };
  } else if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    const worldSize = int(env, "SLURM_NTASKS", 1);
    if (worldSize === 1) return null;
    const nodes = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST;
    const masterAddr = env.MASTER_ADDR || (nodes ? firstSlurmHost(nodes) : "");
    if (!masterAddr)
      throw new DistEnvError(
        "under Slurm, set MASTER_ADDR or run inside srun (SLURM_STEP_NODELIST)",
      );
    const jobId = Number(env.SLURM_JOB_ID ?? 0) || 0;
    d = {
      rank: int(env, "SLURM_PROCID", 0),
      worldSize,
      localRank: int(env, "SLURM_LOCALID", 0),
      localWorldSize: slurmTasksPerNode(env),
      masterAddr,
      // One port per job, so two jobs sharing a first node do not collide.
      masterPort: port(env, 15000 + (jobId % 20000), ""),
      hostId: env.NCCL_HOSTID || env.TINYLLAMA_HOST_ID || env.SLURMD_NODENAME || hostId,
      source: "slurm",
    };
  } else return null;
  if (d.rank >= d.worldSize) {
    throw new DistEnvError(
      `rank ${d.rank} is not below the world size ${d.worldSize} (${d.source} variables)`,
    );
  }
  if (d.localRank >= d.localWorldSize) {
    throw new DistEnvError(
      `local rank ${d.localRank} is not below the local world size ${d.localWorldSize}`,
    );
  }
  return d.worldSize === 1 ? null : d;
}
