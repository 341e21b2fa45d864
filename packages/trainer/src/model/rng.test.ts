import { afterEach, describe, expect, it, vi } from "vitest";
import { Rng } from "./rng.js";

/** The definition fillNormal must reproduce: one normal() at a time. */
function sequential(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
  return out;
}

describe("Rng", () => {
  afterEach(() => {
    delete process.env.TINYLLAMA_INIT_THREADS;
    vi.resetModules();
  });

  it("fillU32 gives nextU32's sequence and leaves the same state", () => {
    const a = new Rng(3407);
    const b = new Rng(3407);
    const batch = new Uint32Array(10_001);
    a.fillU32(batch, batch.length);
    const one = Uint32Array.from({ length: batch.length }, () => b.nextU32());
    expect(batch).toEqual(one);
    expect(a.state()).toEqual(b.state());
    expect(a.nextU32()).toBe(b.nextU32());
  });

  it("fillNormal through the worker pool gives the sequential loop's bits, spare included", async () => {
    process.env.TINYLLAMA_INIT_THREADS = "3";
    vi.resetModules();
    const pooled = await import("./rng.js");
    const { normalPool } = await import("./normal-pool.js");
    expect(normalPool()?.count).toBe(3);
    // Sizes: odd (the last value leaves a spare), and three rounds of the pool (1M pairs
    // each, the last one partial), starting with a spare left by a previous call.
    for (const [n, leadingSpare] of [
      [(1 << 20) + 1, false],
      [5_000_001, true],
    ] as const) {
      const fast = new pooled.Rng(42);
      const slow = new Rng(42);
      if (leadingSpare) expect(fast.normal()).toBe(slow.normal());
      const got = new Float32Array(n);
      fast.fillNormal(got, 0.02);
      const want = sequential(slow, n, 0.02);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      expect(fast.state()).toEqual(slow.state());
      expect(fast.normal()).toBe(slow.normal());
    }
  });

  it("TINYLLAMA_INIT_THREADS=1 keeps the loop; a bad value is a clear error", async () => {
    process.env.TINYLLAMA_INIT_THREADS = "1";
    const one = await import("./normal-pool.js");
    expect(one.normalPool()).toBeNull();
    vi.resetModules();
    process.env.TINYLLAMA_INIT_THREADS = "many";
    const bad = await import("./normal-pool.js");
    expect(() => bad.normalPool()).toThrow(
      /TINYLLAMA_INIT_THREADS must be a positive integer, got "many"/,
    );
  });
});
