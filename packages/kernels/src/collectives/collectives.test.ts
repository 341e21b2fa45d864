/**
 * The TCP transport with every rank in this process (real sockets over 127.0.0.1): results
 * against a float64/f32 reference in the documented ring order (bitwise for f32), in-place
 * forms, bf16 on the wire, splits, host reductions, bad arguments, and failures: a peer that
 * closes, a rank that never joins a collective, mismatched collectives, rendezvous errors.
 */
import { createServer } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import type { Backend } from "../types.js";
import { NcclWorld, ncclAvailability } from "./nccl.js";
import { freeRendezvousPort as freePort } from "./port.js";
import { rendezvous } from "./rendezvous.js";
import { TcpWorld } from "./tcp.js";
import { CollectiveError, defaultRendezvousTimeoutMs } from "./types.js";

let k: Backend;
beforeAll(async () => {
  k = await loadBackend("cpu");
});

const open: TcpWorld[] = [];
afterEach(() => {
  for (const w of open.splice(0)) w.close();
});

async function worlds(
  n: number,
  opts: { timeoutMs?: number; hostIds?: string[] } = {},
): Promise<TcpWorld[]> {
  const port = await freePort();
  const ws = await Promise.all(
    Array.from({ length: n }, (_, rank) =>
      TcpWorld.connect({
        rank,
        worldSize: n,
        masterAddr: "127.0.0.1",
        masterPort: port,
        timeoutMs: opts.timeoutMs ?? 10_000,
        ...(opts.hostIds ? { hostId: opts.hostIds[rank]! } : {}),
      }),
    ),
  );
  open.push(...ws);
  return ws;
}

function data(rank: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++)
    x[i] = Math.fround(Math.sin(rank * 7.1 + i * 0.37) * (1 + rank) * 1e-2 + i * 1e-5);
  return x;
}

/** The documented order: chunk c sums x[c+1] + x[c+2] + ... + x[c], rounded to f32 each step. */
function ringSum(inputs: Float32Array[], bounds: number[]): Float32Array {
  const n = inputs.length;
  const out = new Float32Array(inputs[0]!.length);
  for (let c = 0; c < n; c++) {
    for (let i = bounds[c]!; i < bounds[c + 1]!; i++) {
      let acc = inputs[(c + 1) % n]![i]!;
      for (let s = 2; s <= n; s++) acc = Math.fround(inputs[(c + s) % n]![i]! + acc);
      out[i] = acc;
    }
  }
  return out;
}

describe("tcp collectives", () => {
  it("all-reduce (sum, avg), reduce-scatter and all-gather in place, broadcast: 3 ranks, f32 bitwise", async () => {
    const ws = await worlds(3);
    const comms = ws.map((w) => w.communicator());
    const n = 1000;
    const inputs = [0, 1, 2].map((r) => data(r, n));
    const ts = inputs.map((x) => k.fromHost(x, [n], "f32"));
    await Promise.all(comms.map((c, r) => c.allReduce(ts[r]!)));
    const bounds = [0, 333, 666, 1000];
    const want = ringSum(inputs, bounds);
    for (const t of ts) expect(t.toFloat32()).toEqual(want);
    // Reduce-scatter in place: out is the rank's slice of the input.
    const rs = inputs.map((x) => k.fromHost(x.subarray(0, 999), [999], "f32"));
    const outs = rs.map((t, r) => t.view(r * 333, [333]));
    await Promise.all(comms.map((c, r) => c.reduceScatter(outs[r]!, rs[r]!)));
    const wantRs = ringSum(
      inputs.map((x) => x.subarray(0, 999)),
      [0, 333, 666, 999],
    );
    for (let r = 0; r < 3; r++)
      expect(outs[r]!.toFloat32()).toEqual(wantRs.subarray(r * 333, (r + 1) * 333));
    // All-gather in place puts every rank's slice everywhere.
    await Promise.all(comms.map((c, r) => c.allGather(rs[r]!, outs[r]!)));
    for (const t of rs) expect(t.toFloat32()).toEqual(wantRs);
    // avg: each input pre-multiplied by 1/3 in f32, then the same ring sum.
    const av = inputs.map((x) => k.fromHost(x, [n], "f32"));
    await Promise.all(comms.map((c, r) => c.allReduce(av[r]!, "avg")));
    const third = Math.fround(1 / 3);
    const scaled = inputs.map((x) => x.map((v) => Math.fround(v * third)));
    expect(av[1]!.toFloat32()).toEqual(ringSum(scaled, bounds));
    // Broadcast from rank 2.
    await Promise.all(comms.map((c, r) => c.broadcast(ts[r]!, 2)));
    const b = ts[2]!.toFloat32();
    for (const t of ts) expect(t.toFloat32()).toEqual(b);
    for (const t of [...ts, ...rs, ...outs, ...av]) t.dispose();
  });

  it("reduce to each piece's owner gives the bits of one reduce-scatter (3 ranks, f32; avg; non-roots untouched)", async () => {
    const ws = await worlds(3);
    const comms = ws.map((w) => w.communicator());
    const n = 999;
    const inputs = [0, 1, 2].map((r) => data(r, n));
    const bounds = [0, 333, 666, 999];
    const want = ringSum(inputs, bounds);
    const ts = inputs.map((x) => k.fromHost(x, [n], "f32"));
    // Pieces issued back to front, as backward finishes them; a piece may cross no owner boundary.
    const pieces = [
      [700, 999, 2],
      [666, 700, 2],
      [400, 666, 1],
      [333, 400, 1],
      [0, 333, 0],
    ] as const;
    const views = ts.map((t) => pieces.map(([lo, hi]) => t.view(lo, [hi - lo])));
    await Promise.all(
      comms.flatMap((c, r) =>
        pieces.map(([, , root], p) => c.reduce(views[r]![p]!, root, "sum", { overlap: true })),
      ),
    );
    await Promise.all(comms.map((c) => c.join()));
    for (let r = 0; r < 3; r++) {
      const got = ts[r]!.toFloat32();
      const own = [bounds[r]!, bounds[r + 1]!] as const;
      expect(got.subarray(...own)).toEqual(want.subarray(...own));
      // Outside its own chunk a rank's data is as it was, except where it relayed nothing.
      for (const [lo, hi, root] of pieces) {
        if (root !== r) expect(got.subarray(lo, hi)).toEqual(inputs[r]!.subarray(lo, hi));
      }
    }
    const av = inputs.map((x) => k.fromHost(x.subarray(0, 333), [333], "f32"));
    await Promise.all(comms.map((c, r) => c.reduce(av[r]!, 0, "avg")));
    const third = Math.fround(1 / 3);
    const scaled = inputs.map((x) => x.subarray(0, 333).map((v) => Math.fround(v * third)));
    expect(av[0]!.toFloat32()).toEqual(ringSum(scaled, [0, 333, 333, 333]).subarray(0, 333));
    for (const t of [...ts, ...views.flat(), ...av]) t.dispose();
  });

  it("all-reduce `after` another group waits for that group's collectives (hybrid: node, then replica)", async () => {
    const ws = await worlds(4);
    const world = ws.map((w) => w.communicator());
    const nodes = await Promise.all(world.map((c, r) => c.split(Math.floor(r / 2), r)));
    const replicas = await Promise.all(world.map((c, r) => c.split(r % 2, r)));
    const n = 64;
    const inputs = [0, 1, 2, 3].map((r) => data(r, n));
    const ts = inputs.map((x) => k.fromHost(x, [n], "f32"));
    // Every rank issues both without awaiting (as backward does); the node roots (ranks 0, 2)
    // then sum across nodes. Without the dependency the replica step reads unreduced data.
    const pending = [0, 1, 2, 3].flatMap((r) => {
      const p = [nodes[r]!.reduce(ts[r]!, 0, "sum", { overlap: true })];
      if (nodes[r]!.rank === 0)
        p.push(replicas[r]!.allReduce(ts[r]!, "sum", { overlap: true, after: nodes[r]! }));
      return p;
    });
    await Promise.all(pending);
    for (const r of [0, 2]) {
      const got = ts[r]!.toFloat32();
      for (let i = 0; i < n; i++) {
        const exact = inputs[0]![i]! + inputs[1]![i]! + inputs[2]![i]! + inputs[3]![i]!;
        expect(Math.abs(got[i]! - exact)).toBeLessThan(1e-6);
      }
    }
    expect(() => world[0]!.allReduce(ts[0]!, "sum", { after: world[0]! })).toThrow(
      /after must be another communicator/,
    );
    for (const t of ts) t.dispose();
  });

  it("bf16: partial sums rounded to bf16 at every hop, within bf16 rounding of the exact sum", async () => {
    const ws = await worlds(2);
    const comms = ws.map((w) => w.communicator());
    const inputs = [0, 1].map((r) => data(r, 64));
    const ts = inputs.map((x) => k.fromHost(x, [64], "bf16"));
    const rounded = ts.map((t) => t.toFloat32());
    await Promise.all(comms.map((c, r) => c.allReduce(ts[r]!)));
    const got0 = ts[0]!.toFloat32();
    expect(ts[1]!.toFloat32()).toEqual(got0);
    for (let i = 0; i < 64; i++) {
      const exact = rounded[0]![i]! + rounded[1]![i]!;
      expect(Math.abs(got0[i]! - exact)).toBeLessThanOrEqual(Math.abs(exact) * 2 ** -8 + 1e-30);
    }
    for (const t of ts) t.dispose();
  });

  it("host reductions are identical on every rank; split makes node and replica groups", async () => {
    const ws = await worlds(4);
    const comms = ws.map((w) => w.communicator());
    const sums = await Promise.all(comms.map((c, r) => c.allReduceHost([0.1 * r, r], "sum")));
    for (const s of sums) expect([...s]).toEqual([...sums[0]!]);
    expect(sums[0]![1]).toBe(6);
    const maxes = await Promise.all(comms.map((c, r) => c.allReduceHost([r === 2 ? 1 : 0], "max")));
    for (const m of maxes) expect(m[0]).toBe(1);
    // Two "nodes" of 2: shard groups {0,1} {2,3}, replica groups {0,2} {1,3}.
    const nodes = await Promise.all(comms.map((c, r) => c.split(Math.floor(r / 2), r)));
    const replicas = await Promise.all(comms.map((c, r) => c.split(r % 2, r)));
    expect(nodes.map((g) => g.members)).toEqual([
      [0, 1],
      [0, 1],
      [2, 3],
      [2, 3],
    ]);
    expect(replicas.map((g) => g.members)).toEqual([
      [0, 2],
      [1, 3],
      [0, 2],
      [1, 3],
    ]);
    const ts = [0, 1, 2, 3].map((r) => k.fromHost(new Float32Array([r, 10 * r]), [2], "f32"));
    await Promise.all(nodes.map((g, r) => g.allReduce(ts[r]!)));
    expect(ts[3]!.toFloat32()).toEqual(new Float32Array([5, 50]));
    await Promise.all(replicas.map((g, r) => g.allReduce(ts[r]!)));
    expect(ts[0]!.toFloat32()).toEqual(new Float32Array([6, 60]));
    for (const t of ts) t.dispose();
  });

  it("bad arguments fail clearly before any data moves", async () => {
    const ws = await worlds(2);
    const c = ws[0]!.communicator();
    const a = k.zeros([10], "f32");
    const b = k.zeros([4], "f32");
    const i = k.zeros([4], "i32");
    expect(() => c.reduceScatter(b, a)).toThrow(
      /input has 10 elements, expected size x out = 2 x 4/,
    );
    expect(() => c.allGather(a, b)).toThrow(/out has 10 elements, expected size x input = 2 x 4/);
    expect(() => c.allReduce(i)).toThrow(/must be f32 or bf16, got i32/);
    expect(() => c.broadcast(b, 5)).toThrow(/root 5 is outside the group of 2/);
    expect(() => c.reduce(b, -1)).toThrow(/reduce: root -1 is outside the group of 2/);
    expect(() => c.reduce(i, 0)).toThrow(/reduce: t must be f32 or bf16, got i32/);
    await expect(c.split(-1)).rejects.toThrow(/color must be a non-negative integer/);
    b.dispose();
    expect(() => c.allReduce(b)).toThrow(/was disposed/);
    for (const t of [a, i]) t.dispose();
  });
});

describe("tcp failures", () => {
  it("a failing rank's ABORT leaves before its listeners run, even behind a payload a busy peer has not read", async () => {
    const ws = await worlds(2);
    // Rank 1 stops reading (as a peer busy in a long compute step does); rank 0 queues a 32 MB
    // payload to it, then fails. Its listener (the trainer exits there) must wait for the ABORT.
    const toRank0 = (ws[1] as unknown as { links: { socket: { pause(): void; resume(): void } }[] })
      .links[0]!.socket;
    toRank0.pause();
    const big = k.zeros([8 << 20], "f32");
    void ws[0]!
      .communicator()
      .allReduce(big)
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    let listenedAt = 0;
    ws[0]!.onFailure(() => {
      listenedAt = Date.now();
    });
    const seen = new Promise<Error>((resolve) => ws[1]!.onFailure(resolve));
    const failedAt = Date.now();
    ws[0]!.fail(new CollectiveError("rank 0: boom"), true);
    await new Promise((r) => setTimeout(r, 300));
    expect(listenedAt).toBe(0); // still flushing
    toRank0.resume();
    expect((await seen).message).toMatch(/rank 0 aborted: rank 0: boom/);
    await new Promise((r) => setTimeout(r, 50));
    expect(listenedAt - failedAt).toBeGreaterThanOrEqual(300);
    big.dispose();
  });

  it("a peer that goes away fails the pending collective at once, naming the rank", async () => {
    const ws = await worlds(3);
    const t = k.zeros([100], "f32");
    const pending = ws[0]!.communicator().allReduce(t);
    const t0 = Date.now();
    ws[2]!.close();
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollectiveError);
    expect((err as Error).message).toMatch(/rank 2 closed its connection/);
    expect((err as CollectiveError).ranks).toContain(2);
    expect(Date.now() - t0).toBeLessThan(2000);
    t.dispose();
  });

  it("a rank that never joins: the collective times out naming where each rank is", async () => {
    const ws = await worlds(3, { timeoutMs: 400 });
    const ts = [0, 1].map(() => k.zeros([8], "f32"));
    const errs = await Promise.all(
      [0, 1].map((r) =>
        ws[r]!.communicator()
          .allReduce(ts[r]!)
          .catch((e: unknown) => e as Error),
      ),
    );
    const msg = errs.map((e) => (e as Error).message).join("\n");
    expect(msg).toMatch(/allReduce #1 of group \[0,1,2\] timed out after 0.4s/);
    expect(msg).toMatch(/rank 2 between collectives/);
    for (const t of ts) t.dispose();
  });

  it("ranks issuing different collectives get a mismatch error", async () => {
    const ws = await worlds(2);
    const a = k.zeros([4], "f32");
    const b = k.zeros([8], "f32");
    const [e0, e1] = await Promise.all([
      ws[0]!
        .communicator()
        .allReduce(a)
        .catch((e: unknown) => e as Error),
      ws[1]!
        .communicator()
        .allGather(b, a.view(0, [4]))
        .catch((e: unknown) => e as Error),
    ]);
    expect(`${(e0 as Error | undefined)?.message} ${(e1 as Error | undefined)?.message}`).toMatch(
      /collective mismatch/,
    );
    for (const t of [a, b]) t.dispose();
  });

  it("rendezvous: rank 0 missing, a rank missing, bad rank, port in use", async () => {
    const port = await freePort();
    await expect(
      rendezvous({
        rank: 1,
        worldSize: 2,
        masterAddr: "127.0.0.1",
        masterPort: port,
        info: {},
        timeoutMs: 300,
      }),
    ).rejects.toThrow(/rank 0 at 127.0.0.1:\d+ did not answer rank 1/);
    await expect(
      rendezvous({
        rank: 0,
        worldSize: 3,
        masterAddr: "127.0.0.1",
        masterPort: port,
        info: {},
        timeoutMs: 300,
      }),
    ).rejects.toThrow(/rank\(s\) 1, 2 of 3 never connected/);
    await expect(
      rendezvous({
        rank: 3,
        worldSize: 2,
        masterAddr: "127.0.0.1",
        masterPort: port,
        info: {},
        timeoutMs: 300,
      }),
    ).rejects.toThrow(/rank 3 is outside \[0, 2\)/);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, () => r()));
    await expect(
      rendezvous({
        rank: 0,
        worldSize: 2,
        masterAddr: "127.0.0.1",
        masterPort: port,
        info: {},
        timeoutMs: 300,
      }),
    ).rejects.toThrow(/port \d+ is in use/);
    blocker.close();
  });

  it("rendezvous says for whom it waits while it waits, then stops saying it", async () => {
    const port = await freePort();
    const o = { worldSize: 3, masterAddr: "127.0.0.1", masterPort: port, info: {} };
    const said: string[] = [];
    // rank 2 alone first: rank 0 is not up
    const r2 = rendezvous({
      ...o,
      rank: 2,
      timeoutMs: 5000,
      reportEveryMs: 50,
      onWaiting: (l) => said.push(l),
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(
      said.some((l) =>
        /rank 2: rank 0 at 127\.0\.0\.1:\d+ does not answer yet after \d+s \(.*ECONNREFUSED.*; gives up at 5s\)/.test(
          l,
        ),
      ),
    ).toBe(true);
    // rank 0 comes: it waits for rank 1, and rank 2 now waits for the others
    const r0 = rendezvous({
      ...o,
      rank: 0,
      timeoutMs: 5000,
      reportEveryMs: 50,
      onWaiting: (l) => said.push(l),
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(
      said.some((l) =>
        /rendezvous on 127\.0\.0\.1:\d+: 2 of 3 ranks joined after \d+s, waiting for rank\(s\) 1 \(gives up at 5s\)/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(
      said.some((l) => /rank 2: joined the rendezvous on .* and waits for the other ranks/.test(l)),
    ).toBe(true);
    const r1 = rendezvous({ ...o, rank: 1, timeoutMs: 5000 });
    const all = await Promise.all([r0, r1, r2]);
    expect(all.map((r) => r.entries.length)).toEqual([3, 3, 3]);
    const n = said.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(said.length).toBe(n);
  });

  it("TINYLLAMA_RENDEZVOUS_TIMEOUT: 600 s by default, seconds when set, refused when not a positive number", () => {
    const old = process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT;
    try {
      delete process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT;
      expect(defaultRendezvousTimeoutMs()).toBe(600_000);
      process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT = "1800";
      expect(defaultRendezvousTimeoutMs()).toBe(1_800_000);
      process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT = "ten minutes";
      expect(() => defaultRendezvousTimeoutMs()).toThrow(
        /TINYLLAMA_RENDEZVOUS_TIMEOUT must be a positive number of seconds, got "ten minutes"/,
      );
    } finally {
      if (old === undefined) delete process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT;
      else process.env.TINYLLAMA_RENDEZVOUS_TIMEOUT = old;
    }
  });

  it("two processes claiming one rank are refused", async () => {
    const port = await freePort();
    const o = {
      worldSize: 3,
      masterAddr: "127.0.0.1",
      masterPort: port,
      info: {},
      timeoutMs: 3000,
    };
    const rs = await Promise.all([
      rendezvous({ ...o, rank: 0 }).catch((e: unknown) => e as Error),
      rendezvous({ ...o, rank: 1 }).catch((e: unknown) => e as Error),
      rendezvous({ ...o, rank: 1 }).catch((e: unknown) => e as Error),
    ]);
    expect(String(rs[0])).toMatch(/two processes claim rank 1/);
  });
});

describe("rendezvous port", () => {
  it("is drawn below the OS's ephemeral range and can be listened on", async () => {
    for (let i = 0; i < 5; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(32_000);
      const s = createServer();
      await new Promise<void>((r) => s.listen(port, "127.0.0.1", () => r()));
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it("gives up with an actionable error when no port is found", async () => {
    await expect(freePort("127.0.0.1", 0)).rejects.toThrow(/no free port .* pass --master-port/);
  });
});

describe("nccl availability", () => {
  it("reports why NCCL is missing, and refuses the cpu backend with a clear error", async () => {
    const a = ncclAvailability();
    if (a.available) {
      console.log(
        `NCCL ${a.version} is built: the GPU suite (tools/gpu/run-distributed.sh) checks it`,
      );
      return;
    }
    console.log(
      `NCCL not built here (${a.reason}): NCCL collectives are not run; the GPU suite runs them`,
    );
    expect(a.reason).toMatch(/CUDA backend|NCCL|nccl/);
    await expect(
      NcclWorld.connect(k, { rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: 1 }),
    ).rejects.toThrow(/NCCL needs the cuda backend, got cpu/);
  });
});
