/**
 * @tinyllama/kernels: tensors as handles to native memory and every op of Llama training on a
 * CPU backend (always built) and a CUDA backend (built where CUDA + cuBLASLt are found).
 * See README.md for the API with examples.
 */
export { ARENA_ALIGNMENT, Arena, type ArenaEntry, type ArenaLayout, planArena } from "./arena.js";
export { builtBackends, type LoadOptions, loadBackend, MIN_COMPUTE_CAPABILITY } from "./loader.js";
export { formatProfile, type OpTiming, type ProfiledBackend, profiled } from "./profile.js";
export { dtypeBytes, numelOf, Tensor } from "./tensor.js";
export type {
  AdamWOptions,
  AttentionOptions,
  Backend,
  BackendName,
  BackendStats,
  CrossEntropyOptions,
  DeviceInfo,
  DType,
  HostArray,
  MatmulOptions,
  RopeOptions,
} from "./types.js";
