import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { builtBackends, loadBackend } from "./loader.js";

describe("loadBackend", () => {
  it("loads the CPU backend and reports the device", async () => {
    const k = await loadBackend("cpu");
    expect(k.name).toBe("cpu");
    expect(k.device.threads).toBeGreaterThan(0);
  });

  it("auto falls back to the CPU when CUDA is not usable", async () => {
    const k = await loadBackend("auto");
    const built = builtBackends();
    if (!built.cuda) expect(k.name).toBe("cpu");
    else expect(["cpu", "cuda"]).toContain(k.name);
  });

  it("selecting cuda without a CUDA build or GPU is one clear error", async () => {
    const built = builtBackends();
    if (built.cuda) {
      // A CUDA build: only a machine without a GPU can show the error; on a GPU machine it loads.
      const result = await loadBackend("cuda").then(
        (k) => k.name,
        (e: Error) => e.message,
      );
      expect(result === "cuda" || /cannot start: .*(no CUDA device|driver)/.test(result)).toBe(
        true,
      );
      return;
    }
    await expect(loadBackend("cuda")).rejects.toThrow(
      /the CUDA backend was not built on this machine \(.+\)\. Use loadBackend\("cpu"\), or rebuild where the CUDA toolkit/,
    );
  });

  it("names a missing build and an unknown backend", async () => {
    const empty = mkdtempSync(join(tmpdir(), "kernels-loader-"));
    onTestFinished(() => rmSync(empty, { recursive: true, force: true }));
    await expect(loadBackend("cpu", { buildDir: empty })).rejects.toThrow(
      /native addon is not built.*Run: /,
    );
    writeFileSync(
      join(empty, "backends.json"),
      JSON.stringify({ cpu: true, cuda: true, cudaReason: "" }),
    );
    await expect(loadBackend("cuda", { buildDir: empty })).rejects.toThrow(
      /tinyllama_cuda\.node is missing/,
    );
    await expect(loadBackend("tpu" as never)).rejects.toThrow(/unknown backend "tpu"/);
  });
});
