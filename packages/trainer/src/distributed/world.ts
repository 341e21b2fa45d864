/**
 * Joins the distributed job described by the environment: the transport (NCCL on the CUDA
 * backend when the addon has it, TCP otherwise or when TINYLLAMA_DIST_TRANSPORT=tcp), the world
 * communicator, and the sharding groups. Hybrid sharding groups ranks into nodes by host id
 * (NCCL_HOSTID / TINYLLAMA_HOST_ID / hostname, exchanged at the rendezvous): the shard group is
 * the node, the replica group the ranks at the same position on every node.
 */
import {
  NcclWorld,
  ncclAvailability,
  TcpWorld,
  type WorldInfo,
} from "@tinyllama/kernels/collectives";
import type { Backend } from "../model/kernels.js";
import { agreeOnSettings, type Setting } from "./agree.js";
import type { DistEnv } from "./env.js";
import type { ShardGroups, ShardingMode } from "./sharded.js";

export interface DistributedJob extends ShardGroups {
  env: DistEnv;
  transport: "tcp" | "nccl";
  nodes: number;
  /** Ranks per node (hybrid shard group size). */
  ranksPerNode: number;
  /** Registers a callback for the first failure (peer death, timeout). */
  onFailure(listener: (e: Error) => void): void;
  /** Ends a successful run: waits for every rank (so no rank sees the others leave as a failure), then closes. */
  shutdown(): Promise<void>;
  /** Closes at once (error paths). */
  close(): void;
}

/** Node index and position inside the node of every rank, from the host ids. */
export function nodeLayout(hostIds: readonly string[]): {
  node: number[];
  local: number[];
  nodes: number;
  perNode: number;
} {
  const order: string[] = [];
  const node: number[] = [];
  const local: number[] = [];
  const counts = new Map<string, number>();
  for (const h of hostIds) {
    if (!order.includes(h)) order.push(h);
    node.push(order.indexOf(h));
    const c = counts.get(h) ?? 0;
    local.push(c);
    counts.set(h, c + 1);
  }
  const sizes = order.map((h) => counts.get(h)!);
  if (new Set(sizes).size > 1) {
    throw new Error(
      `hybrid sharding needs the same number of ranks on every node; got ${order.map((h, i) => `${h}: ${sizes[i]}`).join(", ")}`,
    );
  }
  return { node, local, nodes: order.length, perNode: sizes[0] ?? 1 };
}

export async function joinDistributed(
  backend: Backend,
  env: DistEnv,
  mode: ShardingMode,
  opts: {
    timeoutMs?: number;
    connectTimeoutMs?: number;
    /**
     * Settings every rank must share, checked right after the rendezvous (before the hybrid
     * split, whose collectives a rank of another --sharding would not issue); see agree.ts.
     */
    settings?: readonly Setting[];
    /** A directory every rank must see (--out): rank 0 writes a file there, the others look. */
    sharedDir?: string;
    /** Where the rendezvous says, every 30 s at most, for whom it still waits. */
    log?: (line: string) => void;
  } = {},
): Promise<DistributedJob> {
  const forced = process.env.TINYLLAMA_DIST_TRANSPORT;
  if (forced !== undefined && forced !== "tcp" && forced !== "nccl") {
    throw new Error(`TINYLLAMA_DIST_TRANSPORT must be "tcp" or "nccl", got "${forced}"`);
  }
  const nccl = backend.name === "cuda" ? ncclAvailability() : null;
  const transport = forced ?? (nccl?.available ? "nccl" : "tcp");
  if (transport === "nccl" && backend.name !== "cuda") {
    throw new Error("TINYLLAMA_DIST_TRANSPORT=nccl needs the cuda backend");
  }
  const worldOpts = {
    rank: env.rank,
    worldSize: env.worldSize,
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    hostId: env.hostId,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.log ? { onWaiting: opts.log } : {}),
  };
  let info: WorldInfo;
  let world: ShardGroups["world"];
  let close: () => void;
  let shutdown: () => Promise<void>;
  let onFailure: (l: (e: Error) => void) => void;
  if (transport === "nccl") {
    const w = await NcclWorld.connect(backend, worldOpts);
    info = w.tcp.info;
    world = w.comm;
    close = () => w.close();
    shutdown = () => w.shutdown();
    onFailure = (l) => w.tcp.onFailure(l);
  } else {
    const w = await TcpWorld.connect(worldOpts);
    info = w.info;
    world = w.communicator();
    close = () => w.close();
    shutdown = async () => {
      await world.flush();
      w.beginShutdown();
      await world.barrier();
      w.close();
    };
    onFailure = (l) => w.onFailure(l);
  }
  if (opts.settings || opts.sharedDir) {
    try {
      await agreeOnSettings(world, info.hostIds, opts.settings ?? [], opts.sharedDir);
    } catch (e) {
      close();
      throw e;
    }
  }
  const layout = nodeLayout(info.hostIds);
  let shard = world;
  let replica: ShardGroups["replica"] = null;
  if (mode === "hybrid" && layout.nodes > 1) {
    shard = await world.split(layout.node[env.rank]!, env.rank);
    replica = await world.split(layout.local[env.rank]!, env.rank);
  }
  return {
    env,
    transport,
    world,
    shard,
    replica,
    mode,
    nodes: layout.nodes,
    ranksPerNode: layout.perNode,
    onFailure,
    close,
    shutdown,
  };
}
