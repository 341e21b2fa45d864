/**
 * Per-op timing of a backend, for finding where a training step spends its time. `profiled()`
 * returns a backend that forwards every call to the real one; while `start()`..`stop()` is
 * active, each op is bracketed by `synchronize()` so its wall time is its device time plus the
 * Node-API/launch cost of one call (a sync costs a few microseconds: the profiled step runs
 * slower than an unprofiled one, which is why profiling is off by default and on for chosen
 * steps only). Ops are keyed by name and argument shapes, so the six matmuls of a layer are six
 * rows. Inactive, the wrapper only forwards.
 */
import { Tensor } from "./tensor.js";
import type { Backend } from "./types.js";

export interface OpTiming {
  /** Op name and the shapes of its tensor arguments, e.g. `matmul [16384,2048] [256,2048]`. */
  key: string;
  calls: number;
  /** Total wall milliseconds of those calls, each synchronized before and after. */
  ms: number;
}

export interface ProfiledBackend {
  backend: Backend;
  start(): void;
  /** Stops and returns the timings since start(), largest total first. */
  stop(): OpTiming[];
}

// Not ops: bookkeeping that would only add its own sync to the table.
const UNTIMED = new Set(["synchronize", "stats", "empty", "arena", "zeros", "fromHost"]);

function shapeOf(a: unknown): string | null {
  return a instanceof Tensor ? `[${a.shape.join(",")}]` : null;
}

export function profiled(inner: Backend): ProfiledBackend {
  let active = false;
  let table = new Map<string, OpTiming>();
  const wrappers = new Map<PropertyKey, unknown>();
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || UNTIMED.has(String(prop))) return value;
      let w = wrappers.get(prop);
      if (!w) {
        const fn = value as (...args: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          if (!active) return fn.apply(target, args);
          target.synchronize();
          const t0 = performance.now();
          const result = fn.apply(target, args);
          target.synchronize();
          const ms = performance.now() - t0;
          const shapes = args.map(shapeOf).filter((s) => s !== null);
          const key = `${String(prop)} ${shapes.join(" ")}`.trim();
          const row = table.get(key) ?? { key, calls: 0, ms: 0 };
          row.calls++;
          row.ms += ms;
          table.set(key, row);
          return result;
        };
        wrappers.set(prop, w);
      }
      return w;
    },
  });
  return {
    backend,
    start() {
      inner.synchronize();
      table = new Map();
      active = true;
    },
    stop() {
      active = false;
      return [...table.values()].sort((a, b) => b.ms - a.ms);
    },
  };
}

/** A plain-text table of timings with each row's share of `stepMs`. */
export function formatProfile(rows: readonly OpTiming[], stepMs: number): string {
  const opMs = rows.reduce((s, r) => s + r.ms, 0);
  const calls = rows.reduce((s, r) => s + r.calls, 0);
  const lines = [
    `| op (argument shapes) | calls | ms | share of step |`,
    `| --- | ---: | ---: | ---: |`,
    ...rows.map(
      (r) =>
        `| ${r.key} | ${r.calls} | ${r.ms.toFixed(3)} | ${((100 * r.ms) / stepMs).toFixed(1)}% |`,
    ),
    `| all ops | ${calls} | ${opMs.toFixed(3)} | ${((100 * opMs) / stepMs).toFixed(1)}% |`,
    `| outside ops (JS, data, host waits) | | ${(stepMs - opMs).toFixed(3)} | ${((100 * (stepMs - opMs)) / stepMs).toFixed(1)}% |`,
  ];
  return lines.join("\n");
}
