import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { defaultBuildDir, loadBackend } from "./loader.js";
import { roundBf16 } from "./reference.js";
import { randn, rng } from "./testing/util.js";
import type { Backend } from "./types.js";

let k: Backend;
beforeAll(async () => {
  k = await loadBackend("cpu");
});

describe("tensor handles", () => {
  it("round-trips host data for every dtype; bf16 rounds to nearest even", () => {
    const f = randn(rng(1), 64);
    const t = k.fromHost(f, [8, 8], "f32");
    expect(Array.from(t.toHost())).toEqual(Array.from(f));
    const b = k.fromHost(f, [64], "bf16");
    expect(Array.from(b.toFloat32())).toEqual(Array.from(f, roundBf16));
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even mantissa wins (1)
    const tie = k.fromHost(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]), [2], "bf16");
    expect(Array.from(tie.toFloat32())).toEqual([1, 1 + 2 ** -6]);
    const raw = tie.toHost(new Uint16Array(2));
    expect(Array.from(raw)).toEqual([0x3f80, 0x3f82]);
    const i = k.fromHost(new Int32Array([-5, 7]), [2], "i32");
    expect(Array.from(i.toHost())).toEqual([-5, 7]);
    const u = k.fromHost(new Uint16Array([65535, 3]), [2], "u16");
    expect(Array.from(u.toHost())).toEqual([65535, 3]);
    for (const x of [t, b, tie, i, u]) x.dispose();
  });

  it("refuses wrong host array types and lengths", () => {
    const t = k.empty([4], "i32");
    expect(() => t.copyFromHost(new Float32Array(4))).toThrow(/i32 tensor cannot be filled/);
    expect(() => t.copyFromHost(new Int32Array(3))).toThrow(/array length 3 != numel 4/);
    t.dispose();
  });

  it("counts live tensors and bytes; views keep the allocation alive", () => {
    const before = k.stats();
    const t = k.empty([10, 10], "f32");
    const v = t.view(20, [2, 10]);
    expect(k.stats().liveTensors).toBe(before.liveTensors + 2);
    expect(k.stats().liveBytes).toBe(before.liveBytes + 400);
    t.copyFromHost(new Float32Array(100).map((_, i) => i));
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.toHost()).toThrow(/disposed/);
    expect(Array.from(v.toFloat32()).slice(0, 3)).toEqual([20, 21, 22]);
    expect(k.stats().liveBytes).toBe(before.liveBytes + 400);
    v.dispose();
    v.dispose(); // idempotent
    expect(k.stats()).toMatchObject({
      liveTensors: before.liveTensors,
      liveBytes: before.liveBytes,
    });
  });

  it("rejects views outside the allocation and disposed tensors in ops", () => {
    const t = k.empty([10], "f32");
    expect(() => t.view(8, [3])).toThrow(/outside the tensor's 40 bytes/);
    expect(() => t.view(-1, [1])).toThrow(/non-negative/);
    expect(() => t.reshape([3, 3])).toThrow(/has 9 elements/);
    const u = k.empty([10], "f32");
    u.dispose();
    expect(() => k.copy(t, u)).toThrow(/copy: src was disposed/);
    t.dispose();
  });

  it("frees forgotten handles through the finalizer (safety net)", () => {
    // A child process with --expose-gc loads the same addon, drops 100 handles and collects.
    const script = `
      const a = require(${JSON.stringify(join(defaultBuildDir(), "tinyllama_cpu.node"))});
      a.init();
      (function () { for (let i = 0; i < 100; i++) a.empty([1024], "f32"); })();
      const before = a.stats().liveTensors;
      const tick = (n) => { global.gc(); if (n === 0 || a.stats().liveTensors === 0) {
        console.log(JSON.stringify({ before, after: a.stats().liveTensors, bytes: a.stats().liveBytes })); return; }
        setTimeout(() => tick(n - 1), 10); };
      tick(50);`;
    const out = execFileSync(process.execPath, ["--expose-gc", "-e", script], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({ before: 100, after: 0, bytes: 0 });
  });
});

describe("arena", () => {
  it("places named, aligned views in one allocation", () => {
    const before = k.stats();
    const arena = k.arena([
      { name: "wte", shape: [10, 4], dtype: "bf16" },
      { name: "norm", shape: [4], dtype: "f32" },
      { name: "ids", shape: [3], dtype: "i32" },
    ]);
    expect(arena.bytes).toBe(256 * 3);
    expect(k.stats().allocations).toBe(before.allocations + 1);
    expect(arena.names()).toEqual(["wte", "norm", "ids"]);
    const norm = arena.get("norm");
    expect(norm.shape).toEqual([4]);
    k.fill(arena.whole, 0);
    k.fill(norm, 2.5);
    expect(Array.from(norm.toFloat32())).toEqual([2.5, 2.5, 2.5, 2.5]);
    expect(Array.from(arena.get("wte").toFloat32()).every((x) => x === 0)).toBe(true);
    expect(() => arena.get("nope")).toThrow(/no entry named "nope"/);
    expect(() =>
      k.arena([
        { name: "a", shape: [1], dtype: "f32" },
        { name: "a", shape: [1], dtype: "f32" },
      ]),
    ).toThrow(/duplicate/);
    arena.dispose();
    expect(k.stats()).toMatchObject({
      liveTensors: before.liveTensors,
      liveBytes: before.liveBytes,
    });
  });
});

describe("elementwise", () => {
  it("cast, fill, copy, scale, sum", () => {
    const f = randn(rng(5), 50);
    const x = k.fromHost(f, [50], "f32");
    const b = k.empty([5, 10], "bf16");
    k.cast(b, x);
    expect(Array.from(b.toFloat32())).toEqual(Array.from(f, roundBf16));
    const back = k.empty([50], "f32");
    k.cast(back, b);
    expect(Array.from(back.toFloat32())).toEqual(Array.from(f, roundBf16));
    const u = k.fromHost(new Uint16Array([1, 65535]), [2], "u16");
    const i = k.empty([2], "i32");
    k.cast(i, u);
    expect(Array.from(i.toHost())).toEqual([1, 65535]);
    expect(() => k.cast(u, i)).toThrow(/cannot cast i32 to u16/);
    k.scale(x, 2);
    expect(Array.from(x.toFloat32())).toEqual(Array.from(f, (v) => Math.fround(v * 2)));
    k.copy(back, x);
    expect(k.sum(back)).toBeCloseTo(
      f.reduce((a, v) => a + Math.fround(v * 2), 0),
      9,
    );
    k.fill(i, -3);
    expect(Array.from(i.toHost())).toEqual([-3, -3]);
    expect(() => k.fill(i, 0.5)).toThrow(/int32/);
    expect(() => k.copy(back, i)).toThrow(/same dtype/);
    for (const t of [x, b, back, u, i]) t.dispose();
  });
});
