// Where cuDNN is when only PyTorch's pip wheel brought it (nvidia-cudnn-cu12/13: the headers and
// libcudnn.so.9 under site-packages/nvidia/cudnn), as on many GPU machines and on the lent H200s,
// which have libcudnn in /usr/lib but no cudnn.h. build-native.mjs passes the directory to CMake
// as CUDNN_HOME, whose include/ and lib/ CMakeLists.txt searches first (a system libcudnn.so
// still wins the library search by name), so `pnpm build` gets cuDNN attention there too.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const probe = "import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])";

/**
 * The wheel's cuDNN directory ({ home }) or why there is none ({ reason }).
 * @param {{ python?: string, timeoutMs?: number }} [opts]
 * @returns {{ home: string } | { reason: string }}
 */
export function findCudnnWheel(opts = {}) {
  const python = opts.python ?? process.env.PYTHON ?? "python3";
  const r = spawnSync(python, ["-c", probe], {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 10_000,
  });
  if (r.error) return { reason: `${python}: ${r.error.message}` };
  if (r.status !== 0) return { reason: `${python} has no nvidia.cudnn module` };
  const home = r.stdout.trim();
  if (!home || !existsSync(join(home, "include", "cudnn.h")))
    return { reason: `no include/cudnn.h under ${home || "(empty path)"}` };
  return { home };
}
