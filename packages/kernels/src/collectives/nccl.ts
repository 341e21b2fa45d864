/**
 * The NCCL transport of the CUDA backend (native/cuda/comm_nccl.cu, built only where nccl.h and
 * libnccl are found). Rank 0 creates the NCCL unique id; the TCP rendezvous hands it to every
 * rank; the TCP mesh stays up beside NCCL as the failure channel (a dead peer is seen there at
 * once, and the NCCL communicators are aborted instead of hanging) and carries the small host
 * reductions (losses, norms, flags). Collectives run on a communication stream of their own,
 * after the compute stream's work issued so far, and the compute stream waits for them (an
 * event, no host round trip). A native watchdog aborts a communicator whose work has been
 * pending longer than the collective timeout or that reports an asynchronous error, so a
 * blocking call on the compute stream returns. NVLink multicast (NVLS) stays off.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { defaultBuildDir } from "../loader.js";
import type { NativeTensor } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { Backend } from "../types.js";
import { type TcpCommunicator, TcpWorld, type TcpWorldOptions } from "./tcp.js";
import {
  type AllReduceOptions,
  CollectiveError,
  type Communicator,
  defaultCollectiveTimeoutMs,
  defaultRendezvousTimeoutMs,
  type ReduceOp,
} from "./types.js";

/** The native NCCL surface (present on the CUDA addon when it was built with NCCL). */
interface NcclAddon {
  ncclVersion(): number;
  ncclGetUniqueId(): Uint8Array;
  /** Non-blocking init; poll ncclState until "ready". */
  ncclCommInitRank(id: Uint8Array, nranks: number, rank: number, timeoutMs: number): object;
  ncclCommSplit(comm: object, color: number, key: number): object;
  /** "ready" | "pending" | an error message. */
  ncclState(comm: object): string;
  ncclAllReduce(
    comm: object,
    send: NativeTensor,
    recv: NativeTensor,
    op: string,
    deferWait?: boolean,
    after?: object,
  ): void;
  ncclReduceScatter(comm: object, send: NativeTensor, recv: NativeTensor, op: string): void;
  ncclAllGather(comm: object, send: NativeTensor, recv: NativeTensor): void;
  ncclBroadcast(comm: object, send: NativeTensor, recv: NativeTensor, root: number): void;
  ncclReduce(
    comm: object,
    send: NativeTensor,
    recv: NativeTensor,
    op: string,
    root: number,
    deferWait: boolean,
  ): void;
  ncclJoin(comm: object): void;
  ncclAbort(comm: object, reason: string): void;
  ncclDestroy(comm: object): void;
}

export interface NcclAvailability {
  available: boolean;
  reason: string;
  version: string | null;
}

function ncclAddon(buildDir = defaultBuildDir()): { addon: NcclAddon | null; reason: string } {
  const manifest = join(buildDir, "backends.json");
  if (!existsSync(manifest))
    return { addon: null, reason: `${manifest} is missing (the addon is not built)` };
  const m = JSON.parse(readFileSync(manifest, "utf8")) as {
    cuda: boolean;
    nccl?: boolean;
    ncclReason?: string;
  };
  if (!m.cuda) return { addon: null, reason: "the CUDA backend was not built" };
  if (!m.nccl)
    return { addon: null, reason: m.ncclReason || "the CUDA backend was built without NCCL" };
  const addon = createRequire(import.meta.url)(
    join(buildDir, "tinyllama_cuda.node"),
  ) as Partial<NcclAddon>;
  if (typeof addon.ncclGetUniqueId !== "function") {
    return { addon: null, reason: "the CUDA addon has no NCCL entry points (rebuild it)" };
  }
  return { addon: addon as NcclAddon, reason: "" };
}

/** Whether NCCL collectives can be used with this build (without starting anything). */
export function ncclAvailability(buildDir?: string): NcclAvailability {
  const { addon, reason } = ncclAddon(buildDir);
  if (!addon) return { available: false, reason, version: null };
  const v = addon.ncclVersion();
  return {
    available: true,
    reason: "",
    version: `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`,
  };
}

const POLL_MS = 1;

async function waitReady(
  addon: NcclAddon,
  comm: object,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const s = addon.ncclState(comm);
    if (s === "ready") return;
    if (s !== "pending") throw new CollectiveError(`${what}: ${s}`);
    if (Date.now() - t0 > timeoutMs) {
      addon.ncclAbort(comm, `${what} timed out`);
      throw new CollectiveError(
        `${what} timed out after ${timeoutMs / 1000}s (a rank did not join?)`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The TCP side channel and the NCCL world communicator, set up together. */
export class NcclWorld {
  readonly tcp: TcpWorld;
  readonly comm: NcclCommunicator;

  private constructor(tcp: TcpWorld, comm: NcclCommunicator) {
    this.tcp = tcp;
    this.comm = comm;
  }

  static async connect(backend: Backend, o: TcpWorldOptions): Promise<NcclWorld> {
    if (backend.name !== "cuda")
      throw new Error(`NCCL needs the cuda backend, got ${backend.name}`);
    const { addon, reason } = ncclAddon();
    if (!addon)
      throw new Error(
        `NCCL collectives are not available: ${reason}. Use the tcp transport, or rebuild where nccl.h and libnccl are installed`,
      );
    // NVLink multicast stays off on these machines (and by default here): NVLS reserves memory
    // and has hung multi-process jobs; keep whatever the machine set.
    process.env.NCCL_NVLS_ENABLE ??= "0";
    const timeoutMs = o.timeoutMs ?? defaultCollectiveTimeoutMs();
    const id = o.rank === 0 ? Buffer.from(addon.ncclGetUniqueId()).toString("base64") : "";
    const tcp = await TcpWorld.connect({ ...o, rootPayload: id });
    const uniqueId = new Uint8Array(Buffer.from(tcp.info.rootPayload, "base64"));
    const handle = addon.ncclCommInitRank(uniqueId, o.worldSize, o.rank, timeoutMs);
    const comm = new NcclCommunicator(addon, handle, tcp.communicator(), timeoutMs);
    tcp.onFailure((e) => comm.abortAll(e.message));
    await waitReady(
      addon,
      handle,
      `ncclCommInitRank (rank ${o.rank} of ${o.worldSize})`,
      o.connectTimeoutMs ?? defaultRendezvousTimeoutMs(),
    );
    return new NcclWorld(tcp, comm);
  }

  /** A clean exit: waits for the NCCL work and every rank, then destroys the communicators. */
  async shutdown(): Promise<void> {
    await this.comm.flush();
    this.tcp.beginShutdown();
    await this.comm.host.barrier();
    this.close();
  }

  close(): void {
    this.comm.close();
    this.tcp.close();
  }
}

export class NcclCommunicator implements Communicator {
  readonly transport = "nccl" as const;
  readonly rank: number;
  readonly size: number;
  readonly members: readonly number[];
  private readonly addon: NcclAddon;
  private readonly handle: object;
  /** The TCP group with the same members: host reductions and failure detection. */
  readonly host: TcpCommunicator;
  private readonly timeoutMs: number;
  private readonly children: NcclCommunicator[] = [];
  private closed = false;

  constructor(addon: NcclAddon, handle: object, host: TcpCommunicator, timeoutMs: number) {
    this.addon = addon;
    this.handle = handle;
    this.host = host;
    this.rank = host.rank;
    this.size = host.size;
    this.members = host.members;
    this.timeoutMs = timeoutMs;
  }

  private check(): void {
    if (this.host.world.failure) throw this.host.world.failure;
    const s = this.addon.ncclState(this.handle);
    if (s !== "ready" && s !== "pending") throw new CollectiveError(`NCCL: ${s}`);
  }

  allReduce(t: Tensor, op: ReduceOp = "sum", opts?: AllReduceOptions): Promise<void> {
    this.check();
    let after: object | undefined;
    if (opts?.after) {
      if (!(opts.after instanceof NcclCommunicator))
        throw new TypeError("allReduce: after must be an NCCL communicator");
      after = opts.after.handle;
    }
    this.addon.ncclAllReduce(this.handle, t.native, t.native, op, opts?.overlap === true, after);
    return Promise.resolve();
  }

  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp = "sum"): Promise<void> {
    this.check();
    this.addon.ncclReduceScatter(this.handle, input.native, out.native, op);
    return Promise.resolve();
  }

  allGather(out: Tensor, input: Tensor): Promise<void> {
    this.check();
    this.addon.ncclAllGather(this.handle, input.native, out.native);
    return Promise.resolve();
  }

  broadcast(t: Tensor, root: number): Promise<void> {
    this.check();
    this.addon.ncclBroadcast(this.handle, t.native, t.native, root);
    return Promise.resolve();
  }

  reduce(
    t: Tensor,
    root: number,
    op: ReduceOp = "sum",
    opts?: { overlap?: boolean },
  ): Promise<void> {
    this.check();
    this.addon.ncclReduce(this.handle, t.native, t.native, op, root, opts?.overlap === true);
    return Promise.resolve();
  }

  join(): Promise<void> {
    this.check();
    this.addon.ncclJoin(this.handle);
    return Promise.resolve();
  }

  allReduceHost(values: Float64Array | number[], op: "sum" | "max" = "sum"): Promise<Float64Array> {
    return this.host.allReduceHost(values, op);
  }

  /** Polls the communication stream (the event loop stays free to see a dead peer). */
  async flush(): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      if (this.host.world.failure) throw this.host.world.failure;
      const s = this.addon.ncclState(this.handle);
      if (s === "ready") return;
      if (s !== "pending") throw new CollectiveError(`NCCL: ${s}`);
      if (Date.now() - t0 > this.timeoutMs) {
        const e = new CollectiveError(
          `NCCL collectives still pending after ${this.timeoutMs / 1000}s; aborting`,
        );
        this.host.world.fail(e, true);
        throw e;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async barrier(): Promise<void> {
    await this.flush();
    await this.host.barrier();
  }

  async split(color: number, key = 0): Promise<NcclCommunicator> {
    const host = await this.host.split(color, key);
    const handle = this.addon.ncclCommSplit(this.handle, color, key);
    const child = new NcclCommunicator(this.addon, handle, host, this.timeoutMs);
    await waitReady(this.addon, handle, `ncclCommSplit (color ${color})`, this.timeoutMs);
    this.children.push(child);
    return child;
  }

  /** Aborts every NCCL communicator of this world (peer failure): pending kernels return. */
  abortAll(reason: string): void {
    for (const c of this.children) c.abortAll(reason);
    if (!this.closed) this.addon.ncclAbort(this.handle, reason);
    this.closed = true;
  }

  close(): void {
    for (const c of this.children) c.close();
    if (this.closed) return;
    this.closed = true;
    this.addon.ncclDestroy(this.handle);
  }
}
