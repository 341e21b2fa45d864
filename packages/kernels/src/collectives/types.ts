/**
 * The collectives interface shared by both transports: a TCP one between processes on one host
 * or several (any backend; tensors are staged through host memory) and NCCL on the CUDA backend.
 * Semantics are the same on both (NCCL's): in/out tensors of one float dtype, sum or avg, the
 * in-place forms NCCL allows, ranks numbered inside a group. Every call returns a promise; on
 * NCCL it resolves once the work is enqueued on the communication stream (ordered before later
 * compute by a stream event), on TCP once the data has arrived. `flush()` waits for everything
 * issued so far, with the collective timeout, and is the only host synchronisation needed.
 */
import type { Tensor } from "../tensor.js";

export type ReduceOp = "sum" | "avg";

export type TransportName = "tcp" | "nccl";

export interface AllReduceOptions {
  /** As for `reduce`: later compute is not ordered after it (NCCL); `join()` before reading. */
  overlap?: boolean;
  /**
   * Another communicator of the same transport: the all-reduce starts once the collectives
   * issued so far on `after` are done (instead of after the compute issued so far), e.g. the
   * replica all-reduce of a piece the shard group has just reduced.
   */
  after?: Communicator;
}

export interface Communicator {
  readonly transport: TransportName;
  /** This process's rank inside the group, 0..size-1. */
  readonly rank: number;
  readonly size: number;
  /** Global ranks of the group's members, in group-rank order. */
  readonly members: readonly number[];
  /**
   * In place: every rank ends with the reduction over ranks of `t`. f32 or bf16. Deterministic
   * for a given group size (TCP: ring order; each partial sum rounded to the dtype).
   * avg = each input pre-multiplied by 1/size (rounded to the dtype), then summed, as NCCL does.
   */
  allReduce(t: Tensor, op?: ReduceOp, opts?: AllReduceOptions): Promise<void>;
  /**
   * out = chunk `rank` of the reduction of `input` (input.numel = size * out.numel). `out` may be
   * the view of `input` at offset rank * out.numel (in place).
   */
  reduceScatter(out: Tensor, input: Tensor, op?: ReduceOp): Promise<void>;
  /**
   * out = the inputs of all ranks, concatenated in rank order (out.numel = size * input.numel).
   * `input` may be the view of `out` at offset rank * input.numel (in place).
   */
  allGather(out: Tensor, input: Tensor): Promise<void>;
  /** t on every rank = t on group rank `root`. */
  broadcast(t: Tensor, root: number): Promise<void>;
  /**
   * In place: group rank `root` ends with the reduction over ranks of `t`; the others' `t` is
   * left as it was. Sums in the order reduce-scatter uses for the chunk `root` owns (TCP:
   * t[root+1] + t[root+2] + ... + t[root]), so reducing the pieces of a buffer to their owners
   * gives the bits one reduce-scatter would. With `overlap`, NCCL does not order later compute
   * after this collective (it runs beside it); call `join()` before compute reads the result.
   */
  reduce(t: Tensor, root: number, op?: ReduceOp, opts?: { overlap?: boolean }): Promise<void>;
  /** Orders compute issued from now on after every collective issued so far (see `reduce`). */
  join(): Promise<void>;
  /**
   * Reduces a few host numbers (losses, norms, flags) in float64, in group-rank order: the same
   * bits on every rank. `op` "max" helps with flags ("any rank asked to stop").
   */
  allReduceHost(values: Float64Array | number[], op?: "sum" | "max"): Promise<Float64Array>;
  /** Waits for all issued collectives (NCCL: the communication stream) within the timeout. */
  flush(): Promise<void>;
  barrier(): Promise<void>;
  /**
   * Splits this communicator (a collective: every rank calls it, in the same order as its other
   * collectives): ranks giving the same `color` form one group, ordered by `key` then rank, as
   * `ncclCommSplit`. Hybrid sharding uses it twice: color = node (shard group) and color =
   * index inside the node (replica group).
   */
  split(color: number, key?: number): Promise<Communicator>;
  /** Closes connections (the whole world when called on the world communicator). */
  close(): void;
}

/** A collective failed: a peer died, hung past the timeout, or called another collective. */
export class CollectiveError extends Error {
  override name = "CollectiveError";
  /** Global ranks blamed (dead, silent or mismatched), when known. */
  readonly ranks: number[];
  constructor(message: string, ranks: number[] = []) {
    super(message);
    this.ranks = ranks;
  }
}

/** Collective timeout in ms: TINYLLAMA_DIST_TIMEOUT (seconds), default 300 s. */
export function defaultCollectiveTimeoutMs(): number {
  return secondsFromEnv("TINYLLAMA_DIST_TIMEOUT", 300);
}

/**
 * How long the rendezvous and mesh set-up wait for every rank, in ms:
 * TINYLLAMA_RENDEZVOUS_TIMEOUT (seconds), default 600 s, torchrun's join timeout (nodes of a
 * Slurm job can start minutes apart while containers are pulled).
 */
export function defaultRendezvousTimeoutMs(): number {
  return secondsFromEnv("TINYLLAMA_RENDEZVOUS_TIMEOUT", 600);
}

function secondsFromEnv(name: string, defaultSeconds: number): number {
  const env = process.env[name];
  if (env !== undefined && env !== "") {
    const s = Number(env);
    if (!Number.isFinite(s) || s <= 0) {
      throw new Error(`${name} must be a positive number of seconds, got "${env}"`);
    }
    return s * 1000;
  }
  return defaultSeconds * 1000;
}
