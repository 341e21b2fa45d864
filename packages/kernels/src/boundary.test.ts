// The design promise at the native boundary, case by case: a bad call throws a JavaScript error,
// never a crash, a write through freed or wrongly shared memory, or a leaked handle. Each call
// that once crashed the process runs in a child process that loads the same addon, so a
// regression fails its test (exit status and signal reported) instead of killing the runner.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { builtBackends, defaultBuildDir, loadBackend } from "./loader.js";
import type { Tensor } from "./tensor.js";
import { OVERFLOW_SHAPES } from "./testing/fuzz.js";
import type { Backend, DType } from "./types.js";

// Every backend built and usable here (CUDA where it was built and a GPU answers).
const backends: string[] = ["cpu"];
if (builtBackends().cuda) {
  try {
    await loadBackend("cuda");
    backends.push("cuda");
  } catch (e) {
    console.log(`[kernels] boundary tests NOT run on cuda: ${(e as Error).message}`);
  }
}

interface ChildRun {
  status: number | null;
  signal: string | null;
  result: unknown;
  output: string;
}

/**
 * Runs `body` in a fresh Node process with `a` = the backend's addon (initialised), `out(x)` to
 * report a JSON result and `attempt(f)` = "ran" or the message f threw. `memoryLimitKiB` caps
 * the child's address space (ulimit -v) so a large scratch allocation fails deterministically.
 */
function inChild(
  backend: string,
  body: string,
  opts: { threads?: number; memoryLimitKiB?: number } = {},
): ChildRun {
  const addon = join(defaultBuildDir(), `tinyllama_${backend}.node`);
  const script = `"use strict";
const a = require(${JSON.stringify(addon)});
a.init();
const out = (x) => console.log("RESULT " + JSON.stringify(x));
const attempt = (f) => {
  try {
    const r = f();
    if (r && typeof r === "object" && typeof r.dispose === "function") r.dispose();
    return "ran";
  } catch (e) {
    return e instanceof Error ? e.message : "not an Error: " + String(e);
  }
};
${body}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.threads) env.TINYLLAMA_CPU_THREADS = String(opts.threads);
  const node = [process.execPath, "-e", script];
  const [cmd, args] = opts.memoryLimitKiB
    ? ["/bin/sh", ["-c", `ulimit -v ${opts.memoryLimitKiB} && exec "$0" "$@"`, ...node]]
    : [node[0]!, node.slice(1)];
  const r = spawnSync(cmd, args, { encoding: "utf8", env, timeout: 120_000 });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("RESULT "));
  return {
    status: r.status,
    signal: r.signal,
    result: line ? JSON.parse(line.slice("RESULT ".length)) : undefined,
    output: `${r.stdout ?? ""}${r.stderr ?? ""}`.slice(-3000),
  };
}

/** The child exited normally (no signal, status 0) and reported a result. */
function expectClean(run: ChildRun): void {
  expect({ status: run.status, signal: run.signal }, run.output).toEqual({
    status: 0,
    signal: null,
  });
  expect(run.result, run.output).toBeDefined();
}

for (const backend of backends) {
  describe(`native boundary (${backend}, child processes)`, () => {
    it("refuses shapes whose element count overflows, and out-of-range doubles", () => {
      const run = inChild(
        backend,
        `
const small = a.empty([4], "f32");
a.fill(small, 0);
const shapes = {};
for (const s of ${JSON.stringify(OVERFLOW_SHAPES)}) {
  shapes[JSON.stringify(s)] = {
    empty: attempt(() => a.empty(s, "bf16")),
    view: attempt(() => small.view(0, s, "bf16")),
  };
}
// The reviewer's repros: were a shape accepted, the kernels would index with the real dims.
let table = null;
try { table = a.empty([2 ** 39, 2 ** 24], "bf16"); } catch {}
if (table) {
  const o = a.empty([1, 2 ** 24], "bf16"), ids = a.empty([1], "i32");
  a.fill(ids, 1e9);
  a.embeddingForward(o, table, ids);
}
let x = null;
try { x = small.view(0, [1, 1, 2 ** 39, 2 ** 24], "bf16"); } catch {}
if (x) a.rope(x, x, 10000, 0, false);
const r4 = a.empty([1, 1, 1, 2], "f32"), one = a.empty([1], "f32");
a.fill(r4, 0); a.fill(one, 0);
out({
  shapes,
  viewOffset: attempt(() => small.view(1e300, [1], "f32")),
  viewOffset64: attempt(() => small.view(2 ** 64, [0], "f32")),
  viewOffsetEnd: attempt(() => small.view(16, [0], "f32")),
  ropeOffset: attempt(() => a.rope(r4, r4, 10000, 1e300, false)),
  ropeOffsetNeg: attempt(() => a.rope(r4, r4, 10000, -1e300, false)),
  adamStep: attempt(() => a.adamw(one, null, a.empty([1], "f32"), a.empty([1], "f32"), a.empty([1], "f32"), 1e-3, 0.9, 0.95, 1e-8, 0, 1e300, 1)),
  zeroSized: attempt(() => a.empty([2 ** 40, 0], "f32")),
});`,
      );
      expectClean(run);
      const res = run.result as Record<string, unknown> & {
        shapes: Record<string, { empty: string; view: string }>;
      };
      for (const [shape, o] of Object.entries(res.shapes)) {
        expect(o.empty, `empty(${shape})`).toMatch(/^empty: shape has too many elements/);
        expect(o.view, `view(${shape})`).toMatch(/^view: shape has too many elements/);
      }
      expect(res.viewOffset).toMatch(/^view: byteOffset .* is outside the tensor's 16 bytes/);
      expect(res.viewOffset64).toMatch(/^view: byteOffset .* is outside the tensor's 16 bytes/);
      expect(res.viewOffsetEnd).toBe("ran");
      expect(res.ropeOffset).toMatch(/^rope: positionOffset must be an integer in \[0, /);
      expect(res.ropeOffsetNeg).toMatch(/^rope: positionOffset must be an integer in \[0, /);
      expect(res.adamStep).toMatch(/^adamw: step must be an integer in \[1, /);
      expect(res.zeroSized).toBe("ran");
    });

    it("sumSquares given a sparse array of length 2^32 - 1 throws instead of aborting", () => {
      // reserve(length) threw std::bad_alloc outside any handler: SIGABRT.
      const run = inChild(
        backend,
        `
const arr = [];
arr.length = 2 ** 32 - 1;
out({ huge: attempt(() => a.sumSquares(arr)) });`,
      );
      expectClean(run);
      expect((run.result as { huge: string }).huge).toMatch(
        /^sumSquares: tensors\[0\] must be a Tensor/,
      );
    });

    it("embeddingBackward refuses dTable sharing memory with ids", () => {
      const run = inChild(
        backend,
        `
const dTable = a.empty([4, 4], "f32");
a.fill(dTable, 0);
const dOut = a.empty([4, 4], "f32");
a.fill(dOut, 1e30);
// ids = row 0 of dTable (all 0: valid when checked); the first write would make them 2^31-1.
const ids = dTable.view(0, [4], "i32");
const aliased = attempt(() => a.embeddingBackward(dTable, dOut, ids));
const partly = attempt(() => a.embeddingBackward(dTable, dOut, dTable.view(48, [4], "i32")));
const own = a.empty([4], "i32");
a.fill(own, 3);
a.fill(dOut, 1);
const valid = attempt(() => a.embeddingBackward(dTable, dOut, own));
out({ aliased, partly, valid, row3: Array.from(dTable.toHost(new Float32Array(16)).slice(12)) });`,
      );
      expectClean(run);
      const res = run.result as Record<string, unknown>;
      expect(res.aliased).toBe("embeddingBackward: dTable and ids must not overlap in memory");
      expect(res.partly).toBe("embeddingBackward: dTable and ids must not overlap in memory");
      expect(res.valid).toBe("ran");
      expect(res.row3).toEqual([4, 4, 4, 4]);
    });

    it("runs no user code while checking arguments (no use after free from Symbol.hasInstance)", () => {
      const run = inChild(
        backend,
        `
const victim = a.empty([1 << 22], "f32"); // 16 MiB: unmapped when freed
const src = a.empty([1 << 22], "f32");
a.fill(victim, 0); a.fill(src, 2);
let hooks = 0;
Object.defineProperty(a.NativeTensor, Symbol.hasInstance, { value(o) {
  // the second check (src) disposes dst, whose pointer the first check already took
  if (++hooks === 2) victim.dispose();
  return Function.prototype[Symbol.hasInstance].call(this, o);
}});
const copy = attempt(() => a.copy(victim, src));
const victimAlive = !victim.disposed;
// A Proxy of a tensor is not a tensor, and its traps never run.
let traps = 0;
const trap = () => { traps++; victim.dispose(); throw new Error("trap ran"); };
const proxy = new Proxy(src, { get: trap, has: trap, getPrototypeOf: trap, getOwnPropertyDescriptor: trap, ownKeys: trap });
const viaProxy = attempt(() => a.copy(victim, proxy));
// An object inheriting from a tensor is not one either.
const inherited = attempt(() => a.copy(victim, Object.create(src)));
// sumSquares reads its array (getters may run) before it takes any pointer.
const arr = [victim, src];
Object.defineProperty(arr, 1, { get() { victim.dispose(); return src; }, enumerable: true });
const getterDispose = attempt(() => a.sumSquares(arr));
out({ copy, hooks, victimAlive, traps, viaProxy, inherited, getterDispose, stats: a.stats() });`,
      );
      expectClean(run);
      const res = run.result as Record<string, unknown>;
      expect(res.copy).toBe("ran");
      expect(res.hooks).toBe(0);
      expect(res.victimAlive).toBe(true);
      expect(res.traps).toBe(0);
      expect(res.viaProxy).toBe("copy: src must be a Tensor");
      expect(res.inherited).toBe("copy: src must be a Tensor");
      expect(res.getterDispose).toBe("sumSquares: tensors[0] was disposed");
    });
  });
}

describe("native boundary (cpu only, child processes)", () => {
  it("refuses tensors of another copy of the addon", () => {
    const run = inChild(
      "cpu",
      `
const fs = require("node:fs"), os = require("node:os"), path = require("node:path");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tk-addon-"));
const file = path.join(dir, "copy.node");
fs.copyFileSync(${JSON.stringify(join(defaultBuildDir(), "tinyllama_cpu.node"))}, file);
const b = require(file);
b.init();
const mine = a.empty([2], "f32"), theirs = b.empty([2], "f32");
a.fill(mine, 1); b.fill(theirs, 2);
const r = {
  cross: attempt(() => a.copy(mine, theirs)),
  own: attempt(() => b.copy(theirs, theirs)),
  // V8 checks the receiver of the methods (the class's signature): no foreign "this" either
  view: attempt(() => a.NativeTensor.prototype.view.call(theirs, 0, [1], "f32")),
  toHost: attempt(() => a.NativeTensor.prototype.toHost.call(theirs, new Float32Array(2))),
  dispose: attempt(() => a.NativeTensor.prototype.dispose.call(theirs)),
  theirsAlive: !theirs.disposed,
};
fs.rmSync(dir, { recursive: true, force: true });
out(r);`,
    );
    expectClean(run);
    expect(run.result).toEqual({
      cross: "copy: src must be a Tensor",
      own: "ran",
      view: "Illegal invocation",
      toHost: "Illegal invocation",
      dispose: "Illegal invocation",
      theirsAlive: true,
    });
  });

  // decodeAttention with D = 0 and a position near 2^31 asks each parallel chunk for a 8 GiB
  // score buffer; under a 4 GiB address-space limit std::bad_alloc is thrown inside the
  // parallelFor body, on pool threads and on the calling thread. It once terminated the process
  // (or ran a destroyed std::function on the workers); now the error reaches JavaScript and the
  // pool keeps working.
  for (const threads of [4, 1]) {
    it(`an exception inside a parallel region becomes a JS error (${threads} threads)`, () => {
      const run = inChild(
        "cpu",
        `
const S = 8, H = 2, maxLen = 2 ** 31;
const z = (shape, dtype = "f32") => { const t = a.empty(shape, dtype); a.fill(t, 0); return t; };
const q = z([S, H, 0]), kNew = z([S, 1, 0]), vNew = z([S, 1, 0]), out0 = z([S, H, 0]);
const kCache = z([S, maxLen, 1, 0]), vCache = z([S, maxLen, 1, 0]);
const meta = z([2, S], "i32");
const m = new Int32Array(2 * S);
for (let s = 0; s < S; s++) { m[s] = s; m[S + s] = maxLen - 1; }
meta.fromHost(m);
const decode = () => a.decodeAttention(out0, q, kNew, vNew, kCache, vCache, meta, 10000, 0);
const first = attempt(decode);
const second = attempt(decode);
// the pool still runs ordinary work, with the right result
const A = a.empty([200, 300], "f32"), B = a.empty([300, 260], "f32"), C = a.empty([200, 260], "f32");
a.fill(A, 1); a.fill(B, 0.5);
a.matmul(C, A, B, false, false, false, 1);
out({ first, second, sum: a.sum(C) });`,
        { threads, memoryLimitKiB: 4 * 1024 * 1024 },
      );
      expectClean(run);
      const res = run.result as Record<string, unknown>;
      expect(res.first).toMatch(/^decodeAttention: .*bad_alloc/);
      expect(res.second).toMatch(/^decodeAttention: .*bad_alloc/);
      expect(res.sum).toBe(200 * 260 * 150);
    });
  }
});

describe("native boundary (in process)", () => {
  let k: Backend;
  beforeAll(async () => {
    k = await loadBackend("cpu");
  });

  it("refuses float scalars beyond float32's range instead of turning them into inf", () => {
    const t = k.zeros([4], "f32");
    const g = k.zeros([4], "f32");
    const m = k.zeros([4], "f32");
    const v = k.zeros([4], "f32");
    try {
      expect(() => k.scale(t, 1e300)).toThrow(/s must fit in a float32 .*got 1e\+300/);
      expect(() => k.fill(t, -1e39)).toThrow(/value must fit in a float32/);
      const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 };
      expect(() => k.adamw(t, null, g, m, v, { ...opts, lr: 4e38 })).toThrow(
        /lr must fit in a float32/,
      );
      k.fill(t, 3.4e38); // the largest finite floats still pass
      k.scale(t, 1);
      expect(Array.from(t.toFloat32())[0]).toBeCloseTo(3.4e38, -33);
    } finally {
      for (const x of [t, g, m, v]) x.dispose();
    }
  });

  it("refuses eps and RoPE bases that are not positive finite float32 values after rounding", () => {
    const x = k.fromHost(new Float32Array([0, 0, 0, 0, 1, 2, 3, 4]), [2, 4], "f32");
    const w = k.fromHost(new Float32Array(4).fill(1), [4], "f32");
    const out = k.zeros([2, 4], "f32");
    const r = k.zeros([2], "f32");
    const q = k.zeros([1, 2, 1, 4], "f32");
    try {
      // 1e-50 > 0 passed as a double, then rounded to 0 in float: the zero row became NaN.
      expect(() => k.rmsnormForward(out, r, x, w, 1e-50)).toThrow(/eps must be > 0/);
      expect(() =>
        k.residualRmsnormForward(out, k.zeros([2, 4], "f32"), r, x, x, w, 1e-50),
      ).toThrow(/eps must be > 0/);
      // 1e300 became inf inside the kernel (rstd = 0, all-zero output).
      expect(() => k.rmsnormForward(out, r, x, w, 1e300)).toThrow(/eps must fit in a float32/);
      expect(() => k.ropeForward(q, q, { base: 1e39 })).toThrow(/base must fit in a float32/);
      expect(() => k.ropeBackward(q, q, { base: 1e300 })).toThrow(/base must fit in a float32/);
      k.rmsnormForward(out, r, x, w, 1e-6);
      expect(Array.from(out.toFloat32()).slice(0, 4)).toEqual([0, 0, 0, 0]);
    } finally {
      for (const t of [x, w, out, r, q]) t.dispose();
    }
  });

  it("decodeAttention refuses a ropeBase beyond float32's range", () => {
    const z = (shape: number[], dtype: DType = "f32") => k.zeros(shape, dtype);
    const ts = [
      z([1, 2, 4]),
      z([1, 2, 4]),
      z([1, 1, 4]),
      z([1, 1, 4]),
      z([1, 3, 1, 4]),
      z([1, 3, 1, 4]),
    ];
    const meta = z([2, 1], "i32");
    try {
      const [out, q, kn, vn, kc, vc] = ts as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
      expect(() => k.decodeAttention(out, q, kn, vn, kc, vc, meta, { ropeBase: 1e300 })).toThrow(
        /ropeBase must fit in a float32/,
      );
    } finally {
      for (const t of [...ts, meta]) t.dispose();
    }
  });

  it("view() checks alignment against the allocation, not the parent view", () => {
    const before = k.stats().liveTensors;
    const base = k.zeros([16], "u16");
    const odd = base.viewBytes(2, [8], "u16");
    try {
      // Offset 0 within the u16 view at byte 2 is byte 2 of the allocation: a misaligned float*.
      expect(() => odd.viewBytes(0, [2], "f32")).toThrow(
        /byteOffset must be a multiple of the dtype size .*byte 2 of its allocation/,
      );
      expect(() => odd.viewBytes(4, [1], "i32")).toThrow(/multiple of the dtype size/);
      const ok = odd.viewBytes(2, [2], "f32"); // byte 4: aligned
      ok.dispose();
    } finally {
      odd.dispose();
      base.dispose();
    }
    expect(k.stats().liveTensors).toBe(before);
  });

  it("view() whose shape getter disposes the tensor throws and leaks no handle", () => {
    const before = k.stats();
    const t = k.zeros([8], "f32");
    const shape = [2];
    Object.defineProperty(shape, 1, {
      get() {
        t.dispose();
        return 2;
      },
      enumerable: true,
    });
    expect(() => t.view(0, shape)).toThrow(/view: tensor was disposed while the arguments/);
    t.dispose();
    expect(k.stats()).toMatchObject({
      liveTensors: before.liveTensors,
      liveBytes: before.liveBytes,
    });
  });

  // Every written tensor that another row reads (weight, rstd), or that sums over all rows
  // (dWeight), must not share memory with what the rows read.
  it("norm ops refuse outputs sharing memory with inputs other rows read", () => {
    const N = 4;
    const C = 4;
    type Spec = [name: string, shape: number[], dtype: DType];
    const ops: Array<{ op: string; args: Spec[]; call: (t: Tensor[]) => void; pairs: string[] }> = [
      {
        op: "rmsnormForward",
        args: [
          ["out", [N, C], "f32"],
          ["rstd", [N], "f32"],
          ["x", [N, C], "f32"],
          ["weight", [C], "f32"],
        ],
        call: ([out, rstd, x, w]) => k.rmsnormForward(out!, rstd!, x!, w!, 1e-5),
        pairs: ["rstd/weight", "out/weight", "rstd/x", "rstd/out"],
      },
      {
        op: "residualRmsnormForward",
        args: [
          ["residualOut", [N, C], "f32"],
          ["out", [N, C], "f32"],
          ["rstd", [N], "f32"],
          ["x", [N, C], "f32"],
          ["residual", [N, C], "f32"],
          ["weight", [C], "f32"],
        ],
        call: ([ro, out, rstd, x, res, w]) =>
          k.residualRmsnormForward(ro!, out!, rstd!, x!, res!, w!, 1e-5),
        pairs: [
          "residualOut/weight",
          "out/weight",
          "rstd/x",
          "rstd/residual",
          "rstd/weight",
          "rstd/out",
          "rstd/residualOut",
        ],
      },
      {
        op: "rmsnormBackward",
        args: [
          ["dx", [N, C], "f32"],
          ["dWeight", [C], "f32"],
          ["dOut", [N, C], "f32"],
          ["x", [N, C], "f32"],
          ["weight", [C], "f32"],
          ["rstd", [N], "f32"],
        ],
        call: ([dx, dw, dOut, x, w, rstd]) => k.rmsnormBackward(dx!, dw!, dOut!, x!, w!, rstd!),
        pairs: [
          "dx/weight",
          "dx/rstd",
          "dWeight/dOut",
          "dWeight/x",
          "dWeight/weight",
          "dWeight/rstd",
          "dWeight/dx",
        ],
      },
    ];
    const live = k.stats().liveTensors;
    for (const { op, args, call, pairs } of ops) {
      for (const pair of pairs) {
        const [p, q] = pair.split("/") as [string, string];
        // p and q share memory (q starts one element into p); everything else is separate.
        const base = k.zeros([64], "f32");
        const ts = args.map(([name, shape, dtype]) =>
          name === p
            ? base.view(0, shape)
            : name === q
              ? base.view(1, shape)
              : k.zeros(shape, dtype),
        );
        expect(() => call(ts), `${op} ${pair}`).toThrow(
          new RegExp(`^${op}: (${p} and ${q}|${q} and ${p}) must not overlap in memory$`),
        );
        for (const t of [base, ...ts]) t.dispose();
      }
      // without sharing, the same call runs
      const ts = args.map(([, shape, dtype]) => k.zeros(shape, dtype));
      k.fill(ts.find((_, i) => args[i]![0] === "rstd")!, 1);
      call(ts);
      for (const t of ts) t.dispose();
    }
    expect(k.stats().liveTensors).toBe(live);
  });

  it("the reviewer's norm aliasing calls are refused", () => {
    const s: Tensor[] = [];
    const z = (shape: number[]) => {
      const t = k.zeros(shape, "f32");
      s.push(t);
      return t;
    };
    const buf = z([5, 4]);
    const dx = buf.view(0, [4, 4]);
    const rstd = buf.view(3 * 4, [4]); // the last row of dx
    s.push(dx, rstd);
    expect(() => k.rmsnormBackward(dx, z([4]), z([4, 4]), z([4, 4]), z([4]), rstd)).toThrow(
      /rmsnormBackward: dx and rstd must not overlap/,
    );
    const ro = z([4, 8]);
    const w = ro.view(3 * 8, [8]); // weight inside residualOut
    s.push(w);
    expect(() =>
      k.residualRmsnormForward(ro, z([4, 8]), z([4]), z([4, 8]), z([4, 8]), w, 1e-5),
    ).toThrow(/residualRmsnormForward: residualOut and weight must not overlap/);
    // in place is still allowed where each row reads only itself
    const x = z([4, 8]);
    const ones = z([8]);
    k.fill(x, 2);
    k.fill(ones, 1);
    k.rmsnormForward(x, z([4]), x, ones, 1e-5);
    expect(Array.from(x.toFloat32()).every((v) => Math.abs(v - 1) < 1e-5)).toBe(true);
    for (const t of s) t.dispose();
  });

  it("arena() checks every entry before allocating and frees what it made on failure", () => {
    const before = k.stats();
    const bad: Array<[string, unknown]> = [
      ["fractional", [2.5]],
      ["negative", [-1]],
      ["NaN", [Number.NaN]],
      ["not an array", "4"],
      ["7 dims", [1, 1, 1, 1, 1, 1, 1]],
      ["2^41 elements", [2 ** 21, 2 ** 20]],
    ];
    for (const [what, shape] of bad) {
      expect(
        () =>
          k.arena([
            { name: "a", shape: [4], dtype: "f32" },
            { name: "b", shape: shape as number[], dtype: "f32" },
          ]),
        what,
      ).toThrow(/arena: entry "b"/);
    }
    expect(() =>
      k.arena([
        { name: "a", shape: [4], dtype: "f32" },
        { name: "b", shape: [4], dtype: "f64" as DType },
      ]),
    ).toThrow(/arena: entry "b": dtype must be/);
    // nothing was allocated for any of them
    expect(k.stats()).toMatchObject({
      liveTensors: before.liveTensors,
      liveBytes: before.liveBytes,
      allocations: before.allocations,
    });
    // An entry that passes the checks but that the addon still refuses (a Proxy is an array
    // to JavaScript, not to Node-API): the base and the views made before it are disposed.
    expect(() =>
      k.arena([
        { name: "a", shape: [4], dtype: "f32" },
        { name: "b", shape: new Proxy([4], {}), dtype: "f32" },
      ]),
    ).toThrow(/view: shape must be an array/);
    expect(k.stats()).toMatchObject({
      liveTensors: before.liveTensors,
      liveBytes: before.liveBytes,
    });
  });
});
