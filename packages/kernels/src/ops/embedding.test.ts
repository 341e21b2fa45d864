import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { embeddingRef } from "../reference.js";
import { dot, fdGrad, sampleCoords } from "../testing/fd.js";
import { randInts, randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

const [V, C, N] = [11, 24, 30];

describe("cpu embedding", () => {
  it("forward gathers rows", () => {
    const r = rng(1);
    const table = randn(r, V * C);
    const ids = randInts(r, N, V);
    const out = s.poisoned([N, C], "f32");
    k.embeddingForward(out, s.from(table, [V, C], "f32"), s.from(ids, [N], "i32"));
    expect(relErr(out.toFloat32(), embeddingRef(table, C, ids))).toBe(0);
  });

  it("backward scatter-adds (finite differences) and is bitwise deterministic", () => {
    const r = rng(2);
    const table = randn(r, V * C);
    const ids = randInts(r, N, 4); // many repeats
    const R = randn(r, N * C);
    const d0 = randn(r, V * C);
    const run = () => {
      const dTable = s.from(d0, [V, C], "f32");
      k.embeddingBackward(dTable, s.from(R, [N, C], "f32"), s.from(ids, [N], "i32"));
      return dTable.toFloat32();
    };
    const got = run();
    const coords = sampleCoords(r, V * C, V * C);
    const fd = fdGrad((t) => dot(embeddingRef(t, C, ids), R), table, coords);
    expect(
      relErr(
        got.map((v, i) => v - d0[i]!),
        fd,
      ),
    ).toBeLessThan(1e-5);
    expect(Buffer.from(run().buffer).equals(Buffer.from(got.buffer))).toBe(true);
  });

  it("rejects out-of-range ids before writing anything", () => {
    const out = s.from(new Float32Array(2 * C).fill(7), [2, C], "f32");
    const table = s.zeros([V, C], "f32");
    expect(() =>
      k.embeddingForward(out, table, s.from(new Int32Array([1, V]), [2], "i32")),
    ).toThrow(/ids\[1\] = 11 is outside \[0, 11\)/);
    expect(() =>
      k.embeddingForward(out, table, s.from(new Int32Array([-1, 0]), [2], "i32")),
    ).toThrow(/outside/);
    expect(out.toFloat32().every((v) => v === 7)).toBe(true);
    expect(() => k.embeddingForward(out, table, s.zeros([2], "u16"))).toThrow(/ids must be i32/);
  });
});
