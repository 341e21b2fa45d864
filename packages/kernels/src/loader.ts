/**
 * One loader for both addons (after sharp): finds build/tinyllama_<backend>.node, loads it,
 * initialises the device and checks it, and otherwise fails with one actionable message.
 * "auto" picks CUDA when it was built and a usable GPU is present, else the CPU.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createBackend } from "./backend.js";
import type { NativeAddon } from "./native.js";
import type { Backend, BackendName } from "./types.js";

const REBUILD = "npx -y pnpm@12.4.2 --filter @tinyllama/kernels build";

export interface LoadOptions {
  /** Directory holding tinyllama_*.node and backends.json; default <package>/build or $TINYLLAMA_KERNELS_BUILD_DIR. */
  buildDir?: string;
}

interface BuildManifest {
  cpu: boolean;
  cuda: boolean;
  cudaReason: string;
}

export function defaultBuildDir(): string {
  const fromEnv = process.env.TINYLLAMA_KERNELS_BUILD_DIR;
  if (fromEnv) return fromEnv;
  // src/loader.ts and dist/loader.js are both one level below the package root.
  return fileURLToPath(new URL("../build/", import.meta.url));
}

function readManifest(dir: string): BuildManifest {
  const file = join(dir, "backends.json");
  if (!existsSync(file)) {
    throw new Error(
      `@tinyllama/kernels: the native addon is not built (${file} is missing). Run: ${REBUILD}`,
    );
  }
  return JSON.parse(readFileSync(file, "utf8")) as BuildManifest;
}

const loaded = new Map<string, Backend>();

function loadAddon(dir: string, name: BackendName): NativeAddon {
  const file = join(dir, `tinyllama_${name}.node`);
  if (!existsSync(file)) {
    throw new Error(`@tinyllama/kernels: ${file} is missing. Run: ${REBUILD}`);
  }
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const hint =
      name === "cuda"
        ? "The CUDA runtime libraries it was built against (libcudart, libcublasLt, and libcudnn where backends.json says cudnnAttention) must be on the loader path (LD_LIBRARY_PATH) with a matching NVIDIA driver."
        : "Rebuild it for this machine.";
    throw new Error(`@tinyllama/kernels: cannot load ${file}: ${why}. ${hint} Rebuild: ${REBUILD}`);
  }
}

/** Minimum compute capability of the CUDA backend (Ampere: bf16 tensor cores). */
export const MIN_COMPUTE_CAPABILITY = 8.0;

function load(dir: string, name: BackendName, manifest: BuildManifest): Backend {
  const key = `${dir}|${name}`;
  const cached = loaded.get(key);
  if (cached) return cached;
  if (name === "cuda" && !manifest.cuda) {
    throw new Error(
      `@tinyllama/kernels: the CUDA backend was not built on this machine (${manifest.cudaReason}). ` +
        `Use loadBackend("cpu"), or rebuild where the CUDA toolkit with cuBLASLt is installed: TINYLLAMA_CUDA=ON ${REBUILD}`,
    );
  }
  const addon = loadAddon(dir, name);
  let device: ReturnType<NativeAddon["init"]>;
  try {
    device = addon.init();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`@tinyllama/kernels: the ${name} backend cannot start: ${why}`);
  }
  if (name === "cuda" && Number.parseFloat(device.computeCapability) < MIN_COMPUTE_CAPABILITY) {
    throw new Error(
      `@tinyllama/kernels: ${device.name} has compute capability ${device.computeCapability}; the CUDA backend needs ${MIN_COMPUTE_CAPABILITY} or newer (A100, H100). Use loadBackend("cpu").`,
    );
  }
  const backend = createBackend(addon, device);
  loaded.set(key, backend);
  return backend;
}

/** Loads a backend: "cpu", "cuda" (throws a clear Error without a usable GPU) or "auto". */
export async function loadBackend(
  name: BackendName | "auto" = "auto",
  options: LoadOptions = {},
): Promise<Backend> {
  if (name !== "cpu" && name !== "cuda" && name !== "auto") {
    throw new TypeError(
      `loadBackend: unknown backend "${String(name)}" (use "cpu", "cuda" or "auto")`,
    );
  }
  const dir = options.buildDir ?? defaultBuildDir();
  const manifest = readManifest(dir);
  if (name !== "auto") return load(dir, name, manifest);
  if (manifest.cuda) {
    try {
      return load(dir, "cuda", manifest);
    } catch {
      // No usable GPU: fall back to the CPU, as "auto" promises.
    }
  }
  return load(dir, "cpu", manifest);
}

/** Which backends this build has (without loading them). */
export function builtBackends(options: LoadOptions = {}): {
  cpu: boolean;
  cuda: boolean;
  cudaReason: string;
} {
  return readManifest(options.buildDir ?? defaultBuildDir());
}
