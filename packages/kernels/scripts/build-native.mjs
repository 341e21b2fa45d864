// Builds the native addons with CMake into build/ (see native/CMakeLists.txt). Offline: the
// Node-API headers come from the node-api-headers and node-addon-api packages. Environment:
// TINYLLAMA_CUDA=AUTO|ON|OFF (default AUTO), NODE_API_HEADERS_DIR / NODE_ADDON_API_DIR to
// point at copied headers where node_modules is absent (the GPU machines), CUDNN_HOME for a
// cuDNN outside the system paths (otherwise PyTorch's cuDNN wheel is used where python3 has it).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findCudnnWheel } from "./find-cudnn.mjs";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(pkgDir, "package.json"));

function headerDir(envName, resolve) {
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  return resolve();
}
const napiHeaders = headerDir("NODE_API_HEADERS_DIR", () =>
  join(dirname(require.resolve("node-api-headers/package.json")), "include"),
);
const addonApi = headerDir("NODE_ADDON_API_DIR", () =>
  dirname(require.resolve("node-addon-api/package.json")),
);
const buildDir = join(pkgDir, "build");
const cuda = process.env.TINYLLAMA_CUDA ?? "AUTO";

// cuDNN attention needs cudnn.h, which many GPU machines have only in PyTorch's wheel.
const env = { ...process.env };
if (cuda !== "OFF" && !env.CUDNN_HOME) {
  const wheel = findCudnnWheel();
  if ("home" in wheel) {
    env.CUDNN_HOME = wheel.home;
    console.log(`@tinyllama/kernels: cuDNN from PyTorch's wheel: ${wheel.home}`);
  }
}
const run = (args) => execFileSync("cmake", args, { cwd: pkgDir, stdio: "inherit", env });
try {
  run([
    "-S",
    "native",
    "-B",
    buildDir,
    "-DCMAKE_BUILD_TYPE=Release",
    `-DNODE_API_HEADERS_DIR=${napiHeaders}`,
    `-DNODE_ADDON_API_DIR=${addonApi}`,
    `-DTINYLLAMA_CUDA=${cuda}`,
  ]);
  run(["--build", buildDir, "-j", String(Math.min(availableParallelism(), 16))]);
} catch (err) {
  console.error(
    "@tinyllama/kernels: building the native addon failed. It needs cmake >= 3.18 and a C++17 " +
      "compiler (g++ >= 9); see packages/kernels/README.md.",
  );
  throw err;
}
if (!existsSync(join(buildDir, "tinyllama_cpu.node"))) {
  throw new Error(`@tinyllama/kernels: build finished without ${buildDir}/tinyllama_cpu.node`);
}
