/**
 * Builds a Backend over a loaded addon: tensor creation, arenas, and the op families, each in
 * its own file under ops/ (one per native kernel family).
 */
import { Arena, type ArenaEntry, checkArenaEntryLimits, planArena } from "./arena.js";
import type { NativeAddon } from "./native.js";
import { attentionOps } from "./ops/attention.js";
import { elementwiseOps } from "./ops/elementwise.js";
import { embeddingOps } from "./ops/embedding.js";
import { lossOps } from "./ops/loss.js";
import { matmulOps } from "./ops/matmul.js";
import { normOps } from "./ops/norm.js";
import { optimOps } from "./ops/optim.js";
import { ropeOps } from "./ops/rope.js";
import { swigluOps } from "./ops/swiglu.js";
import { Tensor } from "./tensor.js";
import type { Backend, BackendName, DeviceInfo, DType, HostArray } from "./types.js";

export function createBackend(addon: NativeAddon, device: DeviceInfo): Backend {
  const empty = (shape: readonly number[], dtype: DType): Tensor =>
    new Tensor(addon.empty(shape, dtype), shape, dtype);
  const elementwise = elementwiseOps(addon);
  return {
    name: device.backend as BackendName,
    device,
    stats: () => addon.stats(),
    synchronize: () => addon.synchronize(),
    empty,
    zeros(shape, dtype) {
      const t = empty(shape, dtype);
      elementwise.fill(t, 0);
      return t;
    },
    fromHost(data: HostArray, shape: readonly number[], dtype: DType): Tensor {
      const t = empty(shape, dtype);
      try {
        t.copyFromHost(data);
      } catch (err) {
        t.dispose();
        throw err;
      }
      return t;
    },
    arena(entries: readonly ArenaEntry[]): Arena {
      // Every entry is checked before anything is allocated; should a view still fail, the
      // views made so far (Arena's constructor) and the base are disposed, not left to the GC.
      const layout = planArena(entries);
      checkArenaEntryLimits(entries);
      const base = empty([Math.max(layout.bytes, 2) / 2], "u16");
      try {
        return new Arena(base, entries, layout);
      } catch (err) {
        base.dispose();
        throw err;
      }
    },
    ...embeddingOps(addon),
    ...normOps(addon),
    ...matmulOps(addon),
    ...ropeOps(addon),
    ...attentionOps(addon),
    ...swigluOps(addon),
    ...lossOps(addon),
    ...optimOps(addon),
    ...elementwise,
  };
}
