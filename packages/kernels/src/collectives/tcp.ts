/**
 * The TCP transport: a full mesh of connections between ranks (one per pair, set up after the
 * rendezvous), and ring algorithms over any group of ranks.
 *
 * Determinism: reduce-scatter runs the ring so that chunk c is summed in the fixed order
 * x[c+1] + x[c+2] + ... + x[c] (ranks mod size), each partial rounded to the tensor's dtype
 * (bf16 travels as 2-byte bf16, as on NCCL), so a given group size gives the same bits on every
 * run. all-reduce = reduce-scatter + all-gather; broadcast is a chain from the root; reduce is
 * a chain to the root (root+1 first: the order reduce-scatter gives the root's chunk); host
 * reductions gather to group rank 0, add in rank order and broadcast.
 *
 * Failure: a peer whose socket closes fails every pending collective at once with its rank named
 * (the kernel closes sockets of a dead process, so a killed rank is noticed in milliseconds). A
 * collective that waits longer than the timeout asks every peer what it is doing (control
 * messages answered by the event loop even mid-collective) and names the ranks that did not
 * answer (hung outside collectives) and where the others are. A rank that fails tells its peers
 * why (ABORT), so their errors carry the original cause instead of "rank k closed".
 */
import { connect, createServer, type Socket } from "node:net";
import { hostname } from "node:os";
import type { Tensor } from "../tensor.js";
import { rendezvous } from "./rendezvous.js";
import {
  type AllReduceOptions,
  CollectiveError,
  type Communicator,
  defaultCollectiveTimeoutMs,
  defaultRendezvousTimeoutMs,
  type ReduceOp,
} from "./types.js";
import { CONTROL_GROUP, type Frame, HEADER_BYTES, PeerLink } from "./wire.js";

const OP = {
  allReduce: 1,
  reduceScatter: 2,
  allGather: 3,
  broadcast: 4,
  hostReduce: 5,
  barrier: 6,
  reduce: 7,
} as const;
const OP_NAME = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;
const CTRL = { hello: 1, statusRequest: 2, status: 3, abort: 4 } as const;
/** Longest wait for an ABORT to leave this process before failing waits and telling listeners. */
const ABORT_FLUSH_MS = 2000;

export interface TcpWorldOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Ranks with the same host id are one "node" (hybrid sharding groups). Default: hostname. */
  hostId?: string;
  timeoutMs?: number;
  /** Rendezvous and mesh set-up timeout; default TINYLLAMA_RENDEZVOUS_TIMEOUT or 600 s. */
  connectTimeoutMs?: number;
  /** Progress while the rendezvous waits for ranks (every 30 s at most); see RendezvousOptions. */
  onWaiting?: (line: string) => void;
  /** Extra string rank 0 hands to everyone (e.g. an NCCL unique id). */
  rootPayload?: string;
}

/** What every rank learned at the rendezvous. */
export interface WorldInfo {
  rank: number;
  worldSize: number;
  /** hostIds[r]: the node of rank r. */
  hostIds: string[];
  rootPayload: string;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h === CONTROL_GROUP ? 1 : h;
}

/** Round-to-nearest-even f32 -> bf16 bits. */
function bf16Bits(x: Float32Array, bits: Uint16Array): void {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) {
    const v = u[i]!;
    if ((v & 0x7f800000) === 0x7f800000 && (v & 0x7fffff) !== 0) bits[i] = (v >>> 16) | 0x40;
    else bits[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
}

function bitsToF32(bits: Uint16Array, out: Float32Array): void {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
}

/** Rounds f32 values to the nearest bf16 in place. */
function roundToBf16(x: Float32Array): void {
  const bits = new Uint16Array(x.length);
  bf16Bits(x, bits);
  bitsToF32(bits, x);
}

interface ActiveCollective {
  label: string;
  waitingOn: number | null;
  since: number;
}

/** The process's connections to every other rank. Create with `TcpWorld.connect`. */
export class TcpWorld {
  readonly rank: number;
  readonly worldSize: number;
  readonly info: WorldInfo;
  readonly timeoutMs: number;
  private readonly links: (PeerLink | null)[];
  failure: CollectiveError | null = null;
  private readonly failureListeners: ((e: CollectiveError) => void)[] = [];
  private readonly statusWaiters = new Map<number, (s: string) => void>();
  active: ActiveCollective | null = null;
  private closed = false;
  /** Set by beginShutdown: peers leaving is expected and no longer a failure of the job. */
  private closing = false;

  private constructor(info: WorldInfo, timeoutMs: number, links: (PeerLink | null)[]) {
    this.rank = info.rank;
    this.worldSize = info.worldSize;
    this.info = info;
    this.timeoutMs = timeoutMs;
    this.links = links;
  }

  static async connect(o: TcpWorldOptions): Promise<TcpWorld> {
    const timeoutMs = o.timeoutMs ?? defaultCollectiveTimeoutMs();
    const connectTimeoutMs = o.connectTimeoutMs ?? defaultRendezvousTimeoutMs();
    const hostId = o.hostId ?? hostname();
    // Peers may dial this listener as soon as they leave the rendezvous, possibly before this
    // rank has read its own reply: connections are queued until the mesh set-up takes them.
    const early: Socket[] = [];
    let onSocket: ((s: Socket) => void) | null = null;
    const server = createServer((socket) => {
      if (onSocket) onSocket(socket);
      else early.push(socket);
    });
    const takeConnections = (handler: (s: Socket) => void) => {
      onSocket = handler;
      for (const s of early.splice(0)) handler(s);
    };
    await new Promise<void>((res, rej) => {
      server.once("error", rej);
      server.listen(0, () => res());
    });
    const port = (server.address() as { port: number }).port;
    const token =
      o.rank === 0 ? `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}` : "";
    let rv: Awaited<ReturnType<typeof rendezvous>>;
    try {
      rv = await rendezvous({
        rank: o.rank,
        worldSize: o.worldSize,
        masterAddr: o.masterAddr,
        masterPort: o.masterPort,
        info: { port, hostId },
        rootPayload: JSON.stringify({ token, payload: o.rootPayload ?? "" }),
        timeoutMs: connectTimeoutMs,
        ...(o.onWaiting ? { onWaiting: o.onWaiting } : {}),
      });
    } catch (e) {
      server.close();
      throw e;
    }
    const root = JSON.parse(rv.rootPayload) as { token: string; payload: string };
    const info: WorldInfo = {
      rank: o.rank,
      worldSize: o.worldSize,
      hostIds: rv.entries.map((e) => String(e.info.hostId)),
      rootPayload: root.payload,
    };
    const links: (PeerLink | null)[] = new Array(o.worldSize).fill(null);
    let world: TcpWorld | null = null;
    // A dead peer is news for every other rank too: pass it on, so each of them names the rank
    // that died rather than whichever of its peers happened to exit first because of it.
    const onFailure = (e: CollectiveError) => world?.fail(e, true, true);
    const onControl = (peer: number, f: Frame) => world?.onControl(peer, f);
    try {
      await buildMesh(
        o.rank,
        o.worldSize,
        takeConnections,
        rv.entries,
        root.token,
        links,
        onFailure,
        onControl,
        connectTimeoutMs,
      );
    } finally {
      server.close();
    }
    world = new TcpWorld(info, timeoutMs, links);
    return world;
  }

  /** Called once any failure is known (peer death, timeout, abort from a peer). */
  onFailure(listener: (e: CollectiveError) => void): void {
    this.failureListeners.push(listener);
    if (this.failure) listener(this.failure);
  }

  link(peer: number): PeerLink {
    if (this.failure) throw this.failure;
    const l = this.links[peer];
    if (!l) throw new Error(`no connection to rank ${peer}`);
    return l;
  }

  /**
   * `fromPeer`: the failure was seen on a peer's connection or announced by a peer (as opposed to
   * a timeout or mismatch found here); `tellPeers`: send an ABORT carrying `e` to the others.
   */
  fail(e: CollectiveError, tellPeers: boolean, fromPeer = !tellPeers): void {
    if (this.failure || this.closed) return;
    // During shutdown a peer that finished first closes its sockets: only waits on that peer fail.
    if (this.closing && fromPeer) return;
    this.failure = e;
    const told: PeerLink[] = [];
    for (const l of this.links) {
      if (!l || l.failure || !tellPeers) continue;
      try {
        l.send(
          CONTROL_GROUP,
          0,
          CTRL.abort,
          Buffer.from(JSON.stringify({ message: e.message, ranks: e.ranks })),
        );
        told.push(l);
      } catch {
        // The peer is gone too.
      }
    }
    const finish = () => {
      for (const l of this.links) if (l && !l.failure) l.abort(e);
      for (const f of this.failureListeners) f(e);
    };
    if (told.length === 0) {
      finish();
      return;
    }
    // The ABORT may sit behind megabytes of a collective's payload that a busy peer has not read
    // yet; a listener that exits the process at once would drop it, and the peer would blame us
    // instead of the rank that died (seen under CI load). Pending waits and listeners are held
    // until the ABORTs have left this process, for at most ABORT_FLUSH_MS.
    let timer: NodeJS.Timeout | undefined;
    void Promise.race([
      Promise.all(told.map((l) => l.drained())),
      new Promise<void>((r) => {
        timer = setTimeout(r, ABORT_FLUSH_MS);
      }),
    ]).then(() => {
      clearTimeout(timer);
      finish();
    });
  }

  private onControl(peer: number, f: Frame): void {
    if (f.op === CTRL.statusRequest) {
      const a = this.active;
      const state = a
        ? `in ${a.label}${a.waitingOn !== null ? ` waiting for rank ${a.waitingOn}` : ""} for ${((Date.now() - a.since) / 1000).toFixed(1)}s`
        : "between collectives";
      try {
        this.links[peer]?.send(CONTROL_GROUP, 0, CTRL.status, Buffer.from(state));
      } catch {
        // ignore: the asker is gone
      }
    } else if (f.op === CTRL.status) {
      this.statusWaiters.get(peer)?.(f.payload.toString());
    } else if (f.op === CTRL.abort) {
      const m = JSON.parse(f.payload.toString()) as { message: string; ranks: number[] };
      this.fail(new CollectiveError(`rank ${peer} aborted: ${m.message}`, m.ranks), false);
    }
  }

  /** Asks every peer what it is doing; ranks that do not answer in `graceMs` are hung. */
  async survey(graceMs: number): Promise<{ silent: number[]; states: string[] }> {
    const answers = new Map<number, string>();
    const peers = [...this.links.keys()].filter(
      (r) => r !== this.rank && this.links[r] && !this.links[r]!.failure,
    );
    await new Promise<void>((res) => {
      const t = setTimeout(res, graceMs);
      for (const p of peers) {
        this.statusWaiters.set(p, (s) => {
          answers.set(p, s);
          if (answers.size === peers.length) {
            clearTimeout(t);
            res();
          }
        });
        try {
          this.links[p]!.send(CONTROL_GROUP, 0, CTRL.statusRequest, Buffer.alloc(0));
        } catch {
          // counted as silent
        }
      }
      if (peers.length === 0) {
        clearTimeout(t);
        res();
      }
    });
    this.statusWaiters.clear();
    return {
      silent: peers.filter((p) => !answers.has(p)),
      states: [...answers.entries()].sort((a, b) => a[0] - b[0]).map(([p, s]) => `rank ${p} ${s}`),
    };
  }

  /**
   * Starts a clean exit: from now on peers closing their connections is expected (the ranks
   * that finish a final barrier first leave first). Call before that barrier, then close().
   */
  beginShutdown(): void {
    this.closing = true;
  }

  /** The communicator over all ranks. */
  communicator(): TcpCommunicator {
    return new TcpCommunicator(this, [...Array(this.worldSize).keys()]);
  }

  bytesSent(): number {
    return this.links.reduce((a, l) => a + (l?.bytesSent ?? 0), 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links) l?.close();
  }
}

async function buildMesh(
  rank: number,
  worldSize: number,
  takeConnections: (handler: (s: Socket) => void) => void,
  entries: { rank: number; addr: string; info: Record<string, unknown> }[],
  token: string,
  links: (PeerLink | null)[],
  onFailure: (e: CollectiveError) => void,
  onControl: (peer: number, f: Frame) => void,
  timeoutMs: number,
): Promise<void> {
  if (worldSize === 1) return;
  const expectedIncoming = worldSize - 1 - rank; // higher ranks dial us
  let incoming = 0;
  const made = (peer: number, socket: Socket, leftover: Buffer) => {
    links[peer] = new PeerLink(peer, socket, onFailure, leftover, (f) => onControl(peer, f));
  };
  const accepted = new Promise<void>((resolve, reject) => {
    if (expectedIncoming === 0) resolve();
    takeConnections((socket: Socket) => {
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < HEADER_BYTES) return;
        const len = buf.readUInt32LE(0);
        if (buf.length < HEADER_BYTES + len) return;
        socket.off("data", onData);
        const peer = buf.readUInt32LE(8);
        const tok = buf.subarray(HEADER_BYTES, HEADER_BYTES + len).toString();
        if (
          buf.readUInt32LE(12) !== CTRL.hello ||
          tok !== token ||
          peer <= rank ||
          peer >= worldSize ||
          links[peer]
        ) {
          socket.destroy();
          if (tok === token)
            reject(new CollectiveError(`mesh set-up: unexpected hello from rank ${peer}`, [peer]));
          return;
        }
        made(peer, socket, buf.subarray(HEADER_BYTES + len));
        if (++incoming === expectedIncoming) resolve();
      };
      socket.on("data", onData);
      socket.on("error", () => {});
    });
  });
  const dials = entries
    .filter((e) => e.rank < rank)
    .map(
      (e) =>
        new Promise<void>((resolve, reject) => {
          const port = Number(e.info.port);
          const socket = connect({ host: e.addr, port });
          socket.once("connect", () => {
            socket.removeAllListeners("error");
            const head = Buffer.alloc(HEADER_BYTES);
            const tok = Buffer.from(token);
            head.writeUInt32LE(tok.length, 0);
            head.writeUInt32LE(CONTROL_GROUP, 4);
            head.writeUInt32LE(rank, 8);
            head.writeUInt32LE(CTRL.hello, 12);
            socket.write(Buffer.concat([head, tok]));
            made(e.rank, socket, Buffer.alloc(0));
            resolve();
          });
          socket.once("error", (err) =>
            reject(
              new CollectiveError(
                `cannot connect to rank ${e.rank} at ${e.addr}:${port}: ${err.message}`,
                [e.rank],
              ),
            ),
          );
        }),
    );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const missing = [...links.keys()].filter((r) => r !== rank && !links[r]);
      reject(
        new CollectiveError(
          `mesh set-up timed out after ${timeoutMs / 1000}s: no connection with rank(s) ${missing.join(", ")}`,
          missing,
        ),
      );
    }, timeoutMs);
  });
  try {
    await Promise.race([Promise.all([accepted, ...dials]), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type FloatTensor = Tensor;

/** A group of ranks over a TcpWorld's connections. */
export class TcpCommunicator implements Communicator {
  readonly transport = "tcp" as const;
  readonly world: TcpWorld;
  readonly members: readonly number[];
  readonly rank: number;
  readonly size: number;
  private readonly id: number;
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();

  /** Where the group comes from (world, then split numbers and colors): the same on every member. */
  private readonly path: string;
  private splits = 0;

  constructor(world: TcpWorld, members: readonly number[], path = "world") {
    const sorted = [...members];
    if (new Set(sorted).size !== sorted.length)
      throw new Error(`group members repeat: [${members.join(", ")}]`);
    for (const m of sorted) {
      if (!Number.isInteger(m) || m < 0 || m >= world.worldSize) {
        throw new Error(`group member ${m} is outside the world of ${world.worldSize} ranks`);
      }
    }
    const me = sorted.indexOf(world.rank);
    if (me === -1)
      throw new Error(`rank ${world.rank} is not in the group [${members.join(", ")}]`);
    this.world = world;
    this.members = Object.freeze(sorted);
    this.rank = me;
    this.size = sorted.length;
    this.path = path;
    this.id = fnv1a(`${path}|${sorted.join(",")}`);
  }

  async split(color: number, key = 0): Promise<TcpCommunicator> {
    if (!Number.isInteger(color) || color < 0)
      throw new RangeError(`split: color must be a non-negative integer, got ${color}`);
    const mine = new Float64Array(2 * this.size);
    mine[2 * this.rank] = color;
    mine[2 * this.rank + 1] = key;
    const all = await this.allReduceHost(mine);
    const members = this.members
      .map((g, i) => ({ g, color: all[2 * i]!, key: all[2 * i + 1]!, i }))
      .filter((m) => m.color === color)
      .sort((a, b) => a.key - b.key || a.i - b.i)
      .map((m) => m.g);
    const path = `${this.path}/${++this.splits}:${color}`;
    return new TcpCommunicator(this.world, members, path);
  }

  /** Runs collectives one after another (a queue, like a stream), each under the timeout. */
  private run<T>(opCode: number, body: (seq: number) => Promise<T>): Promise<T> {
    const seq = ++this.seq;
    const label = `${OP_NAME[opCode]} #${seq} of group [${this.members.join(",")}]`;
    const next = this.chain.then(
      () => this.timed(label, () => body(seq)),
      () => this.timed(label, () => body(seq)),
    );
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async timed<T>(label: string, body: () => Promise<T>): Promise<T> {
    const w = this.world;
    if (w.failure) throw w.failure;
    w.active = { label, waitingOn: null, since: Date.now() };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void (async () => {
          const waitingOn = w.active?.waitingOn ?? null;
          const { silent, states } = await w.survey(Math.min(2000, w.timeoutMs));
          const blame = silent.length > 0 ? silent : waitingOn !== null ? [waitingOn] : [];
          const e = new CollectiveError(
            `rank ${w.rank}: ${label} timed out after ${w.timeoutMs / 1000}s` +
              (silent.length > 0
                ? `; rank(s) ${silent.join(", ")} did not answer (hung outside collectives, or stopped)`
                : waitingOn !== null
                  ? `; no data from rank ${waitingOn}`
                  : "") +
              (states.length > 0 ? `; ${states.join("; ")}` : "") +
              ". Raise TINYLLAMA_DIST_TIMEOUT if ranks are just slow",
            blame,
          );
          w.fail(e, true);
          reject(e);
        })();
      }, w.timeoutMs);
    });
    try {
      return await Promise.race([body(), timeout]);
    } finally {
      clearTimeout(timer);
      w.active = null;
    }
  }

  private send(groupRank: number, seq: number, op: number, payload: Uint8Array): void {
    this.world.link(this.members[groupRank]!).send(this.id, seq, op, payload);
  }

  private async recv(groupRank: number, seq: number, op: number): Promise<Buffer> {
    const peer = this.members[groupRank]!;
    if (this.world.active) this.world.active.waitingOn = peer;
    const f = await this.world.link(peer).recv(this.id);
    if (f.seq !== seq || f.op !== op) {
      const e = new CollectiveError(
        `collective mismatch in group [${this.members.join(",")}]: rank ${this.world.rank} is in ${OP_NAME[op]} #${seq}, ` +
          `rank ${peer} sent ${OP_NAME[f.op] ?? `op ${f.op}`} #${f.seq} (ranks must issue the same collectives in the same order)`,
        [peer],
      );
      this.world.fail(e, true);
      throw e;
    }
    if (this.world.active) this.world.active.waitingOn = null;
    return f.payload;
  }

  private checkFloat(t: FloatTensor, what: string, arg: string): void {
    if (t.disposed) throw new Error(`${what}: ${arg} was disposed`);
    if (t.dtype !== "f32" && t.dtype !== "bf16") {
      throw new TypeError(`${what}: ${arg} must be f32 or bf16, got ${t.dtype}`);
    }
  }

  /** Encodes a f32 range for the wire in the tensor's dtype. */
  private encode(x: Float32Array, dtype: string): Uint8Array {
    if (dtype === "f32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const bits = new Uint16Array(x.length);
    bf16Bits(x, bits);
    return new Uint8Array(bits.buffer);
  }

  private decode(b: Buffer, dtype: string, n: number): Float32Array {
    const copy = new Uint8Array(b.byteLength);
    copy.set(b);
    if (dtype === "f32") {
      if (b.byteLength !== n * 4)
        throw new CollectiveError(`message of ${b.byteLength} bytes, expected ${n * 4}`);
      return new Float32Array(copy.buffer);
    }
    if (b.byteLength !== n * 2)
      throw new CollectiveError(`message of ${b.byteLength} bytes, expected ${n * 2}`);
    const out = new Float32Array(n);
    bitsToF32(new Uint16Array(copy.buffer), out);
    return out;
  }

  /** Ring reduce-scatter over host data split at `bounds` (size + 1 offsets); returns own chunk. */
  private async ringReduceScatter(
    data: Float32Array,
    bounds: number[],
    dtype: string,
    seq: number,
    op: number,
  ): Promise<Float32Array> {
    const n = this.size;
    const r = this.rank;
    const chunk = (c: number) => data.subarray(bounds[c]!, bounds[c + 1]!);
    for (let s = 0; s < n - 1; s++) {
      const sendC = (((r - s - 1) % n) + n) % n;
      const recvC = (((r - s - 2) % n) + n) % n;
      this.send((r + 1) % n, seq, op, this.encode(chunk(sendC), dtype));
      const dst = chunk(recvC);
      const got = this.decode(await this.recv((r - 1 + n) % n, seq, op), dtype, dst.length);
      for (let i = 0; i < dst.length; i++) dst[i] = got[i]! + dst[i]!;
      if (dtype === "bf16") roundToBf16(dst);
    }
    return chunk(r);
  }

  private async ringAllGather(
    data: Float32Array,
    bounds: number[],
    dtype: string,
    seq: number,
    op: number,
  ): Promise<void> {
    const n = this.size;
    const r = this.rank;
    const chunk = (c: number) => data.subarray(bounds[c]!, bounds[c + 1]!);
    for (let s = 0; s < n - 1; s++) {
      const sendC = (((r - s) % n) + n) % n;
      const recvC = (((r - s - 1) % n) + n) % n;
      this.send((r + 1) % n, seq, op, this.encode(chunk(sendC), dtype));
      const dst = chunk(recvC);
      dst.set(this.decode(await this.recv((r - 1 + n) % n, seq, op), dtype, dst.length));
    }
  }

  private premultiply(x: Float32Array, dtype: string, op: ReduceOp): void {
    if (op === "sum") return;
    if (op !== "avg") throw new TypeError(`reduce op must be "sum" or "avg", got "${String(op)}"`);
    const f = Math.fround(1 / this.size);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * f;
    if (dtype === "bf16") roundToBf16(x);
  }

  allReduce(t: Tensor, op: ReduceOp = "sum", opts?: AllReduceOptions): Promise<void> {
    this.checkFloat(t, "allReduce", "t");
    let dep: Promise<unknown> = Promise.resolve();
    if (opts?.after) {
      if (!(opts.after instanceof TcpCommunicator))
        throw new TypeError("allReduce: after must be a TCP communicator");
      if (opts.after === this) throw new TypeError("allReduce: after must be another communicator");
      dep = opts.after.chain; // what is queued on `after` now, not what comes later
    }
    return this.run(OP.allReduce, async (seq) => {
      await dep;
      if (this.size === 1 && op === "sum") return;
      const data = t.toFloat32();
      this.premultiply(data, t.dtype, op);
      const n = this.size;
      const bounds = Array.from({ length: n + 1 }, (_, i) => Math.floor((i * data.length) / n));
      await this.ringReduceScatter(data, bounds, t.dtype, seq, OP.allReduce);
      await this.ringAllGather(data, bounds, t.dtype, seq, OP.allReduce);
      t.copyFromHost(data);
    });
  }

  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp = "sum"): Promise<void> {
    this.checkFloat(out, "reduceScatter", "out");
    this.checkFloat(input, "reduceScatter", "input");
    if (out.dtype !== input.dtype)
      throw new TypeError(`reduceScatter: out is ${out.dtype}, input ${input.dtype}`);
    if (input.numel !== out.numel * this.size) {
      throw new RangeError(
        `reduceScatter: input has ${input.numel} elements, expected size x out = ${this.size} x ${out.numel}`,
      );
    }
    return this.run(OP.reduceScatter, async (seq) => {
      const data = input.toFloat32();
      this.premultiply(data, input.dtype, op);
      const bounds = Array.from({ length: this.size + 1 }, (_, i) => i * out.numel);
      const mine = await this.ringReduceScatter(data, bounds, input.dtype, seq, OP.reduceScatter);
      out.copyFromHost(mine);
    });
  }

  allGather(out: Tensor, input: Tensor): Promise<void> {
    this.checkFloat(out, "allGather", "out");
    this.checkFloat(input, "allGather", "input");
    if (out.dtype !== input.dtype)
      throw new TypeError(`allGather: out is ${out.dtype}, input ${input.dtype}`);
    if (out.numel !== input.numel * this.size) {
      throw new RangeError(
        `allGather: out has ${out.numel} elements, expected size x input = ${this.size} x ${input.numel}`,
      );
    }
    return this.run(OP.allGather, async (seq) => {
      const data = new Float32Array(out.numel);
      data.set(input.toFloat32(), this.rank * input.numel);
      const bounds = Array.from({ length: this.size + 1 }, (_, i) => i * input.numel);
      await this.ringAllGather(data, bounds, out.dtype, seq, OP.allGather);
      out.copyFromHost(data);
    });
  }

  broadcast(t: Tensor, root: number): Promise<void> {
    this.checkFloat(t, "broadcast", "t");
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new RangeError(`broadcast: root ${root} is outside the group of ${this.size}`);
    }
    return this.run(OP.broadcast, async (seq) => {
      const n = this.size;
      if (n === 1) return;
      const pos = (this.rank - root + n) % n; // position along the chain from the root
      let data: Float32Array;
      if (pos === 0) data = t.toFloat32();
      else {
        data = this.decode(
          await this.recv((this.rank - 1 + n) % n, seq, OP.broadcast),
          t.dtype,
          t.numel,
        );
        t.copyFromHost(data);
      }
      if (pos < n - 1)
        this.send((this.rank + 1) % n, seq, OP.broadcast, this.encode(data, t.dtype));
    });
  }

  reduce(
    t: Tensor,
    root: number,
    op: ReduceOp = "sum",
    _opts?: { overlap?: boolean },
  ): Promise<void> {
    this.checkFloat(t, "reduce", "t");
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new RangeError(`reduce: root ${root} is outside the group of ${this.size}`);
    }
    // Host-staged: the data is read when the queue reaches this call and the promise resolves
    // once the root has the sum, so there is nothing to overlap or join.
    return this.run(OP.reduce, async (seq) => {
      const n = this.size;
      const data = t.toFloat32();
      this.premultiply(data, t.dtype, op);
      if (n === 1) {
        if (op !== "sum") t.copyFromHost(data);
        return;
      }
      const pos = (this.rank - root - 1 + n) % n; // 0 = first in the chain (root + 1), n-1 = root
      if (pos > 0) {
        const got = this.decode(
          await this.recv((this.rank - 1 + n) % n, seq, OP.reduce),
          t.dtype,
          data.length,
        );
        for (let i = 0; i < data.length; i++) data[i] = got[i]! + data[i]!;
        if (t.dtype === "bf16") roundToBf16(data);
      }
      if (pos < n - 1) this.send((this.rank + 1) % n, seq, OP.reduce, this.encode(data, t.dtype));
      else t.copyFromHost(data);
    });
  }

  join(): Promise<void> {
    return Promise.resolve();
  }

  allReduceHost(values: Float64Array | number[], op: "sum" | "max" = "sum"): Promise<Float64Array> {
    const mine = Float64Array.from(values);
    return this.run(OP.hostReduce, async (seq) => {
      const n = this.size;
      if (this.rank === 0) {
        const acc = Float64Array.from(mine);
        for (let p = 1; p < n; p++) {
          const b = await this.recv(p, seq, OP.hostReduce);
          const got = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
          if (got.length !== acc.length) {
            throw new CollectiveError(
              `allReduceHost: rank ${this.members[p]} sent ${got.length} values, rank ${this.members[0]} has ${acc.length}`,
              [this.members[p]!],
            );
          }
          for (let i = 0; i < acc.length; i++)
            acc[i] = op === "max" ? Math.max(acc[i]!, got[i]!) : acc[i]! + got[i]!;
        }
        const bytes = new Uint8Array(acc.buffer);
        for (let p = 1; p < n; p++) this.send(p, seq, OP.hostReduce, bytes);
        return acc;
      }
      this.send(0, seq, OP.hostReduce, new Uint8Array(mine.buffer));
      const b = await this.recv(0, seq, OP.hostReduce);
      return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    });
  }

  async barrier(): Promise<void> {
    await this.allReduceHost([0]);
  }

  flush(): Promise<void> {
    return this.chain.then(() => {
      if (this.world.failure) throw this.world.failure;
    });
  }

  close(): void {
    this.world.close();
  }
}
