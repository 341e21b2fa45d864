import { beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "./loader.js";
import { formatProfile, profiled } from "./profile.js";
import type { Backend } from "./types.js";

let k: Backend;
beforeAll(async () => {
  k = await loadBackend("cpu");
});

describe("profiled backend", () => {
  it("forwards results unchanged and times only between start and stop", () => {
    const p = profiled(k);
    const gate = p.backend.fromHost(new Float32Array([1, -2, 3, 0.5]), [2, 2], "f32");
    const up = p.backend.fromHost(new Float32Array([2, 1, -1, 4]), [2, 2], "f32");
    const out = p.backend.empty([2, 2], "f32");
    p.backend.swigluForward(out, gate, up); // before start: not recorded
    const expected = out.toHost();
    p.start();
    p.backend.swigluForward(out, gate, up);
    p.backend.swigluForward(out, gate, up);
    p.backend.scale(out, 1);
    const rows = p.stop();
    p.backend.scale(out, 1); // after stop: not recorded
    expect(Array.from(out.toHost())).toEqual(Array.from(expected));
    expect(rows.map((r) => [r.key, r.calls])).toEqual(
      expect.arrayContaining([
        ["swigluForward [2,2] [2,2] [2,2]", 2],
        ["scale [2,2]", 1],
      ]),
    );
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.ms).toBeGreaterThanOrEqual(0);
    const table = formatProfile(rows, 10);
    expect(table).toContain("| all ops | 3 |");
    expect(table).toContain("outside ops");
    for (const t of [gate, up, out]) t.dispose();
  });

  it("restarts with an empty table", () => {
    const p = profiled(k);
    const t = p.backend.zeros([4], "f32");
    p.start();
    p.backend.scale(t, 2);
    expect(p.stop()).toHaveLength(1);
    p.start();
    expect(p.stop()).toEqual([]);
    t.dispose();
  });
});
