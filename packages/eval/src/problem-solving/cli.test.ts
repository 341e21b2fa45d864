import { mkdtempSync, rmSync } from "node:fs";
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
      /--limit must be a positive integer, got "0"/,
    );
    await expect(main(["--batch-size", "2.5"])).rejects.toThrow(
      /--batch-size must be a positive integer/,
    );
    await expect(main(["--humaneval-temperature=-1"])).rejects.toThrow(
      /--humaneval-temperature must be a number >= 0, got "-1"/,
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

  it("reports a missing data directory before loading a model", async () => {
    await expect(
      main(["--data-dir", join(dir, "missing"), "--tasks", "mmlu", "--checkpoint", dir]),
    ).rejects.toThrow(/mmlu_dev: no data under .*missing; expected/);
  });
});
