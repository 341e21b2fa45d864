import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { problemSolvingMain as main } from "./cli.js";

const dir = mkdtempSync(join(tmpdir(), "ps-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("pnpm eval:problem-solving flags", () => {
  // Every one of these fails before a checkpoint is looked for (there is none under `dir`).
  it("rejects bad flags with the flag's name and the value given", async () => {
    await expect(main(["--tasks", "gsm8k"])).rejects.toThrow(/unknown benchmark "gsm8k"/);
    await expect(main(["--limit", "0"])).rejects.toThrow(
      /--limit must be a positive integer \(decimal digits only\), got "0"/,
    );
    await expect(main(["--batch-size", "2.5"])).rejects.toThrow(
      /--batch-size must be a positive integer/,
    );
    await expect(main(["--humaneval-temperature=-1"])).rejects.toThrow(
      /--humaneval-temperature must be a number >= 0 \(plain decimal like 3 or 0.5\), got "-1"/,
    );
    // "1e9" is refused for its spelling, and the message says which spellings are taken
    await expect(main(["--humaneval-timeout", "1e9"])).rejects.toThrow(
      /--humaneval-timeout must be a number >= 0.1 \(plain decimal like 3 or 0.5\), got "1e9"/,
    );
    // setTimeout holds at most 2^31 - 1 ms: longer would make every program "timeout"
    await expect(main(["--humaneval-timeout", "3000000"])).rejects.toThrow(
      /--humaneval-timeout must be at most 2147483 seconds, got "3000000"/,
    );
    await expect(main(["--bbh-partial", "--tasks", "bbh"])).rejects.toThrow(
      /--bbh-partial needs --data-dir/,
    );
    await expect(main(["--humaneval-seed", "x"])).rejects.toThrow(
      /--humaneval-seed must be an integer >= 0/,
    );
    await expect(main(["--humaneval-network", "maybe"])).rejects.toThrow(
      /--humaneval-network must be auto, require or off/,
    );
    await expect(main(["--mmlu-mode", "chat"])).rejects.toThrow(
      /--mmlu-mode must be generate or loglik/,
    );
    await expect(main(["--device", "tpu"])).rejects.toThrow(/--device must be cpu, cuda or auto/);
    await expect(main(["--dtype", "f16"])).rejects.toThrow(/--dtype must be f32 or bf16/);
    await expect(main(["--bogus"])).rejects.toThrow(/Unknown option '--bogus'/);
  });

  it("probes the HumanEval sandbox before loading a model", async () => {
    // `dir` has no checkpoint: these errors come before one is looked for
    const noPython = join(dir, "bin-no-python");
    mkdirSync(noPython);
    const unshare = spawnSync("sh", ["-c", "command -v unshare"], { encoding: "utf8" }).stdout;
    if (unshare.trim()) symlinkSync(unshare.trim(), join(noPython, "unshare"));
    const saved = process.env.PATH;
    try {
      process.env.PATH = noPython;
      await expect(main(["--tasks", "humaneval", "--checkpoint", dir])).rejects.toThrow(
        /HumanEval sandbox: cannot run python3/,
      );
      await expect(
        main(["--tasks", "humaneval", "--checkpoint", dir, "--humaneval-network", "require"]),
      ).rejects.toThrow(/HumanEval sandbox: cannot isolate the network/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it("reports a missing data directory before loading a model", async () => {
    await expect(
      main(["--data-dir", join(dir, "missing"), "--tasks", "mmlu", "--checkpoint", dir]),
    ).rejects.toThrow(/mmlu_dev: no data under .*missing; expected/);
  });
});
