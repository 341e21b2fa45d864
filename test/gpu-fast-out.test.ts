/**
 * tools/gpu/fast-out.sh decides where the GPU scripts' 1.1B runs write (memory or the results
 * directory) and keeps a run's small files: a mistake there would lose a GPU session's metrics,
 * which costs device time to redo, so it is checked here, where /dev/shm exists on Linux CI.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "tools", "gpu", "fast-out.sh");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function bash(out: string, body: string, env: Record<string, string> = {}): string {
  return execFileSync(
    "bash",
    ["-c", `set -u; out=${JSON.stringify(out)}; source ${JSON.stringify(script)}; ${body}`],
    {
      encoding: "utf8",
      env: { ...process.env, ...env },
    },
  ).trim();
}

describe("tools/gpu/fast-out.sh", () => {
  it("uses the results directory when memory is short or the feature is off", () => {
    const out = mkdtempSync(join(tmpdir(), "fast-out-"));
    dirs.push(out);
    expect(bash(out, "run_dir r1", { TK_FAST_OUT_MIN_GB: "1000000" })).toBe(`${out}/r1`);
    expect(bash(out, "run_dir r1", { TK_FAST_OUT: "0", TK_FAST_OUT_MIN_GB: "0" })).toBe(
      `${out}/r1`,
    );
    // keep_run of a run that never went to memory leaves it where it is
    mkdirSync(join(out, "r1"));
    writeFileSync(join(out, "r1", "metrics.jsonl"), "{}\n");
    bash(out, "keep_run r1");
    expect(readFileSync(join(out, "r1", "metrics.jsonl"), "utf8")).toBe("{}\n");
  });

  it.skipIf(!existsSync("/dev/shm"))(
    "keeps every file but the tensors of a run written to memory, then frees it",
    () => {
      const out = mkdtempSync(join(tmpdir(), "fast-out-"));
      dirs.push(out);
      const name = `r-${process.pid}`;
      const dir = bash(out, `run_dir ${name}`, { TK_FAST_OUT_MIN_GB: "0" });
      expect(dir).toBe(`/dev/shm/tk-runs/${name}`);
      dirs.push(dir);
      const ckpt = join(dir, "v1.0", "checkpoints", "step-000000000002");
      mkdirSync(ckpt, { recursive: true });
      writeFileSync(join(dir, "v1.0", "metrics.jsonl"), '{"kind":"train"}\n');
      writeFileSync(join(dir, "plot.svg"), "<svg/>");
      writeFileSync(join(ckpt, "trainer-state.json"), "{}");
      writeFileSync(join(ckpt, "model.safetensors"), Buffer.alloc(1024));
      bash(out, `keep_run ${name}`);
      expect(existsSync(dir)).toBe(false);
      expect(readFileSync(join(out, name, "v1.0", "metrics.jsonl"), "utf8")).toBe(
        '{"kind":"train"}\n',
      );
      expect(existsSync(join(out, name, "plot.svg"))).toBe(true);
      expect(
        existsSync(
          join(out, name, "v1.0", "checkpoints", "step-000000000002", "trainer-state.json"),
        ),
      ).toBe(true);
      expect(
        existsSync(
          join(out, name, "v1.0", "checkpoints", "step-000000000002", "model.safetensors"),
        ),
      ).toBe(false);
    },
  );
});
