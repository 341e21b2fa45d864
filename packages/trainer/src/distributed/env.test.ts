/**
 * Launch environments (torchrun / the launcher, Slurm, Open MPI) into ranks, node layouts for
 * hybrid sharding, the launcher's flag stripping, and the CLI's refusals of impossible setups.
 */
import { describe, expect, it } from "vitest";
import { trainCommand } from "../cli/train-command.js";
import { DistEnvError, detectDistEnv, firstSlurmHost } from "./env.js";
import { stripLauncherFlags } from "./launcher.js";
import { nodeLayout } from "./world.js";

describe("detectDistEnv", () => {
  it("torchrun variables", () => {
    const d = detectDistEnv({
      RANK: "5",
      WORLD_SIZE: "8",
      LOCAL_RANK: "1",
      LOCAL_WORLD_SIZE: "4",
      MASTER_ADDR: "node0",
      MASTER_PORT: "29500",
      NCCL_HOSTID: "rack1-node1",
    });
    expect(d).toEqual({
      rank: 5,
      worldSize: 8,
      localRank: 1,
      localWorldSize: 4,
      masterAddr: "node0",
      masterPort: 29500,
      hostId: "rack1-node1",
      source: "torchrun",
    });
  });

  it("Slurm: first host of a compressed node list, tasks per node, a per-job port", () => {
    expect(firstSlurmHost("gpu[03-05,9],cpu1")).toBe("gpu03");
    expect(firstSlurmHost("node7")).toBe("node7");
    const d = detectDistEnv({
      SLURM_PROCID: "6",
      SLURM_NTASKS: "8",
      SLURM_LOCALID: "2",
      SLURM_TASKS_PER_NODE: "4(x2)",
      SLURM_STEP_NODELIST: "gpu[12-13]",
      SLURM_JOB_ID: "123456",
      SLURMD_NODENAME: "gpu13",
    });
    expect(d).toMatchObject({
      rank: 6,
      worldSize: 8,
      localRank: 2,
      localWorldSize: 4,
      masterAddr: "gpu12",
      hostId: "gpu13",
    });
    expect(d!.masterPort).toBe(15000 + (123456 % 20000));
    // One task: not distributed.
    expect(detectDistEnv({ SLURM_PROCID: "0", SLURM_NTASKS: "1" })).toBeNull();
  });

  it("Open MPI needs MASTER_ADDR", () => {
    const env = {
      OMPI_COMM_WORLD_RANK: "1",
      OMPI_COMM_WORLD_SIZE: "2",
      OMPI_COMM_WORLD_LOCAL_RANK: "1",
      OMPI_COMM_WORLD_LOCAL_SIZE: "2",
    };
    expect(() => detectDistEnv(env)).toThrow(/mpirun -x MASTER_ADDR=<host>/);
    expect(detectDistEnv({ ...env, MASTER_ADDR: "h0" })).toMatchObject({
      rank: 1,
      worldSize: 2,
      masterPort: 29500,
      source: "openmpi",
    });
  });

  it("nothing set, or a world of one: a plain run", () => {
    expect(detectDistEnv({})).toBeNull();
    expect(
      detectDistEnv({ RANK: "0", WORLD_SIZE: "1", MASTER_ADDR: "x", MASTER_PORT: "1" }),
    ).toBeNull();
  });

  it("bad variables fail with the variable named", () => {
    const base = { MASTER_ADDR: "h", MASTER_PORT: "29500" };
    expect(() => detectDistEnv({ ...base, RANK: "4", WORLD_SIZE: "4" })).toThrow(
      /rank 4 is not below the world size 4/,
    );
    expect(() => detectDistEnv({ ...base, RANK: "x", WORLD_SIZE: "4" })).toThrow(
      /RANK must be an integer >= 0, got "x"/,
    );
    expect(() => detectDistEnv({ RANK: "0", WORLD_SIZE: "2" })).toThrow(/MASTER_ADDR is not/);
    expect(() => detectDistEnv({ RANK: "0", WORLD_SIZE: "2", MASTER_ADDR: "h" })).toThrow(
      /MASTER_PORT is not set/,
    );
    expect(() =>
      detectDistEnv({ ...base, RANK: "0", WORLD_SIZE: "2", MASTER_PORT: "70000" }),
    ).toThrow(DistEnvError);
  });
});

describe("node layout and launcher flags", () => {
  it("groups ranks by host id and refuses uneven nodes for hybrid sharding", () => {
    expect(nodeLayout(["a", "a", "b", "b"])).toEqual({
      node: [0, 0, 1, 1],
      local: [0, 1, 0, 1],
      nodes: 2,
      perNode: 2,
    });
    expect(nodeLayout(["a", "b", "a", "b"])).toEqual({
      node: [0, 1, 0, 1],
      local: [0, 0, 1, 1],
      nodes: 2,
      perNode: 2,
    });
    expect(() => nodeLayout(["a", "a", "b"])).toThrow(
      /same number of ranks on every node; got a: 2, b: 1/,
    );
  });

  it("strips the launcher's flags in both spellings and keeps the rest", () => {
    expect(
      stripLauncherFlags([
        "--nproc-per-node",
        "4",
        "--stage",
        "basic",
        "--nnodes=2",
        "--master-port",
        "1",
        "--sharding",
        "hybrid",
      ]),
    ).toEqual(["--stage", "basic", "--sharding", "hybrid"]);
  });

  it("the CLI refuses launcher flags without --nproc-per-node", async () => {
    await expect(trainCommand(["--nnodes", "2"], { log: () => {} })).rejects.toThrow(
      /--nnodes goes with --nproc-per-node/,
    );
  });
});
