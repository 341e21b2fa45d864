/**
 * The trainer's door to @tinyllama/kernels: types re-exported so the model and the training
 * loop name them from one place, and backend loading by device name.
 */
import { type Arena, type Backend, loadBackend, type Tensor } from "@tinyllama/kernels";

export type { ArenaEntry, ArenaLayout, DType, OpTiming } from "@tinyllama/kernels";
export { formatProfile, planArena, profiled } from "@tinyllama/kernels";
export type { Arena, Backend, Tensor };

export type DeviceName = "cpu" | "cuda" | "auto";

/** Loads a kernels backend; "cuda" without a usable GPU throws the kernels package's clear error. */
export function loadKernels(device: DeviceName): Promise<Backend> {
  return loadBackend(device);
}
