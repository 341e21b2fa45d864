// Runs the cross-backend suite on every backend present: the CPU in bf16 always (bf16 paths
// of the CPU kernels against its f32 paths), CUDA in f32 and bf16 when it is built and a GPU is
// usable. Where CUDA is absent the suite says so instead of passing silently.
import { describe, expect, it } from "vitest";
import { builtBackends, loadBackend } from "./loader.js";
import { crossCases } from "./testing/cross-backend.js";
import type { Backend, DType } from "./types.js";

const ref = await loadBackend("cpu");
const targets: Array<[string, Backend, DType]> = [["cpu", ref, "bf16"]];
const built = builtBackends();
let cudaSkipReason = built.cuda ? "" : `CUDA backend not built (${built.cudaReason})`;
if (built.cuda) {
  try {
    const cuda = await loadBackend("cuda");
    targets.push(["cuda", cuda, "f32"], ["cuda", cuda, "bf16"]);
  } catch (e) {
    cudaSkipReason = (e as Error).message;
  }
}
if (cudaSkipReason) console.log(`[kernels] cross-backend suite NOT run on cuda: ${cudaSkipReason}`);

for (const [name, backend, dtype] of targets) {
  describe(`${name} ${dtype} vs cpu f32`, () => {
    for (const c of crossCases()) {
      it(c.name, () => {
        const before = backend.stats();
        const checks = c.run(backend, ref, dtype, 42);
        for (const ch of checks)
          expect.soft(ch.err, `${c.name}: ${ch.name}`).toBeLessThanOrEqual(ch.tol);
        expect(backend.stats().liveTensors).toBe(before.liveTensors);
      });
    }
  });
}
